#!/usr/bin/perl

# Worker memory does not grow with traffic: RSS after a 2,000-request
# warm-up and after 20,000 more (keep-alive, 16 connections, a mix of
# accepted, duplicate, bad-signature and bad-JSON requests) differs by
# less than 1 MB; the fd count is flat; the worker never restarted.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Time::HiRes qw(time);

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = new_secret();
my $bad_secret = new_secret();
my $bound_kb = 1024;

# Under the sanitizer build (make test-asan) freed memory sits in ASan's
# quarantine and RSS grows by design; with the quarantine off, RSS again
# measures what nginx and the module keep.
my %env;
if ($ENV{LOYALTY_NGINX_PRELOAD}) {
    %env = (ASAN_OPTIONS => join ':', grep { length }
        $ENV{ASAN_OPTIONS} // '', 'quarantine_size_mb=0',
        'thread_local_quarantine_size_kb=0');
}

my ($redis, $ngx) = edge_setup(
    env => \%env,
    workers => 1,
    http_config => 'keepalive_requests 100000;',
    config => qq{
        loyalty_secret $secret;
        location = /h { loyalty_webhook standard; loyalty_store rss; }
    });

my $dup = standard_request(secret => $secret);
is $ngx->request(POST => '/h', %$dup)->{status}, 202, 'seed';

my %want = (good => 202, dup => 200, badsig => 401, badjson => 400);

sub run {
    my ($n, $label) = @_;
    my @kind;
    my $res = $ngx->run_requests(n => $n, concurrency => 16, timeout => 120, gen => sub {
        my $i = shift;
        my $k = $i % 20 < 16 ? 'good' : (qw(dup dup badsig badjson))[ $i % 20 - 16 ];
        $kind[$i] = $k;
        my $q = $k eq 'good'    ? standard_request(secret => $secret)
              : $k eq 'dup'     ? standard_request(secret => $secret, id => $dup->{id},
                                                   body => $dup->{body})
              : $k eq 'badsig'  ? standard_request(secret => $secret, sign_with => [$bad_secret])
              :                   standard_request(secret => $secret, body => '{"type":[');
        return { method => 'POST', path => '/h', body => $q->{body}, headers => $q->{headers} };
    });
    my @off = grep { $res->[$_]{status} != $want{ $kind[$_] } } 0 .. $n - 1;
    is scalar @off, 0, "$label: $n requests, each with the expected answer"
        or diag explain [ map { "$kind[$_] -> $res->[$_]{status} " . ($res->[$_]{error} // '') }
                          @off[0 .. ($#off < 4 ? $#off : 4)] ];
    return scalar grep { $kind[$_] eq 'good' } 0 .. $n - 1;
}

my ($worker) = $ngx->worker_pids;

my $t0 = time;
my $good = run(2000, 'warm-up');
my $rss0 = $ngx->rss_kb($worker);
my $fd0 = $ngx->fd_count($worker);

$good += run(20000, 'measured run');
my $took = time - $t0;
my $rss1 = $ngx->rss_kb($worker);
my $fd1 = $ngx->fd_count($worker);

diag sprintf 'worker %d: RSS %d kB -> %d kB (%+d kB), fds %d -> %d, 22000 requests in %.1f s',
    $worker, $rss0, $rss1, $rss1 - $rss0, $fd0, $fd1, $took;

is_deeply [ $ngx->worker_pids ], [ $worker ], 'the same worker served everything';
cmp_ok $rss1 - $rss0, '<', $bound_kb, "RSS growth over 20,000 requests < $bound_kb kB";
cmp_ok abs($fd1 - $fd0), '<=', 2, 'fd count flat';
is $redis->xlen(stream_key('rss')), $good + 1, 'every accepted event stored once';

done_testing;
