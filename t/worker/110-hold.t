#!/usr/bin/perl

# Held entries are kept fresh.  A destination limited to 2 requests/s,
# batch 20 and claim_timeout_ms 1500, two workers: each holds its share
# of 20 events (and two retries) for up to ~10 s, waiting for tokens,
# far longer than claim_timeout_ms.  Every claim_timeout_ms / 3 the
# worker XCLAIMs what it holds to itself (JUSTID) and renews the lease of
# its retries, so the other worker's XAUTOCLAIM (every 100 ms) and retry
# take never see them idle: every event reaches the receiver exactly
# once, and the delivery counter of the entries is not bumped.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Redis qw(is_error);
use Loyalty::Test::Util qw(wait_until);
use Loyalty::Test::Worker qw(write_config new_whsec temp_dir xadd_envelope);

plan skip_all => 'build/loyalty-worker not built'
    unless -x Loyalty::Test::Worker::worker_bin();

my $N = 20;

my $redis = Loyalty::Test::Redis->new;
my $rx = Loyalty::Test::Receiver->new;
my $dir = temp_dir('wcfg');

my $cfg = write_config($dir, redis => $redis, stores => ['eu'],
    destinations => [
        { name => 'slow', url => $rx->url, secret => new_whsec(),
          timeout_ms => 1000, concurrency => 4, rate => 2 },
    ],
    flows => [ { to => 'slow' } ],
    batch => 20, block_ms => 200, claim_timeout_ms => 1500,
    claim_interval_ms => 100, retry_base_ms => 50, retry_cap_ms => 100,
    retry_interval_ms => 50);

sub xadd { xadd_envelope($redis, 'eu', $_[0]) }

sub pending {
    my $p = $redis->cmd('XPENDING', 'loyalty:{eu}:in', 'workers');
    return ref $p ? $p->[0] : -1;
}

$rx->script(evt_h03 => '503 204', evt_h07 => '503 204');

my @w = map { Loyalty::Test::Worker->new(config => $cfg) } 1 .. 2;
ok wait_until(sub { 2 == grep { my $w = $_; grep {
                        ($_->{msg} // '') =~ /^redis connected/ }
                        $w->log_lines } @w }, timeout => 10),
    'two workers connected';
sleep 0.3;

my $t0 = time;
xadd(sprintf 'evt_h%02d', $_) for 1 .. $N;

# for 6 s, well past claim_timeout_ms: the lease of a retry once taken
# (score more than 1 s ahead) never runs down (renewed every 500 ms)
my (%leased, %least);
while (time - $t0 < 6) {
    my ($now, $z) = $redis->pipeline(['TIME'],
        ['ZRANGE', 'loyalty:{eu}:retry', 0, -1, 'WITHSCORES']);
    my $ms = $now->[0] * 1000 + int($now->[1] / 1000);
    my %sc = @$z;
    for my $id (keys %sc) {
        my $d = $sc{$id} - $ms;
        $leased{$id} = 1 if $d > 1000;
        $least{$id} = $d if $leased{$id}
                            && (!defined $least{$id} || $d < $least{$id});
    }
    sleep 0.05;
}
is scalar(keys %leased), 2, 'two retries leased while the backlog waits';
is scalar(grep { $_ < 500 } values %least), 0,
    '... their leases renewed: never close to running out (least '
    . join(', ', map { "$_ ms" } sort { $a <=> $b } values %least) . ')';
my $p = $redis->cmd('XPENDING', 'loyalty:{eu}:in', 'workers', '-', '+',
                    100);
ok ref $p && @$p >= 3, 'entries still pending after 6 s: ' . scalar @$p;
is scalar(grep { $_->[3] != 1 } @$p), 0,
    '... each delivered once by Redis (XCLAIM JUSTID: counter unchanged)';
is scalar(grep { $_->[2] >= 1500 } @$p), 0,
    '... none idle for claim_timeout_ms (max '
    . (sort { $b <=> $a } map { $_->[2] } @$p)[0] . ' ms)';

ok wait_until(sub {
        my %ok;
        $ok{ $_->{id} }++ for grep { $_->{status} =~ /^2/ }
                              @{ $rx->requests };
        keys %ok == $N && pending() == 0
            && $redis->cmd('ZCARD', 'loyalty:{eu}:retry') == 0;
    }, timeout => 30), "all $N events delivered";

my (%ok, %all);
for (@{ $rx->requests }) {
    $all{ $_->{id} }++;
    $ok{ $_->{id} }++ if $_->{status} =~ /^2/;
}
is scalar(grep { $_ != 1 } values %ok), 0,
    'each exactly once (no duplicate webhook-id)'
    or diag explain \%ok;
is scalar(@{ $rx->requests }), $N + 2, '... and only the 2 retries besides';
is_deeply [ map { $_->{status} } grep { $_->{id} eq 'evt_h03' }
            @{ $rx->requests } ], [503, 204],
    'a retry waiting behind the backlog is delivered once';

my @t = sort { $a <=> $b } map { $_->{t} } @{ $rx->requests };
cmp_ok $t[-1] - $t[0], '>', 3 * 1.5,
    sprintf('holding lasted well over claim_timeout_ms (%.1f s)',
            $t[-1] - $t[0]);

my @claimed = grep { ($_->{msg} // '') =~ /^claimed / }
              map { $_->log_lines } @w;
is scalar(@claimed), 0, 'no worker claimed an entry the other held';

# a retry's lease is renewed too: no other worker takes it meanwhile
my %taken;
$taken{ $_->{event} }++ for grep { ($_->{msg} // '') =~ /^retry: attempt/ }
                            map { $_->log_lines } @w;
is_deeply \%taken, { evt_h03 => 1, evt_h07 => 1 },
    'each retry taken by one worker, once';

my %by;
for my $i (0, 1) {
    $by{$i} = grep { ($_->{msg} // '') eq 'delivered' } $w[$i]->log_lines;
}
ok $by{0} > 0 && $by{1} > 0, "both workers delivered ($by{0} + $by{1})";

is $_->stop, 0, 'worker stops cleanly' for @w;

done_testing;
