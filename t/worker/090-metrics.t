#!/usr/bin/perl

# GET /metrics (Prometheus text format 0.0.4) after a drain with
# successes, a 5xx then a success (retry), a 400 (dead letter), an invalid
# envelope, an event no flow takes, and a rate-limited destination with a
# 429: exact counter values, histogram _count equal to the deliveries,
# label values escaped, every line parses; 404 elsewhere; -t refuses bad
# `metrics` values; a port in use is a fatal error at start.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use HTTP::Tiny;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Redis qw(is_error);
use Loyalty::Test::Util qw(wait_until free_port spew);
use Loyalty::Test::Worker qw(write_config check_config new_whsec temp_dir
    xadd_envelope);

plan skip_all => 'build/loyalty-worker not built'
    unless -x Loyalty::Test::Worker::worker_bin();

my $redis = Loyalty::Test::Redis->new;
my $rx = Loyalty::Test::Receiver->new;
my $dir = temp_dir('wcfg');
my $port = free_port();

# YAML double quotes: the name is  we"ird\d<LF>x
my $weird_yaml = '"we\\"ird\\\\d\\nx"';
my $weird = "we\"ird\\d\nx";
my $weird_label = 'we\\"ird\\\\d\\nx';

spew("$dir/weird.whsec", new_whsec() . "\n", 0600);

my %conf = (
    redis => $redis, stores => ['eu', 'us'],
    destinations => [
        { name => $weird_yaml, url => $rx->url('/hook'),
          secret_file => "$dir/weird.whsec", timeout_ms => 2000,
          concurrency => 4 },
        { name => 'limited', url => $rx->url('/limited'),
          secret => new_whsec(), timeout_ms => 2000, rate => 4,
          burst => 1 },
    ],
    flows => [ { to => $weird_yaml, from => ['standard'],
                 on => ['order.paid'] },
               { to => 'limited', from => ['generic'] } ],
    claim_timeout_ms => 10000, block_ms => 100, batch => 16,
    retry_base_ms => 20, retry_cap_ms => 50, retry_interval_ms => 50,
    metrics => "127.0.0.1:$port");

my $cfg = write_config($dir, %conf);

my ($rc, $out) = check_config($cfg);
is $rc, 0, '-t: metrics 127.0.0.1:PORT passes' or diag $out;

sub xadd { xadd_envelope($redis, @_) }

sub pending {
    my ($store) = @_;
    my $r = $redis->cmd('XPENDING', "loyalty:{$store}:in", 'workers');
    return is_error($r) ? -1 : $r->[0];
}

my $http = HTTP::Tiny->new(timeout => 5);

sub scrape {
    my $r = $http->get("http://127.0.0.1:$port/metrics");
    return $r;
}

# a small parser for the text format: HELP, TYPE, samples
sub parse {
    my ($text) = @_;
    my (%type, %help, %v, @bad);
    for my $line (split /\n/, $text) {
        if ($line =~ /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/) {
            $help{$1} = $2;
        } elsif ($line =~ /^\#\ TYPE\ ([a-zA-Z_:][a-zA-Z0-9_:]*)
                            \ (counter|gauge|histogram|summary|untyped)$/x) {
            $type{$1} = $2;
        } elsif ($line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)
                           (?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*
                                    ="(?:[^"\\\n]|\\[\\"n])*",?)*)\})?
                           \ (-?[0-9.]+(?:e[+-]?\d+)?|\+Inf|-Inf|NaN)$/x) {
            my ($name, $labels, $val) = ($1, $2 // '', $3);
            my %l;
            while ($labels =~ /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g) {
                my ($k, $x) = ($1, $2);
                $x =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ge;
                $l{$k} = $x;
            }
            my $family = $name;
            $family =~ s/_(bucket|sum|count)$// unless $type{$name};
            push @bad, "no TYPE before: $line" unless $type{$family};
            my $key = $name . '{' . join(',', map { "$_=$l{$_}" }
                                         sort keys %l) . '}';
            $v{$key} = $val;
        } else {
            push @bad, $line;
        }
    }
    return { type => \%type, help => \%help, v => \%v, bad => \@bad };
}

sub key {
    my ($name, %l) = @_;
    return $name . '{' . join(',', map { "$_=$l{$_}" } sort keys %l) . '}';
}

my $w = Loyalty::Test::Worker->new(config => $cfg);
ok wait_until(sub { scrape()->{status} == 200 }, timeout => 10),
    'GET /metrics answers 200';

# --- a drain -----------------------------------------------------------------

