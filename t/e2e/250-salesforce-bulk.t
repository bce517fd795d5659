#!/usr/bin/perl

# End to end to Salesforce, Bulk API 2.0 for backlogs: a backlog deeper
# than bulk_threshold leaves as ONE ingest job (create, CSV upload,
# UploadComplete, poll, results joined on the external id), every
# record lands with its values, a row in failedResults with a
# validation error is dead-lettered with its sf__Error, a transient one
# (UNABLE_TO_LOCK_ROW) is retried and lands; a worker SIGKILLed while
# its job runs loses nothing: another worker claims the entries and
# sends them again (one record per key, nothing dead-lettered).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP;
use Test::More;

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until spew);
use Loyalty::Test::Worker;

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'], receivers => []);
my $sb = $p->sandbox;
my $dir = $p->dir;
my $redis = $p->redis;

$sb->config('salesforce', {
    field_types => { Contact => { Points__c => 'number' } },
    bulk_start_ms => 50, bulk_processing_ms => 300,
});

my $secret_file = "$dir/sf.secret";
spew($secret_file, "sandbox-client-secret\n", 0600);

sub sf_config {
    my (%o) = @_;
    my $y = "redis: " . $redis->addr . "\nstores: [eu]\ndestinations:\n"
        . "  - name: sf\n    type: salesforce\n"
        . "    url: " . $sb->url('/salesforce') . "\n"
        . "    auth: client_credentials\n"
        . "    client_id: sandbox-client-id\n"
        . "    client_secret_file: $secret_file\n"
        . "    batch_window_ms: 100\n    limit_pause_ms: 1500\n"
        . "    timeout_ms: 2000\n    concurrency: 2\n"
        . "    bulk_threshold: " . ($o{threshold} // 50) . "\n"
        . "flows:\n  - to: sf\n" . <<'Y'
    on: [customer.updated]
    object: Contact
    external_id: Loyalty_Id__c
    key: ext_id
    fields:
      - { field: LastName, from: customer.last_name, type: text }
      - { field: Points__c, from: customer.points_balance, type: integer }
      - { field: Note__c, from: customer.note, type: text }
Y
        . "claim_timeout_ms: 6000\nclaim_interval_ms: 300\nblock_ms: 200\n"
        . "batch: " . ($o{batch} // 1000) . "\nretry_base_ms: 100\n"
        . "retry_cap_ms: 500\nretry_interval_ms: 50\nmax_attempts: 30\n"
        . "log_level: info\n";
    my $f = "$dir/" . ($o{file} // 'sf.yaml');
    spew($f, $y);
    return $f;
}

sub customer {
    my ($key, %c) = @_;
    return $p->send('eu', type => 'customer.updated', data => {
        customer => { ext_id => $key, last_name => 'Lovelace',
                      points_balance => 1, %c } });
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
sub jobs { $sb->state('salesforce', 'jobs')->{jobs} }
sub drained { wait_until(sub { $p->drained }, timeout => $_[0] // 30) }

# -t: a threshold the hold budget can never reach is refused
{
    my $bad = sf_config(threshold => 1000, batch => 1000, file => 'bad.yaml');
    my ($code, $out) = Loyalty::Test::Worker::check_config($bad);
    isnt($code, 0, '-t refuses bulk_threshold >= batch');
    like($out, qr/bulk_threshold \(1000\) must be below batch \(1000\)/,
         '... naming the keys');
}

# --- 1. a backlog of 120: one Bulk job ----------------------------------

$sb->action('salesforce', 'inject_error', {
    object => 'Contact', value => 'cus_b007',
    statusCode => 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
    message => 'Points must be positive', fields => ['Points__c'] });
$sb->action('salesforce', 'inject_error', {
    object => 'Contact', value => 'cus_b011',
    statusCode => 'UNABLE_TO_LOCK_ROW',
    message => 'unable to obtain exclusive access to this record' });

for my $i (1 .. 120) {
    my $r = customer(sprintf('cus_b%03d', $i), points_balance => $i,
                     $i == 5 ? (note => "comma, \"quote\"\nand line") : ());
    $r->{status} == 202 or diag "backlog $i: $r->{status}";
}

my $since = $sb->seq;
my $w1 = Loyalty::Test::Worker->new(config => sf_config());
ok(drained(60), 'backlog of 120 finished');

my $creates = reqs('POST', 'jobs/ingest$', since => $since);
is(scalar @$creates, 1, 'one Bulk API job created');
my $job = decode_json($creates->[0]{body} // '{}');
is_deeply([ @$job{qw(object externalIdFieldName operation contentType
                     lineEnding)} ],
          [ qw(Contact Loyalty_Id__c upsert CSV LF) ], 'job: upsert by '
          . 'Loyalty_Id__c, CSV, LF');
is(scalar @{ reqs('PUT', 'jobs/ingest/.*/batches', since => $since) }, 1,
   'one CSV upload');
like(join(' ', map { $_->{body} // '' }
                   @{ reqs('PATCH', 'jobs/ingest/', since => $since) }),
     qr/UploadComplete/, 'closed with UploadComplete');
cmp_ok(scalar @{ reqs('GET', 'jobs/ingest/[^/]+$', since => $since) },
       '>=', 1, 'polled');
for my $r (qw(successfulResults failedResults unprocessedrecords)) {
    is(scalar @{ reqs('GET', "jobs/ingest/.*/$r", since => $since) }, 1,
       "$r read once");
}
my ($info) = grep { $_->{object} eq 'Contact' } @{ jobs() };
is($info->{rows}, 120, 'the job held the 120 records');

my $colls = reqs('PATCH', 'composite/sobjects', since => $since);
my @coll_keys = map { $_->{Loyalty_Id__c} }
                map { @{ decode_json($_->{body})->{records} } } @$colls;
is_deeply(\@coll_keys, ['cus_b011'],
          'only the transient record went again, by Collections');

my $recs = by_key();
my @missing = grep { my $k = sprintf('cus_b%03d', $_);
                     $_ != 7 && !($recs->{$k} && @{ $recs->{$k} } == 1
                                  && $recs->{$k}[0]{fields}{Points__c} == $_)
                   } 1 .. 120;
is_deeply(\@missing, [], '119 Contacts, one each, with their points');
ok(!$recs->{cus_b007}, 'the refused record was not created');
is($recs->{cus_b005}[0]{fields}{Note__c}, "comma, \"quote\"\nand line",
   'a value with a comma, quotes and a line break arrived whole');

my $dlq = $p->dlq('eu');
is(scalar @$dlq, 1, 'one dead letter');
like($dlq->[0][1]{error} // '', qr/^FIELD_CUSTOM_VALIDATION_EXCEPTION:\ Points
     \ must\ be\ positive\ \(Points__c\)/x, '... with its sf__Error');
like($dlq->[0][1]{envelope} // $dlq->[0][1]{data} // '', qr/cus_b007/,
     '... for cus_b007');
like($w1->log, qr/backlog of 120 Contact records: one Bulk API job/,
     'the worker logged the switch');
like($w1->log, qr/Bulk API job 750\w+ complete: 120 processed, 2 failed/,
     '... and the job result');

my $st = { @{ $redis->cmd('HGETALL',
                          'loyalty:state:{sf:Contact:cus_b042}') } };
like($st->{Points__c} // '', qr/\|[0-9a-f]{16}$/,
     'the delta state advanced after the job');

# the same backlog again: unchanged records make no job and no call
$since = $sb->seq;
$w1->stop;
customer(sprintf('cus_b%03d', $_), points_balance => $_) for 12 .. 80;
$w1 = Loyalty::Test::Worker->new(config => sf_config());
ok(drained(), 'unchanged backlog finished');
is(scalar @{ reqs('POST', 'jobs/ingest$', since => $since) }, 0,
   'no job for records that did not change');

# --- 1b. coalescing: several events per record in one backlog -------------

my $JSON = JSON::PP->new->canonical;
sub timed {
    my ($key, $points, $at) = @_;
    return $p->send('eu', body => $JSON->encode({
        type => 'customer.updated', timestamp => $at,
        data => { customer => { ext_id => $key, last_name => 'Lovelace',
                                points_balance => $points } } }));
}

$w1->stop;
for my $i (1 .. 70) {
    my $k = sprintf('cus_m%03d', $i);
    my @ev = ([$k, $i, '2026-11-24T09:00:00Z'],
              [$k, 500 + $i, '2026-11-24T10:00:00Z']);
    timed(@$_) for ($i % 2 ? reverse @ev : @ev);
}
$since = $sb->seq;
$w1 = Loyalty::Test::Worker->new(config => sf_config());
ok(drained(), '140 events for 70 records finished');
$creates = reqs('POST', 'jobs/ingest$', since => $since);
is(scalar @$creates, 1, 'one job');
my ($j2) = grep { $_->{rows} == 70 } @{ jobs() };
ok($j2, '... of 70 rows: one per record');
$recs = by_key();
@missing = grep { my $k = sprintf('cus_m%03d', $_);
                  !($recs->{$k} && @{ $recs->{$k} } == 1
                    && $recs->{$k}[0]{fields}{Points__c} == 500 + $_) }
           1 .. 70;
is_deeply(\@missing, [], 'each with its newest value, whatever the order');

# 20 records in 60 events: after coalescing not deeper than the
# threshold, so one Collections call instead of a job
$w1->stop;
for my $i (1 .. 20) {
    timed(sprintf('cus_s%02d', $i), $_, "2026-11-24T0$_:00:00Z") for 1 .. 3;
}
$since = $sb->seq;
$w1 = Loyalty::Test::Worker->new(config => sf_config());
ok(drained(), '60 events for 20 records finished');
is(scalar @{ reqs('POST', 'jobs/ingest$', since => $since) }, 0,
   'no job for 20 records');
$colls = reqs('PATCH', 'composite/sobjects', since => $since);
is(scalar @$colls, 1, 'one Collections call');
is(scalar @{ decode_json($colls->[0]{body})->{records} }, 20,
   '... of 20 records');

# --- 2. SIGKILL while the job runs: nothing lost or doubled ---------------

$w1->stop;
$sb->config('salesforce', { bulk_processing_ms => 2500 });
for my $i (1 .. 80) {
    customer(sprintf('cus_k%03d', $i), points_balance => 1000 + $i);
}
$since = $sb->seq;
my $w2 = Loyalty::Test::Worker->new(config => sf_config(file => 'w2.yaml'));
ok(wait_until(sub {
        grep { ($_->{body} // '') =~ /UploadComplete/ }
             @{ reqs('PATCH', 'jobs/ingest/', since => $since) } },
    timeout => 20), 'the job is uploaded and closed');
$w2->kill;
is($p->pending('eu'), 80, 'its 80 entries stay pending after SIGKILL');

my $w3 = Loyalty::Test::Worker->new(config => sf_config(file => 'w3.yaml'));
ok(drained(60), 'the other worker claimed and finished them');
$recs = by_key();
my @bad = grep { my $k = sprintf('cus_k%03d', $_);
                 !($recs->{$k} && @{ $recs->{$k} } == 1
                   && $recs->{$k}[0]{fields}{Points__c} == 1000 + $_) }
          1 .. 80;
is_deeply(\@bad, [], '80 Contacts, one each (no duplicate), right points');
is(scalar @{ $p->dlq('eu') }, 1, 'nothing more dead-lettered');
cmp_ok(scalar @{ reqs('POST', 'jobs/ingest$', since => $since) }, '>=', 2,
       'the claimer sent them again (a second job)');
is($redis->cmd('XLEN', 'loyalty:{eu}:in'), 120 + 69 + 140 + 60 + 80,
   'every entry is in the stream once');

$w3->stop;
is($w3->log =~ /AddressSanitizer|runtime error/ ? 1 : 0, 0,
   'no sanitizer report');

done_testing();
