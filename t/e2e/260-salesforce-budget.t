#!/usr/bin/perl

# End to end to Salesforce, the daily budget guard: with budget_reserve
# 20 and a sandbox daily_limit of 100, the call that brings the usage
# to 80 pauses the destination for both workers (shared pause, value
# "budget"); later events wait pending, nothing is dead-lettered, the
# worker polls GET /limits meanwhile; once the sandbox's counter is
# reset through the control API the poll sees room and every waiting
# event is delivered.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use HTTP::Tiny;
use JSON::PP;
use Test::More;

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until spew free_port);
use Loyalty::Test::Worker;

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'], receivers => []);
my $sb = $p->sandbox;
my $dir = $p->dir;
my $redis = $p->redis;

$sb->config('salesforce', { daily_limit => 100 });

my $secret_file = "$dir/sf.secret";
spew($secret_file, "sandbox-client-secret\n", 0600);
my @mport = (free_port(), free_port());

sub sf_config {
    my (%o) = @_;
    my $y = "redis: " . $redis->addr . "\nstores: [eu]\ndestinations:\n"
        . "  - name: sf\n    type: salesforce\n"
        . "    url: " . $sb->url('/salesforce') . "\n"
        . "    auth: client_credentials\n"
        . "    client_id: sandbox-client-id\n"
        . "    client_secret_file: $secret_file\n"
        . "    batch_window_ms: 50\n    limit_pause_ms: 1500\n"
        . "    timeout_ms: 2000\n    concurrency: 2\n"
        . "    budget_reserve: " . ($o{reserve} // 20) . "\n"
        . "    budget_poll_ms: 300\n"
        . ($o{backfill} ? "    backfill_reserve: $o{backfill}\n" : '')
        . "flows:\n  - to: sf\n" . <<'Y'
    on: [customer.updated]
    object: Contact
    external_id: Loyalty_Id__c
    key: ext_id
    fields:
      - { field: LastName, from: customer.last_name, type: text }
Y
        . "claim_timeout_ms: 6000\nclaim_interval_ms: 300\nblock_ms: 200\n"
        . "batch: 100\nretry_base_ms: 100\nretry_cap_ms: 500\n"
        . "retry_interval_ms: 50\nmax_attempts: 5\nlog_level: info\n"
        . ($o{metrics} ? "metrics: 127.0.0.1:$o{metrics}\n" : '');
    my $f = "$dir/" . ($o{file} // 'sf.yaml');
    spew($f, $y);
    return $f;
}

sub customer {
    my ($key) = @_;
    return $p->send('eu', type => 'customer.updated', data => {
        customer => { ext_id => $key, last_name => "L$key" } });
}
sub reqs {
    my ($method, $path, %q) = @_;
    return [ grep { $_->{method} eq $method && $_->{path} =~ /$path/ }
             @{ $sb->requests(service => 'salesforce', %q) } ];
}
sub contacts {
    scalar @{ $sb->state('salesforce', 'records', 'Contact')->{records} };
}
sub drained { wait_until(sub { $p->drained }, timeout => $_[0] // 30) }
# summed over both workers: the one that read the usage pauses
sub metric {
    my ($name) = @_;
    my $n = 0;
    for my $port (@mport) {
        my $m = HTTP::Tiny->new(timeout => 5)
                ->get("http://127.0.0.1:$port/metrics");
        $n += $1 if ($m->{content} // '') =~
            /^\Q$name\E\{destination="sf"\} (\d+)$/m;
    }
    return $n;
}

# -t checks
{
    my ($code, $out) = Loyalty::Test::Worker::check_config(
        sf_config(reserve => 60, file => 'bad1.yaml'));
    like($out, qr/budget_reserve: 60 is out of range \[0, 50\]/,
         '-t: budget_reserve above 50 refused');
    ($code, $out) = Loyalty::Test::Worker::check_config(
        sf_config(reserve => 20, backfill => 10, file => 'bad2.yaml'));
    like($out, qr/backfill_reserve: 10 must be in \[20, 90\]/,
         '-t: backfill_reserve below budget_reserve refused');
}

my $w1 = Loyalty::Test::Worker->new(config => sf_config(
    metrics => $mport[0], file => 'w1.yaml'));
my $w2 = Loyalty::Test::Worker->new(config => sf_config(
    metrics => $mport[1], file => 'w2.yaml'));

customer('cus_first');
ok(drained(), 'an event below the reserve is delivered');

# the next call brings the usage to 80 of 100: the reserve starts there
$sb->action('salesforce', 'set_api_usage', { used => 79 });
customer('cus_edge');
ok(drained(), 'the call that reaches the reserve is delivered');
ok(wait_until(sub { ($redis->cmd('GET', 'loyalty:rl:{sf}:pause') // '')
                    eq 'budget' }, timeout => 10),
   'the shared pause is set, marked as the budget\'s');

my $since = $sb->seq;
customer("cus_wait$_") for 1 .. 6;
sleep 2;
is(scalar @{ reqs('PATCH', 'composite/sobjects', since => $since) }, 0,
   'no Collections call while paused (either worker)');
is($p->pending('eu') + $p->retries('eu'), 6,
   'the six events wait (pending or retry set)');
is(scalar @{ $p->dlq('eu') }, 0, 'nothing dead-lettered');
cmp_ok(scalar @{ reqs('GET', 'limits$', since => $since) }, '>=', 2,
       'the guard polls GET /limits while paused');
cmp_ok(scalar @{ reqs('GET', 'limits$', since => $since) }, '<=', 12,
       '... sparingly (about every budget_poll_ms)');
my $usage = { @{ $redis->cmd('HGETALL', 'loyalty:sf:{sf}:usage') } };
cmp_ok($usage->{used}, '>=', 80, 'usage in Redis shows the reserve reached');
is($usage->{limit}, 100, '... of the daily limit');
cmp_ok(metric('loyalty_worker_salesforce_budget_paused'), '>=', 1,
       'metrics: budget paused');
cmp_ok(metric('loyalty_worker_salesforce_budget_pauses_total'), '>=', 1,
       'metrics: pauses counted');
like($w1->log . $w2->log,
     qr/daily API budget: \d+ of 100 used, 20% kept for the org's other /,
     'the pause is logged');

# the budget comes back (Salesforce: the rolling 24 h; here a reset)
$sb->action('salesforce', 'set_api_usage', { used => 0 });
ok(drained(), 'after the reset every waiting event is delivered');
is(contacts(), 8, 'eight Contacts');
is(scalar @{ $p->dlq('eu') }, 0, 'still nothing dead-lettered');
like($w1->log . $w2->log, qr/daily API budget: \d+ of 100 used: resumed/,
     'the resume is logged');
is(metric('loyalty_worker_salesforce_budget_paused'), 0,
   'metrics: not paused');

$w1->stop;
$w2->stop;
done_testing();
