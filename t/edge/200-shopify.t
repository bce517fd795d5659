#!/usr/bin/perl

# loyalty_webhook shopify: X-Shopify-Hmac-Sha256 (base64 HMAC-SHA256 of
# the raw body, apis.md §1, §10 vector 4) through nginx and Redis: the
# envelope of an accepted order and customer, the shopify-* (Events)
# header set, every way a delivery is refused (401 / 400, nothing
# queued), rotation, and dedupe on X-Shopify-Webhook-Id and on the
# second key (event id + topic).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Digest::SHA qw(hmac_sha256 hmac_sha256_hex);
use JSON::PP ();
use MIME::Base64 qw(encode_base64);

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = 'shpss_' . join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
my $old = 'shpss_old_' . join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
my $other = 'shpss_other_secret';

my ($redis, $ngx) = edge_setup(config => qq{
    location = /shop { loyalty_webhook shopify; loyalty_secret $secret;
                       loyalty_store shop; loyalty_default_country CA; }
    location = /rot  { loyalty_webhook shopify; loyalty_secret $old;
                       loyalty_secret $secret; loyalty_store rot; }
    location = /vec  { loyalty_webhook shopify; loyalty_secret hush;
                       loyalty_store vec; }
});

my $json = JSON::PP->new->utf8->canonical;
my $stream = stream_key('shop');
my $seq = 0;

sub sig { encode_base64(hmac_sha256($_[1], $_[0]), '') }

sub uuid {
    $seq++;
    return sprintf '%08x-%04x-4%03x-8%03x-%012x', $$, $seq, int rand 4096,
        int rand 4096, time;
}

