#!/usr/bin/perl

# loyalty_webhook generic: HMAC-SHA256/SHA1 of the raw body, hex or
# base64, in a configurable header; the event id from a header or the
# SHA-256 of the body.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Digest::SHA qw(sha256_hex);

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $k1 = 'generic-key-one';
my $k2 = 'generic-key-two';

my ($redis, $ngx) = edge_setup(config => qq{
    location = /gen {
        loyalty_webhook generic; loyalty_secret $k1; loyalty_store gen;
    }
    location = /sha1 {
        loyalty_webhook generic; loyalty_secret $k2; loyalty_store sha1;
        loyalty_signature_header X-Hub-Signature;
        loyalty_signature_algorithm sha1;
        loyalty_signature_encoding base64;
    }
    location = /b64 {
        loyalty_webhook generic; loyalty_secret $k1; loyalty_store b64;
        loyalty_signature_encoding base64;
    }
    location = /withid {
        loyalty_webhook generic; loyalty_secret $k1; loyalty_store withid;
        loyalty_id_header X-Event-Id;
    }
});


# --- defaults: X-Signature, sha256, hex, id = sha256(body) ------------------------

my $body = event_body(type => 'points.earned');
my ($r) = post_generic($ngx, '/gen', key => $k1, body => $body);
is $r->{status}, 202, 'default generic: 202' or diag $r->{body};
is json_of($r)->{id}, sha256_hex($body), 'event id = hex SHA-256 of the body';

my $e = $redis->stream(stream_key('gen'))->[0][1];
is $e->{id}, sha256_hex($body), 'stored id = hex SHA-256 of the body';
is $e->{src}, 'generic', 'src = generic';
is $e->{store}, 'gen', 'store';
is $e->{type}, 'points.earned', 'canonical type';
is $e->{topic}, 'points.earned', 'topic';
is $e->{v}, '1', 'v = 1';
ok $redis->cmd('EXISTS', seen_key('gen', sha256_hex($body))), 'dedupe key by body hash';

($r) = post_generic($ngx, '/gen', key => $k1, body => $body);
is $r->{status}, 200, 'the same body again: duplicate';
is $redis->xlen(stream_key('gen')), 1, '... still one entry';

($r) = post_generic($ngx, '/gen', key => $k1, body => event_body(type => 'x.y'));
is $r->{status}, 202, 'another body: 202';
is $redis->stream(stream_key('gen'))->[-1][1]{type}, 'unknown', 'non-canonical type: unknown';


# --- sha1 + base64 in a custom header ----------------------------------------------

($r) = post_generic($ngx, '/sha1', key => $k2, alg => 'sha1', encoding => 'base64',
                    header => 'X-Hub-Signature');
is $r->{status}, 202, 'sha1/base64/X-Hub-Signature: 202' or diag $r->{body};
is $redis->xlen(stream_key('sha1')), 1, '... stored';

($r) = post_generic($ngx, '/b64', key => $k1, encoding => 'base64');
is $r->{status}, 202, 'sha256/base64: 202';


# --- id header ---------------------------------------------------------------------

my $id = new_id('evt');
($r) = post_generic($ngx, '/withid', key => $k1, id_header => 'X-Event-Id', id => $id);
is $r->{status}, 202, 'id header: 202';
is json_of($r)->{id}, $id, 'event id taken from X-Event-Id';
is $redis->stream(stream_key('withid'))->[0][1]{id}, $id, 'stored id';

($r) = post_generic($ngx, '/withid', key => $k1, id_header => 'X-Event-Id', id => $id,
                    body => event_body(type => 'order.paid'));
is $r->{status}, 200, 'same id, other body: duplicate';
is json_of($r)->{status}, 'duplicate', '... status duplicate';
is $redis->xlen(stream_key('withid')), 1, '... one entry';


# --- 401 ---------------------------------------------------------------------------

sub rejected {
    my ($name, $path, $reason, %o) = @_;
    my $before = $redis->dbsize;
    $ngx->mark_log;
    my ($r) = post_generic($ngx, $path, %o);
    subtest "401: $name" => sub {
        is $r->{status}, 401, 'status 401' or diag $r->{body};
        is json_of($r) && json_of($r)->{error}, 'bad_signature', 'error bad_signature';
        ok is_hex32($r->{headers}{'x-correlation-id'}), 'X-Correlation-ID';
        is $redis->dbsize, $before, 'nothing written to Redis';
        my $log = $ngx->wait_for_log($reason) // $ngx->error_log_since_mark;
        my @l = log_lines($log, qr/loyalty/);
        is scalar @l, 1, 'one loyalty line' or diag $log;
        like $l[0] // '', qr/\[info\].*$reason/, '... info, with the reason';
        unlike $log, qr/\Q$k1\E|\Q$k2\E/, 'no secret in the log';
    };
}

rejected('missing signature header', '/gen', qr/missing|signature/i,
         key => $k1, no_signature => 1);
rejected('wrong key', '/gen', qr/no matching signature/i, key => 'not-the-key');
rejected('empty signature', '/gen', qr/signature/i, key => $k1, signature => '');
rejected('truncated hex', '/gen', qr/signature/i, key => $k1,
         signature => substr(hmac_body_hex($k1, event_body()), 0, 63));
rejected('signature of another body', '/gen', qr/no matching signature/i, key => $k1,
         signature => hmac_body_hex($k1, 'something else'));
rejected('base64 where hex is configured', '/gen', qr/signature/i,
         key => $k1, encoding => 'base64');
rejected('sha256 where sha1 is configured', '/sha1', qr/signature/i,
         key => $k2, encoding => 'base64', header => 'X-Hub-Signature');
rejected('signature in X-Signature where X-Hub-Signature is configured', '/sha1',
         qr/missing|signature/i, key => $k2, alg => 'sha1', encoding => 'base64');
rejected('hex where base64 is configured', '/b64', qr/signature/i, key => $k1);
rejected('key of another location', '/withid', qr/no matching signature/i,
         key => $k2, id_header => 'X-Event-Id', id => new_id());

done_testing;
