#!/usr/bin/perl

# The worker and Redis going away: NOGROUP after a FLUSHALL recreates the
# group and reads on; a Redis restart (AOF) is reconnected to, and events
# written before and after it are delivered; the worker starts before
# Redis is up.

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

my $redis = Loyalty::Test::Redis->new(start => 0, appendfsync => 'always');
my $rx = Loyalty::Test::Receiver->new;
my $dir = temp_dir('wcfg');

my $cfg = write_config($dir,
    redis => $redis, stores => ['eu'],
    destinations => [{ name => 'hooks', url => $rx->url,
                       secret => new_whsec(), timeout_ms => 2000 }],
    flows => [{ to => 'hooks' }],
    claim_timeout_ms => 2500, claim_interval_ms => 200, block_ms => 200);

my $n = 0;

sub xadd {
    my $id = sprintf 'evt_%04d', ++$n;
    xadd_envelope($redis, 'eu', $id);
    return $id;
}

sub delivered {
    my %c = map { $_->{id} => 1 } grep { $_->{status} == 204 }
        @{ $rx->requests };
    return !grep { !$c{$_} } @_;
}

sub pending {
    my $r = $redis->cmd('XPENDING', 'loyalty:{eu}:in', 'workers');
    return is_error($r) ? -1 : $r->[0];
}

my $w = Loyalty::Test::Worker->new(config => $cfg);
sleep 0.7;
ok $w->running, 'the worker waits for Redis to come up';
$redis->start;
my @a = map { xadd() } 1 .. 3;
ok wait_until(sub { delivered(@a) }, timeout => 10),
    '... and drains once it is up';

$redis->flushall;
my @b = map { xadd() } 1 .. 3;
ok wait_until(sub { delivered(@b) }, timeout => 10),
    'FLUSHALL (NOGROUP): the group is recreated, new events delivered';
ok wait_until(sub { pending() == 0 }, timeout => 5), '... and acked';
ok scalar(grep { ($_->{msg} // '') =~ /consumer group missing/ }
          $w->log_lines), '... logged';

$redis->stop;
sleep 0.5;
ok $w->running, 'Redis stopped: the worker keeps running';
$redis->start;
my @c = map { xadd() } 1 .. 3;
ok wait_until(sub { delivered(@c) }, timeout => 15),
    'Redis restarted: the worker reconnects and delivers';
ok wait_until(sub { pending() == 0 }, timeout => 5), '... and acks';
is $w->stop(10), 0, 'SIGTERM: exit 0';

done_testing;