# post_shopify($path, topic => T, body => B, secret => S, ...): headers
# as Shopify sends them; signature => '...' overrides, omit => [names],
# events => 1 sends the shopify-* set only.
sub post_shopify {
    my ($path, %o) = @_;
    my $body = $o{body};
    my $id = $o{webhook_id} // uuid();
    my $ev = $o{event_id} // uuid();
    my $p = $o{events} ? 'shopify-' : 'X-Shopify-';
    my %h = (
        'Content-Type' => 'application/json',
        "${p}Topic" => $o{topic},
        "${p}Hmac-Sha256" => $o{signature} // sig($o{secret} // $secret, $body),
        "${p}Shop-Domain" => 'loyal-demo.myshopify.com',
        "${p}API-Version" => '2025-01',
        "${p}Event-Id" => $ev,
        "${p}Triggered-At" => $o{triggered_at} // '2026-03-01T10:20:30.5+01:00',
        ($o{events} ? () : ("${p}Webhook-Id" => $id)),
        %{ $o{headers} // {} },
    );
    delete $h{$_} for @{ $o{omit} // [] };
    my $r = $ngx->request(POST => $path, body => $body, headers => \%h);
    return wantarray ? ($r, { id => $id, event_id => $ev, headers => \%h })
                     : $r;
}

my $order = '{"id":820982911946154508,"name":"#1001","order_number":1001,'
    . '"email":"Bob@Example.com","currency":"USD",'
    . '"created_at":"2026-03-01T04:20:00-05:00",'
    . '"updated_at":"2026-03-01T04:20:29-05:00","cancelled_at":null,'
    . '"financial_status":"paid","total_price":"49.00",'
    . '"subtotal_price":"45.00","total_tax":"4.00","total_discounts":"0.00",'
    . '"total_shipping_price_set":{"shop_money":{"amount":"0.00",'
    . '"currency_code":"USD"}},'
    . '"customer":{"id":706405506930370084,"email":"bob@example.com",'
    . '"first_name":"Bob","last_name":"Biller","phone":"(613) 555-1212"},'
    . '"line_items":[{"id":466157049,"sku":"SKU-1","quantity":1,'
    . '"price":"45.00","gift_card":false}],"refunds":[]}';


# --- accepted: orders/paid ---------------------------------------------------

my ($r, $req) = post_shopify('/shop', topic => 'orders/paid', body => $order);
is $r->{status}, 202, 'orders/paid: 202' or diag $r->{body};
is json_of($r) && json_of($r)->{id}, $req->{id},
    '202 body carries X-Shopify-Webhook-Id';

my $entries = $redis->stream($stream);
is scalar @$entries, 1, 'one entry';
my $e = $entries->[0][1];
is $e->{v}, '1', 'v = 1';
is $e->{id}, $req->{id}, 'id = X-Shopify-Webhook-Id';
is $e->{src}, 'shopify', 'src = shopify';
is $e->{store}, 'shop', 'store';
is $e->{type}, 'order.paid', 'type = order.paid';
is $e->{topic}, 'orders/paid', 'topic as sent';
is $e->{occurred}, '2026-03-01T09:20:30.5Z',
    'occurred = X-Shopify-Triggered-At in UTC';
is $e->{email}, 'bob@example.com', 'email: the order email, lower-cased';
is $e->{phone}, '+16135551212', 'phone: E.164 with loyalty_default_country CA';
is $e->{store_cid}, '706405506930370084', 'store_cid: the 64-bit id, exact';
ok !exists $e->{ext_id}, 'no ext_id';
ok !exists $e->{alt_id}, 'alt_id is not stored';

my $data = eval { $json->decode($e->{data}) } // {};
my $o = $data->{order} // {};
is $o->{id}, '820982911946154508', 'order.id is an exact string';
is $o->{number}, '1001', 'order.number';
is $o->{status}, 'paid', 'order.status';
is $o->{total}, 4900, 'order.total in minor units';
is $o->{subtotal}, 4500, 'order.subtotal';
is $o->{tax}, 400, 'order.tax';
is $o->{shipping}, 0, 'order.shipping from total_shipping_price_set';
is $o->{discount}, 0, 'order.discount';
is $o->{currency}, 'USD', 'order.currency';
is_deeply $o->{items}, [{ id => '466157049', sku => 'SKU-1', qty => 1,
                          price => 4500, kind => 'product' }], 'order.items'
    or diag $e->{data};
is $o->{customer}{store_cid}, '706405506930370084', 'order.customer keys';
is $o->{created_at}, '2026-03-01T09:20:00Z', 'order.created_at in UTC';
is $data->{customer}{first_name}, 'Bob', 'data.customer first_name';
is_deeply $data->{shop}, { domain => 'loyal-demo.myshopify.com',
                           api_version => '2025-01' }, 'data.shop';
like $e->{data}, qr/"id":"820982911946154508"/,
    'the id is a JSON string in data, never a number';


# --- accepted: customers/update, the Events header set, unknown topics -------

my $cust = '{"id":7894561230123456789,"email":" Ada@Example.COM ",'
    . '"first_name":"Ada","last_name":"Lovelace","state":"enabled",'
    . '"updated_at":"2026-03-01T10:00:00+00:00","phone":"+447911123456"}';
($r, $req) = post_shopify('/shop', topic => 'customers/update', body => $cust);
is $r->{status}, 202, 'customers/update: 202' or diag $r->{body};
$e = $redis->stream($stream)->[-1][1];
is $e->{type}, 'customer.updated', 'customers/update: customer.updated';
is $e->{email}, 'ada@example.com', 'email trimmed and lower-cased';
is $e->{phone}, '+447911123456', 'phone kept (E.164)';
is $e->{store_cid}, '7894561230123456789', 'store_cid';
$data = eval { $json->decode($e->{data}) } // {};
is $data->{customer}{last_name}, 'Lovelace', 'customer.last_name';
is $data->{customer}{updated_at}, '2026-03-01T10:00:00Z', 'customer.updated_at';

my $consent = '{"customer_id":7894561230123456789,'
    . '"email_address":"ada@example.com","email_marketing_consent":'
    . '{"state":"subscribed","opt_in_level":"single_opt_in",'
    . '"consent_updated_at":"2026-03-01T10:05:00Z"}}';
($r, $req) = post_shopify('/shop', events => 1,
    topic => 'customers/email_marketing_consent_update', body => $consent);
is $r->{status}, 202, 'shopify-* headers only (Events): 202' or diag $r->{body};
$e = $redis->stream($stream)->[-1][1];
is $e->{id}, "shopify:evt:$req->{event_id}:customers/email_marketing_consent_update",
    '... id from shopify-event-id and the topic (no webhook id)';
is $e->{type}, 'consent.changed', '... consent.changed';
$data = eval { $json->decode($e->{data}) } // {};
is_deeply $data->{consent}, { channel => 'email', granted => JSON::PP::true,
    at => '2026-03-01T10:05:00Z', state => 'subscribed',
    opt_in_level => 'single_opt_in' }, '... consent object'
    or diag $e->{data};

($r) = post_shopify('/shop', topic => 'products/update',
                    body => '{"id":632910392,"title":"Hoodie"}');
is $r->{status}, 202, 'unknown topic: 202 (queued, not refused)';
$e = $redis->stream($stream)->[-1][1];
is $e->{type}, 'unknown', '... type unknown';
is $e->{topic}, 'products/update', '... topic kept';
like $e->{data}, qr/"payload":\{"id":632910392/, '... payload kept in data';

($r) = post_shopify('/shop', topic => 'customers/redact',
    body => '{"shop_id":954889,"shop_domain":"loyal-demo.myshopify.com",'
          . '"customer":{"id":191167,"email":"john@example.com"},'
          . '"orders_to_redact":[299938]}');
is $r->{status}, 202, 'compliance topic customers/redact: 202';
$e = $redis->stream($stream)->[-1][1];
is $e->{type}, 'unknown', '... type unknown';
is $e->{store_cid}, '191167', '... with the customer to redact';
like $e->{data}, qr/"orders_to_redact":\["299938"\]/, '... and the orders';

# apis.md §10 vector 4, byte for byte
($r) = post_shopify('/vec', topic => 'customers/update',
    body => '{"id":820982911946154508,"email":"jon@example.com"}',
    signature => 'D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8=');
is $r->{status}, 202, 'apis.md vector 4 verifies';

# mixed-case header names
my $id = uuid();
$r = $ngx->request(POST => '/shop', body => $cust, headers => [
    'x-shopify-topic' => 'customers/update',
    'X-SHOPIFY-HMAC-SHA256' => sig($secret, $cust),
    'X-Shopify-Webhook-ID' => $id ]);
is $r->{status}, 202, 'header names in mixed case';


# --- refused -------------------------------------------------------------------

sub refused {
    my ($name, $status, $error, %o) = @_;

    my $before = $redis->dbsize;
    my ($r, $req) = post_shopify($o{path} // '/shop', topic => 'orders/paid',
                                 body => $order, %o);

    subtest "$status: $name" => sub {
        is $r->{status}, $status, "status $status" or diag $r->{body};
        my $j = json_of($r);
        is $j && $j->{error}, $error, "error $error";
        is $redis->dbsize, $before, 'nothing written to Redis';
        ok !$redis->cmd('EXISTS', seen_key('shop', $req->{id})), 'no dedupe key';
    };
}

(my $tampered = $order) =~ s/"49\.00"/"4.90"/;
refused('tampered body', 401, 'bad_signature',
        signature => sig($secret, $order), body => $tampered);
refused('wrong secret', 401, 'bad_signature', secret => $other);
refused('missing X-Shopify-Hmac-Sha256', 401, 'bad_signature',
        omit => ['X-Shopify-Hmac-Sha256']);
refused('hex instead of base64', 401, 'bad_signature',
        signature => hmac_sha256_hex($order, $secret));
my $reser = $json->encode($json->decode($order));
refused('signature over re-serialised JSON', 401, 'bad_signature',
        signature => sig($secret, $order), body => $reser);
refused('empty body, correctly signed', 401, 'bad_signature',
        body => '', signature => sig($secret, ''));
refused('old secret at a location without it', 401, 'bad_signature',
        secret => $old);
refused('malformed JSON, correctly signed', 400, 'bad_json',
        body => '{"id":1,', signature => sig($secret, '{"id":1,'));
refused('no X-Shopify-Topic', 400, 'bad_request',
        omit => ['X-Shopify-Topic']);


# --- rotation --------------------------------------------------------------------

($r) = post_shopify('/rot', topic => 'orders/paid', body => $order, secret => $old);
is $r->{status}, 202, 'rotation: the old secret verifies';
($r) = post_shopify('/rot', topic => 'orders/paid', body => $order, secret => $secret);
is $r->{status}, 202, 'rotation: the new secret verifies';
($r) = post_shopify('/rot', topic => 'orders/paid', body => $order, secret => $other);
is $r->{status}, 401, 'rotation: another secret does not';
is $redis->xlen(stream_key('rot')), 2, 'rotation: two entries';


# --- dedupe ----------------------------------------------------------------------

my $n = $redis->xlen($stream);
my %same = (topic => 'orders/paid', body => $order, webhook_id => uuid(),
            event_id => uuid());
($r) = post_shopify('/shop', %same);
is $r->{status}, 202, 'first delivery: 202';
($r) = post_shopify('/shop', %same);
is $r->{status}, 200, 'same X-Shopify-Webhook-Id again: 200';
is json_of($r) && json_of($r)->{status}, 'duplicate', '... duplicate';
is $redis->xlen($stream), $n + 1, '... one entry';

# a retry under a new webhook id: the second key (event id + topic)
($r) = post_shopify('/shop', %same, webhook_id => uuid());
is $r->{status}, 200, 'new webhook id, same event id and topic: duplicate'
    or diag 'needs the module to dedupe on alt_id as well as id';
is $redis->xlen($stream), $n + 1, '... still one entry';

# the same merchant action, another topic: a different event
($r) = post_shopify('/shop', %same, webhook_id => uuid(), topic => 'orders/create');
is $r->{status}, 202, 'same event id, other topic: a new event';
is $redis->xlen($stream), $n + 2, '... two entries';

done_testing;
