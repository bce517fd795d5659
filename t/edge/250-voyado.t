#!/usr/bin/perl

# loyalty_webhook voyado: the Svix scheme (svix-* or webhook-* headers,
# whsec_ secret base64-decoded; apis.md §6, §10 vectors 1 and 2) through
# nginx and Redis: the envelope of points, voucher and contact events in
# camelCase and PascalCase, encrypted payloads, every way a delivery is
# refused (401 / 400, nothing queued), rotation, and dedupe on svix-id.

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

my $secret = new_secret();
my $old = new_secret();
my $other = new_secret();
my $vector = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

my ($redis, $ngx) = edge_setup(config => qq{
    location = /vy   { loyalty_webhook voyado; loyalty_secret $secret;
                       loyalty_store vy; loyalty_default_country SE; }
    location = /rot  { loyalty_webhook voyado; loyalty_secret $old;
                       loyalty_secret $secret; loyalty_store rot; }
    location = /vec  { loyalty_webhook voyado; loyalty_secret $vector;
                       loyalty_timestamp_tolerance 10y; loyalty_store vec; }
});

my $json = JSON::PP->new->utf8->canonical;
my $stream = stream_key('vy');
my $contact = '2e40b702-5b8c-4d3a-9f6e-0c1d2e3f4a5b';

