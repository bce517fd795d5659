#!/usr/bin/perl

# loyalty-worker backfill: a full resync of a store through Bulk API
# 2.0.  From the store's stream: 30 customers, two events each (the
# newer one sent first for half of them), become 30 records with the
# newest values in 2 jobs of --chunk 20; a record refused by a
# validation rule is written to the errors file with its sf__Error and
# the exit code is 1.  From an NDJSON file of envelopes: 5 more
# records, exit 0.  The budget guard stops the backfill at
# backfill_reserve while a realtime worker still delivers (its reserve
# is smaller); once the budget is back the backfill finishes.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until spew slurp);
use Loyalty::Test::Worker;

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'], receivers => []);
my $sb = $p->sandbox;
my $dir = $p->dir;
my $redis = $p->redis;
my $JSON = JSON::PP->new->canonical;

$sb->config('salesforce', {
    field_types => { Contact => { Points__c => 'number' } },
    bulk_start_ms => 20, bulk_processing_ms => 100, daily_limit => 1000,
});

my $secret_file = "$dir/sf.secret";
spew($secret_file, "sandbox-client-secret\n", 0600);

my $cfg = "$dir/sf.yaml";
spew($cfg, "redis: " . $redis->addr . "\nstores: [eu]\ndestinations:\n"
    . "  - name: sf\n    type: salesforce\n"
    . "    url: " . $sb->url('/salesforce') . "\n"
    . "    auth: client_credentials\n"
    . "    client_id: sandbox-client-id\n"
    . "    client_secret_file: $secret_file\n"
    . "    batch_window_ms: 50\n    timeout_ms: 2000\n"
    . "    budget_reserve: 10\n    budget_poll_ms: 300\n"
    . "flows:\n  - to: sf\n" . <<'Y'
    on: [customer.updated]
    object: Contact
    external_id: Loyalty_Id__c
    key: ext_id
    fields:
      - { field: LastName, from: customer.last_name, type: text }
      - { field: Points__c, from: customer.points_balance, type: integer }
Y
    . "claim_timeout_ms: 6000\nclaim_interval_ms: 300\nblock_ms: 200\n"
    . "batch: 500\nretry_base_ms: 100\nretry_cap_ms: 500\n"
    . "retry_interval_ms: 50\nmax_attempts: 5\nlog_level: info\n");