$rx->script(evt_5xx => '503 204', evt_400 => '400', evt_429 => '429/1 204');

xadd('eu', "evt_ok_$_") for 1 .. 3;
xadd('us', 'evt_us_1');
xadd('eu', 'evt_5xx');
xadd('eu', 'evt_400');
xadd('eu', 'evt_v9', v => 9);
xadd('eu', 'evt_nomatch', type => 'customer.updated');
xadd('us', "evt_gen_$_", src => 'generic') for 1 .. 3;
xadd('us', 'evt_429', src => 'generic');

sub ok_count {
    my %c;
    $c{ $_->{id} }++ for grep { $_->{status} == 204 } @{ $rx->requests };
    return \%c;
}

ok wait_until(sub {
        my $c = ok_count();
        !grep { !$c->{$_} } (map { "evt_ok_$_" } 1 .. 3), 'evt_us_1',
            'evt_5xx', (map { "evt_gen_$_" } 1 .. 3), 'evt_429';
    }, timeout => 20), 'every event delivered';
ok wait_until(sub { $redis->xlen('loyalty:{eu}:dlq') == 2
                    && pending('eu') == 0 && pending('us') == 0
                    && $redis->cmd('ZCARD', 'loyalty:{eu}:retry') == 0
                    && $redis->cmd('ZCARD', 'loyalty:{us}:retry') == 0 },
              timeout => 10), '... dead letters written, nothing pending';

my $r = scrape();
is $r->{status}, 200, 'scrape: 200';
like $r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
    '... Content-Type text/plain; version=0.0.4';
my $m = parse($r->{content});
is_deeply $m->{bad}, [], '... every line parses (HELP, TYPE, samples)'
    or diag $r->{content};
my $v = $m->{v};

my %want = (
    # 3 ok + the 5xx's second attempt; then its 503; the 400
    key('loyalty_worker_deliveries_total', destination => $weird,
        outcome => 'success') => 5,
    key('loyalty_worker_deliveries_total', destination => $weird,
        outcome => 'transient') => 1,
    key('loyalty_worker_deliveries_total', destination => $weird,
        outcome => 'permanent') => 1,
    key('loyalty_worker_deliveries_total', destination => 'limited',
        outcome => 'success') => 4,
    key('loyalty_worker_deliveries_total', destination => 'limited',
        outcome => 'transient') => 1,
    key('loyalty_worker_deliveries_total', destination => 'limited',
        outcome => 'permanent') => 0,
    key('loyalty_worker_events_total', store => 'eu', outcome => 'acked')
        => 4,
    key('loyalty_worker_events_total', store => 'eu', outcome => 'retried')
        => 1,
    key('loyalty_worker_events_total', store => 'eu',
        outcome => 'dead_lettered') => 1,
    key('loyalty_worker_events_total', store => 'eu', outcome => 'invalid')
        => 1,
    key('loyalty_worker_events_total', store => 'eu',
        outcome => 'unmatched') => 1,
    key('loyalty_worker_events_total', store => 'us', outcome => 'acked')
        => 5,
    key('loyalty_worker_events_total', store => 'us', outcome => 'retried')
        => 1,
    key('loyalty_worker_events_total', store => 'us',
        outcome => 'dead_lettered') => 0,
    key('loyalty_worker_events_total', store => 'us', outcome => 'invalid')
        => 0,
    key('loyalty_worker_events_total', store => 'us',
        outcome => 'unmatched') => 0,
    key('loyalty_worker_rate_limit_pauses_total', destination => 'limited')
        => 1,
    key('loyalty_worker_rate_limit_pauses_total', destination => $weird)
        => 0,
    key('loyalty_worker_rate_limit_waits_total', destination => $weird)
        => 0,
    key('loyalty_worker_redis_reconnects_total') => 0,
    key('loyalty_worker_inflight', destination => $weird) => 0,
    key('loyalty_worker_inflight', destination => 'limited') => 0,
    key('loyalty_worker_queued', destination => $weird) => 0,
    key('loyalty_worker_queued', destination => 'limited') => 0,
    key('loyalty_worker_held_entries') => 0,
    key('loyalty_worker_up') => 1,
    key('loyalty_worker_build_info', version => '0.1.0') => 1,
);

for my $k (sort keys %want) {
    (my $shown = $k) =~ s/\n/\\n/g;
    is $v->{$k}, $want{$k}, "$shown = $want{$k}";
}

cmp_ok $v->{ key('loyalty_worker_rate_limit_waits_total',
                 destination => 'limited') } // 0, '>', 0,
    'rate limit waits counted for the limited destination';
