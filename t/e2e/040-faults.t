#!/usr/bin/perl

# Fault storms from the sandbox: 429s with and without Retry-After, 5xx,
# dropped connections and answers slower than the timeout all end in
# success after retries.  Only a permanent error (400) reaches the
# dead-letter stream at once; a poison event that always fails reaches it
# after max_attempts; `dlq replay` delivers both once fixed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until);
use Loyalty::Test::Worker qw(worker_bin);

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'], receivers => ['crm']);
my $sb = $p->sandbox;
my $cfg = $p->worker_config(max_attempts => 4, retry_base_ms => 50,
    retry_cap_ms => 300, claim_timeout_ms => 3000,
    destinations => { crm => { timeout_ms => 1000, concurrency => 4 } });

my $perm = $p->send('eu', data => { marker => 'perm_marker' });
my $poison = $p->send('eu', data => { marker => 'poison_marker' });
is($_->{status}, 202, 'edge accepted ' . $_->{id}) for $perm, $poison;

# the two bad events first, then a storm for everyone else
$sb->fault([
    { service => 'hooks', match => 'perm_marker', status => 400,
      body => { error => 'customer_id is not valid' } },
    { service => 'hooks', match => 'poison_marker', status => 500 },
    { service => 'hooks', status => 429, retry_after => 1, times => 6 },
    { service => 'hooks', status => 429, times => 6 },
    { service => 'hooks', status => 503, times => 8 },
    { service => 'hooks', status => 502, times => 4 },
    { service => 'hooks', drop => JSON::PP::true, times => 4 },
    { service => 'hooks', latency_ms => 1500, times => 3 },
]);

my @ok = map { $p->send('eu')->{id} } 1 .. 40;
my $w = $p->worker($cfg);

ok(wait_until(sub {
        $p->held('crm')->{distinct} == 40 && @{ $p->dlq('eu') } == 2
            && $p->drained }, timeout => 40),
   'the storm ends: 40 delivered, 2 dead letters')
    or diag explain { held => $p->held('crm')->{distinct},
                      dlq => scalar @{ $p->dlq('eu') } };

my $held = $p->held('crm');
my %seen = map { $_->{id} => 1 } @{ $held->{events} };
is(scalar(grep { $seen{$_} } @ok), 40, 'every storm event delivered');
ok(!$seen{ $perm->{id} } && !$seen{ $poison->{id} },
   'the bad events were not applied');

my $faults = $sb->faults;
is($_->{times}, 0, "fault rule $_->{id} used up") for @$faults[2 .. 7];

my $log = $sb->requests(service => 'hooks');
my %by_status;
$by_status{ $_->{status} // 'none' }++ for @$log;
cmp_ok($by_status{429} // 0, '>=', 12, '429s were answered');
cmp_ok($by_status{503} // 0, '>=', 8, '503s were answered');

my %dlq = map { $_->[1]{id} => $_->[1] } @{ $p->dlq('eu') };
my $d = $dlq{ $perm->{id} };
ok($d, 'the 400 is dead-lettered');
is($d->{status}, 400, 'with its status');
is($d->{attempts}, 1, 'after one attempt (permanent)');
is($d->{dlq_reason}, 'permanent failure', 'reason');
like($d->{error}, qr/customer_id is not valid/, 'the answer\'s first bytes');
is($d->{corr}, $perm->{corr}, 'the correlation id');

$d = $dlq{ $poison->{id} };
ok($d, 'the poison event is dead-lettered');
is($d->{attempts}, 4, 'after max_attempts (4)');
is($d->{status}, 500, 'last status');
is($d->{dlq_reason}, 'attempts exhausted', 'reason');
my $poison_tries = grep { $_->{body} =~ /poison_marker/ } @$log;
is($poison_tries, 4, 'the sandbox saw the poison event four times');

# fixed: replay both
$sb->clear_faults;
my $bin = worker_bin();
my $outp = `$bin -c '$cfg' dlq replay eu --all 2>&1`;
is($? >> 8, 0, 'dlq replay --all') or diag $outp;
is(() = $outp =~ /^replayed /mg, 2, 'two replayed');

ok(wait_until(sub { $p->held('crm')->{distinct} == 42 && $p->drained },
              timeout => 20), 'replayed events delivered');
$held = $sb->state('hooks', 'crm');
%seen = map { $_->{id} => $_ } @{ $held->{events} };
is($seen{ $perm->{id} }{deliveries}, 1, 'the fixed 400 event: once');
is($seen{ $poison->{id} }{deliveries}, 1, 'the fixed poison event: once');
is(scalar @{ $p->dlq('eu') }, 0, 'dead-letter stream empty');
is($w->stop, 0, 'worker stops cleanly');

done_testing;
