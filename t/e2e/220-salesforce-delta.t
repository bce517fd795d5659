#!/usr/bin/perl

# End to end to Salesforce, delta and ordering: signed webhooks -> nginx
# -> Redis -> two workers -> the sandbox.  The same data twice is one
# write (the second acked as unchanged, no call); a change sends only
# the changed field and the external id; an older event never
# overwrites a newer value, whatever the arrival order (also with 200
# shuffled events for 5 records over two workers); a failed write does
# not advance the state, so its retry sends again and lands; a backlog
# of one record's events is coalesced into one write, each field taking
# its newest event's value and keeping that event's time.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP;
use List::Util qw(shuffle);
use Test::More;

use Loyalty::Test::Pipeline;
use HTTP::Tiny;
use Loyalty::Test::Util qw(wait_until spew free_port);
use Loyalty::Test::Worker;

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'], receivers => []);
my $sb = $p->sandbox;
my $dir = $p->dir;
my $redis = $p->redis;
my $JSON = JSON::PP->new->canonical;

$sb->config('salesforce', {
    field_types => { Contact => { Points__c => 'number' } },
});

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
        . "    batch_window_ms: 100\n    limit_pause_ms: 1500\n"
        . "    timeout_ms: 5000\n    concurrency: 2\n"
        . "flows:\n  - to: sf\n" . <<'Y'
    on: [customer.updated]
    object: Contact
    external_id: Loyalty_Id__c
    key: ext_id
    fields:
      - { field: LastName, from: customer.last_name, type: text }
      - { field: Points__c, from: customer.points_balance, type: integer }
      - { field: Tier__c, from: customer.tier, type: picklist,
          values: [Bronze, Silver, Gold] }
Y
        . "claim_timeout_ms: 10000\nclaim_interval_ms: 300\nblock_ms: 200\n"
        . "batch: 1000\nretry_base_ms: 100\nretry_cap_ms: 500\n"
        . "retry_interval_ms: 50\nmax_attempts: 1000\nlog_level: info\n"
        . ($o{metrics} ? "metrics: 127.0.0.1:$o{metrics}\n" : '');
    my $f = "$dir/" . ($o{file} // 'sf.yaml');
    spew($f, $y);
    return $f;
}

# occurred: "2026-11-24T09:30:00Z" unless given
sub customer {
    my ($key, %o) = @_;
    my $at = delete $o{at} // '2026-11-24T09:30:00Z';
    return $p->send('eu', body => $JSON->encode({
        type => 'customer.updated', timestamp => $at,
        data => { customer => { ext_id => $key, last_name => 'Lovelace',
                                points_balance => 100, tier => 'Silver',
                                %o } } }));
}