cmp_ok abs(($v->{ key('loyalty_worker_start_time_seconds') } // 0) - time),
    '<', 120, 'start_time_seconds is about now';

# histograms: cumulative, +Inf = _count = deliveries, _sum plausible
for my $d ($weird, 'limited') {
    for my $o (qw(success transient permanent)) {
        my %l = (destination => $d, outcome => $o);
        my $n = $v->{ key('loyalty_worker_deliveries_total', %l) };
        my $h = 'loyalty_worker_delivery_duration_seconds';
        my $cnt = $v->{ key("${h}_count", %l) };
        my $inf = $v->{ key("${h}_bucket", %l, le => '+Inf') };
        (my $dn = $d) =~ s/\n/\\n/g;
        is $cnt, $n, "histogram $dn/$o: _count = deliveries ($n)";
        is $inf, $n, '... le="+Inf" = _count';
        my $prev = 0;
        my $mono = 1;
        for my $le (qw(0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf)) {
            my $b = $v->{ key("${h}_bucket", %l, le => $le) };
            $mono = 0 unless defined $b && $b >= $prev;
            $prev = $b // 0;
        }
        ok $mono, '... 12 buckets, cumulative';
        ok defined $v->{ key("${h}_sum", %l) }, '... _sum';
    }
}

like $r->{content}, qr/^loyalty_worker_deliveries_total
    \{destination="\Q$weird_label\E",outcome="success"\}\ 5$/mx,
    'label value escaped: \\" \\\\ \\n';
for my $t (qw(deliveries_total events_total rate_limit_waits_total
              rate_limit_pauses_total redis_reconnects_total)) {
    is $m->{type}{"loyalty_worker_$t"}, 'counter', "TYPE $t counter";
}
for my $t (qw(inflight queued held_entries up start_time_seconds
              build_info)) {
    is $m->{type}{"loyalty_worker_$t"}, 'gauge', "TYPE $t gauge";
}
is $m->{type}{loyalty_worker_delivery_duration_seconds}, 'histogram',
    'TYPE delivery_duration_seconds histogram';
is scalar(grep { !$m->{help}{$_} } keys %{ $m->{type} }), 0,
    'a HELP line for every family';

# --- other paths -------------------------------------------------------------

is $http->get("http://127.0.0.1:$port/")->{status}, 404, 'GET / is 404';
is $http->get("http://127.0.0.1:$port/metricsx")->{status}, 404,
    'GET /metricsx is 404';
is $http->post("http://127.0.0.1:$port/metrics")->{status}, 404,
    'POST /metrics is 404';
is scrape()->{status}, 200, 'and /metrics still answers';

# --- a Redis restart counts reconnects ---------------------------------------

$redis->stop;
$redis->start;
ok wait_until(sub {
        my $x = parse(scrape()->{content})->{v};
        ($x->{ key('loyalty_worker_redis_reconnects_total') } // 0) >= 2 },
    timeout => 10), 'a Redis restart: redis_reconnects_total counts both '
    . 'connections';

is $w->stop(10), 0, 'SIGTERM: exit 0';

# --- -t and start-up errors --------------------------------------------------

for my $bad ('localhost:9464', ':9464', '"*:9464"', '127.0.0.1:0',
             '127.0.0.1:65536', '10.0.0.1', '"[::1"', '1.2.3.4:x',
             '"::1:9464"') {
    my $p = write_config($dir, %conf, metrics => $bad, file => 'bad.yaml');
    my ($rc, $out) = check_config($p);
    is $rc, 1, "-t refuses metrics: $bad";
    like $out, qr/metrics "[^"]*":/, '... and names the key';
}

for my $good ('9464', '0.0.0.0:9464', '"[::1]:9464"', '127.0.0.2:9464') {
    my $p = write_config($dir, %conf, metrics => $good, file => 'ok.yaml');
    my ($rc, $out) = check_config($p);
    is $rc, 0, "-t accepts metrics: $good" or diag $out;
}

my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
    LocalPort => $port, Listen => 5, ReuseAddr => 1) or die "listen: $!";
my $bin = Loyalty::Test::Worker::worker_bin();
my $log = qx{timeout 20 '$bin' -c '$cfg' 2>&1};
is $? >> 8, 1, 'metrics port in use: the worker exits 1 at start';
like $log, qr/cannot listen on 127\.0\.0\.1:\d+ .*Address already in use/,
    '... and says why';
unlike $log, qr/ERROR: \w+Sanitizer|runtime error:/, '... cleanly';
close $busy;

done_testing;