sub customer {
    my ($key, $points, $at) = @_;
    return $p->send('eu', body => $JSON->encode({
        type => 'customer.updated', timestamp => $at,
        data => { customer => { ext_id => $key, last_name => "L$key",
                                points_balance => $points } } }));
}
sub by_key {
    my %r;
    for (@{ $sb->state('salesforce', 'records', 'Contact')->{records} }) {
        push @{ $r{ $_->{fields}{Loyalty_Id__c} // '' } }, $_;
    }
    return \%r;
}
sub reqs {
    my ($method, $path, %q) = @_;
    return [ grep { $_->{method} eq $method && $_->{path} =~ /$path/ }
             @{ $sb->requests(service => 'salesforce', %q) } ];
}

# runs the command; (exit code, stdout, stderr)
sub backfill {
    my (@args) = @_;
    my $bin = Loyalty::Test::Worker::worker_bin();
    my $cmd = join ' ', map { "'$_'" } $bin, '-c', $cfg, 'backfill', @args;
    system("$cmd >$dir/bf.out 2>$dir/bf.err </dev/null");
    return ($? >> 8, slurp("$dir/bf.out"), slurp("$dir/bf.err"));
}

# --- 1. the store's stream: coalesced, in chunks, a failure reported ------

for my $i (1 .. 30) {
    my $k = sprintf('cus_f%02d', $i);
    my @ev = ([$k, $i, '2026-11-24T09:00:00Z'],
              [$k, 100 + $i, '2026-11-24T10:00:00Z']);
    @ev = reverse @ev if $i % 2;        # the newer one first
    for (@ev) {
        my $r = customer(@$_);
        $r->{status} == 202 or diag "event $k: $r->{status}";
    }
}
$sb->action('salesforce', 'inject_error', {
    object => 'Contact', value => 'cus_f07', times => -1,
    statusCode => 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
    message => 'Points are frozen', fields => ['Points__c'] });

my $since = $sb->seq;
my ($code, $out, $err) = backfill('eu', '--chunk', 20, '--errors',
                                  "$dir/failed.tsv");
is($code, 1, 'exit code 1: a record failed');
like($out, qr/^backfill eu: 30 records in 2 jobs, 29 written, 1 failed, 0 /m,
     'summary: 30 records, 2 jobs, 29 written, 1 failed')
    or diag $out, $err;
like($out, qr/^failures: \Q$dir\E\/failed\.tsv$/m, 'names the errors file');
like($err, qr/^backfill eu: 60 events read, 30 records for sf \(1 flow\)$/m,
     '60 events coalesced to 30 records');
like($err, qr/^backfill eu: 20\/30 records sent, 1 job, /m,
     'plain progress lines when not on a terminal');
is(slurp("$dir/failed.tsv"), "Contact\tcus_f07\tFIELD_CUSTOM_VALIDATION_"
   . "EXCEPTION: Points are frozen (Points__c)\n",
   'the errors file: object, external id, sf__Error');

is(scalar @{ reqs('POST', 'jobs/ingest$', since => $since) }, 2,
   'two Bulk jobs');
is(scalar @{ reqs('PATCH', 'composite/sobjects', since => $since) }, 0,
   'no Collections call');
my $recs = by_key();
my @bad = grep { my $k = sprintf('cus_f%02d', $_);
                 $_ != 7 && !($recs->{$k} && @{ $recs->{$k} } == 1
                              && $recs->{$k}[0]{fields}{Points__c} == 100 + $_
                              && $recs->{$k}[0]{fields}{LastName} eq "L$k") }
          1 .. 30;
is_deeply(\@bad, [], '29 Contacts with the newest values, one each');
is(scalar @{ $recs->{cus_f07} // [] }, 0, 'the refused one is not there');
is($redis->cmd('XLEN', 'loyalty:{eu}:in'), 60,
   'the stream is read, not consumed');
ok(!$redis->cmd('EXISTS', 'loyalty:state:{sf:Contact:cus_f01}'),
   'the delta state is left alone');
my $usage = { @{ $redis->cmd('HGETALL', 'loyalty:sf:{sf}:usage') } };
cmp_ok($usage->{used} // 0, '>=', 10, 'the usage is shared in Redis');

# --- 2. an NDJSON file of envelopes ---------------------------------------

$sb->action('salesforce', 'clear_errors');
open my $fh, '>', "$dir/export.ndjson" or die;
for my $i (1 .. 5) {
    print $fh $JSON->encode({
        v => '1', id => "exp_$i", src => 'standard', store => 'eu',
        type => 'customer.updated', occurred => '2026-11-20T08:00:00Z',
        received => '1795553266879', corr => "exp-$i",
        ext_id => "cus_n$i",
        data => { customer => { ext_id => "cus_n$i", last_name => 'Nd',
                                points_balance => 7 * $i } } }), "\n";
}
print $fh "not json\n";
close $fh;
($code, $out, $err) = backfill('eu', '--file', "$dir/export.ndjson",
                               '--errors', "$dir/nd.tsv");
is($code, 0, 'NDJSON backfill: exit 0');
like($out, qr/5 records in 1 job, 5 written, 0 failed, 1 events not /,
     '... 5 records written, the bad line counted');
like(slurp("$dir/nd.tsv"), qr/export\.ndjson:6\tnot a JSON object/,
     '... and reported with its line');
is(by_key()->{cus_n3}[0]{fields}{Points__c}, 21, '... with their values');

# --- 3. the budget stops the backfill before the realtime flows ------------

my $w = Loyalty::Test::Worker->new(config => $cfg);
ok(wait_until(sub { $p->drained }, timeout => 30),
   'a realtime worker drains the stream');
$sb->action('salesforce', 'set_api_usage', { used => 850 });

my $pid = fork // die;
if (!$pid) {
    my $bin = Loyalty::Test::Worker::worker_bin();
    exec("$bin -c '$cfg' backfill eu --chunk 20 --errors '$dir/b3.tsv' "
         . ">'$dir/b3.out' 2>'$dir/b3.err' </dev/null")
        or POSIX::_exit(127);
}
ok(wait_until(sub { slurp("$dir/b3.err") =~ /backfill_reserve 20%: waiting/ },
              timeout => 20), 'the backfill waits at backfill_reserve')
    or diag slurp("$dir/b3.err");
like(slurp("$dir/b3.err"), qr/daily API budget: 8\d\d of 1000 used/,
     '... with the usage it read');

$since = $sb->seq;
customer('cus_live', 5, '2026-11-24T11:00:00Z');
ok(wait_until(sub { by_key()->{cus_live} }, timeout => 10),
   'meanwhile the realtime flow still delivers (its reserve is 10 %)');
is(waitpid($pid, WNOHANG), 0, 'the backfill is still waiting');
ok(wait_until(sub { @{ reqs('GET', 'limits$', since => $since) } >= 2 },
              timeout => 10), 'it polls GET /limits');

$sb->action('salesforce', 'set_api_usage', { used => 0 });
ok(wait_until(sub { waitpid($pid, WNOHANG) == $pid }, timeout => 30),
   'after the budget is back the backfill finishes');
is($? >> 8, 0, '... with exit code 0');
like(slurp("$dir/b3.err"), qr/daily API budget: \d+ of 1000 used: resumed/,
     '... saying it resumed');
# the stream as read when it started: cus_live came later
like(slurp("$dir/b3.out"), qr/30 records in 2 jobs, 30 written, 0 failed/,
     '... every record written');

$w->stop;
done_testing();
