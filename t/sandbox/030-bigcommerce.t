#!/usr/bin/perl

# The BigCommerce emulation: stores by hash with X-Auth-Token, v2 orders
# and their products as seeded (money as 4-decimal strings, RFC 2822
# dates), v3 customers by id:in and email:in, v2 coupons (unique code ->
# 409, lookup by code, single use), v2/v3 error formats, the
# X-Rate-Limit-* headers on every response and 429 over the quota.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Sandbox;

my $JSON = JSON::PP->new->utf8->canonical;
my $sb = Loyalty::Test::Sandbox->new(config => { bigcommerce => {
    stores => { abc123 => { token => 'tok-abc' },
                def456 => { token => 'tok-def' } },
    quota => 100000, window_ms => 30000 } });
my $S = '/bigcommerce/stores/abc123';

sub bc {
    my ($method, $path, %o) = @_;
    my $r = $sb->call($method, ($o{store} // $S) . $path,
        headers => { ($o{token} // 'tok-abc')
                         ? ('X-Auth-Token' => $o{token} // 'tok-abc') : (),
                     Accept => 'application/json' },
        (exists $o{json} ? (json => $o{json}) : ()));
    $r->{json} = eval { $JSON->decode($r->{body}) } if length $r->{body};
    return $r;
}

# --- auth -------------------------------------------------------------------

my $r = bc('GET', '/v2/orders/1', token => '');
is($r->{status}, 401, 'no X-Auth-Token: 401');
is($r->{json}[0]{status}, 401, 'v2 error array');
$r = bc('GET', '/v3/customers', token => 'tok-def');
is($r->{status}, 401, "another store's token: 401");
is($r->{json}{status}, 401, 'v3 error object');
ok($r->{json}{title} && exists $r->{json}{type}, 'with title and type');
is(bc('GET', '/v2/orders/1', store => '/bigcommerce/stores/zzz')->{status},
   404, 'unknown store hash: 404');

# --- orders -----------------------------------------------------------------

$sb->action('bigcommerce', 'seed_order', { store => 'abc123',
    order => { id => 250, customer_id => 7, status_id => 11,
               subtotal_inc_tax => 49.9, total_inc_tax => 59.9,
               total_ex_tax => 50, shipping_cost_inc_tax => 10,
               currency_code => 'EUR', items_total => 2,
               billing_address => { email => 'ann@x.io' } },
    products => [
        { product_id => 11, sku => 'TEE-1', name => 'Tee', quantity => 1,
          base_price => 29.9, price_inc_tax => 29.9, total_inc_tax => 29.9 },
        { product_id => 0, sku => 'GC', name => 'Gift card', quantity => 1,
          base_price => 20, price_inc_tax => 20, total_inc_tax => 20,
          type => 'giftcertificate' } ] });

$r = bc('GET', '/v2/orders/250');
is($r->{status}, 200, 'GET order: 200');
my $o = $r->{json};
is($o->{id}, 250, 'id');
is($o->{customer_id}, 7, 'customer_id');
is($o->{total_inc_tax}, '59.9000', 'money as a 4-decimal string');
is($o->{refunded_amount}, '0.0000', 'refunded_amount defaults to 0');
is($o->{status}, 'Awaiting Fulfillment', 'status name from status_id');
is($o->{currency_code}, 'EUR', 'currency_code');
is($o->{billing_address}{email}, 'ann@x.io', 'billing_address.email');
like($o->{date_created}, qr/^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000$/,
     'date_created in RFC 2822');
like($o->{products}{url}, qr{/v2/orders/250/products$}, 'products link');

$r = bc('GET', '/v2/orders/250/products');
is($r->{status}, 200, 'order products: 200');
is(scalar @{ $r->{json} }, 2, 'two lines');
is($r->{json}[0]{sku}, 'TEE-1', 'sku');
is($r->{json}[0]{order_id}, 250, 'order_id');
is($r->{json}[0]{type}, 'physical', 'type defaults to physical');
is($r->{json}[1]{type}, 'giftcertificate', 'gift certificate line');
is($r->{json}[1]{base_price}, '20.0000', 'base_price string');

$r = bc('GET', '/v2/orders/999');
is($r->{status}, 404, 'unknown order: 404');
is($r->{json}[0]{status}, 404, 'v2 error array');

$sb->action('bigcommerce', 'seed_order', { store => 'abc123',
    order => { id => 250, status_id => 14, refunded_amount => 10 } });
$r = bc('GET', '/v2/orders/250');
is($r->{json}{refunded_amount}, '10.0000', 'a reseed updates the order');
is($r->{json}{status}, 'Partially Refunded', 'and its status');
is($r->{json}{total_inc_tax}, '59.9000', 'other fields kept');

is(bc('GET', '/v2/orders/250', store => '/bigcommerce/stores/def456',
      token => 'tok-def')->{status}, 404, 'stores are separate');
is(bc('GET', '/v2/orders?customer_id=7')->{status}, 200, 'orders list');
is(bc('GET', '/v2/orders?customer_id=8')->{status}, 204,
   'empty v2 list: 204');

# --- customers v3 -----------------------------------------------------------

$sb->action('bigcommerce', 'seed_customers', { store => 'abc123',
    customers => [ { id => 7, email => 'ann@x.io', first_name => 'Ann' },
                   { id => 8, email => 'bob@x.io', first_name => 'Bob' },
                   { id => 9, email => 'cy@x.io' } ] });
$r = bc('GET', '/v3/customers?id:in=7,9');
is($r->{status}, 200, 'customers by id:in');
is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [7, 9], 'ids 7 and 9');
is($r->{json}{meta}{pagination}{total}, 2, 'meta.pagination.total');
$r = bc('GET', '/v3/customers?email:in=BOB@x.io');
is($r->{json}{data}[0]{first_name}, 'Bob', 'by email:in');
$r = bc('GET', '/v3/customers?id:in=42');
is_deeply($r->{json}{data}, [], 'no match: empty data');
$r = bc('GET', '/v3/customers?id:in=abc');
is($r->{status}, 422, 'bad filter: 422');
is($r->{json}{status}, 422, 'v3 error body');
ok(ref $r->{json}{errors} eq 'HASH', 'errors object');
$r = bc('GET', '/v3/customers?limit=2&page=2');
is(scalar @{ $r->{json}{data} }, 1, 'page 2 of 2');
is($r->{json}{meta}{pagination}{total_pages}, 2, 'total_pages');

# --- coupons v2 -------------------------------------------------------------

my %coupon = (name => 'Reward 10', code => 'LOY-ABC',
              type => 'per_total_discount',
              amount => '10.00', enabled => JSON::PP::true, max_uses => 1,
              applies_to => { entity => 'categories', ids => [0] });
$r = bc('POST', '/v2/coupons', json => \%coupon);
is($r->{status}, 201, 'create coupon: 201');
ok($r->{json}{id}, 'with an id');
is($r->{json}{amount}, '10.0000', 'amount as a string');
is($r->{json}{max_uses}, 1, 'single use');
is($r->{json}{num_uses}, 0, 'unused');
my $cid = $r->{json}{id};

$r = bc('POST', '/v2/coupons', json => { %coupon, name => 'Other' });
is($r->{status}, 409, 'same code again: 409');
is($r->{json}[0]{message}, "The field 'code' must be unique.",
   'v2 error message');
is(bc('POST', '/v2/coupons', json => { %coupon, code => 'LOY-X',
      type => 'bogus' })->{status}, 400, 'unknown type: 400');
$r = bc('POST', '/v2/coupons', json => { code => 'LOY-Y' });
is($r->{status}, 400, 'missing fields: 400');
like($r->{json}[0]{message}, qr/required field/, 'says which');

$r = bc('GET', '/v2/coupons?code=LOY-ABC');
is($r->{status}, 200, 'by code: 200');
is($r->{json}[0]{id}, $cid, 'the coupon');
is(bc('GET', '/v2/coupons?code=NONE')->{status}, 204,
   'unknown code: 204 (empty v2 list)');
is(bc('GET', "/v2/coupons/$cid")->{json}{code}, 'LOY-ABC', 'by id');

is($sb->action('bigcommerce', 'redeem_coupon',
               { store => 'abc123', code => 'LOY-ABC' })->{redeemed}, 1,
   'first redemption');
ok(!$sb->action('bigcommerce', 'redeem_coupon',
                { store => 'abc123', code => 'LOY-ABC' })->{redeemed},
   'second redemption refused (max_uses 1)');
is(bc('GET', "/v2/coupons/$cid")->{json}{num_uses}, 1, 'num_uses 1');
is(scalar @{ $sb->state('bigcommerce', 'abc123', 'coupons')->{coupons} }, 1,
   'state shows the coupon');
is(bc('DELETE', "/v2/coupons/$cid")->{status}, 204, 'delete: 204');
is(bc('GET', "/v2/coupons/$cid")->{status}, 404, 'gone');

# --- rate headers and quota -------------------------------------------------

$sb->config('bigcommerce', { quota => 3, window_ms => 2000 });
# the sandbox's windows start at multiples of window_ms: start of one
sleep((2000 - (time * 1000) % 2000 + 20) / 1000);
$r = bc('GET', '/v2/orders/250');
is($r->{headers}{'x-rate-limit-requests-quota'}, 3, 'quota header');
is($r->{headers}{'x-rate-limit-requests-left'}, 2, 'requests left');
is($r->{headers}{'x-rate-limit-time-window-ms'}, 2000, 'window header');
cmp_ok($r->{headers}{'x-rate-limit-time-reset-ms'}, '<=', 2000,
       'reset header');
is(bc('GET', '/v2/orders/250', token => 'bad')->{headers}
       {'x-rate-limit-requests-left'}, 1, 'headers on errors too');
bc('GET', '/v2/orders/250');
$r = bc('GET', '/v2/orders/250');
is($r->{status}, 429, 'over the quota: 429');
is($r->{headers}{'x-rate-limit-requests-left'}, 0, 'none left');
ok(defined $r->{headers}{'x-rate-limit-time-reset-ms'}, 'reset on the 429');
is(bc('GET', '/v2/orders/250', store => '/bigcommerce/stores/def456',
      token => 'tok-def')->{status}, 404, 'the other store has its own quota');
sleep(($r->{headers}{'x-rate-limit-time-reset-ms'} + 50) / 1000);
is(bc('GET', '/v2/orders/250')->{status}, 200, 'after the reset: 200');

done_testing;
