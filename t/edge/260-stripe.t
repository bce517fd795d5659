#!/usr/bin/perl

# loyalty_webhook stripe: Stripe-Signature "t=...,v1=<hex>" over
# "t.body" keyed with the whole whsec_ string (apis.md §7, §10 vector 5)
# through nginx and Redis: the envelope of customer, payment and refund
# events, every way a delivery is refused (401 / 400, nothing queued),
# the 300 s window (only too-old refused, as Stripe's SDKs), a secret
# roll (several v1), rotation, and dedupe on the event id.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Digest::SHA qw(hmac_sha256_hex hmac_sha256);
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = 'whsec_' . join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
my $old = 'whsec_old' . join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
my $other = 'whsec_other_secret';

my ($redis, $ngx) = edge_setup(config => qq{
    location = /st   { loyalty_webhook stripe; loyalty_secret $secret;
                       loyalty_store st; loyalty_default_country US; }
    location = /rot  { loyalty_webhook stripe; loyalty_secret $old;
                       loyalty_secret $secret; loyalty_store rot; }
    location = /wide { loyalty_webhook stripe; loyalty_secret $secret;
                       loyalty_timestamp_tolerance 10m; loyalty_store wide; }
    location = /vec  { loyalty_webhook stripe; loyalty_secret whsec_test_secret;
                       loyalty_timestamp_tolerance 10y; loyalty_store vec; }
});

my $json = JSON::PP->new->utf8->canonical;
my $stream = stream_key('st');

sub v1 { hmac_sha256_hex("$_[1].$_[2]", $_[0]) }

sub event {
    my ($type, $object, %o) = @_;
    return $json->encode({
        id => $o{id} // new_id('evt'), object => 'event',
        api_version => '2024-06-20', created => $o{created} // 1772360430,
        type => $type, livemode => JSON::PP::false, pending_webhooks => 1,
        request => { id => 'req_1', idempotency_key => 'k-1' },
        data => { object => $object },
    });
}

