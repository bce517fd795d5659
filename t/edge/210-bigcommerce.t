#!/usr/bin/perl

# loyalty_webhook bigcommerce: Standard Webhooks headers keyed with the
# RAW client secret (apis.md §2, §10 vector 3) through nginx and Redis:
# the envelope of thin order and customer payloads (a reference for the
# worker to fetch), every way a delivery is refused (401 / 400, nothing
# queued), rotation, and dedupe on webhook-id and on the payload hash.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Digest::SHA qw(hmac_sha256 hmac_sha256_hex);
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = 'bc_' . join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
my $old = 'bc_old_' . join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
my $other = 'another_client_secret';
my $secret_b64 = encode_base64($secret, '');

my ($redis, $ngx) = edge_setup(config => qq{
    location = /bc   { loyalty_webhook bigcommerce; loyalty_secret $secret;
                       loyalty_store bc; }
    location = /rot  { loyalty_webhook bigcommerce; loyalty_secret $old;
                       loyalty_secret $secret; loyalty_store rot; }
    location = /b64  { loyalty_webhook bigcommerce;
                       loyalty_secret whsec_$secret_b64; loyalty_store b64; }
    location = /vec  { loyalty_webhook bigcommerce;
                       loyalty_secret my_client_secret;
                       loyalty_timestamp_tolerance 10y; loyalty_store vec; }
});

my $json = JSON::PP->new->utf8->canonical;
my $stream = stream_key('bc');
my $seq = 0;

sub bc_sign {
    my ($key, $id, $ts, $body) = @_;
    return 'v1,' . encode_base64(hmac_sha256("$id.$ts.$body", $key), '');
}

sub hash40 { $seq++; return substr(sha256_hex("$$ $seq " . time), 0, 40) }

sub payload {
    my (%o) = @_;
    return $json->encode({
        scope => $o{scope} // 'store/order/created',
        store_id => '1025646',
        data => $o{data} // { type => 'order', id => 250 },
        hash => $o{hash} // hash40(),
        created_at => $o{created_at} // 1772360430,
        producer => 'stores/abc123',
    });
}

