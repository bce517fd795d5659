#!/usr/bin/perl

# loyalty_webhook standard: Standard Webhooks verification (apis.md §8,
# §10), the envelope written for an accepted event, and every way a
# signature can be bad (401, nothing in Redis, one info line with the
# reason, never the secret).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Digest::SHA qw(hmac_sha256_hex);
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = new_secret();
(my $secret_b64 = $secret) =~ s/^whsec_//;
my $plain_secret = encode_base64(join('', map { chr(65 + $_) } 0 .. 31), '');
my $vector_secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

my ($redis, $ngx) = edge_setup(config => qq{
    loyalty_store std;
    location = /std     { loyalty_webhook standard; loyalty_secret $secret; }
    location = /raw     { loyalty_webhook standard; loyalty_secret $secret;
                          loyalty_keep_raw on; loyalty_store raw; }
    location = /tight   { loyalty_webhook standard; loyalty_secret $secret;
                          loyalty_timestamp_tolerance 10s; loyalty_store tight; }
    location = /plain   { loyalty_webhook standard; loyalty_secret $plain_secret;
                          loyalty_store plain; }
    location = /vector  { loyalty_webhook standard; loyalty_secret $vector_secret;
                          loyalty_timestamp_tolerance 10y; loyalty_store vector; }
});

my $json = JSON::PP->new->utf8->canonical;
my $stream = stream_key('std');


# --- accepted: the answer and the envelope ------------------------------------

my $t0 = int(time * 1000);
my $body = event_body(type => 'customer.updated',
                      timestamp => '2026-03-01T10:20:30Z');
my ($r, $req) = post_standard($ngx, '/std', secret => $secret, body => $body);
my $t1 = int(time * 1000) + 1;

is $r->{status}, 202, 'signed event: 202' or diag $r->{body};
my $ans = json_of($r);
is ref $ans, 'HASH', '202 body is a JSON object';
is $ans->{id}, $req->{id}, '202 body carries the event id (webhook-id)';
ok is_hex32($r->{headers}{'x-correlation-id'}), 'X-Correlation-ID is a request id';
is $ans->{corr}, $r->{headers}{'x-correlation-id'}, '202 body corr = X-Correlation-ID';

my $entries = $redis->stream($stream);
is scalar @$entries, 1, "one entry in $stream";
my $e = $entries->[0][1];
is $e->{v}, '1', 'v = 1';
is $e->{id}, $req->{id}, 'id = webhook-id';
is $e->{src}, 'standard', 'src = standard';
is $e->{store}, 'std', 'store';
is $e->{type}, 'customer.updated', 'type: canonical';
is $e->{topic}, 'customer.updated', 'topic: the payload type';
like $e->{occurred}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/,
    'occurred is RFC 3339';
like $e->{occurred}, qr/^2026-03-01T10:20:30/, 'occurred is the payload timestamp';
like $e->{received}, qr/^\d{13}$/, 'received is ms since the epoch';
ok $e->{received} >= $t0 - 1000 && $e->{received} <= $t1 + 1000,
    'received is now' or diag "$t0 <= $e->{received} <= $t1";
is $e->{corr}, $r->{headers}{'x-correlation-id'}, 'corr stored';
my $data = eval { $json->decode($e->{data}) };
is ref $data, 'HASH', 'data is a JSON object';
like $e->{data}, qr/ada\@example\.com/, 'data carries the payload fields';
ok !exists $e->{raw}, 'no raw field without loyalty_keep_raw';

my $ttl = $redis->cmd('TTL', seen_key('std', $req->{id}));
ok $ttl > 96 * 3600 - 60 && $ttl <= 96 * 3600,
    'dedupe key TTL = default window 96h' or diag "ttl $ttl";

# keep_raw: the exact bytes, odd spacing and UTF-8 included
my $odd = qq({ "type" :"order.paid",\n  "timestamp":"2026-01-02T03:04:05+01:00", )
        . qq("data":{"order":{"id":"A1","note":"caf\xc3\xa9 \\u00e9 \\"q\\""}} }\n);
($r, $req) = post_standard($ngx, '/raw', secret => $secret, body => $odd);
is $r->{status}, 202, 'keep_raw location: 202';
$e = $redis->stream(stream_key('raw'))->[0][1];
is $e->{raw}, $odd, 'raw is the exact body';
is $e->{type}, 'order.paid', 'order.paid is canonical';

# type mapping: canonical types kept, others are "unknown"
for my $t (qw(order.created points.earned tier.changed reward.issued)) {
    ($r) = post_standard($ngx, '/std', secret => $secret,
                         body => event_body(type => $t));
    is $r->{status}, 202, "$t accepted";
    is $redis->stream($stream)->[-1][1]{type}, $t, "$t: type = $t";
}
($r) = post_standard($ngx, '/std', secret => $secret,
                     body => event_body(type => 'contact.created'));
