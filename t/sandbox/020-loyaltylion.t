#!/usr/bin/perl

# The LoyaltyLion emulation: Bearer and legacy Basic auth, the per-key
# rate limit (429), customers and their cursor, add/remove points,
# activities (rules, guests, idempotency), orders whose points follow
# payment, partial and full refunds and cancellation without doubling on
# a repeated PUT, and the transaction ledger.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Sandbox;

my $JSON = JSON::PP->new->utf8->canonical;
my $sb = Loyalty::Test::Sandbox->new;
my $KEY = 'll_sandbox_key';
# the tests outrun 20 req/s; the rate limit has its own section below
$sb->config('loyaltylion', { rate_per_s => 100000 });

sub ll {
    my ($method, $path, %o) = @_;
    my $auth = $o{auth} // "Bearer $KEY";
    my $r = $sb->call($method, "/loyaltylion$path",
                      headers => { ($auth ? (Authorization => $auth) : ()) },
                      (exists $o{json} ? (json => $o{json}) : ()));
    $r->{json} = eval { $JSON->decode($r->{body}) } if length $r->{body};
    return $r;
}

sub customer { $sb->state('loyaltylion', 'customers', $_[0]) }

# --- auth -------------------------------------------------------------------

my $r = ll('GET', '/v2/customers', auth => '');
is($r->{status}, 401, 'no key: 401');
ok($r->{json}{error}{message}, 'error.message');
is(ll('GET', '/v2/customers', auth => 'Bearer wrong')->{status}, 401,
   'wrong key: 401');
is(ll('GET', '/v2/customers')->{status}, 200, 'program API key: 200');
$sb->config('loyaltylion', { legacy => { tok1 => 'sec1' } });
is(ll('GET', '/v2/customers',
      auth => 'Basic ' . encode_base64('tok1:sec1', ''))->{status}, 200,
   'legacy token:secret over Basic');
is(ll('GET', '/v2/customers',
      auth => 'Basic ' . encode_base64('tok1:nope', ''))->{status}, 401,
   'legacy with a wrong secret: 401');
is(ll('GET', '/v2/nothing')->{status}, 404, 'unknown path: 404');

# --- customers and points ---------------------------------------------------

$sb->action('loyaltylion', 'seed', { customers => [
    map { { merchant_id => "c$_", email => "c$_\@x.io" } } 1 .. 5 ] });
$r = ll('GET', '/v2/customers?email=C3@x.io');
is(scalar @{ $r->{json}{customers} }, 1, 'by email (any case)');
is($r->{json}{customers}[0]{merchant_id}, 'c3', 'the right one');

$r = ll('GET', '/v2/customers?limit=2');
is(scalar @{ $r->{json}{customers} }, 2, 'limit=2');
my $next = $r->{json}{cursor}{next};
ok($next, 'a next cursor');
$r = ll('GET', "/v2/customers?limit=2&cursor=$next");
is($r->{json}{customers}[0]{merchant_id}, 'c3', 'the cursor continues');
$r = ll('GET', '/v2/customers?since_id=4');
is_deeply([ map { $_->{merchant_id} } @{ $r->{json}{customers} } ],
          ['c5'], 'since_id');
is(ll('GET', '/v2/customers?limit=501')->{status}, 400, 'limit > 500: 400');

$r = ll('POST', '/v2/customers/c1/points',
        json => { points => 300, reason => 'welcome' });
is($r->{status}, 201, 'add points: 201');
is($r->{body}, '', 'empty body');
is(customer('c1')->{points_approved}, 300, 'balance 300');
for my $bad (0, 1000001, 1.5, '10') {
    is(ll('POST', '/v2/customers/c1/points',
          json => { points => $bad })->{status}, 400, "points $bad: 400");
}
is(ll('POST', '/v2/customers/nobody/points',
      json => { points => 1 })->{status}, 404, 'unknown customer: 404');

$r = ll('POST', '/v2/customers/c1/remove_points',
        json => { points => 100, reason => 'reward' });
is($r->{status}, 204, 'remove points: 204');
$r = ll('POST', '/v2/customers/c1/remove_points', json => { points => 201 });
is($r->{status}, 422, 'more than the balance: 422');
ok($r->{json}{error}{message}, 'with an error message');
my $c = customer('c1');
is($c->{points_approved}, 200, 'balance 200');
is($c->{points_spent}, 100, 'points_spent 100');
is($c->{points_pending}, 0, 'points_pending 0 (approved at once)');
is(scalar @{ $c->{transactions} }, 2, 'two ledger entries');

# --- activities -------------------------------------------------------------

$r = ll('POST', '/v2/activities', json => { name => 'signup',
    customer_id => 'c9', customer_email => 'c9@x.io', merchant_id => 'a-1' });
is($r->{status}, 201, 'activity: 201');
is(customer('c9')->{points_approved}, 200, 'rule points, customer created');
ll('POST', '/v2/activities', json => { name => 'signup',
   customer_id => 'c9', merchant_id => 'a-1' });
is(customer('c9')->{points_approved}, 200,
   'same merchant_id again: no more points');
ll('POST', '/v2/activities', json => { name => 'newsletter_signup',
   guest => JSON::PP::true, customer_email => 'g@x.io' });
