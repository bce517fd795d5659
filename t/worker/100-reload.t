#!/usr/bin/perl

# SIGHUP: the file is checked again; a bad one is logged and the worker
# goes on with the old configuration; a good one is applied by draining
# and exec'ing the same binary (same pid, same consumer name).  A new URL
# takes over with nothing lost and nothing doubled; reloads under load
# lose nothing; the descriptors do not grow across reloads; SIGHUPs in a
# burst (some land during the exec) do not kill the worker; SIGTERM right
# after SIGHUP exits 0.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use HTTP::Tiny;
use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Redis qw(is_error);
use Loyalty::Test::Util qw(wait_until spew slurp free_port);
use Loyalty::Test::Worker qw(write_config new_whsec temp_dir xadd_envelope);

plan skip_all => 'build/loyalty-worker not built'
    unless -x Loyalty::Test::Worker::worker_bin();

my $redis = Loyalty::Test::Redis->new;
my $rx1 = Loyalty::Test::Receiver->new;
my $rx2 = Loyalty::Test::Receiver->new;
my $rx3 = Loyalty::Test::Receiver->new;
my $dir = temp_dir('wcfg');
my $secret = new_whsec();
my $mport = free_port();

sub conf {
    my ($rx, %o) = @_;
    return write_config($dir, redis => $redis, stores => ['eu'],
        destinations => [{ name => 'hooks', url => $rx->url('/hook'),
                           secret => $secret, timeout_ms => 2000,
                           concurrency => 4 }],
        flows => [{ to => 'hooks' }],
        claim_timeout_ms => 30000, block_ms => 200, batch => 32,
        shutdown_timeout_ms => 5000, metrics => "127.0.0.1:$mport", %o);
}

my $cfg = conf($rx1);

my $n = 0;

sub xadd {
    my $id = sprintf 'evt_%05d', ++$n;
    xadd_envelope($redis, 'eu', $id);
    return $id;
}

sub pending {
    my $r = $redis->cmd('XPENDING', 'loyalty:{eu}:in', 'workers');
    return is_error($r) ? -1 : $r->[0];
}

# successful deliveries per event id, over the receivers given
sub ok_counts {
    my %c;
    for my $rx (@_) {
        $c{ $_->{id} }++ for grep { $_->{status} == 204 } @{ $rx->requests };
    }
    return \%c;
}

sub all_delivered {
    my ($ids, @rx) = @_;
    my $c = ok_counts(@rx);
    return !grep { !$c->{$_} } @$ids;
}

my $w = Loyalty::Test::Worker->new(config => $cfg);
my $pid = $w->pid;