is $r->{status}, 202, 'non-canonical type accepted';
$e = $redis->stream($stream)->[-1][1];
is $e->{type}, 'unknown', 'non-canonical type: type = unknown';
is $e->{topic}, 'contact.created', '... topic keeps the sender type';


# --- verification variants that must pass -------------------------------------

my $vbody = '{"test": 2432232314}';
$r = $ngx->request(POST => '/vector', body => $vbody, headers => {
    'webhook-id' => 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    'webhook-timestamp' => 1614265330,
    'webhook-signature' => 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' });
is $r->{status}, 202, 'apis.md vector #1 verifies (tolerance 10y)' or diag $r->{body};
is $redis->stream(stream_key('vector'))->[0][1]{id}, 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    '... stored under its webhook-id';

my $id = new_id();
my $ts = int time;
$body = event_body();
my $good = standard_sign($secret, $id, $ts, $body);
my $other = standard_sign(new_secret(), $id, $ts, $body);

$r = $ngx->request(POST => '/std', body => $body, headers => {
    'webhook-id' => $id, 'webhook-timestamp' => $ts,
    'webhook-signature' => "$other v1,Zm9vYmFy $good" });
is $r->{status}, 202, 'several signatures, only the last valid: 202';

($r) = post_standard($ngx, '/std', secret => $secret,
                     signature => undef, sign_with => [$secret],
                     headers => {}, id => new_id());
is $r->{status}, 202, 'single signature';

$id = new_id();
(my $v1a = $good) =~ s/^v1,/v1a,/;
my $good2 = standard_sign($secret, $id, $ts, $body);
$r = $ngx->request(POST => '/std', body => $body, headers => {
    'webhook-id' => $id, 'webhook-timestamp' => $ts,
    'webhook-signature' => "v1a,AAAA $good2" });
is $r->{status}, 202, 'a v1a entry before a valid v1 is skipped';

$id = new_id();
$r = $ngx->request(POST => '/std', body => $body, headers => [
    'Webhook-Id' => $id, 'WEBHOOK-TIMESTAMP' => $ts,
    'Webhook-Signature' => standard_sign($secret, $id, $ts, $body) ]);
is $r->{status}, 202, 'header names in mixed case';

($r) = post_standard($ngx, '/std', secret => $secret, ts => int(time) - 280);
is $r->{status}, 202, 'timestamp 280 s old: inside the default 300 s';
($r) = post_standard($ngx, '/std', secret => $secret, ts => int(time) + 280);
is $r->{status}, 202, 'timestamp 280 s ahead: inside the default 300 s';

($r) = post_standard($ngx, '/plain', secret => $plain_secret);
is $r->{status}, 202, 'a secret without the whsec_ prefix works';

($r) = post_standard($ngx, '/tight', secret => $secret, ts => int(time) - 5);
is $r->{status}, 202, 'tolerance 10s: 5 s old accepted';


# --- 401: each bad signature ----------------------------------------------------

sub rejected {
    my ($name, $path, $reason, %o) = @_;

    my $before = $redis->dbsize;
    $ngx->mark_log;

    my ($r, $req);
    if ($o{raw_headers}) {
        $r = $ngx->request(POST => $path, body => $o{body} // event_body(),
                           headers => $o{raw_headers});
        $req = { id => $o{raw_headers}{'webhook-id'} };
    } else {
        ($r, $req) = post_standard($ngx, $path, secret => $secret, %o);
    }

    subtest "401: $name" => sub {
        is $r->{status}, 401, 'status 401' or diag $r->{body};
        my $j = json_of($r);
        is $j && $j->{error}, 'bad_signature', 'error bad_signature';
        ok is_hex32($r->{headers}{'x-correlation-id'}), 'X-Correlation-ID';
        is $redis->dbsize, $before, 'nothing written to Redis';
        ok !$redis->cmd('EXISTS', seen_key('std', $req->{id} // 'x')),
            'no dedupe key' if defined $req->{id};

        my $log = $ngx->wait_for_log($reason) // $ngx->error_log_since_mark;
        my @lines = log_lines($log, qr/loyalty/);
        is scalar @lines, 1, 'exactly one loyalty line in the error log'
            or diag $log;
        like $lines[0] // '', qr/\[info\]/, '... at info level';
        like $lines[0] // '', $reason, "... saying why ($reason)";
        unlike $log, qr/\Q$secret_b64\E/, 'the secret is not logged';
        unlike $log, qr/\Q$plain_secret\E/, 'no other secret is logged';
    };
}

my $now = int time;

rejected('missing webhook-signature', '/std', qr/missing webhook-signature header/i,
         omit => ['webhook-signature']);
rejected('missing webhook-id', '/std', qr/webhook-id/i, omit => ['webhook-id']);
rejected('missing webhook-timestamp', '/std', qr/webhook-timestamp|timestamp/i,
         omit => ['webhook-timestamp']);
# the server's clock has 1 s resolution and the request takes time: 303 s
# is the closest to the 300 s edge that is never inside it by accident
rejected('timestamp 303 s old', '/std', qr/timestamp too old/i, ts => int(time) - 303);
rejected('timestamp 303 s in the future', '/std', qr/timestamp/i, ts => int(time) + 303);
rejected('timestamp not a number', '/std', qr/timestamp/i, ts => 'yesterday');
rejected('tolerance 10s: 20 s old', '/tight', qr/timestamp too old/i, ts => int(time) - 20);
rejected('wrong secret', '/std', qr/no matching signature/i,
         sign_with => [new_secret()]);
rejected('empty signature header', '/std', qr/signature/i, signature => '');
rejected('not base64', '/std', qr/signature/i, signature => 'v1,!!!not*base64???');
rejected('only a v2 entry with a valid digest', '/std', qr/signature/i,
         body => $body, id => 'msg_v2', ts => $now,
         signature => 'v2,' . substr(standard_sign($secret, 'msg_v2', $now, $body), 3));

$id = new_id();
$body = event_body();
rejected('hex instead of base64', '/std', qr/no matching signature|signature/i,
         raw_headers => { 'webhook-id' => $id, 'webhook-timestamp' => $now,
             'webhook-signature' => 'v1,' . hmac_sha256_hex("$id.$now.$body",
                                                             secret_key($secret)) },
         body => $body);

my $signed_body = event_body(type => 'order.paid');
(my $altered = $signed_body) =~ s/order\.paid/order.paiD/;
rejected('body altered after signing', '/std', qr/no matching signature/i,
         raw_headers => { 'webhook-id' => $id, 'webhook-timestamp' => $now,
             'webhook-signature' => standard_sign($secret, $id, $now, $signed_body) },
         body => $altered);

my $reser = $json->encode($json->decode($signed_body));
$reser =~ s/,/, /g;
rejected('signature over re-serialised JSON', '/std', qr/no matching signature/i,
         raw_headers => { 'webhook-id' => $id, 'webhook-timestamp' => $now,
             'webhook-signature' => standard_sign($secret, $id, $now, $signed_body) },
         body => $reser);

rejected('signed for another id', '/std', qr/no matching signature/i,
         raw_headers => { 'webhook-id' => "$id-other", 'webhook-timestamp' => $now,
             'webhook-signature' => standard_sign($secret, $id, $now, $signed_body) },
         body => $signed_body);

rejected('signed with another timestamp', '/std', qr/no matching signature/i,
         raw_headers => { 'webhook-id' => $id, 'webhook-timestamp' => $now,
             'webhook-signature' => standard_sign($secret, $id, $now - 1, $signed_body) },
         body => $signed_body);

rejected('a valid signature for /std sent to /plain', '/plain', qr/no matching signature/i);

# debug level: still no secret anywhere in the log
my $dbg = Loyalty::Test::Nginx->new(
    redis => $redis, name => 'debug log', log_level => 'debug',
    http_config => 'loyalty_redis %%REDIS%%;',
    config => qq{
        location = /std { loyalty_webhook standard; loyalty_secret $secret; loyalty_store dbg; }
        location = /gen { loyalty_webhook generic; loyalty_secret generic-secret-xyz; loyalty_store dbg; }
    });
is((post_standard($dbg, '/std', secret => $secret))[0]{status}, 202, 'debug log: accepted');
is((post_standard($dbg, '/std', secret => $secret, sign_with => [new_secret()]))[0]{status}, 401,
   'debug log: rejected');
is((post_generic($dbg, '/gen', key => 'generic-secret-xyz'))[0]{status}, 202, 'debug log: generic accepted');
is((post_generic($dbg, '/gen', key => 'wrong'))[0]{status}, 401, 'debug log: generic rejected');
$dbg->stop;
my $dlog = $dbg->error_log;
like $dlog, qr/\[debug\]/, 'the debug log is on';
unlike $dlog, qr/\Q$secret_b64\E/, 'debug log: no standard secret';
unlike $dlog, qr/generic-secret-xyz/, 'debug log: no generic secret';

is $redis->xlen(stream_key('plain')), 1, 'plain store holds only its accepted event';
is $redis->xlen(stream_key('tight')), 1, 'tight store holds only its accepted event';

done_testing;
