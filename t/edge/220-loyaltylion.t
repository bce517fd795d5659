#!/usr/bin/perl

# loyalty_webhook loyaltylion: x-loyaltylion-hmac-sha256 (base64 HMAC of
# the raw body, apis.md §3), both envelope layouts, dedupe on the body id,
# rotation, and 401 for anything not signed with a configured secret.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Digest::SHA qw(sha256_hex);
use JSON::PP ();

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $site = 'll-site-secret-1';
my $oauth = 'll-oauth-client-secret-2';

my ($redis, $ngx) = edge_setup(config => qq{
    location = /ll {
        loyalty_webhook loyaltylion; loyalty_secret $site; loyalty_store ll;
    }
    location = /rot {
        loyalty_webhook loyaltylion; loyalty_store rot;
        loyalty_secret $site; loyalty_secret $oauth;
    }
});

my $json = JSON::PP->new->utf8->canonical;

# the first and the last stream entry of a store, {} when there is none
sub first_entry { my $s = $redis->stream(stream_key($_[0])); @$s ? $s->[0][1] : {} }
sub last_entry  { my $s = $redis->stream(stream_key($_[0])); @$s ? $s->[-1][1] : {} }

sub post_ll {
    my ($path, %o) = @_;
    my $body = $o{body};
    my %h = ('Content-Type' => 'application/json',
             'x-loyaltylion-site-domain' => 'shop.example.com',
             'User-Agent' => 'LoyaltyLion-Webhooks',
             %{ $o{headers} // {} });
    $h{'x-loyaltylion-hmac-sha256'} = $o{signature}
        // hmac_body_b64($o{key}, $o{signed} // $body)
        unless $o{no_signature};
    $h{'x-loyaltylion-topic'} = $o{topic} if defined $o{topic};
    return $ngx->request('POST', $path, body => $body, headers => \%h);
}

sub program_event {
    my (%o) = @_;
    return $json->encode({
        id => $o{id} // new_id('ll'),
        topic => $o{topic},
        created_at => $o{created_at} // '2025-01-01T03:00:05.000Z',
        payload => { properties => $o{properties} },
    });
}

my $customer = {
    id => 6932, merchant_id => '2134606599', email => 'Jessica@Example.com',
    points_approved => 200, points_pending => 300, points_spent => 500,
    properties => { first_name => 'Jessica', last_name => 'White' },
    enrolled => JSON::PP::true, referral_url => 'https://prz.io/a4e',
    updated_at => '2025-01-01T02:59:58.000Z',
    loyalty_tier_membership => { expires_at => undef, manual => JSON::PP::false,
        loyalty_tier => { id => 16, name => 'Silver', number => 2, position => 1 } },
};


# --- customers/update, top-level customer -----------------------------------------

my $uid = 'bff1bddb-6cd8-4c2c-9619-' . sprintf('%012d', $$);
my $body = $json->encode({
    id => $uid, topic => 'customers/update',
    created_at => '2025-01-01T03:00:05.000Z', customer => $customer });

my $r = post_ll('/ll', key => $site, body => $body, topic => 'customers/update');
is $r->{status}, 202, 'customers/update: 202' or diag $r->{body};
is json_of($r)->{id}, $uid, '... id is the body id';

my $e = first_entry('ll');
is $e->{v}, '1', 'v';
is $e->{id}, $uid, 'id';
is $e->{src}, 'loyaltylion', 'src';
is $e->{type}, 'customer.updated', 'type';
is $e->{topic}, 'customers/update', 'topic';
is $e->{occurred}, '2025-01-01T03:00:05.000Z', 'occurred = created_at';
is $e->{email}, 'jessica@example.com', 'email normalized';
is $e->{ext_id}, '6932', 'ext_id = LoyaltyLion customer id';
is $e->{store_cid}, '2134606599', 'store_cid = merchant_id';
my $d = $json->decode($e->{data} // "{}");
is $d->{customer}{points_balance}, 200, 'data: points_balance = points_approved';
is $d->{customer}{points_pending}, 300, 'data: points_pending';
is_deeply $d->{customer}{tier}, { id => '16', name => 'Silver', rank => 2 },
    'data: tier {id, name, rank = number}';
is $d->{customer}{first_name}, 'Jessica', 'data: first_name';
ok !exists $d->{customer}{tier_expires_at}, 'data: null expires_at left out';

$r = post_ll('/ll', key => $site, body => $body);
is $r->{status}, 200, 'same delivery again: 200';
is json_of($r)->{status}, 'duplicate', '... duplicate';
is $redis->xlen(stream_key('ll')), 1, '... one entry';


# --- a program event: payload.properties.customer -----------------------------------

$body = program_event(topic => 'program_events/customer.tier_upgraded',
    properties => { customer => $customer,
                    previous_tier => { id => 15, name => 'Bronze', number => 1 },
                    new_tier => { id => 16, name => 'Silver', number => 2 } });
$r = post_ll('/ll', key => $site, body => $body);
is $r->{status}, 202, 'tier_upgraded: 202' or diag $r->{body};
$e = last_entry('ll');
is $e->{type}, 'tier.changed', '... tier.changed';
is $e->{ext_id}, '6932', '... customer from payload.properties';
$d = $json->decode($e->{data} // "{}");
is_deeply $d->{tier}, { from => { id => '15', name => 'Bronze', rank => 1 },
                        to => { id => '16', name => 'Silver', rank => 2 } },
    '... tier {from, to}';

$body = program_event(topic => 'program_events/customer.points_earned',
    properties => { customer => $customer,
                    transaction => { id => 987654, points => 50 } });
$r = post_ll('/ll', key => $site, body => $body,
             topic => 'customers/update');
is $r->{status}, 202, 'points_earned with another header topic: 202';
$e = last_entry('ll');
is $e->{topic}, 'program_events/customer.points_earned', '... the signed body topic wins';
is $e->{type}, 'points.earned', '... points.earned';
$d = $json->decode($e->{data} // "{}");
is_deeply $d->{points}, { delta => 50, balance_after => 200, source_id => '987654' },
    '... points {delta, balance_after, source_id}';

# the custom reward fulfilment: topic in the header only, no id
my $fb = $json->encode({ test => JSON::PP::false, reward_id => 301,
    reward_identifier => 'tote-' . $$, customer_id => 6932,
    customer_merchant_id => '2134606599', customer_email => 'jessica@example.com' });
$r = post_ll('/ll', key => $site, body => $fb, topic => 'rewards/store_fulfilment');
is $r->{status}, 202, 'store_fulfilment: 202' or diag $r->{body};
$e = last_entry('ll');
is $e->{type}, 'reward.issued', '... reward.issued';
is $e->{topic}, 'rewards/store_fulfilment', '... topic from the header';
is $e->{id}, sha256_hex($fb), '... id = SHA-256 of the body';

my $n = $redis->xlen(stream_key('ll'));
$r = post_ll('/ll', key => $site, topic => 'rewards/store_fulfilment',
             body => $json->encode({ test => JSON::PP::true, reward_id => 301 }));
is $r->{status}, 200, 'test fulfilment: 200';
is json_of($r)->{status}, 'ignored', '... ignored';
is $redis->xlen(stream_key('ll')), $n, '... nothing queued';

$r = post_ll('/ll', key => $site, body => '{"id":"x","topic":');
is $r->{status}, 400, 'signed but malformed JSON: 400';
is $redis->xlen(stream_key('ll')), $n, '... nothing queued';


# --- rotation ------------------------------------------------------------------------

for my $k ($site, $oauth) {
    $body = program_event(topic => 'program_events/customer.enrolled',
                          properties => { customer => $customer });
    $r = post_ll('/rot', key => $k, body => $body);
    is $r->{status}, 202, "rotation: signed with " . ($k eq $site ? 'the first' : 'the second')
        . ' secret: 202' or diag $r->{body};
}
is $redis->xlen(stream_key('rot')), 2, 'rotation: two entries';


# --- 401 -----------------------------------------------------------------------------

sub rejected {
    my ($name, %o) = @_;
    my $before = $redis->dbsize;
    my $r = post_ll('/ll', %o);
    subtest "401: $name" => sub {
        is $r->{status}, 401, 'status 401' or diag $r->{body};
        is json_of($r) && json_of($r)->{error}, 'bad_signature', 'bad_signature';
        is $redis->dbsize, $before, 'nothing written to Redis';
    };
}

$body = program_event(topic => 'program_events/customer.points_earned',
                      properties => { customer => $customer });
(my $tampered = $body) =~ s/"points_approved":200/"points_approved":900/;
isnt $tampered, $body, 'tampered body differs';

rejected('tampered body', key => $site, body => $tampered, signed => $body);
rejected('wrong secret', key => 'not-the-secret', body => $body);
rejected('the other location\'s second secret', key => $oauth, body => $body);
rejected('missing header', key => $site, body => $body, no_signature => 1);
rejected('hex signature', key => $site, body => $body,
         signature => hmac_body_hex($site, $body));
rejected('signature over re-serialised JSON', key => $site, body => $body,
         signed => $json->encode($json->decode($body)) . ' ');

done_testing;
