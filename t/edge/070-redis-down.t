#!/usr/bin/perl

# Redis faults while nginx runs: killed (503 + Retry-After, never 2xx,
# then 202 again after a restart without touching nginx), killed under
# load (ledger: every 202 is stored), down at nginx start, SCRIPT FLUSH
# (NOSCRIPT recovery), DEBUG SLEEP past the timeout, error replies
# (WRONGTYPE, OOM) and clients that hang up while Redis is slow.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = new_secret();

my ($redis, $ngx) = edge_setup(
    workers => 2,
    redis_directive => 'loyalty_redis %%REDIS%% timeout=500ms;',
    config => qq{
        loyalty_store down;
        loyalty_secret $secret;
        location = /h     { loyalty_webhook standard; }
        location = /plain { return 204; }
    });

my $stream = stream_key('down');

sub post { (post_standard($ngx, '/h', secret => $secret, @_))[0] }

# after Redis came back: seconds until the first 202 and until every
# worker answers 202 (20 in a row), or undef
sub recovery {
    my ($limit) = @_;
    my $t0 = time;
    my ($first, $streak, %seen) = (undef, 0);
    while (time - $t0 < $limit) {
        my $r = post();
        $seen{ $r->{status} }++;
        if ($r->{status} == 202) {
            $first //= time - $t0;
            return ($first, time - $t0, \%seen) if ++$streak >= 20;
        } else {
            $streak = 0;
            sleep 0.02;
        }
    }
    return ($first, undef, \%seen);
}

sub all_202 {
    my ($n) = @_;
    my %st;
    $st{ post()->{status} }++ for 1 .. $n;
    return \%st;
}

sub check_503 {
    my ($r, $what) = @_;
    is $r->{status}, 503, "$what: 503" or diag "$r->{status} $r->{body}";
    like $r->{headers}{'retry-after'} // '', qr/^\d+$/, "$what: Retry-After";
    is json_of($r) && json_of($r)->{error}, 'unavailable', "$what: error unavailable";
    ok is_hex32($r->{headers}{'x-correlation-id'}), "$what: X-Correlation-ID";
}

# a blocking command on its own connection, from a child process
sub redis_bg {
    my (@cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $redis->port) or POSIX::_exit(1);
        print $c '*' . @cmd . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @cmd);
        my $reply = <$c>;
        POSIX::_exit(0);
    }
    sleep 0.1;      # let Redis start the command
    return $pid;
}

is_deeply all_202(10), { 202 => 10 }, 'baseline: 202';


# --- killed, then restarted on the same port ----------------------------------------

$redis->kill;
check_503(post(), 'redis killed');

my $t0 = time;
my %st;
for (1 .. 10) {
    my $r = post();
    $st{ $r->{status} }++;
}
is_deeply \%st, { 503 => 10 }, 'every request while Redis is down: 503';
cmp_ok time - $t0, '<', 5, '... answered without waiting for a timeout each';

my $p = $ngx->request(GET => '/plain');
is $p->{status}, 204, 'other locations keep serving';

sleep 1;                                    # long enough for reconnect backoff
$redis->start;
my ($first, $all, $seen) = recovery(5);
ok defined $first, 'restarted Redis: 202 again without touching nginx'
    or diag explain $seen;
ok defined $all && $all < 3, 'every worker answers 202 within 3 s of the restart'
    or diag explain $seen;
diag sprintf 'first 202 %.2f s, all workers %.2f s after Redis restarted',
    $first // -1, $all // -1;


# --- killed under load: the ledger ------------------------------------------------------

# until the clients have $n more 202s after time $since (at most 8 s)
sub wait_for_accepts {
    my ($bg, $n, $since) = @_;
    $since //= time;
    my $deadline = time + 8;
    while (time < $deadline) {
        my $ok = grep { $_->{status} == 202 && $_->{t} > $since } @{ $bg->records };
        last if $ok >= $n;
        sleep 0.1;
    }
}

