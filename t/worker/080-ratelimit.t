#!/usr/bin/perl

# Shared rate limits: two workers on one Redis share a destination's
# `rate` and `burst` through the GCRA script on loyalty:rl:{<destination>},
# so the receiver never sees more than rate + burst requests in any
# second; a 429 with Retry-After pauses the destination for every worker
# (loyalty:rl:{<destination>}:pause); a destination without a limit is not
# slowed by a throttled one.  The backlog (150 events) is written once both
# workers are blocked in XREADGROUP.
#
# batch (80) splits the backlog between the workers and leaves room: the
# hold budget is one for all stores, so a limited backlog that fills `batch`
# delays reading the other stores until it drains (see docs/worker.md,
# "Not yet").

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

my $RATE = 20;
my $BURST = 5;
my $N = 150;

my $redis = Loyalty::Test::Redis->new;
my $slow = Loyalty::Test::Receiver->new;     # rate 20, burst 5
my $fast = Loyalty::Test::Receiver->new;     # no limit
my $dir = temp_dir('wcfg');

my $cfg = write_config($dir, redis => $redis, stores => ['eu', 'us'],
    destinations => [
        { name => 'limited', url => $slow->url, secret => new_whsec(),
          timeout_ms => 2000, concurrency => 4, rate => $RATE,
          burst => $BURST },
        { name => 'fast', url => $fast->url, secret => new_whsec(),
          timeout_ms => 2000, concurrency => 4 },
    ],
    flows => [ { stores => ['eu'], to => 'limited' },
               { stores => ['us'], to => 'fast' } ],
    batch => 80, block_ms => 200, claim_timeout_ms => 30000,
    retry_base_ms => 100, retry_cap_ms => 400, retry_interval_ms => 50);

sub xadd { xadd_envelope($redis, @_) }

sub pending {
    my ($store) = @_;
    my $p = $redis->cmd('XPENDING', "loyalty:{$store}:in", 'workers');
    return ref $p ? $p->[0] : -1;
}

sub settled {
    return pending('eu') == 0 && pending('us') == 0
        && $redis->cmd('ZCARD', 'loyalty:{eu}:retry') == 0;
}

sub ok_ids {
    my ($rx, $re) = @_;
    my %n;
    $n{ $_->{id} }++ for grep { $_->{status} =~ /^2/ && $_->{id} =~ $re }
                         @{ $rx->requests };
    return \%n;
}

# the most requests in any window [t, t + 1 s)
sub max_per_second {
    my @t = sort { $a <=> $b } @_;
    my ($max, $j) = (0, 0);
    for my $i (0 .. $#t) {
        $j++ while $j < @t && $t[$j] < $t[$i] + 1.0;
        $max = $j - $i if $j - $i > $max;
    }
    return $max;
}


# --- two workers, 150 events for the limited destination ---

