#!/usr/bin/perl

# The scheduled pull, CRM -> loyalty, against the sandbox's SOQL: two
# workers, one pull.  Contacts a CRM user made become envelopes in
# loyalty:{eu}:in exactly like the edge's (src salesforce, the mapped
# fields in data, identity keys); the worker's own upserts come back as
# echoes and are dropped (counted); the cursor advances; a second run
# adds nothing; a new CRM edit adds exactly one event; the two workers
# run the pull once per interval (a lease, no record read twice);
# records sharing one SystemModstamp across a page boundary (pages of 2)
# are all pulled; SIGTERM frees the lease.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use HTTP::Tiny;
use JSON::PP;
use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(sleep time);

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until spew free_port);
use Loyalty::Test::Worker;

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'], receivers => []);
my $sb = $p->sandbox;
my $dir = $p->dir;
my $redis = $p->redis;
my $JSON = JSON::PP->new->canonical;

$sb->config('salesforce', { query_batch_size => 2 });

my $secret_file = "$dir/sf.secret";
spew($secret_file, "sandbox-client-secret\n", 0600);

my @mport = (free_port(), free_port());
my $INTERVAL = 400;

sub config {
    my ($port, $file) = @_;
    my $y = "redis: " . $redis->addr . "\nstores: [eu]\ndestinations:\n"
        . "  - name: sf\n    type: salesforce\n"
        . "    url: " . $sb->url('/salesforce') . "\n"
        . "    auth: client_credentials\n"
        . "    client_id: sandbox-client-id\n"
        . "    client_secret_file: $secret_file\n"
        . "    batch_window_ms: 50\n    timeout_ms: 5000\n" . <<"Y"
flows:
  - to: sf
    from: [standard]
    on: [customer.updated]
    object: Contact
    external_id: Loyalty_Id__c
    key: ext_id
    fields:
      - { field: LastName, from: customer.last_name, type: text }
      - { field: Email, from: customer.email, type: email }
pulls:
  - name: contacts
    from: sf
    store: eu
    object: Contact
    type: customer.updated
    where: "LastName != 'Ignored'"
    interval_ms: $INTERVAL
    lag_ms: 1
    window_ms: 600000
    fields:
      - { field: Email, to: customer.email, type: email }
      - { field: LastName, to: customer.last_name, type: text }
      - { field: Email_Opt_In__c, to: customer.opt_in_email,
          type: boolean, owner: crm }
      - { field: Loyalty_Id__c, to: customer.loyalty_id, type: text }
claim_timeout_ms: 10000
claim_interval_ms: 300
block_ms: 200
trim_interval_ms: 3600000
log_level: info
metrics: 127.0.0.1:$port
Y
        ;
    my $f = "$dir/$file";
    spew($f, $y);
    return $f;
}

sub sf_time { strftime('%Y-%m-%dT%H:%M:%S.000+0000', gmtime $_[0]) }