sub reloaded { scalar grep { ($_->{msg} // '') =~ /^configuration reloaded/ }
               $w->log_lines }

sub connected { scalar grep { ($_->{msg} // '') =~ /^redis connected/ }
                $w->log_lines }

sub hup_and_wait {
    my $before = reloaded();
    my $conn = connected();
    kill 'HUP', $pid;
    return wait_until(sub { reloaded() > $before && connected() > $conn },
                      timeout => 15);
}

sub fds {
    opendir my $d, "/proc/$pid/fd" or return -1;
    my @f = grep { /^\d+$/ } readdir $d;
    return scalar @f;
}

sub fd_kinds {
    my %k;
    for my $f (glob "/proc/$pid/fd/*") {
        my $t = readlink($f) // '?';
        $t =~ s/\[\d+\]$//;
        $k{$t}++;
    }
    return join ', ', map { "$_ x$k{$_}" } sort keys %k;
}

# one sample of GET /metrics (undef if it does not answer)
sub metric {
    my ($re) = @_;
    my $r = HTTP::Tiny->new(timeout => 5)
        ->get("http://127.0.0.1:$mport/metrics");
    return undef unless $r->{success};
    return $r->{content} =~ /^\Q$re\E (\S+)$/m ? $1 : undef;
}

# --- a new URL -----------------------------------------------------------

my @a = map { xadd() } 1 .. 20;
ok wait_until(sub { all_delivered(\@a, $rx1) && pending() == 0 },
              timeout => 15), 'the first 20 events go to the first receiver';
is metric('loyalty_worker_events_total{store="eu",outcome="acked"}'), 20,
    '... metrics: 20 acked';
my $start0 = metric('loyalty_worker_start_time_seconds');
sleep 0.01;

conf($rx2);
ok hup_and_wait(), 'SIGHUP with a new URL: "configuration reloaded"';
is $w->pid, $pid, '... same pid';
ok $w->running, '... running';
my @l = map { $_->{msg} // '' } $w->log_lines;
ok scalar(grep { /^reloading configuration/ } @l),
    '... "reloading configuration" logged';

my @b = map { xadd() } 1 .. 20;
ok wait_until(sub { all_delivered(\@b, $rx2) && pending() == 0 },
              timeout => 15), 'the next 20 events go to the new receiver';
my $c1 = ok_counts($rx1);
is scalar(grep { $c1->{$_} } @b), 0, '... none to the old one';
my $c = ok_counts($rx1, $rx2);
is scalar(grep { ($c->{$_} // 0) != 1 } @a, @b), 0,
    '... each of the 40 delivered exactly once';
is metric('loyalty_worker_events_total{store="eu",outcome="acked"}'), 20,
    '... metrics served again after the reload, counters from zero';
cmp_ok metric('loyalty_worker_start_time_seconds'), '>', $start0,
    '... with a new start_time_seconds';

# --- an invalid file ------------------------------------------------------

my $good = slurp($cfg);
spew($cfg, $good . "bogus_key: 1\n");
kill 'HUP', $pid;
ok wait_until(sub { grep { ($_->{msg} // '') =~ /^reload failed/ }
                    $w->log_lines }, timeout => 10),
    'SIGHUP with an invalid file: "reload failed" logged';
my ($err) = grep { ($_->{msg} // '') =~ /^reload failed/ } $w->log_lines;
like $err->{msg}, qr/Unexpected key: bogus_key/, '... naming the problem';
is $err->{level}, 'error', '... at level error';
is $w->pid, $pid, '... same pid';
ok $w->running, '... still running';
my @cc = map { xadd() } 1 .. 10;
ok wait_until(sub { all_delivered(\@cc, $rx2) && pending() == 0 },
              timeout => 15), '... and delivering with the old configuration';
is reloaded(), 1, '... no reload happened';

# a secret file that became unreadable is caught too
spew($cfg, $good =~ s{secret_file: \S+}{secret_file: $dir/none.whsec}r);
kill 'HUP', $pid;
ok wait_until(sub { grep { ($_->{msg} // '') =~ /^reload failed.*none\.whsec/ }
                    $w->log_lines }, timeout => 10),
    'a missing secret_file: reload failed, named';
spew($cfg, $good);

# --- reloads under load -----------------------------------------------------

$rx2->delay(0.01);
my @load;
my $t0 = time;
my $hups = 0;
for my $i (1 .. 300) {
    push @load, xadd();
    if ($i % 75 == 0) {
        kill 'HUP', $pid;
        $hups++;
    }
    sleep 0.005;
}
ok wait_until(sub { reloaded() >= 1 + $hups }, timeout => 30),
    "$hups reloads under load";
ok wait_until(sub { all_delivered(\@load, $rx2) && pending() == 0 },
              timeout => 30), '... every one of the 300 events delivered';
ok wait_until(sub { pending() == 0 }, timeout => 5), '... pending ends at 0';
$c = ok_counts($rx2);
my $twice = grep { $c->{$_} > 1 } @load;
is $twice, 0, '... none delivered twice';
$rx2->delay(0);

# --- a SIGHUP during the drain is not lost ---------------------------------

$rx2->delay(0.5);
my @d = map { xadd() } 1 .. 4;
sleep 0.3;                 # the receiver answers after 0.5 s
my $r0 = reloaded();
kill 'HUP', $pid;
sleep 0.1;
conf($rx3);                # edited during the drain, then HUP again
kill 'HUP', $pid;
ok wait_until(sub { reloaded() > $r0 }, timeout => 15),
    'SIGHUP during the drain: one reload';
ok scalar(grep { ($_->{msg} // '') =~ /^SIGHUP while reloading/ }
          $w->log_lines), '... the second SIGHUP is logged';
$rx2->delay(0);
my @e = map { xadd() } 1 .. 5;
ok wait_until(sub { all_delivered(\@e, $rx3) }, timeout => 15),
    '... and the new image read the file as edited during the drain';
ok wait_until(sub { all_delivered(\@d, $rx2, $rx3) && pending() == 0 },
              timeout => 15), '... the events in flight then were delivered';

# --- descriptors across 5 reloads ------------------------------------------

# the same state both times: just reloaded, one event since (one
# keep-alive connection to the receiver)
ok hup_and_wait(), 'a reload';
my @one = (xadd());
ok wait_until(sub { all_delivered(\@one, $rx3) && pending() == 0 },
              timeout => 10), 'one event: settled';
sleep 0.3;
my $fd0 = fds();
my $kinds0 = fd_kinds();
my $ok = 1;
for (1 .. 5) {
    $ok &&= hup_and_wait();
}
ok $ok, '5 reloads';
@one = (xadd());
ok wait_until(sub { all_delivered(\@one, $rx3) && pending() == 0 },
              timeout => 10), 'settled';
sleep 0.3;
is fds(), $fd0, "descriptors: $fd0 before, the same after 5 reloads"
    or diag "before: $kinds0\nafter:  " . fd_kinds();
is metric('loyalty_worker_up'), 1, '... the metrics listener is back';

# --- a burst of SIGHUPs (some land during the exec) ---------------------------

my $rb = reloaded();
for (1 .. 6) {
    kill 'HUP', $pid;
    sleep 0.03;
}
ok wait_until(sub { reloaded() > $rb }, timeout => 15),
    'a burst of 6 SIGHUPs';
ok $w->running, '... the worker survived it';
ok wait_until(sub { my $x = connected(); sleep 0.5; connected() == $x
                    && reloaded() >= $rb + 1 }, timeout => 20),
    '... and settled';
@one = (xadd());
ok wait_until(sub { all_delivered(\@one, $rx3) && pending() == 0 },
              timeout => 10), '... still delivering';

# --- SIGTERM right after SIGHUP -----------------------------------------------

$rx3->delay(0.3);
my @f = map { xadd() } 1 .. 3;
sleep 0.2;
kill 'HUP', $pid;
my $code = $w->stop(20);
is $code, 0, 'SIGTERM right after SIGHUP: exit 0';
ok scalar(grep { ($_->{msg} // '') =~
                  /during a reload: stopping instead|^signal 15: stopping/ }
          $w->log_lines), '... logged';
$rx3->delay(0);

# and one that lands while the new image starts (blocked across exec)
$w = Loyalty::Test::Worker->new(config => $cfg);
$pid = $w->pid;
ok wait_until(sub { connected() >= 1 }, timeout => 10), 'a new worker';
kill 'HUP', $pid;
sleep 0.01;
is $w->stop(20), 0, 'SIGTERM 10 ms after SIGHUP: exit 0';

# a second SIGTERM during a reload's drain exits at once
$w = Loyalty::Test::Worker->new(config => $cfg);
$pid = $w->pid;
ok wait_until(sub { connected() >= 1 }, timeout => 10), 'a new worker';
$rx3->delay(5);
my @g = map { xadd() } 1 .. 2;
sleep 0.5;                 # in flight for 5 s
kill 'HUP', $pid;
sleep 0.1;
kill 'TERM', $pid;
sleep 0.1;
my $t1 = time;
is $w->stop(20), 0, 'SIGHUP, SIGTERM, SIGTERM: exit 0';
cmp_ok time - $t1, '<', 2, '... at once, not after the 5 s requests';
ok scalar(grep { ($_->{msg} // '') =~ /again: exiting now/ } $w->log_lines),
    '... "exiting now" logged';
$rx3->delay(0);

done_testing;