# post_vy($path, body => B, secret => S, prefix => 'svix-'|'webhook-',
#         id, ts, signature, omit => [names], headers => {...})
sub post_vy {
    my ($path, %o) = @_;
    my $body = $o{body};
    my $id = $o{id} // new_id('msg');
    my $ts = $o{ts} // int time;
    my $p = $o{prefix} // 'svix-';
    my %h = (
        'Content-Type' => 'application/json',
        "${p}id" => $id,
        "${p}timestamp" => $ts,
        "${p}signature" => $o{signature}
                           // standard_sign($o{secret} // $secret, $id, $ts, $body),
        %{ $o{headers} // {} },
    );
    delete $h{$_} for @{ $o{omit} // [] };
    my $r = $ngx->request(POST => $path, body => $body, headers => \%h);
    return wantarray ? ($r, { id => $id, ts => $ts }) : $r;
}

my $balance = qq({"eventType":"point.balance.updated","id":"c3d4e5f6","isEncrypted":false,)
    . qq("tenant":"acme","payload":{"balance":1250.0,"contactId":"$contact",)
    . qq("accountId":17,"definitionId":"1","balanceExpires":"2026-12-31T00:00:00+01:00"}});
my $voucher = qq({"eventId":"d4e5f6a7","eventType":"reward.voucher.created","isEncrypted":false,)
    . qq("payload":{"Amount":100.0,"ContactId":"$contact","Currency":"SEK",)
    . qq("Id":"f1e2d3c4","UniqueCode":"ABC123","ValidFrom":"2024-11-24T00:00:00+01:00",)
    . qq("ValidTo":"2025-02-28T23:59:59+01:00"},"tenant":"acme"});


# --- accepted ------------------------------------------------------------------

my ($r, $req) = post_vy('/vy', body => $balance);
is $r->{status}, 202, 'point.balance.updated: 202' or diag $r->{body};
my $e = $redis->stream($stream)->[-1][1];
is $e->{v}, '1', 'v = 1';
is $e->{id}, $req->{id}, 'id = svix-id';
is $e->{src}, 'voyado', 'src = voyado';
is $e->{type}, 'points.adjusted', 'type points.adjusted';
is $e->{topic}, 'point.balance.updated', 'topic = eventType';
like $e->{occurred}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'occurred: RFC 3339 UTC';
is $e->{ext_id}, $contact, 'ext_id = contactId';
my $data = eval { $json->decode($e->{data}) } // {};
is $data->{points}{balance_after}, 1250, 'points.balance_after 1250 (from 1250.0)';
is $data->{points}{expires_at}, '2026-12-30T23:00:00Z', 'points.expires_at in UTC';
is $data->{customer}{points_balance}, 1250, 'customer.points_balance';
is $data->{tenant}, 'acme', 'tenant kept';

($r, $req) = post_vy('/vy', body => $voucher, prefix => 'webhook-');
is $r->{status}, 202, 'reward.voucher.created under webhook-* headers: 202';
$e = $redis->stream($stream)->[-1][1];
is $e->{id}, $req->{id}, '... id = webhook-id';
is $e->{type}, 'reward.issued', '... reward.issued';
is $e->{ext_id}, $contact, '... ext_id from PascalCase ContactId';
$data = eval { $json->decode($e->{data}) } // {};
is_deeply $data->{reward}, { id => 'f1e2d3c4', code => 'ABC123', value => 10000,
    currency => 'SEK', valid_from => '2024-11-23T23:00:00Z',
    valid_to => '2025-02-28T22:59:59Z', kind => 'voucher' },
    '... reward: value in minor units, times in UTC';

my $points = qq({"eventType":"loyalty.addPoints","id":"e1","isEncrypted":false,"tenant":"acme",)
    . qq("payload":{"amount":100.0,"contactId":"$contact","pointDefinitionId":1,)
    . qq("source":"Automation","description":"Birthday bonus","reason":"Birthday","sourceId":"a-1"}});
($r) = post_vy('/vy', body => $points);
is $r->{status}, 202, 'loyalty.addPoints: 202';
$e = $redis->stream($stream)->[-1][1];
is $e->{type}, 'points.earned', '... points.earned';
is_deeply eval { $json->decode($e->{data})->{points} },
    { delta => 100, reason => 'Birthday', source_id => 'a-1', source => 'Automation',
      definition_id => '1' }, '... points';

my $contact_body = qq({"EventType":"contact.updated","Id":"c1","IsEncrypted":false,"Tenant":"acme",)
    . qq("Payload":{"ContactId":"$contact","Email":"Ada\@Example.SE","MobilePhone":"070-123 45 67"}});
($r) = post_vy('/vy', body => $contact_body);
is $r->{status}, 202, 'PascalCase contact.updated: 202';
$e = $redis->stream($stream)->[-1][1];
is $e->{type}, 'customer.updated', '... customer.updated';
is $e->{email}, 'ada@example.se', '... email lower-cased';
is $e->{phone}, '+46701234567', '... national number with loyalty_default_country SE';

($r) = post_vy('/vy', body => qq({"eventType":"contact.acceptsSms.changed","id":"s1",)
    . qq("isEncrypted":false,"tenant":"acme","payload":{"contactId":"$contact","acceptsSms":false}}));
is $r->{status}, 202, 'contact.acceptsSms.changed: 202';
$e = $redis->stream($stream)->[-1][1];
is $e->{type}, 'consent.changed', '... consent.changed';
is_deeply eval { $json->decode($e->{data})->{consent} },
    { channel => 'sms', granted => JSON::PP::false }, '... consent sms, not granted';

my $secret_payload = 'eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.OKOawDo13gRp2oja';
($r) = post_vy('/vy', body => qq({"eventType":"point.balance.updated","id":"x1",)
    . qq("isEncrypted":true,"tenant":"acme","payload":"$secret_payload"}));
is $r->{status}, 202, 'encrypted payload: 202 (queued, never lost)';
$e = $redis->stream($stream)->[-1][1];
is $e->{type}, 'unknown', '... as unknown';
is $e->{topic}, 'point.balance.updated', '... topic kept';
$data = eval { $json->decode($e->{data}) } // {};
ok $data->{encrypted}, '... data.encrypted';
is $data->{payload}, $secret_payload, '... the opaque payload verbatim';

($r) = post_vy('/vy', body => qq({"eventType":"something.new","id":"n1","isEncrypted":false,)
    . qq("tenant":"acme","payload":{"contactId":"$contact"}}));
is $r->{status}, 202, 'an unknown event type: 202';
is $redis->stream($stream)->[-1][1]{type}, 'unknown', '... type unknown';

# apis.md §10 vectors 1 and 2
for my $p ('svix-', 'webhook-') {
    $r = $ngx->request(POST => '/vec', body => '{"test": 2432232314}', headers => {
        "${p}id" => 'msg_p5jXN8AQM9LWM0D4loKWxJek', "${p}timestamp" => 1614265330,
        "${p}signature" => 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' });
    # the body has no eventType: verified, then refused as a payload
    is $r->{status}, 400, "vector with ${p}* headers verifies (then 400: no eventType)"
        or diag $r->{body};
}

# both header sets: svix-* decides
my $id = new_id('msg');
my $ts = int time;
$r = $ngx->request(POST => '/vy', body => $balance, headers => {
    'svix-id' => $id, 'svix-timestamp' => $ts,
    'svix-signature' => standard_sign($secret, $id, $ts, $balance),
    'webhook-id' => 'msg_other', 'webhook-timestamp' => 1,
    'webhook-signature' => 'v1,AAAA' });
is $r->{status}, 202, 'both header sets: svix-* verifies';
is $redis->stream($stream)->[-1][1]{id}, $id, '... id = svix-id';

$id = new_id('msg');
$r = $ngx->request(POST => '/vy', body => $balance, headers => [
    'Svix-Id' => $id, 'SVIX-TIMESTAMP' => $ts,
    'Svix-Signature' => standard_sign($other, $id, $ts, $balance) . ' v2,AAAA '
                        . standard_sign($secret, $id, $ts, $balance) ]);
is $r->{status}, 202, 'mixed-case names, the last of three signatures valid';


# --- refused ---------------------------------------------------------------------

sub refused {
    my ($name, $status, $error, %o) = @_;

    my $before = $redis->dbsize;
    my ($r, $req) = post_vy($o{path} // '/vy', body => $balance, %o);

    subtest "$status: $name" => sub {
        is $r->{status}, $status, "status $status" or diag $r->{body};
        my $j = json_of($r);
        is $j && $j->{error}, $error, "error $error";
        is $redis->dbsize, $before, 'nothing written to Redis';
        ok !$redis->cmd('EXISTS', seen_key('vy', $req->{id})), 'no dedupe key';
    };
}

(my $tampered = $balance) =~ s/1250\.0/9250.0/;
$id = new_id('msg');
refused('tampered body', 401, 'bad_signature', id => $id, ts => $ts,
        signature => standard_sign($secret, $id, $ts, $balance), body => $tampered);
refused('wrong secret', 401, 'bad_signature', secret => $other);
refused('keyed with the whsec_ text, not the decoded key', 401, 'bad_signature',
        id => $id, ts => $ts,
        signature => 'v1,' . encode_base64(hmac_sha256("$id.$ts.$balance", $secret), ''));
refused('hex instead of base64', 401, 'bad_signature', id => $id, ts => $ts,
        signature => 'v1,' . hmac_sha256_hex("$id.$ts.$balance", secret_key($secret)));
my $reser = $json->encode($json->decode($balance));
refused('signature over re-serialised JSON', 401, 'bad_signature', id => $id,
        ts => $ts, signature => standard_sign($secret, $id, $ts, $balance),
        body => $reser);
refused('missing svix-signature', 401, 'bad_signature', omit => ['svix-signature']);
refused('missing svix-id', 401, 'bad_signature', omit => ['svix-id']);
refused('timestamp 303 s old', 401, 'bad_signature', ts => int(time) - 303);
refused('timestamp 303 s in the future', 401, 'bad_signature', ts => int(time) + 303);
refused('only a v2 entry', 401, 'bad_signature', id => $id, ts => $ts,
        signature => 'v2,' . substr(standard_sign($secret, $id, $ts, $balance), 3));
refused('malformed JSON, correctly signed', 400, 'bad_json',
        body => '{"eventType":"contact.created",');
refused('no eventType, correctly signed', 400, 'bad_request',
        body => '{"id":"x","payload":{}}');


# --- rotation --------------------------------------------------------------------

is((post_vy('/rot', body => $balance, secret => $old))[0]{status}, 202,
   'rotation: the old secret verifies');
is((post_vy('/rot', body => $balance, secret => $secret))[0]{status}, 202,
   'rotation: the new secret verifies');
is((post_vy('/rot', body => $balance, secret => $other))[0]{status}, 401,
   'rotation: another secret does not');
is $redis->xlen(stream_key('rot')), 2, 'rotation: two entries';


# --- dedupe ----------------------------------------------------------------------

my $n = $redis->xlen($stream);
$id = new_id('msg');
($r) = post_vy('/vy', id => $id, body => $voucher);
is $r->{status}, 202, 'first delivery: 202';
($r) = post_vy('/vy', id => $id, body => $voucher, ts => int(time) - 5);
is $r->{status}, 200, 'a Svix retry (same svix-id, new timestamp and signature): 200';
is json_of($r) && json_of($r)->{status}, 'duplicate', '... duplicate';
is $redis->xlen($stream), $n + 1, '... one entry';

done_testing;
