#!/usr/bin/perl

# The Smile.io emulation (src/sandbox/sandbox_smile.js): Bearer tokens and
# scopes, the JSON content type rule, root-wrapped bodies, customers with
# VIP tiers, the points ledger (no negative balance), activities with
# earning rules and distinct_id idempotency, the per-token rate limit and
# the configurable error format.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Sandbox;

my $JSON = JSON::PP->new->utf8->canonical;
my $sb = Loyalty::Test::Sandbox->new;
my $TOKEN = 'smile_test_token';

sub smile {
    my ($method, $path, %o) = @_;
    my $token = exists $o{token} ? delete $o{token} : $TOKEN;
    my %h = %{ delete $o{headers} // {} };
    $h{Authorization} = "Bearer $token" if defined $token;
    my $r = $sb->call($method, "/smile/v1$path", headers => \%h, %o);
    $r->{json} = eval { $JSON->decode($r->{body}) } if length $r->{body};
    return $r;
}

sub balance {
    return smile('GET', "/customers/$_[0]")->{json}{customer}{points_balance};
}

# the start of a fresh one-second window, so a burst stays inside one
sub window_start { sleep(1.02 - (time - int(time))) }

ok((grep { $_ eq 'smile' } @{ $sb->health->{services} }), 'smile is served');
is($sb->config('smile')->{rate_limit}, 10, 'default: 10 requests/s');
# a generous budget until the rate limit itself is tested
$sb->config('smile', { rate_limit => 1000 });

# --- auth and request rules --------------------------------------------------

my $r = smile('GET', '/customers', token => undef);
is($r->{status}, 401, 'no token: 401');
is($r->{json}{error}{code}, 'unauthorized', 'error object with a code');
ok($r->{json}{error}{message}, 'and a message');
is(smile('GET', '/customers', token => 'nope')->{status}, 401,
   'unknown token: 401');

my $seed = $sb->action('smile', 'customer', { customers => [
    { email => 'alice@example.com', first_name => 'Alice' },
    { email => 'bob@example.com', first_name => 'Bob',
      points_balance => 300 },
] });
my ($alice, $bob) = map { $_->{id} } @{ $seed->{customers} };
ok($alice && $bob && $alice != $bob, 'two customers seeded');

$r = smile('POST', '/points_transactions',
           body => '{"points_transaction":{"customer_id":1}}');
is($r->{status}, 400, 'a body without Content-Type: 400');
is($r->{json}{error}{code}, 'invalid_content_type', 'code says why');
$r = smile('POST', '/points_transactions',
           headers => { 'Content-Type' => 'text/plain' },
           body => '{"points_transaction":{"customer_id":1}}');
is($r->{status}, 400, 'a text/plain body: 400');
is(smile('POST', '/points_transactions', json => { customer_id => $alice,
   points_change => 5 })->{status}, 400, 'no root key: 400');
is(smile('POST', '/points_transactions',
         headers => { 'Content-Type' => 'application/json' },
         body => '{not json')->{status}, 400, 'malformed JSON: 400');
is(smile('GET', '/nothing')->{status}, 404, 'unknown path: 404');

# --- customers ---------------------------------------------------------------

$r = smile('GET', '/customers?email=alice@example.com');
is($r->{status}, 200, 'find by e-mail');
is(scalar @{ $r->{json}{customers} }, 1, 'one match');
is($r->{json}{customers}[0]{id}, $alice, 'the right one');
ok(exists $r->{json}{metadata}{next_cursor}, 'metadata with cursors');
$r = smile('GET', '/customers?email=alice@example');
is(scalar @{ $r->{json}{customers} }, 0, 'e-mail match is exact');
is(smile('GET', '/customers?limit=251')->{status}, 400, 'limit over 250: 400');
$r = smile('GET', '/customers?limit=1');
is(scalar @{ $r->{json}{customers} }, 1, 'limit=1: one customer');
my $next = $r->{json}{metadata}{next_cursor};
ok($next, 'with a next cursor');
is(smile('GET', "/customers?limit=1&cursor=$next")->{json}{customers}[0]{id},
   $bob, 'the cursor gives the second');

$r = smile('GET', "/customers/$bob");
is($r->{json}{customer}{points_balance}, 300, 'seeded balance');
ok(!exists $r->{json}{customer}{vip_status}, 'no vip_status unless asked');
is(smile('GET', '/customers/999')->{status}, 404, 'unknown customer: 404');

# --- points ------------------------------------------------------------------

$r = smile('POST', '/points_transactions', json => { points_transaction => {
    customer_id => $alice, points_change => 600,
    description => 'Welcome', internal_note => 'migration' } });
is($r->{status}, 201, 'points added: 201');
is($r->{json}{points_transaction}{points_change}, 600, 'root-wrapped answer');
is($r->{json}{points_transaction}{internal_note}, 'migration',
   'internal note kept');
is(balance($alice), 600, 'balance 600');

$r = smile('GET', "/customers/$alice?include=vip_status");
is($r->{json}{customer}{vip_status}{vip_tier}{name}, 'Silver',
   '600 points: Silver (milestone 500)');
is($r->{json}{customer}{vip_status}{next_vip_tier}{name}, 'Gold',
   'next tier Gold');

$r = smile('POST', '/points_transactions', json => { points_transaction => {
    customer_id => $alice, points_change => -700 } });
is($r->{status}, 422, 'below zero: 422');
is($r->{json}{error}{code}, 'insufficient_points', 'code says why');
is(balance($alice), 600, 'balance unchanged');
is(smile('POST', '/points_transactions', json => { points_transaction => {
   customer_id => $alice, points_change => -100 } })->{status}, 201,
   'a deduction within the balance');
is(balance($alice), 500, 'balance 500');
is(smile('POST', '/points_transactions', json => { points_transaction => {
   customer_id => $alice, points_change => 0 } })->{status}, 422,
   'zero change: 422');
is(smile('POST', '/points_transactions', json => { points_transaction => {
   customer_id => 4242, points_change => 5 } })->{status}, 404,
   'unknown customer: 404');

$r = smile('GET', "/points_transactions?customer_id=$alice");
is_deeply([ map { $_->{points_change} } @{ $r->{json}{points_transactions} } ],
          [ -100, 600 ], 'ledger: newest first, only accepted changes');
is(scalar @{ smile('GET', "/points_transactions?customer_id=$bob")
   ->{json}{points_transactions} }, 0, 'ledger filtered by customer');

# --- activities --------------------------------------------------------------

$sb->config('smile', { earning_rules => {
    activity_order => { points_per_unit => 1, property => 'total',
                        description => 'Order' },
    activity_review => 50 } });

sub activity {
    my (%a) = @_;
    return smile('POST', '/activities', json => { activity => \%a });
}

$r = activity(token => 'activity_order', customer_email => 'bob@example.com',
              distinct_id => 'order#1001', properties => { total => 120.5 });
is($r->{status}, 201, 'activity recorded: 201');
is($r->{json}{activity}{distinct_id}, 'order#1001', 'activity object back');
is(balance($bob), 420, 'earning rule: 120 points for a 120.5 order');
$r = activity(token => 'activity_order', customer_id => $bob,
              distinct_id => 'order#1001', properties => { total => 99 });
is($r->{status}, 422, 'same token + distinct_id: rejected');
is($r->{json}{error}{code}, 'duplicate_activity', 'as a duplicate');
is(balance($bob), 420, 'no second award');
is(activity(token => 'activity_review', customer_id => $bob,
            distinct_id => 'order#1001')->{status}, 201,
   'same distinct_id, other token: accepted');
is(balance($bob), 470, 'flat rule: 50 points');
is(activity(token => 'activity_unknown', customer_id => $bob)->{status}, 201,
   'an activity without a rule is recorded');
is(balance($bob), 470, 'and earns nothing');
is(activity(customer_id => $bob)->{status}, 422, 'no token: 422');
is(activity(token => 'activity_review', customer_email => 'x@nowhere.io')
   ->{status}, 404, 'unknown customer: 404');

$sb->config('smile', { activity_delay_ms => 300 });
is(activity(token => 'activity_review', customer_id => $bob,
            distinct_id => 'late')->{status}, 201, 'asynchronous rule');
is(balance($bob), 470, 'not applied at once');
sleep 0.5;
is(balance($bob), 520, 'applied after activity_delay_ms');
$sb->config('smile', { activity_delay_ms => 0 });

$r = smile('GET', "/vip_tier_changes?customer_id=$alice");
is($r->{json}{vip_tier_changes}[0]{vip_tier_id}, 2,
   'tier change to Silver recorded');

my $st = $sb->state('smile', 'customers', $bob);
is($st->{points_balance}, 520, 'state: balance');
is($st->{points_earned}, 520, 'state: points earned');
is(scalar @{ $st->{activities} }, 4, 'state: four activities');
is($sb->state('smile', 'customer', { email => 'alice@example.com' })->{id},
   $alice, 'state by e-mail');

# --- scopes, error format, faults --------------------------------------------

$sb->config('smile', { tokens => [ $TOKEN,
    { token => 'read_only', scopes => ['customer:read'] } ] });
is(smile('GET', '/customers', token => 'read_only')->{status}, 200,
   'scoped token reads customers');
$r = smile('POST', '/points_transactions', token => 'read_only',
           json => { points_transaction => { customer_id => $alice,
                                             points_change => 1 } });
is($r->{status}, 403, 'but may not write points: 403');

$sb->config('smile', { error_format => 'flat' });
$r = smile('GET', '/customers', token => 'nope');
is($r->{json}{code}, 'unauthorized', 'flat error format');
$sb->config('smile', { error_format => 'nested' });

$sb->fault({ service => 'smile', status => 503, times => 1 });
$r = smile('GET', '/customers');
is($r->{status}, 503, 'injected 503');
is($r->{json}{error}{code}, 'service_unavailable', 'in the Smile format');

# --- rate limit --------------------------------------------------------------

$sb->config('smile', { rate_limit => 3, tokens => [ $TOKEN, 'other' ] });
window_start();
my @st = map { smile('GET', '/customers')->{status} } 1 .. 4;
is_deeply(\@st, [ 200, 200, 200, 429 ], '3 per second, then 429');
$r = smile('GET', '/customers');
is($r->{json}{error}{code}, 'too_many_requests', '429 in the Smile format');
is(smile('GET', '/customers', token => 'other')->{status}, 200,
   'another token has its own budget');
sleep 1.05;
is(smile('GET', '/customers')->{status}, 200, 'the next second: 200 again');

# --- reset -------------------------------------------------------------------

$sb->reset('smile');
is(scalar @{ smile('GET', '/customers')->{json}{customers} }, 0,
   'reset clears customers');
is($sb->action('smile', 'defaults')->{rate_limit}, 10, 'defaults restored');

done_testing;
