#!/usr/bin/perl

# The harness proves itself: signing helpers against apis.md §10,
# the Redis helper (AOF, errors, kill and restart), a plain nginx without
# our module (vhosts, parallel requests really in flight together, reload,
# config tests, log checks), then the module loads into the stock nginx.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Time::HiRes qw(time);

use Loyalty::Test::Nginx qw(parallel_requests);
use Loyalty::Test::Redis qw(is_error);
use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;


# --- signing helpers: apis.md §10 vectors ---------------------------------

is standard_sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
                 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330,
                 '{"test": 2432232314}'),
   'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
   'standard_sign matches the Standard Webhooks vector (apis.md #1)';

is hmac_body_b64('hush', '{"id":820982911946154508,"email":"jon@example.com"}'),
   'D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8=',
   'hmac_body_b64 matches the Shopify-style vector (apis.md #4)';

is hmac_body_hex('key', 'The quick brown fox jumps over the lazy dog', 'sha1'),
   'de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9', 'hmac_body_hex sha1 (RFC 2104 example)';

is hmac_body_hex('key', 'The quick brown fox jumps over the lazy dog'),
   'f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8',
   'hmac_body_hex sha256';

my $h = standard_headers('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'id1', 5, 'b');
is_deeply [sort keys %$h], [qw(webhook-id webhook-signature webhook-timestamp)],
    'standard_headers gives the three headers';
like new_secret(), qr{^whsec_[A-Za-z0-9+/]{43}=$}, 'new_secret shape';
isnt new_id(), new_id(), 'new_id is unique';


# --- Redis helper ---------------------------------------------------------

my $redis = Loyalty::Test::Redis->new;
like $redis->addr, qr/^127\.0\.0\.1:\d+$/, 'redis addr';
is $redis->cmd('PING'), 'PONG', 'redis answers PING';
is $redis->cmd('CONFIG', 'GET', 'appendonly')->[1], 'yes', 'AOF on';
is $redis->cmd('CONFIG', 'GET', 'appendfsync')->[1], 'everysec', 'appendfsync everysec';
is $redis->cmd('CONFIG', 'GET', 'save')->[1], '', "save ''";

my $err = $redis->cmd('NO-SUCH-COMMAND');
ok is_error($err), 'a Redis error comes back as an error object';
like "$err", qr/^ERR unknown command/, 'the error object stringifies to the message';

$redis->cmd('XADD', 's', '*', 'k', 'v');
is $redis->xlen('s'), 1, 'XADD/XLEN';
is_deeply $redis->stream('s')->[0][1], { k => 'v' }, 'stream() decodes fields';

my $port = $redis->port;
$redis->kill;
ok !$redis->running, 'kill: redis gone';
ok !eval { $redis->cmd('PING'); 1 }, 'cmd dies while redis is down';
$redis->start;
is $redis->port, $port, 'restarted on the same port';
is $redis->xlen('s'), 1, 'an acknowledged write survives SIGKILL (AOF reload)';
$redis->flushall;
is $redis->dbsize, 0, 'flushall';


# --- plain nginx, no module ------------------------------------------------

my $plain = Loyalty::Test::Nginx->new(
    module  => 0,
    workers => 2,
    name    => 'plain nginx',
    config  => q{
        location = /ok     { return 200 "ok\n"; }
        location = /active { return 200 "$connections_active"; }
        location = /body   { client_body_buffer_size 1k; client_max_body_size 1m;
                             proxy_pass http://127.0.0.1:%%PORT2%%/echo; }
    },
    servers => q{
        server {
            listen 127.0.0.1:%%PORT%%;
            server_name b.example;
            location / { return 200 "vhost b\n"; }
        }
        server {
            listen 127.0.0.1:%%PORT2%%;
            location = /echo { return 200 "$request_length\n"; }
        }
    });

my $r = $plain->request(GET => '/ok');
is $r->{status}, 200, 'plain nginx answers';
is $r->{body}, "ok\n", 'body read by Content-Length';
is $r->{headers}{server}, 'nginx/1.22.1', 'header names are lower-cased';

is $plain->request(GET => '/', host => 'b.example')->{body}, "vhost b\n",
    'Host selects the second vhost';
is $plain->request(GET => '/ok', host => 'a.example')->{body}, "ok\n",
    'an unknown Host falls to the default server';

$r = $plain->request(POST => '/body', body => 'x' x 5000);
is $r->{status}, 200, 'POST with a body larger than client_body_buffer_size';

$r = $plain->request(POST => '/body', body => 'y' x 3000, chunked => 1,
                     chunk_size => 700);
is $r->{status}, 200, 'chunked request body';

my @w = $plain->worker_pids;
is scalar @w, 2, 'two workers';
like $plain->rss_kb($w[0]), qr/^\d+$/, 'rss_kb reads VmRSS';
ok $plain->fd_count($w[0]) > 0, 'fd_count';

# 200 requests released together: most of them see all 200 connections
my $res = parallel_requests($plain, 200,
                            sub { { method => 'GET', path => '/active' } });
is scalar(grep { $_->{status} == 200 } @$res), 200, '200 parallel requests';
my @active = sort { $a <=> $b } map { $_->{body} } @$res;
cmp_ok $active[-1], '>=', 200, 'some request saw >= 200 open connections';
cmp_ok $active[100], '>=', 100, 'the median request saw >= 100 (really in flight together)';

$res = $plain->run_requests(n => 1000, concurrency => 4,
                            gen => sub { { method => 'GET', path => '/ok' } });
is scalar(grep { $_->{status} == 200 } @$res), 1000, 'keep-alive: 1000 over 4 connections';
my %per_conn;
$per_conn{ $_->{conn} }++ for @$res;
is scalar(keys %per_conn), 4, 'spread over 4 connections';

$res = $plain->run_requests(n => 300, concurrency => 3, pipeline => 1,
                            gen => sub { { method => 'GET', path => "/ok?$_[0]" } });
is scalar(grep { $_->{status} == 200 } @$res), 300, 'pipelined: 300 over 3 connections';

ok $plain->reload, 'reload';
my @w2 = $plain->worker_pids;
is scalar @w2, 2, 'two new workers';
ok !(grep { my $x = $_; grep { $_ == $x } @w } @w2), 'all workers replaced';
is $plain->request(GET => '/ok')->{status}, 200, 'serves after reload';

my $good_config = $plain->{config};
ok !$plain->reload(config => 'location / { no_such_directive; }'),
    'nginx -s reload with a bad config reports failure';
like $plain->{last_reload_output}, qr/unknown directive "no_such_directive"/,
    '... with nginx\'s message';
ok !$plain->reload(signal => 1), 'HUP with a bad config reports failure';
like $plain->error_log, qr/\[emerg\].*no_such_directive/, '... the master logged the [emerg]';
is $plain->request(GET => '/ok')->{status}, 200, '... and the old config keeps serving';
$plain->{expect_emerg} = 1;     # that reload logged an [emerg] on purpose
ok $plain->reload(config => $good_config, signal => 1), 'HUP reload with a good config';
is $plain->request(GET => '/ok')->{status}, 200, 'serves after the HUP reload';

$plain->mark_log;
$plain->request(GET => '/missing-file-for-log');
ok $plain->wait_for_log(qr/open\(\) ".*missing-file-for-log" failed/),
    'error_log_since_mark sees this request\'s line';
unlike $plain->error_log_since_mark, qr/start worker process/,
    '... and not what came before the mark';

my ($code, $out) = Loyalty::Test::Nginx->config_test(module => 0,
    config => 'location / { bogus_directive; }');
isnt $code, 0, 'config_test: nginx -t fails';
like $out, qr/\[emerg\].*unknown directive "bogus_directive"/, 'config_test output';

($code, $out) = Loyalty::Test::Nginx->config_test(module => 0,
    config => 'location / { return 204; }');
is $code, 0, 'config_test: a good config passes';
like $out, qr/test is successful/, '... nginx says so';

($code, $out) = Loyalty::Test::Nginx->config_test(
    "pid %%SERVROOT%%/logs/x.pid;\nerror_log %%SERVROOT%%/logs/error.log;\n"
    . "events { }\nhttp { server { listen 127.0.0.1:%%PORT%%; nonsense_here; } }\n");
like $out, qr/unknown directive "nonsense_here"/, 'config_test with a whole nginx.conf text';

# the end-of-file checker catches what it should
my $fake = Loyalty::Test::Nginx->new(module => 0, start => 0, name => 'fake');
$fake->{no_checks} = 1;
Loyalty::Test::Util::spew($fake->error_log_path, join '',
    "2026/01/01 00:00:00 [info] 1#1: fine\n",
    "2026/01/01 00:00:00 [alert] 1#1: *3 open socket #12 left in connection 5\n",
    "==1==ERROR: AddressSanitizer: heap-use-after-free\n",
    "x.c:1:2: runtime error: signed integer overflow\n",
    "2026/01/01 00:00:00 [emerg] 1#1: bad\n");
is scalar($fake->_bad_lines), 4, 'end checks flag [alert], sanitizer, UBSan and [emerg] lines';


# --- the module loads into the stock nginx ---------------------------------

my $mod = Loyalty::Test::Nginx::default_module();
ok -f $mod, "module built at $mod";

my $secret = new_secret();
my $ngx = Loyalty::Test::Nginx->new(
    redis       => $redis,
    name        => 'module',
    http_config => 'loyalty_redis %%REDIS%%;',
    config      => qq{
        loyalty_store sanity;
        location = /hook { loyalty_webhook standard; loyalty_secret $secret; }
        location = /plain { return 204; }
    });

is $ngx->request(GET => '/plain')->{status}, 204, 'nginx with the module serves';
my ($resp, $req) = post_standard($ngx, '/hook', secret => $secret);
is $resp->{status}, 202, 'a signed webhook is accepted';
is $redis->xlen(stream_key('sanity')), 1, '... and lands in the stream';

done_testing;