# post_st($path, body => B, secret => S, t => T, header => override,
#         name => header name)
sub post_st {
    my ($path, %o) = @_;
    my $body = $o{body};
    my $t = $o{t} // int time;
    my $sig = $o{header} // "t=$t,v1=" . v1($o{secret} // $secret, $t, $body);
    my %h = ('Content-Type' => 'application/json',
             ($o{no_header} ? () : (($o{name} // 'Stripe-Signature') => $sig)));
    return $ngx->request(POST => $path, body => $body, headers => \%h);
}

my $intent = { id => 'pi_3QOd', object => 'payment_intent', amount => 4990,
               amount_received => 4990, currency => 'eur',
               customer => 'cus_R4nD', receipt_email => 'Ada@Example.com',
               status => 'succeeded', created => 1772360400 };


# --- accepted ------------------------------------------------------------------

my $eid = new_id('evt');
my $r = post_st('/st', body => event('payment_intent.succeeded', $intent, id => $eid));
is $r->{status}, 202, 'payment_intent.succeeded: 202' or diag $r->{body};
is json_of($r) && json_of($r)->{id}, $eid, '202 body carries the event id';

my $e = $redis->stream($stream)->[-1][1];
is $e->{v}, '1', 'v = 1';
is $e->{id}, $eid, 'id = body id (evt_...)';
is $e->{src}, 'stripe', 'src = stripe';
is $e->{type}, 'order.paid', 'type order.paid';
is $e->{topic}, 'payment_intent.succeeded', 'topic = event type';
is $e->{occurred}, '2026-03-01T10:20:30Z', 'occurred = created in UTC';
is $e->{email}, 'ada@example.com', 'email from receipt_email, lower-cased';
is $e->{ext_id}, 'cus_R4nD', 'ext_id = the Stripe customer';
my $data = eval { $json->decode($e->{data}) } // {};
is $data->{order}{id}, 'pi_3QOd', 'order.id';
is $data->{order}{total}, 4990, 'order.total: minor units as sent';
is $data->{order}{currency}, 'EUR', 'order.currency upper-cased';
is $data->{order}{created_at}, '2026-03-01T10:20:00Z', 'order.created_at';
is_deeply $data->{ref}, { type => 'payment_intent', id => 'pi_3QOd' }, 'ref: the object';
ok exists $data->{livemode} && !$data->{livemode}, 'livemode false kept';

$r = post_st('/st', body => event('customer.updated', { id => 'cus_R4nD',
    object => 'customer', email => 'ada@example.org', name => 'Ada Lovelace',
    phone => '(415) 555-0100' }));
is $r->{status}, 202, 'customer.updated: 202';
$e = $redis->stream($stream)->[-1][1];
is $e->{type}, 'customer.updated', '... customer.updated';
is $e->{phone}, '+14155550100', '... phone in E.164 (loyalty_default_country US)';
is_deeply eval { $json->decode($e->{data})->{customer} },
    { email => 'ada@example.org', phone => '+14155550100', ext_id => 'cus_R4nD',
      name => 'Ada Lovelace' }, '... customer: name not split';

$r = post_st('/st', body => event('refund.created', { id => 're_1', object => 'refund',
    amount => 2000, currency => 'usd', charge => 'ch_1', payment_intent => 'pi_3QOd',
    status => 'succeeded' }));
is $r->{status}, 202, 'refund.created: 202';
$e = $redis->stream($stream)->[-1][1];
is $e->{type}, 'order.refunded', '... order.refunded';
is_deeply eval { $json->decode($e->{data})->{refund} },
    { id => 're_1', order_id => 'ch_1', amount => 2000, currency => 'USD',
      status => 'succeeded', payment_intent => 'pi_3QOd' }, '... refund';

$r = post_st('/st', body => event('customer.subscription.created',
    { id => 'sub_1', object => 'subscription', customer => 'cus_R4nD' }));
is $r->{status}, 202, 'an unmapped type: 202';
is $redis->stream($stream)->[-1][1]{type}, 'unknown', '... type unknown';

# apis.md §10 vector 5: the body is no Stripe event, so it verifies and
# is then refused as a payload
$r = post_st('/vec', body => '{"id":820982911946154508,"email":"jon@example.com"}',
    header => 't=1700000000,v1=d2ef6f609cf69ce282bef3673dc8b4a61c6ff6e1a1a47d315ac5c3c953de84ac');
is $r->{status}, 400, 'vector 5 verifies (then 400: not an event)' or diag $r->{body};
is json_of($r) && json_of($r)->{error}, 'bad_request', '... bad_request, not bad_signature';

# a secret roll: one v1 per secret; a v0 entry is ignored
my $body = event('payment_intent.succeeded', $intent);
my $t = int time;
$r = post_st('/st', body => $body, name => 'stripe-signature',
    header => "t=$t,v1=" . v1($other, $t, $body) . ",v0=abcd,v1=" . v1($secret, $t, $body));
is $r->{status}, 202, 'several v1 (only the last valid), lower-case header name';

$r = post_st('/st', body => event('payment_intent.succeeded', $intent), t => int(time) + 400);
is $r->{status}, 202, 't 400 s in the future: accepted, as Stripe\'s SDKs';
$r = post_st('/st', body => event('payment_intent.succeeded', $intent), t => int(time) - 280);
is $r->{status}, 202, 't 280 s old: inside the window';
$r = post_st('/wide', body => event('payment_intent.succeeded', $intent), t => int(time) - 400);
is $r->{status}, 202, 'loyalty_timestamp_tolerance 10m: 400 s old accepted';


# --- refused ---------------------------------------------------------------------

sub refused {
    my ($name, $status, $error, %o) = @_;

    my $before = $redis->dbsize;
    my $id = new_id('evt');
    my $r = post_st('/st', body => $o{body} // event('charge.succeeded',
                    { id => 'ch_1', object => 'charge', amount => 100,
                      currency => 'usd' }, id => $id), %o);

    subtest "$status: $name" => sub {
        is $r->{status}, $status, "status $status" or diag $r->{body};
        my $j = json_of($r);
        is $j && $j->{error}, $error, "error $error";
        is $redis->dbsize, $before, 'nothing written to Redis';
        ok !$redis->cmd('EXISTS', seen_key('st', $id)), 'no dedupe key';
    };
}

my $signed = event('payment_intent.succeeded', $intent);
(my $tampered = $signed) =~ s/4990/9990/g;
$t = int time;
refused('tampered body', 401, 'bad_signature', body => $tampered,
        header => "t=$t,v1=" . v1($secret, $t, $signed));
refused('wrong secret', 401, 'bad_signature', secret => $other);
(my $bare = $secret) =~ s/^whsec_//;
refused('keyed without the whsec_ prefix', 401, 'bad_signature', secret => $bare);
refused('base64 instead of hex', 401, 'bad_signature', body => $signed,
        header => "t=$t,v1=" . encode_base64(hmac_sha256("$t.$signed", $secret), ''));
my $reser = $json->encode($json->decode($signed));
$reser =~ s/,/, /g;
refused('signature over re-serialised JSON', 401, 'bad_signature', body => $reser,
        header => "t=$t,v1=" . v1($secret, $t, $signed));
refused('missing Stripe-Signature', 401, 'bad_signature', no_header => 1);
refused('no t=', 401, 'bad_signature', body => $signed,
        header => 'v1=' . v1($secret, $t, $signed));
refused('only v0', 401, 'bad_signature', body => $signed,
        header => "t=$t,v0=" . v1($secret, $t, $signed));
refused('t 303 s old', 401, 'bad_signature', t => int(time) - 303);
refused('signed for another t', 401, 'bad_signature', body => $signed,
        header => "t=$t,v1=" . v1($secret, $t - 1, $signed));
refused('malformed JSON, correctly signed', 400, 'bad_json', body => '{"id":"evt_1",');
refused('no event id, correctly signed', 400, 'bad_request',
        body => '{"type":"charge.succeeded","data":{"object":{}}}');


# --- rotation --------------------------------------------------------------------

is(post_st('/rot', body => event('customer.created', { id => 'cus_1', object => 'customer' }),
           secret => $old)->{status}, 202, 'rotation: the old secret verifies');
is(post_st('/rot', body => event('customer.created', { id => 'cus_2', object => 'customer' }),
           secret => $secret)->{status}, 202, 'rotation: the new secret verifies');
is(post_st('/rot', body => event('customer.created', { id => 'cus_3', object => 'customer' }),
           secret => $other)->{status}, 401, 'rotation: another secret does not');
is $redis->xlen(stream_key('rot')), 2, 'rotation: two entries';


# --- dedupe ----------------------------------------------------------------------

my $n = $redis->xlen($stream);
$eid = new_id('evt');
$body = event('charge.refunded', { id => 'ch_9', object => 'charge', amount => 5000,
    amount_refunded => 5000, refunded => JSON::PP::true, currency => 'gbp',
    customer => 'cus_9' }, id => $eid);
$r = post_st('/st', body => $body);
is $r->{status}, 202, 'first delivery: 202';
$r = post_st('/st', body => $body, t => int(time) - 10);
is $r->{status}, 200, 'a retry of the same event (new t): 200';
is json_of($r) && json_of($r)->{status}, 'duplicate', '... duplicate';
is $redis->xlen($stream), $n + 1, '... one entry';
is $redis->stream($stream)->[-1][1]{id}, $eid, '... stored under the evt id';

done_testing;