# post_bc($path, body => B, secret => S, ...): the headers BigCommerce
# sends; id, ts, signature override, omit => [names]
sub post_bc {
    my ($path, %o) = @_;
    my $body = $o{body} // payload();
    my $id = $o{id} // new_id('msg');
    my $ts = $o{ts} // int time;
    my %h = (
        'Content-Type' => 'application/json',
        'webhook-id' => $id,
        'webhook-timestamp' => $ts,
        'webhook-signature' => $o{signature}
                               // bc_sign($o{secret} // $secret, $id, $ts, $body),
        %{ $o{headers} // {} },
    );
    delete $h{$_} for @{ $o{omit} // [] };
    my $r = $ngx->request(POST => $path, body => $body, headers => \%h);
    return wantarray ? ($r, { id => $id, ts => $ts, body => $body }) : $r;
}


# --- accepted: an order and a customer -------------------------------------------

my $h1 = hash40();
my ($r, $req) = post_bc('/bc', body => payload(hash => $h1));
is $r->{status}, 202, 'store/order/created: 202' or diag $r->{body};
is json_of($r) && json_of($r)->{id}, $req->{id}, '202 body carries webhook-id';

my $e = $redis->stream($stream)->[-1][1];
is $e->{v}, '1', 'v = 1';
is $e->{id}, $req->{id}, 'id = webhook-id';
is $e->{src}, 'bigcommerce', 'src = bigcommerce';
is $e->{store}, 'bc', 'store';
is $e->{type}, 'order.created', 'type order.created';
is $e->{topic}, 'store/order/created', 'topic = scope';
is $e->{occurred}, '2026-03-01T10:20:30Z', 'occurred = created_at in UTC';
ok !exists $e->{email} && !exists $e->{store_cid}, 'a thin order names no customer';
my $data = eval { $json->decode($e->{data}) } // {};
is_deeply $data->{ref}, { type => 'order', id => '250' }, 'data.ref: the order to fetch';
ok $data->{needs_fetch}, 'data.needs_fetch true';
is $data->{store_hash}, 'abc123', 'data.store_hash from producer';
is $data->{store_id}, '1025646', 'data.store_id';

($r) = post_bc('/bc', body => payload(scope => 'store/order/statusUpdated',
    data => { type => 'order', id => 251,
              status => { previous_status_id => 0, new_status_id => 11 } }));
is $r->{status}, 202, 'statusUpdated 0 -> 11: 202';
$e = $redis->stream($stream)->[-1][1];
is $e->{type}, 'order.paid', '... Incomplete -> Awaiting Fulfillment is order.paid';
is_deeply eval { $json->decode($e->{data})->{status} }, { from => '0', to => '11' },
    '... data.status from/to';

($r) = post_bc('/bc', body => payload(scope => 'store/customer/address/updated',
    data => { type => 'customer', id => 60, address => { customer_id => 32 } }));
is $r->{status}, 202, 'store/customer/address/updated: 202';
$e = $redis->stream($stream)->[-1][1];
is $e->{type}, 'customer.updated', '... customer.updated';
is $e->{store_cid}, '32', '... store_cid = address.customer_id';
$data = eval { $json->decode($e->{data}) } // {};
is_deeply $data->{ref}, { type => 'customer', id => '32' }, '... ref is the customer';
is_deeply $data->{address}, { id => '60' }, '... data.address.id';

($r) = post_bc('/bc', body => payload(scope => 'store/cart/abandoned',
    data => { type => 'cart', id => 'c-9' }));
is $r->{status}, 202, 'a scope without a canonical type: 202';
is $redis->stream($stream)->[-1][1]{type}, 'unknown', '... type unknown';

# apis.md §10 vector 3, verbatim
my $v3 = '{"scope":"store/order/created","store_id":"1025646","data":{"type":"order","id":250},'
    . '"hash":"dd70c0976e06b67aaf671e73f49dcb79230ebf9d","created_at":1561479335,'
    . '"producer":"stores/abc123"}';
$r = $ngx->request(POST => '/vec', body => $v3, headers => {
    'webhook-id' => 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W',
    'webhook-timestamp' => 1674087231,
    'webhook-signature' => 'v1,KAygXNmtetBVjlJbJq7iwmht/bAa+VuLmbRV477gvbE=' });
is $r->{status}, 202, 'vector 3 verifies (tolerance 10y)' or diag $r->{body};

# mixed-case header names, several signatures with only the last valid
my $id = new_id('msg');
my $ts = int time;
my $body = payload();
$r = $ngx->request(POST => '/bc', body => $body, headers => [
    'Webhook-Id' => $id, 'WEBHOOK-TIMESTAMP' => $ts,
    'Webhook-Signature' => bc_sign($other, $id, $ts, $body) . ' v2,AAAA '
                           . bc_sign($secret, $id, $ts, $body) ]);
is $r->{status}, 202, 'mixed-case names, the last of three signatures valid';

($r) = post_bc('/bc', ts => int(time) - 280);
is $r->{status}, 202, 'timestamp 280 s old: inside the window';
($r) = post_bc('/bc', ts => int(time) + 280);
is $r->{status}, 202, 'timestamp 280 s ahead: inside the window';


# --- refused ---------------------------------------------------------------------

sub refused {
    my ($name, $status, $error, %o) = @_;

    my $before = $redis->dbsize;
    my ($r, $req) = post_bc($o{path} // '/bc', %o);

    subtest "$status: $name" => sub {
        is $r->{status}, $status, "status $status" or diag $r->{body};
        my $j = json_of($r);
        is $j && $j->{error}, $error, "error $error";
        is $redis->dbsize, $before, 'nothing written to Redis';
        ok !$redis->cmd('EXISTS', seen_key('bc', $req->{id})), 'no dedupe key';
    };
}

my $signed = payload();
(my $tampered = $signed) =~ s/"id":250/"id":251/;
$id = new_id('msg');
$ts = int time;
refused('tampered body', 401, 'bad_signature', id => $id, ts => $ts,
        signature => bc_sign($secret, $id, $ts, $signed), body => $tampered);
refused('wrong secret', 401, 'bad_signature', secret => $other);
refused('signed with base64(secret) as the key', 401, 'bad_signature',
        secret => $secret_b64);
refused('hex instead of base64', 401, 'bad_signature', id => $id, ts => $ts,
        body => $signed,
        signature => 'v1,' . hmac_sha256_hex("$id.$ts.$signed", $secret));
my $reser = $json->encode($json->decode($signed));
$reser =~ s/,/, /g;
refused('signature over re-serialised JSON', 401, 'bad_signature', id => $id,
        ts => $ts, signature => bc_sign($secret, $id, $ts, $signed),
        body => $reser);
refused('missing webhook-signature', 401, 'bad_signature',
        omit => ['webhook-signature']);
refused('missing webhook-id', 401, 'bad_signature', omit => ['webhook-id']);
refused('missing webhook-timestamp', 401, 'bad_signature',
        omit => ['webhook-timestamp']);
refused('timestamp 303 s old', 401, 'bad_signature', ts => int(time) - 303);
refused('timestamp 303 s in the future', 401, 'bad_signature',
        ts => int(time) + 303);
refused('only a v2 entry', 401, 'bad_signature', id => $id, ts => $ts,
        body => $signed,
        signature => 'v2,' . substr(bc_sign($secret, $id, $ts, $signed), 3));
refused('a whsec_/base64 secret is not decoded', 401, 'bad_signature',
        path => '/b64');
refused('malformed JSON, correctly signed', 400, 'bad_json',
        body => '{"scope":"store/order/created",');
refused('no scope, correctly signed', 400, 'bad_request',
        body => '{"store_id":"1025646","data":{"type":"order","id":1}}');


# --- rotation --------------------------------------------------------------------

is((post_bc('/rot', secret => $old))[0]{status}, 202, 'rotation: the old secret verifies');
is((post_bc('/rot', secret => $secret))[0]{status}, 202, 'rotation: the new secret verifies');
is((post_bc('/rot', secret => $other))[0]{status}, 401, 'rotation: another secret does not');
is $redis->xlen(stream_key('rot')), 2, 'rotation: two entries';


# --- dedupe ----------------------------------------------------------------------

my $n = $redis->xlen($stream);
my $hash = hash40();
my $dbody = payload(scope => 'store/customer/updated',
                    data => { type => 'customer', id => 32 }, hash => $hash);
$id = new_id('msg');
($r) = post_bc('/bc', id => $id, body => $dbody);
is $r->{status}, 202, 'first delivery: 202';
is $redis->stream($stream)->[-1][1]{store_cid}, '32', '... store_cid = customer id';
($r) = post_bc('/bc', id => $id, body => $dbody, ts => int(time) - 60);
is $r->{status}, 200, 'same webhook-id again (a retry, new timestamp): 200';
is json_of($r) && json_of($r)->{status}, 'duplicate', '... duplicate';
is $redis->xlen($stream), $n + 1, '... one entry';

# the hook fired twice for one event: new webhook-id, same payload hash
($r) = post_bc('/bc', body => $dbody);
is $r->{status}, 200, 'new webhook-id, same payload hash: duplicate'
    or diag 'needs the module to dedupe on alt_id as well as id';
is $redis->xlen($stream), $n + 1, '... still one entry';

($r) = post_bc('/bc', body => payload(scope => 'store/customer/updated',
    data => { type => 'customer', id => 32 }, hash => hash40()));
is $r->{status}, 202, 'another hash: a new event';
is $redis->xlen($stream), $n + 2, '... two entries';

done_testing;
