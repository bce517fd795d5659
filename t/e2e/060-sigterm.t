#!/usr/bin/perl

# SIGTERM during load: the worker stops reading, lets the requests in
# flight finish (the sandbox answers slowly), acks them and exits 0.
# Nothing is cut: every event the sandbox received is acked; what the
# worker held but had not started stays pending under its consumer name
# (owned, not lost) and a second worker claims and delivers it.  In the
# end every event arrived exactly once: no redelivery at all.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until);

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'], receivers => ['crm']);
my $sb = $p->sandbox;
my $redis = $p->redis;
my $cfg = $p->worker_config(batch => 32, shutdown_timeout_ms => 5000,
    claim_timeout_ms => 2500,
    destinations => { crm => { concurrency => 8, timeout_ms => 2000 } });

my $N = 120;
$p->send('eu') for 1 .. $N;
$sb->fault({ service => 'hooks', latency_ms => 400 });

my $w = $p->worker($cfg);
my $inflight = sub {
    scalar grep { !defined $_->{status} }
           @{ $sb->requests(service => 'hooks') };
};
ok(wait_until(sub { @{ $sb->requests(service => 'hooks') } >= 16
                    && $inflight->() >= 4 }, timeout => 10),
   'requests in flight');
my $at_term = $inflight->();
my $code = $w->stop(15);
is($code, 0, "exit 0 after SIGTERM with $at_term requests in flight");

my $log = $sb->requests(service => 'hooks');
is(scalar(grep { !defined $_->{status} } @$log), 0,
   'every request the sandbox received was answered');
is(scalar(grep { $_->{status} != 204 } @$log), 0, 'all of them 204');

my $held = $p->held('crm');
my $delivered = $held->{distinct};
cmp_ok($delivered, '<', $N, "stopped early: $delivered of $N delivered");

# what the sandbox has was acked; the rest is pending (owned) or unread
my $pend = $redis->cmd('XPENDING', 'loyalty:{eu}:in', 'workers', '-', '+',
                       1000);
my %pending = map { $_->[0] => $_->[1] } @$pend;
my %entry_of;
for my $e (@{ $redis->stream('loyalty:{eu}:in') }) {
    $entry_of{ $e->[1]{id} } = $e->[0];
}
my %seen = map { $_->{id} => 1 } @{ $held->{events} };
is(scalar(grep { $pending{ $entry_of{$_} // '' } } keys %seen), 0,
   'no delivered event is left un-acked');
my %owners = map { $_ => 1 } values %pending;
cmp_ok(scalar(keys %owners), '<=', 1, 'the rest is owned by one consumer');
my ($line) = grep { ($_->{msg} // '') =~ /stop|shut/i } $w->log_lines;
ok($line, 'the worker logged its shutdown');

# a second worker claims the held entries and reads the rest
$sb->clear_faults;
my $w2 = $p->worker($cfg);
ok(wait_until(sub { $p->held('crm')->{distinct} == $N && $p->drained },
              timeout => 30), 'a second worker delivers the rest');
$held = $p->held('crm');
is($held->{duplicates}, 0, 'no event was delivered twice');
is($held->{deliveries}, $N, "$N deliveries for $N events");
is($w2->stop, 0, 'second worker stops cleanly');

done_testing;
