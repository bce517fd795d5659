#!/usr/bin/perl

# Transient failures (5xx, 429, connect errors) move the event from the
# stream to loyalty:{S}:retry in one script (XACK + copy + ZADD) and it
# comes back when due: exponential backoff with full jitter, Retry-After
# (seconds or an HTTP date) when larger; after max_attempts it is
# dead-lettered.  A worker killed while retries are pending or leased
# loses none of them.

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

my $redis = Loyalty::Test::Redis->new;
my $rx = Loyalty::Test::Receiver->new;
my $dir = temp_dir('wcfg');

my %common = (
    redis => $redis, stores => ['eu'],
    destinations => [{ name => 'hooks', url => $rx->url,
                       secret => new_whsec(), timeout_ms => 1000 }],
    flows => [{ to => 'hooks' }],
    claim_timeout_ms => 2000, claim_interval_ms => 200, block_ms => 200,
    retry_interval_ms => 50, max_attempts => 3);

my $cfg = write_config($dir, %common, retry_base_ms => 100,
                       retry_cap_ms => 400);

my $n = 0;

sub xadd { xadd_envelope($redis, 'eu', $_[0]) }

sub reqs { [ grep { $_->{id} eq $_[0] } @{ $rx->requests } ] }
sub ok_count { scalar grep { $_->{status} =~ /^2/ } @{ reqs($_[0]) } }
sub pending { $redis->cmd('XPENDING', 'loyalty:{eu}:in', 'workers')->[0] }
sub retry_depth { $redis->cmd('ZCARD', 'loyalty:{eu}:retry') }

sub settled {
    my @h = $redis->keys('loyalty:{eu}:retry:*');
    return pending() == 0 && retry_depth() == 0 && !@h;
}


my $w = Loyalty::Test::Worker->new(config => $cfg);

# --- 503 twice, then 200 ---

$rx->script(evt_r1 => '503 503 200');
xadd('evt_r1');
ok wait_until(sub { ok_count('evt_r1') == 1 && settled() }, timeout => 10),
    '503, 503, 200: delivered on the third attempt';
my $r = reqs('evt_r1');
is scalar(@$r), 3, '... exactly three attempts';
is_deeply [ map { $_->{status} } @$r ], [503, 503, 200], '... in order';
is scalar(grep { $_->{corr} ne 'c-evt_r1' } @$r), 0,
    '... same webhook-id and correlation id every time';