# both workers up and blocked in XREADGROUP before the backlog lands, so
# neither takes it all alone (a slow start under load would)
my @w = map { Loyalty::Test::Worker->new(config => $cfg) } 1 .. 2;
ok wait_until(sub { 2 == grep { my $w = $_; grep {
                        ($_->{msg} // '') =~ /^redis connected/ }
                        $w->log_lines } @w }, timeout => 10),
    'two workers connected';
sleep 0.3;
xadd('eu', sprintf 'evt_l%03d', $_) for 1 .. $N;

ok wait_until(sub { @{ $slow->requests } >= 10 }, timeout => 10),
    'the limited destination receives requests';

# while it is throttled, events for the unlimited destination
my $t_us = time;
xadd('us', sprintf 'evt_u%02d', $_) for 1 .. 40;
ok wait_until(sub { keys %{ ok_ids($fast, qr/^evt_u/) } == 40 },
              timeout => 5, interval => 0.02),
    'an unlimited destination gets its 40 events meanwhile';
my $t_fast = (sort { $b <=> $a } map { $_->{t} } @{ $fast->requests })[0];
cmp_ok $t_fast - $t_us, '<', 1.5,
    '... promptly (all within 1.5 s of being written)';
cmp_ok scalar(keys %{ ok_ids($slow, qr/^evt_l/) }), '<', $N - 40,
    '... while the limited one is still far from done';

ok wait_until(sub { keys %{ ok_ids($slow, qr/^evt_l/) } == $N && settled() },
              timeout => 20),
    "all $N events delivered to the limited destination";

my $ok = ok_ids($slow, qr/^evt_l/);
is scalar(grep { $_ != 1 } values %$ok), 0, '... each exactly once';
is scalar(@{ $slow->requests }), $N, '... and no other request';
is pending('eu'), 0, '... acked: nothing pending';

my @t = map { $_->{t} } @{ $slow->requests };
my $max = max_per_second(@t);
cmp_ok $max, '<=', $RATE + $BURST,
    "at most rate + burst (" . ($RATE + $BURST) . ") in any second: $max";
my ($first, $last) = (sort { $a <=> $b } @t)[0, -1];
my $span = $last - $first;
cmp_ok $span, '>=', ($N - $BURST - 1) / $RATE - 0.3,
    sprintf('overall at most ~%d/s after the burst (%.2f s for %d)',
            $RATE, $span, $N);
cmp_ok $span, '<', ($N / $RATE) * 1.6, '... and not much slower either';

my %by;
for my $i (0, 1) {
    $by{$i} = grep { ($_->{msg} // '') eq 'delivered'
                     && ($_->{destination} // '') eq 'limited' }
              $w[$i]->log_lines;
}
ok $by{0} > 10 && $by{1} > 10,
    "both workers delivered to it ($by{0} + $by{1}): the limit is shared";

my $pttl = $redis->cmd('PTTL', 'loyalty:rl:{limited}');
ok !is_error($pttl) && $pttl > 0 && $pttl <= 2000,
    "the GCRA state loyalty:rl:{limited} expires on its own (PTTL $pttl)";


# --- a 429 with Retry-After: 2 pauses both workers ---

$slow->script(evt_p05 => '429/2 204');
xadd('eu', sprintf 'evt_p%02d', $_) for 1 .. 30;

ok wait_until(sub { grep { $_->{status} == 429 } @{ $slow->requests } },
              timeout => 10, interval => 0.02),
    '429 with Retry-After: 2 answered';
my $ptl = $redis->cmd('PTTL', 'loyalty:rl:{limited}:pause');
ok !is_error($ptl) && $ptl > 1000 && $ptl <= 2000,
    "... loyalty:rl:{limited}:pause set for Retry-After (PTTL $ptl)";

ok wait_until(sub { keys %{ ok_ids($slow, qr/^evt_p/) } == 30 && settled() },
              timeout => 15),
    '... then all 30 events delivered';
$ok = ok_ids($slow, qr/^evt_p/);
is scalar(grep { $_ != 1 } values %$ok), 0, '... each exactly once';

my @p = sort { $a->{t} <=> $b->{t} }
        grep { $_->{id} =~ /^evt_p/ } @{ $slow->requests };
my ($t429) = map { $_->{t} } grep { $_->{status} == 429 } @p;
# requests granted before the pause was written may still land just after
my @after = grep { $_->{t} > $t429 + 0.15 } @p;
ok @after, '... requests after the pause';
cmp_ok $after[0]{t} - $t429, '>=', 1.8,
    sprintf('no request from either worker for ~2 s after the 429 '
            . '(next after %.2f s)', $after[0]{t} - $t429);
my @retry = grep { $_->{id} eq 'evt_p05' } @p;
is_deeply [ map { $_->{status} } @retry ], [429, 204],
    '... the 429 took the retry path: delivered on the second attempt';
cmp_ok max_per_second(map { $_->{t} } @p), '<=', $RATE + $BURST,
    '... and rate + burst still holds around the pause';

is $_->stop, 0, 'worker stops cleanly' for @w;

done_testing;
