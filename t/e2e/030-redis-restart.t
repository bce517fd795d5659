#!/usr/bin/perl

# Redis restarted mid-run, with AOF on: the edge answers 503 while Redis
# is away (the sender retries), the worker reconnects and goes on, and
# every event the edge acknowledged (202) reaches the sandbox, once.
# Twice: a clean SHUTDOWN and a SIGKILL (appendfsync always, so a 202
# means the event is on disk).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until slurp);

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'], receivers => ['crm'],
    redis_opts => { appendfsync => 'always' });
my $redis = $p->redis;
my $sb = $p->sandbox;

my $cfg = $p->worker_config(claim_timeout_ms => 3000);
my $w = $p->worker($cfg);
my $out = $p->dir . '/accepted';
my $load = $p->load(store => 'eu', n => 800, rate => 200, out => $out);

sleep 1.0;
$redis->stop;                           # SHUTDOWN NOSAVE, AOF kept
ok(!$redis->running, 'redis stopped mid-run');
sleep 0.8;
$redis->start;
ok($redis->running, 'redis started again on the same port and AOF');

sleep 0.8;
$redis->kill;                           # SIGKILL
ok(!$redis->running, 'redis killed mid-run');
sleep 0.5;
$redis->start;

ok($p->wait_load($load), 'the sender finished');
my $acc = $p->accepted($out);
is(scalar keys %$acc, 800, 'every event accepted in the end (503s retried)');

ok(wait_until(sub { $p->held('crm')->{distinct} >= 800 && $p->drained },
              timeout => 60),
   'the worker reconnected and drained everything')
    or diag explain { held => $p->held('crm')->{distinct},
                      pending => $p->pending('eu') };

my $held = $sb->state('hooks', 'crm');
my %seen = map { $_->{id} => 1 } @{ $held->{events} };
is(scalar(grep { !$seen{$_} } keys %$acc), 0,
   'nothing acknowledged by the edge is lost');
is($held->{distinct}, 800, 'each applied once');
is(scalar @{ $p->dlq('eu') }, 0, 'no dead letters');

my @lines = $w->log_lines;
ok((grep { ($_->{msg} // '') =~ /redis/i && $_->{level} ne 'info' } @lines),
   'the worker logged the lost connection');
ok($w->running, 'the worker is still the same process');
is($w->stop, 0, 'and stops cleanly');

my $nlog = $p->nginx->error_log;
ok($nlog =~ /redis/i, 'nginx logged Redis trouble');

done_testing;