ok(!(grep { ($_->{email} // '') eq 'g@x.io' }
     @{ $sb->state('loyaltylion', 'customers')->{customers} }),
   'guests do not earn');
is(ll('POST', '/v2/activities', json => { name => 'nope',
      customer_id => 'c9' })->{status}, 422, 'unknown rule: 422');
is(ll('POST', '/v2/activities', json => { customer_id => 'c9' })->{status},
   400, 'no name: 400');

# --- orders -----------------------------------------------------------------

my %order = (merchant_id => 'o-1', customer_id => 'c20',
             customer_email => 'c20@x.io', total => '120.00',
             total_shipping => '20.00', total_paid => '0',
             payment_status => 'not_paid', number => '1001');
$r = ll('POST', '/v2/orders', json => \%order);
is($r->{status}, 201, 'create order: 201');
is(customer('c20')->{points_approved}, 0, 'not paid: no points');
is(ll('POST', '/v2/orders', json => \%order)->{status}, 422,
   'same merchant_id again: 422');
is(ll('POST', '/v2/orders', json => { customer_id => 'x' })->{status}, 400,
   'missing merchant_id and total: 400');

my %paid = (payment_status => 'paid', total_paid => '120.00',
            refund_status => 'not_refunded', total_refunded => '0',
            cancellation_status => 'not_cancelled');
$r = ll('PUT', '/v2/orders/o-1', json => \%paid);
ok($r->{status} >= 200 && $r->{status} < 300, 'PUT paid: 2xx');
is(customer('c20')->{points_approved}, 120, 'paid 120.00: 120 points');
ll('PUT', '/v2/orders/o-1', json => \%paid);
ll('PUT', '/v2/orders/o-1', json => \%paid);
is(customer('c20')->{points_approved}, 120, 'the same PUT twice more: 120');

ll('PUT', '/v2/orders/o-1', json => { %paid,
   refund_status => 'partially_refunded', total_refunded => '30.00' });
is(customer('c20')->{points_approved}, 90, 'partial refund of 30: 90');
ll('PUT', '/v2/orders/o-1', json => { %paid,
   refund_status => 'partially_refunded', total_refunded => '30.00' });
is(customer('c20')->{points_approved}, 90, 'repeated: still 90');

$r = ll('GET', '/v2/orders/o-1');
is($r->{status}, 200, 'GET order');
is($r->{json}{order}{total_refunded}, '30.00', 'refund recorded');
is($r->{json}{order}{merchant_id}, 'o-1', 'merchant_id');

ll('PUT', '/v2/orders/o-1', json => { %paid,
   refund_status => 'refunded', total_refunded => '120.00' });
is(customer('c20')->{points_approved}, 0, 'full refund: 0');

$order{merchant_id} = 'o-2';
ll('POST', '/v2/orders', json => { %order, %paid, total_paid => '50.00' });
is(customer('c20')->{points_approved}, 50, 'a paid order on create: 50');
ll('PUT', '/v2/orders/o-2', json => { %paid, total_paid => '50.00',
   cancellation_status => 'cancelled' });
is(customer('c20')->{points_approved}, 0, 'cancelled: 0');
ll('PUT', '/v2/orders/o-2', json => { %paid, total_paid => '50.00',
   cancellation_status => 'cancelled' });
is(customer('c20')->{points_approved}, 0, 'cancelled twice: still 0');

is(ll('PUT', '/v2/orders/nope', json => \%paid)->{status}, 404,
   'PUT unknown order: 404');
is(ll('GET', '/v2/orders/nope')->{status}, 404, 'GET unknown order: 404');
$r = ll('POST', '/v2/orders', json => { merchant_id => 'o-g', total => '9',
    total_paid => '9', payment_status => 'paid', guest => JSON::PP::true });
is($r->{status}, 201, 'guest order accepted');
is($sb->state('loyaltylion', 'orders', 'o-g')->{points}, 0,
   'guest order earns nothing');

# --- ledger -----------------------------------------------------------------

$r = ll('GET', '/v2/transactions?customer_id=c20');
is($r->{status}, 200, 'transactions: 200');
is_deeply([ map { $_->{points} } @{ $r->{json}{transactions} } ],
          [120, -30, -90, 50, -50], 'every move of c20, in order');
my $sum = 0;
$sum += $_->{points} for @{ $r->{json}{transactions} };
is($sum, customer('c20')->{points_approved}, 'ledger sums to the balance');

# --- tiers ------------------------------------------------------------------

ll('POST', '/v2/customers/c2/points', json => { points => 600 });
is(customer('c2')->{tier}{name}, 'Silver', 'tier from configured thresholds');

# --- rate limit -------------------------------------------------------------

$sb->config('loyaltylion', { rate_per_s => 5 });
# the start of a fresh one-second window (they start on whole seconds)
sleep((1000 - (time * 1000) % 1000 + 20) / 1000);
my @st = map { ll('GET', '/v2/customers?limit=1')->{status} } 1 .. 12;
ok((grep { $_ == 429 } @st), 'more than 5 requests in a second: 429');
my ($limited) = grep { $_ == 200 } @st;
ok($limited, 'the first ones pass');
$r = ll('GET', '/v2/customers?limit=1');
if ($r->{status} == 429) {
    ok($r->{json}{error}{message}, '429 in the LoyaltyLion error format');
    ok(!exists $r->{headers}{'retry-after'}, 'no Retry-After by default');
} else {
    pass('window rolled over') for 1 .. 2;
}
is(ll('GET', '/v2/customers?limit=1', auth => 'Bearer other')->{status},
   401, 'another key has its own budget (and fails auth)');

$sb->config('loyaltylion', { retry_after => 1 });
my @r = map { ll('GET', '/v2/customers') } 1 .. 16;
my ($r429) = grep { $_->{status} == 429 } @r;
ok($r429, 'still limited');
is($r429 && $r429->{headers}{'retry-after'}, '1',
   'Retry-After when configured');
$sb->config('loyaltylion', { rate_per_s => 20, retry_after => undef });

# --- reset ------------------------------------------------------------------

$sb->reset('loyaltylion');
is(scalar @{ ll('GET', '/v2/customers')->{json}{customers} }, 0,
   'reset empties it');

done_testing;
