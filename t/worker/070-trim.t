#!/usr/bin/perl

# Retention: the worker trims loyalty:{S}:in with XTRIM MINID below the
# oldest entry the group has not finished (its smallest pending id, else
# its last-delivered-id).  Finished entries go; an entry pending (being
# delivered) and every entry after it (not yet delivered to the group)
# stay; an event moved to the retry set is finished for the stream.

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

# batch 1: the worker holds one entry at a time, the rest wait undelivered
my $cfg = write_config($dir,
    redis => $redis, stores => ['eu'],
    destinations => [{ name => 'hooks', url => $rx->url,
                       secret => new_whsec(), timeout_ms => 3000 }],
    flows => [{ to => 'hooks' }],
    claim_timeout_ms => 10000, claim_interval_ms => 200, block_ms => 200,
    batch => 1, trim_interval_ms => 100, retry_base_ms => 2000,
    retry_cap_ms => 2000, retry_interval_ms => 50);

my $K = 'loyalty:{eu}:in';

sub xadd {
    return xadd_envelope($redis, 'eu', $_[0], key => $K, data => '{}',
                         occurred => undef, received => undef,
                         corr => undef);
}

sub ids { [ map { $_->[1]{id} } @{ $redis->stream($K) } ] }
sub pending { $redis->cmd('XPENDING', $K, 'workers')->[0] }
sub delivered {
    my %c = map { $_->{id} => 1 } grep { $_->{status} == 204 }
        @{ $rx->requests };
    return !grep { !$c{$_} } @_;
}

my $w = Loyalty::Test::Worker->new(config => $cfg);

my @a = map { "evt_a$_" } 1 .. 8;
xadd($_) for @a;
ok wait_until(sub { delivered(@a) && pending() == 0 }, timeout => 10),
    'eight entries delivered and acked';
ok wait_until(sub { $redis->xlen($K) <= 1 }, timeout => 5),
    '... and trimmed (the last delivered entry may stay)';

# one slow delivery: it is pending, the five after it are undelivered
$rx->delay(1.5);
my @b = map { "evt_b$_" } 1 .. 6;
xadd($_) for @b;
ok wait_until(sub { pending() == 1 }, timeout => 5),
    'the worker holds the first of six (batch 1)';
sleep 0.8;     # eight trim intervals
my %in = map { $_ => 1 } @{ ids() };
is scalar(grep { !$in{$_} } @b), 0,
    '... the pending entry and the five undelivered ones are all kept';
ok !grep({ $in{$_} } @a[0 .. 6]), '... the finished ones are gone';
$rx->delay(0);
ok wait_until(sub { delivered(@b) && pending() == 0 }, timeout => 15),
    '... all delivered';
ok wait_until(sub { $redis->xlen($K) <= 1 }, timeout => 5), '... trimmed';

# an event in the retry set is finished for the stream: the hash has it
$rx->script(evt_c1 => '503/2 204');
my $e = xadd('evt_c1');
ok wait_until(sub { $redis->cmd('ZCARD', 'loyalty:{eu}:retry') == 1 },
              timeout => 5), 'a 503: the event waits in the retry set';
xadd('evt_c2');
ok wait_until(sub { !grep { $_ eq 'evt_c1' } @{ ids() } }, timeout => 5),
    '... its stream entry is trimmed';
is $redis->cmd('HGET', "loyalty:{eu}:retry:$e", 'id'), 'evt_c1',
    '... the retry hash keeps the envelope';
ok wait_until(sub { delivered('evt_c1', 'evt_c2') }, timeout => 10),
    '... and it is delivered when due';

# no group, no trimming
$redis->cmd('XADD', 'loyalty:{zz}:in', '*', a => 1);
is $redis->xlen('loyalty:{zz}:in'), 1, 'a stream no worker reads is left';

ok scalar(grep { ($_->{level} // '') eq 'error' } $w->log_lines) == 0,
    'no error logged';
is $w->stop(10), 0, 'SIGTERM: exit 0';

done_testing;