# the stream's entries the pull wrote
sub pulled {
    return [ map { $_->[1] } grep { ($_->[1]{src} // '') eq 'salesforce' }
             @{ $redis->stream('loyalty:{eu}:in') } ];
}

# a series summed over both workers
sub metric {
    my ($re) = @_;
    my $n = 0;
    for my $port (@mport) {
        my $m = HTTP::Tiny->new(timeout => 5)
                ->get("http://127.0.0.1:$port/metrics");
        $n += $1 while ($m->{content} // '') =~ /^$re (\d+)$/mg;
    }
    return $n;
}
sub outcome {
    metric(qr/loyalty_worker_pull_records_total
              \{pull="contacts",outcome="\Q$_[0]\E"\}/x);
}

sub queries {
    my (%q) = @_;
    return [ grep { $_->{method} eq 'GET' }
             @{ $sb->requests(service => 'salesforce',
                              path => '/query$', %q) } ];
}

# --- records a CRM user made, before any worker runs -----------------------

# five share one SystemModstamp: with pages of 2 they straddle two page
# boundaries; one more is older, one is filtered out by `where`
my $t0 = int(time) - 30;
my @seed = map { {
    LastName => "Crm$_", Email => " Person$_\@Example.com ",
    Email_Opt_In__c => ($_ % 2 ? JSON::PP::true : JSON::PP::false),
    Loyalty_Id__c => "crm_$_", SystemModstamp => sf_time($t0),
} } 1 .. 5;
push @seed, { LastName => 'Older', Email => 'older@example.com',
              Loyalty_Id__c => 'crm_old', SystemModstamp => sf_time($t0 - 5) };
push @seed, { LastName => 'Ignored', Email => 'ignored@example.com',
              Loyalty_Id__c => 'crm_ign', SystemModstamp => sf_time($t0) };
my $ids = $sb->action('salesforce', 'seed',
                      { object => 'Contact', records => \@seed })->{ids};
is(scalar @$ids, 7, 'seven Contacts seeded by the CRM user');

my $w1 = Loyalty::Test::Worker->new(config => config($mport[0], 'w1.yaml'));
my $w2 = Loyalty::Test::Worker->new(config => config($mport[1], 'w2.yaml'));

# --- 1. the CRM's records become envelopes ----------------------------------

ok(wait_until(sub { @{ pulled() } >= 6 }, timeout => 20),
   'the pull enqueued the CRM-made records') or diag $w1->log . $w2->log;
sleep(1.5);
my $ev = pulled();
is(scalar @$ev, 6, 'six events: five sharing a stamp, one older; the '
   . '`where` kept the seventh out');
my %by = map { ($_->{ext_id} // '') => $_ } @$ev;
my %seeded = map { $ids->[$_] => $seed[$_] } 0 .. $#seed;
is_deeply([ sort keys %by ], [ sort @$ids[0 .. 5] ],
          'one event per record, ext_id = the record Id');

my $e = $by{ $ids->[0] } // {};
is($e->{v}, '1', 'envelope v1');
is($e->{src}, 'salesforce', 'src salesforce');
is($e->{store}, 'eu', 'store');
is($e->{type}, 'customer.updated', 'type as configured');
is($e->{topic}, 'Contact', 'topic: the sObject');
is($e->{occurred}, strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime $t0),
   'occurred: the SystemModstamp, UTC');
is($e->{id}, "sf:contacts:$ids->[0]:" . ($t0 * 1000),
   'id: pull, record Id and stamp (deterministic)');
is($e->{corr}, $e->{id}, 'corr: the event id');
like($e->{received} // '', qr/^\d{13}$/, 'received: ms');
is($e->{email}, 'person1@example.com', 'email: the normalized address');
my $data = eval { $JSON->decode($e->{data} // '') } // {};
is_deeply($data, {
    customer => { email => 'person1@example.com', last_name => 'Crm1',
                  opt_in_email => JSON::PP::true, loyalty_id => 'crm_1',
                  ext_id => $ids->[0] },
    sobject => { type => 'Contact', id => $ids->[0],
                 system_modstamp => $e->{occurred} },
}, 'data: the mapped fields at their paths, typed') or diag explain $data;
my $d2 = eval { $JSON->decode($by{ $ids->[1] }{data} // '') } // {};
is($d2->{customer}{opt_in_email}, JSON::PP::false, 'false stays false');
my $dold = eval { $JSON->decode($by{ $ids->[5] }{data} // '') } // {};
ok(!exists $dold->{customer}{opt_in_email},
   'an empty field is left out, not null');

my $pages = queries();
ok(scalar(grep { $_->{path} =~ m{/query/01g} } @{ $sb->requests(
       service => 'salesforce', path => '/query/') }) >= 2,
   'the answer came in pages of 2 (nextRecordsUrl followed)');
like($pages->[0]{query} // '', qr/SystemModstamp/, 'a SOQL query on '
     . 'SystemModstamp') or diag explain $pages->[0];

my $cursor = { @{ $redis->cmd('HGETALL', 'loyalty:{eu}:pull:contacts') } };
cmp_ok($cursor->{cursor} // 0, '>', $t0, 'the cursor advanced past them');
like($cursor->{cursor_utc} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
     'the cursor, readable');
is(outcome('duplicate'), 0, 'no record was read twice (one runner)');

# --- 2. the worker's own writes come back as echoes -------------------------

my $echo_before = outcome('echo');
my $since = $sb->seq;
for my $i (1 .. 3) {
    my $r = $p->send('eu', body => $JSON->encode({
        type => 'customer.updated', timestamp => '2026-11-24T09:30:00Z',
        data => { customer => { ext_id => "loy_$i", last_name => "Loy$i",
                                email => "loy$i\@example.com" } } }));
    is($r->{status}, 202, "event $i accepted by the edge");
}
ok(wait_until(sub {
    my $n = 0;
    for my $i (1 .. 3) {
        $n++ if @{ $sb->state('salesforce', 'records', 'Contact',
                              { field => 'Loyalty_Id__c',
                                value => "loy_$i" })->{records} };
    }
    $n == 3;
}, timeout => 20), 'the flow upserted three Contacts');
my $integration = $sb->action('salesforce', 'user_id',
    { username => 'integration@loyalty.example' })->{id};
my $rec = $sb->state('salesforce', 'records', 'Contact',
                     { field => 'Loyalty_Id__c', value => 'loy_1' })
    ->{records}[0];
is($rec->{modified_by}, $integration,
   'written by the integration user (the token\'s)');

ok(wait_until(sub { outcome('echo') - $echo_before >= 3 }, timeout => 20),
   'the pull saw the three writes and counted them as echoes')
    or diag $w1->log . $w2->log;
is(scalar @{ pulled() }, 6, 'no event for our own writes');
like($w1->log . $w2->log, qr/echo\(es\) of our own writes dropped/,
     'echoes logged');
unlike($w1->log . $w2->log, qr/loy1\@example|person1\@example/i,
       'no e-mail address in the logs');

# --- 3. a second run adds nothing -------------------------------------------

my $runs = metric(qr/loyalty_worker_pull_runs_total
                     \{pull="contacts",outcome="ok"\}/x);
ok(wait_until(sub {
    metric(qr/loyalty_worker_pull_runs_total
              \{pull="contacts",outcome="ok"\}/x) >= $runs + 2 },
   timeout => 10), 'more runs happened');
is(scalar @{ pulled() }, 6, 'later runs enqueued nothing');
is(outcome('duplicate'), 0, '... and read nothing twice');

# --- 4. one CRM edit: exactly one event -------------------------------------

# and the token expired meanwhile: the query's 401 gets a new one
$sb->action('salesforce', 'expire_tokens');
my $edit = $sb->action('salesforce', 'crm_edit', {
    object => 'Contact', id => $ids->[0],
    fields => { Email_Opt_In__c => JSON::PP::false } });
ok(wait_until(sub { @{ pulled() } >= 7 }, timeout => 20),
   'the CRM edit was pulled');
sleep(1.2);
$ev = pulled();
is(scalar @$ev, 7, 'exactly one new event');
my $new = $ev->[-1];
is($new->{ext_id}, $ids->[0], 'for the edited record');
isnt($new->{id}, $e->{id}, 'a new change: a new event id');
my $nd = eval { $JSON->decode($new->{data}) } // {};
is($nd->{customer}{opt_in_email}, JSON::PP::false, 'with the new value');
like($w1->log . $w2->log, qr/token refused \(INVALID_SESSION_ID\)/,
     'a 401 on the query refreshed the token');

# a CRM user edits a record the worker wrote: not an echo
$sb->action('salesforce', 'crm_edit', {
    object => 'Contact', field => 'Loyalty_Id__c', value => 'loy_2',
    fields => { Email_Opt_In__c => JSON::PP::true } });
ok(wait_until(sub { @{ pulled() } >= 8 }, timeout => 20),
   'a CRM edit of a record we wrote is pulled (echoes go by author)');
my $last = pulled()->[-1];
is(eval { $JSON->decode($last->{data}) }->{customer}{loyalty_id}, 'loy_2',
   '... that record');

# --- 5. two workers: one run per interval -----------------------------------

sub runs { metric(qr/loyalty_worker_pull_runs_total\{pull="contacts",[^}]*\}/) }
my ($mark, $r0, $t1) = ($sb->seq, runs(), time);
sleep(3);
my $nruns = runs() - $r0;
my $elapsed = time - $t1;
my $n = scalar @{ queries(since => $mark) };
cmp_ok($nruns, '<=', int($elapsed * 1000 / $INTERVAL) + 2,
       "two workers made $nruns runs in ${elapsed}s: one per interval of "
       . "$INTERVAL ms, not one per worker");
cmp_ok($nruns, '>=', 2, '... and the pull kept running');
cmp_ok($n, '<=', $nruns, "$n queries: at most one per run");
is(outcome('duplicate'), 0, 'no record read twice by the two workers');
cmp_ok(metric(qr/loyalty_worker_pull_cursor_seconds\{pull="contacts"\}/),
       '>', $t0, 'the cursor gauge');
cmp_ok(metric(qr/loyalty_worker_pull_pulled_total\{pull="contacts"\}/),
       '>=', 11, 'pulled: every record read');

# --- 6. a page fails mid-run: the run resumes at the cursor, nothing lost --

# five records of one (coming) second; the second page's GET fails once
# (503): the first page is in the stream with the cursor at that
# second, so the next run reads from it again: its two records are
# dropped as duplicates, the other three enqueued, none lost
my $before = scalar @{ pulled() };
my ($d0, $f0) = (outcome('duplicate'),
    metric(qr/loyalty_worker_pull_runs_total
              \{pull="contacts",outcome="failed"\}/x));
$sb->fault({ service => 'salesforce', method => 'GET',
             path => '/query/01g', status => 503, times => 1 });
my $s1 = int(time) + 1;
my $more = $sb->action('salesforce', 'seed', { object => 'Contact',
    records => [ map { { LastName => "Late$_", Loyalty_Id__c => "late_$_",
                         SystemModstamp => sf_time($s1) } } 1 .. 5 ] })
    ->{ids};
ok(wait_until(sub { @{ pulled() } >= $before + 5 }, timeout => 20),
   'all five pulled despite the failed page') or diag $w1->log . $w2->log;
sleep(1);
my %more = map { $_ => 1 } @$more;
my @late = grep { $more{ $_->{ext_id} // '' } } @{ pulled() };
is(scalar @{ pulled() }, $before + 5, 'each exactly once');
is(scalar @late, 5, '... the five new records');
is(outcome('duplicate') - $d0, 2, 'the committed page was read again and '
   . 'its two records dropped by the dedupe');
cmp_ok(metric(qr/loyalty_worker_pull_runs_total
                 \{pull="contacts",outcome="failed"\}/x) - $f0, '>=', 1,
       'the failed run counted');
like($w1->log . $w2->log, qr/query refused: HTTP 503/, 'and logged');

# --- 7. a reload (SIGHUP) of one worker: the pull goes on ------------------

$before = scalar @{ pulled() };
kill 'HUP', $w1->pid;
ok(wait_until(sub { $w1->log =~ /configuration reloaded/ }, timeout => 20),
   'worker 1 reloaded');
$sb->action('salesforce', 'crm_edit', {
    object => 'Contact', id => $ids->[2],
    fields => { LastName => 'Renamed' } });
ok(wait_until(sub { @{ pulled() } >= $before + 1 }, timeout => 20),
   'an edit after the reload is pulled');
sleep(1);
is(scalar @{ pulled() }, $before + 1, '... once');
ok($w1->running && $w2->running, 'both workers still run');

# --- 8. SIGTERM -------------------------------------------------------------

is($w1->stop, 0, 'worker 1 stops cleanly');
is($w2->stop, 0, 'worker 2 stops cleanly');
is($redis->cmd('EXISTS', 'loyalty:{eu}:pull:contacts:lease'), 0,
   'no lease left behind');
unlike($w1->log . $w2->log, qr/Sanitizer|runtime error/,
       'no sanitizer report in the workers\' logs');
is(scalar @{ $p->dlq('eu') }, 0, 'no dead letters');

done_testing;
