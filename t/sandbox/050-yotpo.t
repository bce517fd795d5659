#!/usr/bin/perl

# The Yotpo Loyalty emulation (src/sandbox/sandbox_yotpo.js): x-guid and
# x-api-key (and the legacy query parameters), ratelimit-* headers on
# every response and the per-merchant 429, customers, orders idempotent
# per order_id, refunds reversing points in proportion and capped at the
# order total, point adjustments (422, 423 busy), custom actions,
# redemptions, and one state per merchant.

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
my %M1 = (guid => 'yotpo_test_guid', key => 'yotpo_test_key');
my %M2 = (guid => 'guid-two', key => 'key-two');

sub yotpo {
    my ($method, $path, %o) = @_;
    my $m = delete $o{merchant} // \%M1;
    my %h = %{ delete $o{headers} // {} };
    if ($m) {
        $h{'x-guid'} = $m->{guid};
        $h{'x-api-key'} = $m->{key};
    }
    my $r = $sb->call($method, "/yotpo/api/v2$path", headers => \%h, %o);
    $r->{json} = eval { $JSON->decode($r->{body}) } if length $r->{body};
    return $r;
}

sub customer {
    my ($email, %o) = @_;
    return yotpo('GET', "/customers?customer_email=$email", %o)->{json};
}

sub window_start { sleep(1.02 - (time - int(time))) }

my $conf = $sb->config('yotpo');
is($conf->{rate_limit}, 10, 'default: 10 requests/s per merchant');
$sb->config('yotpo', { rate_limit => 1000,
    merchants => [ { guid => $M1{guid}, api_key => $M1{key} },
                   { guid => $M2{guid}, api_key => $M2{key} } ] });

# --- auth and headers --------------------------------------------------------

my $r = yotpo('GET', '/customers?customer_email=a@b.io', merchant => 0);
is($r->{status}, 401, 'no credentials: 401');
ok($r->{json}{error}, 'error body');
is(yotpo('GET', '/customers?customer_email=a@b.io',
         merchant => { guid => $M1{guid}, key => 'wrong' })->{status}, 401,
   'wrong API key: 401');
is(yotpo('GET', '/customers?customer_email=a@b.io',
         merchant => { guid => $M2{guid}, key => $M1{key} })->{status}, 401,
   "another merchant's key: 401");
for my $h (qw(ratelimit-limit ratelimit-remaining ratelimit-reset
              x-ratelimit-limit-minute x-ratelimit-remaining-minute)) {
    ok(defined $r->{headers}{$h}, "$h on a 401 too");
}

$r = yotpo('GET', '/customers?customer_email=nobody@example.com');
is($r->{status}, 404, 'unknown customer: 404');
is($r->{headers}{'ratelimit-limit'}, 1000, 'ratelimit-limit = configured');
my $rem = $r->{headers}{'ratelimit-remaining'};
is(yotpo('GET', '/customers?customer_email=nobody@example.com')
   ->{headers}{'ratelimit-remaining'}, $rem - 1, 'remaining counts down');
is(yotpo('GET', '/customers')->{status}, 400, 'no e-mail or id: 400');
is($sb->call('GET', "/yotpo/api/v2/customers?customer_email=x\@y.io"
             . "&merchant_id=$M1{guid}&api_key=$M1{key}")->{status}, 404,
   'legacy merchant_id + api_key parameters authenticate');

my ($legacy) = grep { $_->{query} =~ /merchant_id/ }
               @{ $sb->requests(service => 'yotpo') };
ok($legacy, 'legacy request logged');
unlike($legacy->{query}, qr/$M1{key}/, 'api_key masked in the log');

# --- customers ---------------------------------------------------------------

$r = yotpo('POST', '/customers', json => { id => 'c1',
    email => 'ann@example.com', first_name => 'Ann' });
is($r->{status}, 200, 'customer created');
is($r->{json}{thirty_party_id}, 'c1', 'thirty_party_id is our id');
yotpo('POST', '/customers', json => { id => 'c1', last_name => 'Lee' });
$r = yotpo('GET', '/customers?customer_id=c1');
is($r->{json}{first_name}, 'Ann', 'upsert keeps the first name');
is($r->{json}{last_name}, 'Lee', 'and adds the last name');
is(scalar @{ $sb->state('yotpo')->{customers} }, 1, 'one customer, no copy');
for my $f (qw(points_balance points_earned total_spend_cents total_purchases
              perks_redeemed vip_tier_name)) {
    ok(exists $r->{json}{$f}, "customer has $f");
}

# --- orders ------------------------------------------------------------------

sub order {
    my (%b) = @_;
    return yotpo('POST', '/orders', json => { customer_email =>
        'ann@example.com', currency_code => 'USD', %b });
}

$r = order(order_id => '1001', total_amount_cents => '15000');
is($r->{status}, 200, 'order with cents as a string');
is($r->{json}{points_awarded}, 150, '1 point per currency unit: 150');
is(customer('ann@example.com')->{points_balance}, 150, 'balance 150');
is(order(order_id => '1001', total_amount_cents => '15000')->{status}, 200,
   'the same order again: 200');
my $c = customer('ann@example.com');
is($c->{points_balance}, 150, 'a repeated order does not double points');
is($c->{total_purchases}, 1, 'nor the purchase count');
is(order(order_id => 1002, total_amount_cents => 5000)->{status}, 200,
   'order with integer cents');
$c = customer('ann@example.com');
is($c->{points_balance}, 200, 'balance 200');
is($c->{total_spend_cents}, 20000, 'total spend 20000 cents');
is($c->{total_purchases}, 2, 'two purchases');
is(order(order_id => 1003, total_amount_cents => '150.00')->{status}, 400,
   'decimal "cents": 400');
is(order(total_amount_cents => 100)->{status}, 400, 'no order_id: 400');
is(yotpo('POST', '/orders', json => [])->{status}, 400,
   'not a JSON object: 400');
is(customer('ann@example.com')->{points_balance}, 200,
   'rejected orders change nothing');

$sb->config('yotpo', { points_per_currency_unit => 2 });
is(order(order_id => 'new-1', customer_email => 'neo@example.com',
         total_amount_cents => 1000)->{json}{points_awarded}, 20,
   'configured rate: 2 per unit');
$sb->config('yotpo', { points_per_currency_unit => 1 });
is(customer('neo@example.com')->{points_balance}, 20,
   'an order creates its unknown customer');

$sb->config('yotpo', { award_statuses => ['paid'] });
is(order(order_id => 'p-1', customer_email => 'pend@example.com',
         status => 'pending', total_amount_cents => 1000)
   ->{json}{points_awarded}, 0, 'award_statuses: a pending order earns 0');
is(order(order_id => 'p-2', customer_email => 'pend@example.com',
         status => 'paid', total_amount_cents => 1000)
   ->{json}{points_awarded}, 10, 'a paid one earns');
$sb->config('yotpo', { award_statuses => undef });

# --- refunds -----------------------------------------------------------------

sub refund {
    return yotpo('POST', '/refunds', json => { order_id => $_[0],
                                               total_amount_cents => $_[1] });
}

$r = refund('1001', 7500);
is($r->{status}, 200, 'refund of half the order');
is($r->{json}{points_reversed}, 75, 'half the points reversed');
is(customer('ann@example.com')->{points_balance}, 125, 'balance 125');
$r = refund('1001', '10000');
is($r->{json}{refunded_cents}, 15000, 'refunds capped at the order total');
is($r->{json}{points_reversed}, 150, 'all points reversed, no more');
is(customer('ann@example.com')->{points_balance}, 50, 'balance 50');
refund('1001', 100);
is(customer('ann@example.com')->{points_balance}, 50,
   'a refund beyond the total reverses nothing');
is(customer('ann@example.com')->{total_spend_cents}, 5000,
   'total spend lowered by the refunded amount only');
is(refund('no-such-order', 100)->{status}, 404, 'unknown order: 404');
refund('1002', 1666);
is(customer('ann@example.com')->{points_balance}, 33,
   'a third of 50 points, rounded: 17 reversed');

# --- adjustments, actions, redemptions ---------------------------------------

sub adjust {
    my (%b) = @_;
    return yotpo('POST', '/points/adjust', json => {
        customer_email => 'ann@example.com', %b });
}

$r = adjust(point_adjustment_amount => 117, history_title => 'Goodwill',
            apply_adjustment_to_points_earned => JSON::PP::true);
is($r->{status}, 200, 'adjust +117');
is($r->{json}{points_balance}, 150, 'balance 150');
$r = adjust(point_adjustment_amount => -151);
is($r->{status}, 422, 'more than the balance: 422');
is(customer('ann@example.com')->{points_balance}, 150, 'balance unchanged');
$sb->action('yotpo', 'busy', { customer_email => 'ann@example.com',
                               times => 1 });
is(adjust(point_adjustment_amount => -10)->{status}, 423,
   'record busy: 423');
is(adjust(point_adjustment_amount => -10)->{status}, 200, 'then it passes');
is(adjust(point_adjustment_amount => 5, customer_email => 'x@nowhere.io')
   ->{status}, 404, 'unknown customer: 404');
is(adjust(point_adjustment_amount => '5')->{status}, 400,
   'a non-integer amount: 400');

$sb->config('yotpo', { custom_actions => { 'Followed on Instagram' => 30 } });
$r = yotpo('POST', '/actions', json => { type => 'CustomAction',
    customer_email => 'ann@example.com',
    action_name => 'Followed on Instagram' });
is($r->{status}, 200, 'custom action');
is(customer('ann@example.com')->{points_balance}, 170,
   'configured action: 30 points');
yotpo('POST', '/actions', json => { type => 'CustomAction',
    customer_email => 'ann@example.com', action_name => 'Quiz',
    reward_points => 7 });
is(customer('ann@example.com')->{points_balance}, 177,
   'reward_points in the call: 7');

$sb->config('yotpo', { redemption_options => [
    { id => 7, name => '$5 off', amount => 100, code_prefix => 'FIVE' } ] });
is_deeply([ map { $_->{id} } @{ yotpo('GET', '/redemption_options')->{json} } ],
          [ 7 ], 'redemption options listed');
$r = yotpo('POST', '/redemptions', json => {
    customer_email => 'ann@example.com', redemption_option_id => 7 });
is($r->{status}, 200, 'redeemed');
like($r->{json}{reward_text}, qr/^FIVE-\w+$/, 'coupon code in reward_text');
ok($r->{json}{approved}, 'approved');
$c = customer('ann@example.com');
is($c->{points_balance}, 77, '100 points deducted');
is($c->{perks_redeemed}, 1, 'perks_redeemed counted');
is(yotpo('POST', '/redemptions', json => { customer_email =>
   'ann@example.com', redemption_option_id => 7 })->{status}, 422,
   'insufficient points: 422');
is(yotpo('POST', '/redemptions', json => { customer_email =>
   'ann@example.com', redemption_option_id => 99 })->{status}, 404,
   'unknown option: 404');

$r = yotpo('GET', '/customers?customer_email=ann@example.com'
           . '&with_history=true');
my @actions = map { $_->{action} } @{ $r->{json}{history_items} };
is($actions[0], 'Redeemed $5 off', 'history newest first');
ok((grep { $_ eq 'Made a purchase' } @actions), 'purchases in the history');
ok((grep { $_ eq 'Goodwill' } @actions), 'the adjustment title');
ok(!exists customer('ann@example.com')->{history_items},
   'no history unless asked');

# --- merchants ---------------------------------------------------------------

is(yotpo('GET', '/customers?customer_email=ann@example.com',
         merchant => \%M2)->{status}, 404, "merchants don't share customers");
$sb->action('yotpo', 'customer', { merchant => $M2{guid},
    email => 'zed@example.com', points_balance => 40 });
is(customer('zed@example.com', merchant => \%M2)->{points_balance}, 40,
   'seeded into the second merchant');
is($sb->state('yotpo', 'orders', '1001')->{refunded_cents}, 15000,
   'state: one order');

# --- faults and rate limits --------------------------------------------------

$sb->fault({ service => 'yotpo', status => 503, times => 1 });
$r = yotpo('GET', '/customers?customer_email=ann@example.com');
is($r->{status}, 503, 'injected 503');
ok(defined $r->{headers}{'ratelimit-limit'}, 'still with ratelimit-limit');

$sb->config('yotpo', { rate_limit => 3 });
window_start();
my @st = map { yotpo('GET', '/redemption_options') } 1 .. 4;
is_deeply([ map { $_->{status} } @st ], [ 200, 200, 200, 429 ],
          '3 per second, then 429');
is_deeply([ map { $_->{headers}{'ratelimit-remaining'} } @st ],
          [ 2, 1, 0, 0 ], 'ratelimit-remaining 2, 1, 0, 0');
is($st[3]{headers}{'ratelimit-limit'}, 3, '429 names the limit');
is($st[3]{headers}{'ratelimit-reset'}, 1, 'reset within a second');
is(yotpo('GET', '/redemption_options', merchant => \%M2)->{status}, 200,
   'another merchant has its own budget');

$sb->reset('yotpo');
$sb->config('yotpo', { rate_limit => 100, rate_limit_minute => 2 });
# not across a minute boundary (the minute window is a fixed one too)
sleep(61 - time % 60) if time % 60 > 58;
@st = map { yotpo('GET', '/redemption_options') } 1 .. 3;
is_deeply([ map { $_->{status} } @st ], [ 200, 200, 429 ],
          'per-minute budget: 429 after 2');
is($st[1]{headers}{'x-ratelimit-remaining-minute'}, 0,
   'x-ratelimit-remaining-minute 0');
is($st[1]{headers}{'x-ratelimit-limit-minute'}, 2,
   'x-ratelimit-limit-minute 2');

is(scalar @{ $sb->state('yotpo')->{customers} }, 0, 'reset cleared state');
$sb->action('yotpo', 'defaults');

done_testing;