sub by_key {
    my %r;
    for (@{ $sb->state('salesforce', 'records', 'Contact')->{records} }) {
        push @{ $r{ $_->{fields}{Loyalty_Id__c} // '' } }, $_;
    }
    return \%r;
}
sub collections {
    my (%q) = @_;
    return [ grep { $_->{method} eq 'PATCH' }
             @{ $sb->requests(service => 'salesforce',
                              path => 'composite/sobjects', %q) } ];
}
# the records of every call since, for one key
sub sent {
    my ($key, $since) = @_;
    return [ grep { ($_->{Loyalty_Id__c} // '') eq $key }
             map { @{ JSON::PP->new->decode($_->{body})->{records} } }
             @{ collections(since => $since) } ];
}
sub dlq_count { scalar @{ $p->dlq('eu') } }
sub drained { wait_until(sub { $p->drained }, timeout => $_[0] // 30) }
# a counter summed over both workers
sub skipped {
    my ($reason) = @_;
    my $n = 0;
    for my $port (@mport) {
        my $m = HTTP::Tiny->new(timeout => 5)
                ->get("http://127.0.0.1:$port/metrics");
        $n += $1 if ($m->{content} // '') =~
            /^loyalty_worker_salesforce_skipped_total
              \{destination="sf",reason="\Q$reason\E"\}\ (\d+)$/mx;
    }
    return $n;
}

my $w1 = Loyalty::Test::Worker->new(config => sf_config(
    metrics => $mport[0], file => 'w1.yaml'));
my $w2 = Loyalty::Test::Worker->new(config => sf_config(
    metrics => $mport[1], file => 'w2.yaml'));

# --- 1. the same data twice: one write, the second acked unchanged --------

my $a1 = customer('cus_same');
is($a1->{status}, 202, 'first event accepted');
ok(drained(), 'first event delivered');
my $since = $sb->seq;
my $a2 = customer('cus_same');
isnt($a2->{id}, $a1->{id}, 'second event has its own id');
ok(drained(), 'second event finished');
is(scalar @{ by_key()->{cus_same}[0]{history} // [] }, 1,
   'one Salesforce write for the same data twice');
is(scalar @{ sent('cus_same', $since) }, 0,
   'no Collections call carried the unchanged record');
like($w1->log . $w2->log, qr/unchanged Contact: not sent/,
     'logged as unchanged');
my $state = { @{ $redis->cmd('HGETALL',
                              'loyalty:state:{sf:Contact:cus_same}') } };
like($state->{LastName} // '',
     qr/^2026-11-24T09:30:00\.000Z\|[0-9a-f]{16}$/,
     'state: field -> event time | hash') or diag explain $state;
is(skipped('unchanged_record'), 1, 'metrics: one record not sent');
is(skipped('unchanged_field'), 3, 'metrics: its three fields unchanged');
is(dlq_count(), 0, 'no dead letters');

# --- 2. one field changed: only it and the external id are sent ------------

$since = $sb->seq;
customer('cus_same', points_balance => 150);
ok(drained(), 'change delivered');
my $s = sent('cus_same', $since);
is(scalar @$s, 1, 'one record sent for the change');
is_deeply([ sort grep { $_ ne 'attributes' } keys %{ $s->[0] // {} } ],
          [ 'Loyalty_Id__c', 'Points__c' ],
          'the body carries only the changed field and the external id')
    or diag explain $s;
my $r = by_key()->{cus_same}[0];
is($r->{fields}{Points__c}, 150, 'new value written');
is($r->{fields}{LastName}, 'Lovelace', 'other fields kept');
is(scalar @{ $r->{history} }, 2, 'two writes in all');

# --- 3. out of order: the older event's fields are dropped -----------------

$since = $sb->seq;
my $new = customer('cus_order', at => '2026-11-24T10:00:00Z',
                   last_name => 'Newer', points_balance => 2, tier => 'Gold');
ok(drained(), 'newer event delivered');
my $old = customer('cus_order', at => '2026-11-24T09:00:00Z',
                   last_name => 'Older', points_balance => 1,
                   tier => 'Bronze');
ok(drained(), 'older event finished');
my $o = by_key()->{cus_order}[0]{fields} // {};
is($o->{LastName}, 'Newer', 'older event did not overwrite LastName');
is($o->{Points__c}, 2, 'older event did not overwrite Points__c');
is($o->{Tier__c}, 'Gold', 'older event did not overwrite Tier__c');
is(scalar @{ sent('cus_order', $since) }, 1,
   'only the newer event was sent');
is(dlq_count(), 0, 'both acked, none dead-lettered');
is(skipped('older_field'), 3, 'metrics: three older fields dropped');
like($w1->log . $w2->log, qr/Contact\.LastName not written: a newer value/,
     'the dropped field is logged by name');

# an older event with one value that is new: nothing older is written
$since = $sb->seq;
customer('cus_order', at => '2026-11-24T09:30:00Z', last_name => 'Newer',
         points_balance => 2, tier => 'Gold');
ok(drained(), 'older same-valued event finished');
is(scalar @{ sent('cus_order', $since) }, 0, 'nothing sent for it');

# --- 4. two workers, 200 shuffled events for 5 records ----------------------

my @keys = map { "cus_r$_" } 1 .. 5;
my @tiers = qw(Bronze Silver Gold);
my @secs = shuffle(0 .. 199);             # distinct times: one newest
my (@events, %newest);
for my $i (0 .. 199) {
    my $k = $keys[int rand @keys];
    my $at = sprintf('2026-11-24T11:%02d:%02dZ', int($secs[$i] / 60),
                     $secs[$i] % 60);
    my %v = (last_name => 'N' . int(rand 4), points_balance => int(rand 5),
             tier => $tiers[int rand 3]);
    push @events, [ $k, $at, \%v ];
    $newest{$k} = [ $at, \%v ] if !$newest{$k} || $newest{$k}[0] lt $at;
}
for my $e (shuffle @events) {
    my $res = customer($e->[0], at => $e->[1], %{ $e->[2] });
    $res->{status} == 202 or diag "shuffled: $res->{status}";
}
ok(drained(60), '200 shuffled events finished');
my $recs = by_key();
for my $k (sort keys %newest) {
    my $f = $recs->{$k}[0]{fields} // {};
    my $v = $newest{$k}[1];
    is_deeply([ $f->{LastName}, $f->{Points__c}, $f->{Tier__c} ],
              [ $v->{last_name}, $v->{points_balance}, $v->{tier} ],
              "$k: every field holds the newest event's value");
}
is(dlq_count(), 0, 'none dead-lettered');
diag(skipped('locked') . ' deliveries retried for a lease held elsewhere');

# --- 5. a failed write: retried, lands, the state was not advanced ---------

customer('cus_fail', points_balance => 1);
ok(drained(), 'cus_fail created');
$sb->action('salesforce', 'inject_error', { object => 'Contact',
    value => 'cus_fail', statusCode => 'UNABLE_TO_LOCK_ROW',
    message => 'unable to obtain exclusive access to this record' });
$since = $sb->seq;
customer('cus_fail', points_balance => 4242);
ok(drained(), 'failed write finished');
is(by_key()->{cus_fail}[0]{fields}{Points__c}, 4242,
   'retried and landed');
is(scalar(grep { ($_->{Points__c} // 0) == 4242 }
          @{ sent('cus_fail', $since) }), 2,
   'the retry sent the field again (state not advanced by the failure)');
my $errs = $sb->state('salesforce', 'errors');
my ($e) = grep { $_->{statusCode} eq 'UNABLE_TO_LOCK_ROW' }
          @{ ref $errs eq 'HASH' ? $errs->{errors} : $errs };
is($e->{hits}, 1, 'the injected error was hit once');
is(dlq_count(), 0, 'not dead-lettered');

# --- metrics, leases, logs ---------------------------------------------------

is(scalar @{ $redis->cmd('KEYS', 'loyalty:state:*:lock') }, 0,
   'every lease released');
unlike($w1->log . $w2->log, qr/sandbox-client-secret|00D\w+!/,
       'no secret or token in the logs');

is($w1->stop, 0, 'worker 1 stops cleanly');
is($w2->stop, 0, 'worker 2 stops cleanly');

# --- a backlog of one record: coalesced, each field by its own time ---------

sub partial {
    my ($at, %c) = @_;
    return $p->send('eu', body => $JSON->encode({
        type => 'customer.updated', timestamp => $at,
        data => { customer => { ext_id => 'cus_co', %c } } }));
}
partial('2026-11-24T10:00:01Z', last_name => 'Alpha', points_balance => 1);
partial('2026-11-24T10:00:03Z', points_balance => 3);
partial('2026-11-24T10:00:02Z', last_name => 'Gamma', points_balance => 2);
$since = $sb->seq;
my $w3 = Loyalty::Test::Worker->new(config => sf_config(file => 'w3.yaml'));
ok(drained(), 'the backlog of three events drained');
my $co = sent('cus_co', $since);
is(scalar @$co, 1, 'three events of one record: one record written');
is($co->[0]{LastName}, 'Gamma', '... LastName from the newest event that '
   . 'has it (10:00:02)');
is($co->[0]{Points__c}, 3, '... Points__c from the newest (10:00:03), '
   . 'though it came second');
is(() = $w3->log =~ /coalesced with another event/g, 2,
   'two events coalesced into the first');
$since = $sb->seq;
partial('2026-11-24T10:00:01.500Z', last_name => 'Delta');
partial('2026-11-24T10:00:04Z', points_balance => 4);
ok(drained(), 'two more drained');
$r = by_key()->{cus_co}[0]{fields};
is($r->{LastName}, 'Gamma', 'a later-arriving LastName older than the '
   . 'coalesced one is not written (per-field times kept)');
is($r->{Points__c}, 4, 'a newer Points__c is');
ok(!(grep { exists $_->{LastName} } @{ sent('cus_co', $since) }),
   'no call carried the older LastName');
is($w3->stop, 0, 'worker 3 stops cleanly');

done_testing;
