#!/usr/bin/perl

# Crash: under steady load (a sender posting to nginx), the worker is
# killed with SIGKILL five times at random moments and restarted.  Every
# event the edge accepted reaches the sandbox, and is applied exactly
# once there (the receiver keeps one copy per webhook-id; redeliveries
# are allowed by the at-least-once contract and counted); nothing is
# left pending, in retry or dead-lettered.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until);

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'],
                                     receivers => ['crm']);
my $sb = $p->sandbox;
# a little latency keeps requests in flight when the kill comes
$sb->fault({ service => 'hooks', latency_ms => 5 });

my $cfg = $p->worker_config(claim_timeout_ms => 1500,
    destinations => { crm => { timeout_ms => 1000, concurrency => 16 } },
    batch => 32);
my $out = $p->dir . '/accepted';
my $load = $p->load(store => 'eu', n => 1200, rate => 150, out => $out);

my $w = $p->worker($cfg);
my @kills;
for my $k (1 .. 5) {
    sleep 0.5 + rand 1.0;
    $w->kill;
    push @kills, time;
    sleep rand 0.3;
    $w = $p->worker($cfg);
}
ok($p->wait_load($load), 'the sender finished');
is(scalar @kills, 5, 'worker killed five times under load');

my $acc = $p->accepted($out);
is(scalar keys %$acc, 1200, 'the edge accepted all 1200 events');

ok(wait_until(sub { $p->held('crm')->{distinct} >= 1200 && $p->drained },
              timeout => 60),
   'everything delivered and finished after the crashes')
    or diag explain { held => $p->held('crm')->{distinct},
                      pending => $p->pending('eu'),
                      retry => $p->retries('eu') };

my $held = $sb->state('hooks', 'crm');
my %seen = map { $_->{id} => $_ } @{ $held->{events} };
is(scalar(grep { !$seen{$_} } keys %$acc), 0,
   'every accepted event reached the sandbox');
is(scalar(grep { !$acc->{$_} } keys %seen), 0,
   'nothing the edge did not accept');
is($held->{distinct}, 1200, 'applied exactly once each: 1200 records');
is(scalar(grep { $acc->{ $_->{id} } ne ''
                 && $_->{corr} ne $acc->{ $_->{id} } } values %seen), 0,
   'each with the correlation id the edge answered with');
cmp_ok($held->{deliveries}, '>=', 1200, 'deliveries >= events');
note("redeliveries after the crashes: $held->{duplicates}");
is(scalar @{ $p->dlq('eu') }, 0, 'no dead letters');
is($w->stop, 0, 'last worker stops cleanly');

done_testing;