ok settled(), '... acked; retry set and retry hash empty';
my @l = grep { ($_->{event} // '') eq 'evt_r1' } $w->log_lines;
ok scalar(grep { ($_->{msg} // '') =~ /^attempt 1 failed: retry in \d+ ms/ }
          @l), '... logged "attempt 1 failed: retry in N ms"';
ok scalar(grep { ($_->{msg} // '') eq 'retry: attempt 3' } @l),
    '... and "retry: attempt 3"';
is_deeply [ map { $_->{attempt} } grep { defined $_->{latency_ms} } @l ],
    [1, 2, 3], '... each answer logged with its attempt number';

# --- the retry record while waiting ---

$rx->script(evt_r2 => '429/2 200');
my $entry = xadd('evt_r2');
ok wait_until(sub { retry_depth() == 1 }, timeout => 5),
    '429 with Retry-After: 2: the event is in the retry set';
is pending(), 0, '... and no longer pending in the stream (one script)';
my $h = { @{ $redis->cmd('HGETALL', "loyalty:{eu}:retry:$entry") } };
is $h->{id}, 'evt_r2', '... the hash keeps the envelope';
is $h->{data}, '{"order":{"id":"1"}}', '... unchanged';
is $h->{_attempts}, 1, '... with _attempts 1';
my $score = $redis->cmd('ZSCORE', 'loyalty:{eu}:retry', $entry);
my $t0 = reqs('evt_r2')->[0]{t};
cmp_ok $score / 1000 - $t0, '>=', 1.9, '... due 2 s after the 429';
ok wait_until(sub { ok_count('evt_r2') == 1 && settled() }, timeout => 10),
    '... delivered when due';
$r = reqs('evt_r2');
cmp_ok $r->[1]{t} - $r->[0]{t}, '>=', 1.9,
    '... not before Retry-After (2 s) although the backoff is 400 ms at most';

# an HTTP date
$rx->script(evt_r3 => '503/@2 204');
xadd('evt_r3');
ok wait_until(sub { ok_count('evt_r3') == 1 && settled() }, timeout => 10),
    'Retry-After as an HTTP date: delivered';
$r = reqs('evt_r3');
cmp_ok $r->[1]{t} - $r->[0]{t}, '>=', 0.9,
    '... not before the date (2 s ahead, whole seconds)';

# --- always 500: dead-lettered after exactly max_attempts ---

$rx->script(evt_r4 => '500');
$entry = xadd('evt_r4');
ok wait_until(sub { $redis->xlen('loyalty:{eu}:dlq') == 1 && settled() },
              timeout => 10),
    'always 500, max_attempts 3: dead-lettered';
is scalar(@{ reqs('evt_r4') }), 3, '... after exactly 3 attempts';
my $d = $redis->stream('loyalty:{eu}:dlq')->[0][1];
is $d->{dlq_reason}, 'attempts exhausted', '... reason';
is $d->{attempts}, 3, '... attempts 3';
is $d->{status}, 500, '... status 500';
like $d->{error}, qr/^HTTP 500/, '... error';
is $d->{dest}, 'hooks', '... dest';
is $d->{corr}, 'c-evt_r4', '... corr';
is $d->{id}, 'evt_r4', '... the envelope';
is $d->{dlq_entry}, $entry, '... the original stream entry id';
cmp_ok abs($d->{failed_at} / 1000 - time), '<', 30, '... failed_at (ms)';
ok !grep({ /^_/ } keys %$d), '... no retry bookkeeping fields';
$r = reqs('evt_r4');
cmp_ok $r->[2]{t} - $r->[0]{t}, '<', 3, '... backoff capped (400 ms)';

# --- a connect error is transient ---

{
    my $dead = Loyalty::Test::Util::free_port();
    my $c2 = write_config($dir, %common, file => 'dead.yaml',
        stores => ['ce'],
        destinations => [{ name => 'dead',
                           url => "http://127.0.0.1:$dead/x",
                           secret => new_whsec(), timeout_ms => 500 }],
        flows => [{ to => 'dead' }],
        retry_base_ms => 50, retry_cap_ms => 100);
    my $w2 = Loyalty::Test::Worker->new(config => $c2);
    $redis->cmd('XADD', 'loyalty:{ce}:in', '*', v => 1, id => 'evt_ce',
        src => 'standard', store => 'ce', type => 'order.paid',
        data => '{}');
    ok wait_until(sub { $redis->xlen('loyalty:{ce}:dlq') == 1 },
                  timeout => 10),
        'connection refused: retried, then dead-lettered';
    my $e = $redis->stream('loyalty:{ce}:dlq')->[0][1];
    is $e->{attempts}, 3, '... after 3 attempts';
    is $e->{status}, 0, '... status 0 (no answer)';
    like $e->{error}, qr/connect|refused/i, '... error from libcurl';
    is $w2->stop(10), 0, '... SIGTERM exit 0';
}

# --- SIGKILL with retries pending and leased, restart: nothing lost ---

$w->stop(10);
my $slow = write_config($dir, %common, file => 'slow.yaml',
                        retry_base_ms => 300, retry_cap_ms => 300);
$rx->delay(0.05);
my @k = map { "evt_k$_" } 1 .. 20;
$rx->script(map { $_ => '503 204' } @k);
$w = Loyalty::Test::Worker->new(config => $slow);
xadd($_) for @k;
ok wait_until(sub { my $ok = grep { ok_count($_) } @k; $ok >= 3 },
              timeout => 10), 'retries running';
$w->kill;
my $left = retry_depth();
my $okk = grep { ok_count($_) } @k;
cmp_ok $okk, '<', 20, "SIGKILL after $okk of 20 delivered, $left in the "
    . 'retry set';
cmp_ok $left + pending(), '>', 0, '... with retries or entries outstanding';
$rx->delay(0);
$w = Loyalty::Test::Worker->new(config => $slow);
ok wait_until(sub { !grep { !ok_count($_) } @k }, timeout => 15),
    'after a restart every event is delivered (leases expire)';
ok wait_until(sub { settled() }, timeout => 10),
    '... nothing left pending or in the retry set';
my $dups = grep { ok_count($_) > 1 } @k;
note "$dups event(s) delivered twice (killed between answer and record)";

is scalar(grep { ok_count($_) > 2 } @k), 0,
    '... none more than twice (at least once, same webhook-id)';
is $redis->xlen('loyalty:{eu}:dlq'), 1, '... none dead-lettered';
is $w->stop(10), 0, 'SIGTERM: exit 0';

done_testing;