# SIGKILL Redis under four posting clients, restart it from its AOF.
# appendfsync always: no acked event may be missing.  everysec: Redis may
# postpone its AOF write while a background fsync is slow and still reply,
# so a loss is allowed only for events acked in the last 2 s before the
# kill (perf_reliability.md F2), and is reported.
sub ledger_under_kill {
    my ($fsync) = @_;

    $redis->flushall;
    is $redis->cmd('CONFIG', 'SET', 'appendfsync', $fsync), 'OK', "appendfsync $fsync";
    my $bg = $ngx->background(clients => 4, gen => sub {
        my $req = standard_request(secret => $secret);
        return { method => 'POST', path => '/h', %$req };
    });
    sleep 0.5;
    my $kill_at = time;
    $redis->kill;
    sleep 0.5;
    my $restart_at = time;
    $redis->start;
    wait_for_accepts($bg, 200, $restart_at);
    my $waited = time - $restart_at;
    my $rec = $bg->stop;

    my %by;
    $by{ $_->{status} }++ for @$rec;
    diag "killed under load ($fsync): " . join ', ', map { "$_ x $by{$_}" } sort keys %by;
    is_deeply [sort { $a <=> $b } grep { $_ != 202 && $_ != 503 } keys %by], [],
        "$fsync: every answer is 202 or 503 (no other code, no dropped connection)";
    ok $by{503}, "$fsync: some requests saw Redis down";
    ok $by{202}, "$fsync: some were accepted";
    ok !(grep { $_->{status} == 503 && !defined $_->{retry_after} } @$rec),
        "$fsync: every 503 carries Retry-After";

    my %stored = map { $_->[1]{id} => 1 } @{ $redis->stream($stream) };
    my @acked = grep { $_->{status} == 202 } @$rec;
    my @lost = grep { !$stored{ $_->{id} } } @acked;
    if ($fsync eq 'always') {
        is scalar @lost, 0, 'always: every 202 is in the stream after SIGKILL + AOF reload'
            or diag "lost: " . join ' ', map { $_->{id} } @lost[0 .. ($#lost < 9 ? $#lost : 9)];
    } else {
        my @early = grep { $_->{t} < $kill_at - 2 } @lost;
        is scalar @early, 0, 'everysec: no 202 older than 2 s before the kill is lost';
        diag sprintf 'everysec: %d acked event(s) lost, all within %.2f s before the kill',
            scalar @lost, @lost ? $kill_at - (sort { $a <=> $b } map { $_->{t} } @lost)[0] : 0
            if @lost;
    }
    my %sent = map { $_->{id} => 1 } @$rec;
    is scalar(grep { !$sent{$_} } keys %stored), 0, "$fsync: the stream holds only sent ids";
    is $redis->xlen($stream), scalar(keys %stored), "$fsync: no id stored twice";

    my $first_after = (sort { $a <=> $b } map { $_->{t} }
                       grep { $_->{status} == 202 && $_->{t} > $restart_at } @$rec)[0];
    diag sprintf "$fsync: first 202 %.2f s after the restart began; %d records; waited %.2f s",
        ($first_after // 0) - $restart_at, scalar @$rec, $waited;
    ok defined $first_after && $first_after - $restart_at < 3,
        "$fsync: accepting again < 3 s after Redis restarted"
        or diag defined $first_after ? $first_after - $restart_at : 'never';
}

ledger_under_kill('always');
ledger_under_kill('everysec');


# --- down when nginx starts ------------------------------------------------------------

$redis->stop;
$ngx->restart;
check_503(post(), 'redis down at nginx start');
sleep 0.5;
$redis->start;
($first, $all, $seen) = recovery(5);
ok defined $all && $all < 3, 'Redis started after nginx: every worker answers 202 within 3 s'
    or diag explain $seen;


# --- SCRIPT FLUSH: NOSCRIPT recovery ---------------------------------------------------------

is $redis->cmd('SCRIPT', 'FLUSH'), 'OK', 'SCRIPT FLUSH';
my $r = post();
is $r->{status}, 202, 'first request after SCRIPT FLUSH: 202' or diag $r->{body};
is_deeply all_202(20), { 202 => 20 }, '... and the next 20 (both workers)';
$redis->cmd('SCRIPT', 'FLUSH');
my $res = $ngx->run_requests(n => 50, concurrency => 10, gen => sub {
    my $req = standard_request(secret => $secret);
    return { method => 'POST', path => '/h', %$req };
});
is scalar(grep { $_->{status} == 202 } @$res), 50,
    'SCRIPT FLUSH, then 50 concurrent requests: all 202';


# --- DEBUG SLEEP past the timeout (500ms) ------------------------------------------------------

$redis->flushall;
my $sleeper = redis_bg('DEBUG', 'SLEEP', '3');
my $id = new_id();
$t0 = time;
$r = post(id => $id);
my $took = time - $t0;
check_503($r, 'DEBUG SLEEP 3, timeout=500ms');
cmp_ok $took, '<', 1.2, sprintf('... answered in %.2f s (< 1.2 s)', $took);
my $pt0 = time;
$p = $ngx->request(GET => '/plain');
is $p->{status}, 204, 'the worker is not blocked while Redis sleeps';
cmp_ok time - $pt0, '<', 0.3, '... /plain answers at once';
waitpid $sleeper, 0;

($first, $all, $seen) = recovery(5);
ok defined $all, 'after the sleep: 202 again from every worker' or diag explain $seen;
my $id2 = new_id();
$r = post(id => $id2);
is $r->{status}, 202, 'a new event after the sleep: 202';
is json_of($r) && json_of($r)->{id}, $id2, '... answered with its own id (replies not mixed up)';
$r = post(id => $id);
ok $r->{status} == 202 || $r->{status} == 200,
    'the timed-out event retried: 202 or duplicate' or diag $r->{status};
my @ids = map { $_->[1]{id} } @{ $redis->stream($stream) };
is scalar(grep { $_ eq $id } @ids), 1, '... stored exactly once';
is scalar(grep { $_ eq $id2 } @ids), 1, 'the new event stored once';


# --- Redis answers with an error ---------------------------------------------------------------

$redis->flushall;
$redis->cmd('SET', $stream, 'not a stream');
$id = new_id();
$r = post(id => $id);
is $r->{status}, 503, 'WRONGTYPE on the stream key: 503' or diag "$r->{status} $r->{body}";
ok defined $r->{headers}{'retry-after'}, '... with Retry-After';
$redis->cmd('DEL', $stream);
$r = post(id => $id);
is $r->{status}, 202, 'the same event retried after the error: 202, not a duplicate'
    or diag "$r->{status} $r->{body}";
is $redis->xlen($stream), 1, '... and stored';

$redis->flushall;
$redis->cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
$redis->cmd('CONFIG', 'SET', 'maxmemory', '1');
$id = new_id();
$r = post(id => $id);
is $r->{status}, 503, 'Redis out of memory: 503' or diag "$r->{status} $r->{body}";
$redis->cmd('CONFIG', 'SET', 'maxmemory', '0');
$r = post(id => $id);
is $r->{status}, 202, 'memory back: the same event is accepted' or diag "$r->{status} $r->{body}";


# --- clients hanging up while their request waits on Redis ------------------------------------

$sleeper = redis_bg('DEBUG', 'SLEEP', '1');
for (1 .. 5) {
    my $req = standard_request(secret => $secret);
    $ngx->request(POST => '/h', %$req, close_after_write => 1);
}
waitpid $sleeper, 0;
sleep 0.6;
is_deeply all_202(10), { 202 => 10 }, 'after clients hung up mid-request: 202';


# --- CLIENT KILL under load ------------------------------------------------------------------

my $bg = $ngx->background(clients => 4, gen => sub {
    my $req = standard_request(secret => $secret);
    return { method => 'POST', path => '/h', %$req };
});
sleep 0.3;
my $killed = $redis->cmd('CLIENT', 'KILL', 'TYPE', 'normal');
sleep 0.3;
wait_for_accepts($bg, 100, time);
my $rec = $bg->stop;
my %by;
$by{ $_->{status} }++ for @$rec;
diag "CLIENT KILL killed $killed connection(s); " . join ', ', map { "$_ x $by{$_}" } sort keys %by;
ok $killed >= 1, 'CLIENT KILL hit the nginx connections';
is_deeply [grep { $_ != 202 && $_ != 503 } keys %by], [], 'CLIENT KILL: every answer 202 or 503';
is_deeply all_202(20), { 202 => 20 }, 'after CLIENT KILL: 202';

done_testing;
