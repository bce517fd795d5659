#!/usr/bin/perl

# End to end to Salesforce, record targets: signed webhooks -> nginx ->
# Redis -> the worker -> the sandbox, five flows to one destination.
#  - loyalty events -> Loyalty_Event__c (append: one record per event id,
#    no delta state) with the Contact lookup by external id; a lookup to
#    a customer not written yet is retried until the customer exists; a
#    duplicate stream entry and an injected transient error still leave
#    exactly one record;
#  - Tasks upserted by their own external id with Who -> the Contact;
#  - platform events published through the create collection, with and
#    without OPERATION_ENQUEUED;
#  - lifecycle: a Lead until the first order.paid, then the Contact with
#    the full profile, the Lead marked converted; an older event after
#    the promotion goes to the Contact, never to the Lead;
#  - Person Accounts by external id with a fixed RecordTypeId.

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
my $JSON = JSON::PP->new->canonical;

$sb->config('salesforce', {
    field_types => { Loyalty_Event__c => { Points__c => 'number' } },
});

my $secret_file = "$dir/sf.secret";
spew($secret_file, "sandbox-client-secret\n", 0600);

sub dest {
    my ($name) = @_;
    return "  - name: $name\n    type: salesforce\n"
        . "    url: " . $sb->url('/salesforce') . "\n"
        . "    auth: client_credentials\n"
        . "    client_id: sandbox-client-id\n"
        . "    client_secret_file: $secret_file\n"
        . "    batch_window_ms: 50\n    timeout_ms: 5000\n"
        . "    concurrency: 2\n";
}

my $cfg = "$dir/targets.yaml";
spew($cfg, "redis: " . $redis->addr . "\nstores: [eu]\ndestinations:\n"
    . dest('sf')
    . <<'Y'
flows:
  - to: sf
    on: [customer.updated, order.paid]
    object: Contact
    external_id: Loyalty_Id__c
    key: ext_id
    lifecycle:
      object: Lead
      until: [order.paid]
      converted:
        - { field: Status, value: Closed - Converted }
    fields:
      - { field: FirstName, from: customer.first_name, type: text }
      - { field: LastName, from: customer.last_name, type: text }
      - { field: Email, from: customer.email, type: email }
      - { field: Tier__c, from: customer.tier, type: text }
      - { field: Points__c, from: customer.points_balance, type: integer }
      - { field: Last_Order__c, from: order.id, type: text }
  - to: sf
    on: [points.earned, points.redeemed]
    object: Loyalty_Event__c
    external_id: Event_Id__c
    key: id
    append: true
    fields:
      - { field: Type__c, from: $type, type: text }
      - { field: Points__c, from: points, type: integer }
      - { field: Occurred__c, from: $occurred, type: datetime }
      - { field: Store__c, from: $store, type: text }
      - { field: Correlation_Id__c, from: $corr, type: text }
      - { field: Contact__r, from: $ext_id,
          lookup: { object: Contact, external_id: Loyalty_Id__c } }
  - to: sf
    on: [reward.issued]
    object: Task
    external_id: Loyalty_Task_Id__c
    key: id
    append: true
    fields:
      - { field: Subject, from: reward.name, type: text }
      - { field: Status, value: Completed }
      - { field: ActivityDate, from: $occurred, type: date }
      - { field: Who, from: $ext_id,
          lookup: { object: Contact, external_id: Loyalty_Id__c } }
  - to: sf
    on: [points.adjusted]
    object: Loyalty_Update__e
    fields:
      - { field: Customer_Ext_Id__c, from: $ext_id, type: text }
      - { field: Points__c, from: points, type: integer }
      - { field: Event_Id__c, from: $id, type: text }
  - to: sf
    on: [customer.created]
    object: Account
    external_id: Loyalty_Id__c
    key: ext_id
    fields:
      - { field: FirstName, from: customer.first_name, type: text }
      - { field: LastName, from: customer.last_name, type: text }
      - { field: PersonEmail, from: customer.email, type: email }
      - { field: RecordTypeId, value: 012000000000PaAAA }
Y
    . "claim_timeout_ms: 10000\nclaim_interval_ms: 300\nblock_ms: 200\n"
    . "batch: 1000\nretry_base_ms: 100\nretry_cap_ms: 300\n"
    . "retry_interval_ms: 50\nmax_attempts: 1000\nlog_level: info\n");

my ($rc, $out) = Loyalty::Test::Worker::check_config($cfg);
is($rc, 0, 'the configuration passes -t') or diag($out);

my $w = Loyalty::Test::Worker->new(config => $cfg);

sub send_event {
    my ($type, $data, %o) = @_;
    return $p->send('eu', (exists $o{id} ? (id => $o{id}) : ()),
        body => $JSON->encode({ type => $type,
            timestamp => $o{at} // '2026-11-24T09:30:00Z', data => $data }));
}
sub records {
    my ($obj) = @_;
    return $sb->state('salesforce', 'records', $obj)->{records};
}
sub one {
    my ($obj, $field, $value) = @_;
    my @r = grep { ($_->{fields}{$field} // '') eq $value } @{records($obj)};
    return wantarray ? @r : $r[0];
}
sub drained { wait_until(sub { $p->drained }, timeout => $_[0] // 30) }

# --- lifecycle: a Lead until the first paid order ---------------------------

my $r = send_event('customer.updated', { customer => {
    ext_id => 'cus_1', first_name => 'Ada', last_name => 'Lovelace',
    email => 'ada@example.com', points_balance => 120, tier => 'Gold' } });
is($r->{status}, 202, 'customer accepted');
ok(drained(), 'delivered');
my $lead = one('Lead', 'Loyalty_Id__c', 'cus_1');
ok($lead, 'before any paid order the person is a Lead');
is($lead->{fields}{LastName}, 'Lovelace', 'with the mapped fields');
is(scalar @{records('Contact')}, 0, 'no Contact yet');

send_event('customer.updated', { customer => {
    ext_id => 'cus_1', points_balance => 150 } },
    at => '2026-11-24T09:40:00Z');
ok(drained(), 'a change delivered');
is(one('Lead', 'Loyalty_Id__c', 'cus_1')->{fields}{Points__c}, 150,
   'the Lead follows the changes');

# an event for a customer that is only a Lead: its Contact lookup fails
# per record (INVALID_FIELD "Foreign key external ID ... not found") and
# is retried, not dead-lettered
my $ev1 = send_event('points.earned', { customer => { ext_id => 'cus_1' },
                                        points => 30 },
                     at => '2026-11-24T09:45:00Z');
ok(wait_until(sub { $w->log =~ /Loyalty_Event__c not written \(transient\): INVALID_FIELD/ },
              timeout => 15),
   'a lookup to a missing Contact is a transient failure');
is(scalar @{ $p->dlq('eu') }, 0, 'nothing dead-lettered');

$r = send_event('order.paid', { customer => { ext_id => 'cus_1' },
                                order => { id => 'ord_1' } },
                at => '2026-11-24T10:00:00Z');
ok(drained(), 'the paid order and the waiting event delivered');

my $contact = one('Contact', 'Loyalty_Id__c', 'cus_1');
ok($contact, 'the first paid order makes the person a Contact');
is_deeply([ map { $contact->{fields}{$_} }
            qw(FirstName LastName Email Tier__c Points__c Last_Order__c) ],
          [ 'Ada', 'Lovelace', 'ada@example.com', 'Gold', 150, 'ord_1' ],
          'the Contact gets the full profile, not only the order');
$lead = one('Lead', 'Loyalty_Id__c', 'cus_1');
is($lead->{fields}{Status}, 'Closed - Converted', 'the Lead is marked');
my $lead_writes = $lead->{writes};
is($lead->{fields}{Last_Order__c}, undef,
   'the promoting event is not written to the Lead');
my $lc = { @{ $redis->cmd('HGETALL', 'loyalty:lifecycle:{sf:Lead:cus_1}') } };
is($lc->{by}, $r->{id}, 'the promotion is kept with the promoting event');
is($lc->{converted}, '1', 'and marked done');
like($lc->{'v:LastName'} // '', qr/^2026-11-24T09:30:00\.000Z1Lovelace$/,
     "the Lead's values are kept with their event time");
my $cs = { @{ $redis->cmd('HGETALL', 'loyalty:state:{sf:Contact:cus_1}') } };
like($cs->{LastName} // '', qr/^2026-11-24T09:30:00\.000Z\|/,
     "a value from the Lead keeps the Lead's time in the Contact's state");
like($cs->{Last_Order__c} // '', qr/^2026-11-24T10:00:00\.000Z\|/,
     "the promoting event's own value has its time");

# the event record found its Contact after the promotion
my $e1 = one('Loyalty_Event__c', 'Event_Id__c', $ev1->{id});
ok($e1, 'the waiting event record was written');
is($e1->{fields}{Contact__c}, $contact->{Id},
   'with the Contact lookup resolved by external id');
is_deeply([ map { $e1->{fields}{$_} }
            qw(Type__c Points__c Store__c Correlation_Id__c) ],
          [ 'points.earned', 30, 'eu', $ev1->{corr} ],
          'type, points, store, correlation id');
like($e1->{fields}{Occurred__c}, qr/^2026-11-24T09:45:00/, 'occurred at');
is($redis->cmd('EXISTS', "loyalty:state:{sf:Loyalty_Event__c:"
                         . $ev1->{id} . '}'), 0,
   'append: no delta state per event record');

# older than the promotion, arriving after it: the Contact, never the Lead
send_event('customer.updated', { customer => {
    ext_id => 'cus_1', last_name => 'Byron' } },
    at => '2026-11-24T09:35:00Z');
ok(drained(), 'a late older event delivered');
is(one('Lead', 'Loyalty_Id__c', 'cus_1')->{writes}, $lead_writes,
   'no Lead write after the promotion');
is(one('Contact', 'Loyalty_Id__c', 'cus_1')->{fields}{LastName}, 'Byron',
   'it went to the Contact');
send_event('order.paid', { customer => { ext_id => 'cus_1' },
                           order => { id => 'ord_2' } },
           at => '2026-11-24T11:00:00Z');
ok(drained(), 'a second paid order delivered');
is(one('Contact', 'Loyalty_Id__c', 'cus_1')->{fields}{Last_Order__c},
   'ord_2', 'a Contact stays a Contact');
is(one('Lead', 'Loyalty_Id__c', 'cus_1')->{writes}, $lead_writes,
   'and its Lead is left alone');

# a first event that is already a paid order: no Lead to mark
send_event('order.paid', { customer => { ext_id => 'cus_2',
                                         last_name => 'Hopper' },
                           order => { id => 'ord_9' } });
ok(drained(), 'a paid order for a new person delivered');
ok(one('Contact', 'Loyalty_Id__c', 'cus_2'), 'straight to a Contact');
ok(!one('Lead', 'Loyalty_Id__c', 'cus_2'), 'no Lead made to be marked');

# two workers, shuffled: every person ends as a Contact with the newest
# values, a Lead (when one was made) is marked and never written after
my $w2 = Loyalty::Test::Worker->new(config => $cfg);
my @sends;
for my $i (1 .. 8) {
    push @sends, [ 'order.paid', { customer => { ext_id => "mix_$i" },
                                   order => { id => "ord_$i" } },
                   at => '2026-11-24T09:02:30Z' ];
    push @sends, map { [ 'customer.updated',
        { customer => { ext_id => "mix_$i", last_name => "N$_",
                        points_balance => 10 * $_ } },
        at => "2026-11-24T09:0$_:00Z" ] } 0 .. 3;
}
# half of them are Leads first
send_event('customer.updated', { customer => { ext_id => "mix_$_",
    last_name => 'N0', points_balance => 0 } },
    at => '2026-11-24T08:59:00Z') for 1 .. 4;
ok(drained(), 'four Leads first');
srand(240);
for my $j (reverse 1 .. $#sends) {
    my $k = int rand($j + 1);
    @sends[$j, $k] = @sends[$k, $j];
}
send_event(@$_) for @sends;
ok(drained(60), 'shuffled events for 8 persons over two workers delivered');
my ($good, $leads) = (0, 0);
for my $i (1 .. 8) {
    my @c = one('Contact', 'Loyalty_Id__c', "mix_$i");
    my ($l) = one('Lead', 'Loyalty_Id__c', "mix_$i");
    my $f = @c == 1 ? $c[0]{fields} : {};
    my $ok = @c == 1 && ($f->{LastName} // '') eq 'N3'
        && ($f->{Points__c} // -1) == 30
        && ($f->{Last_Order__c} // '') eq "ord_$i";
    if ($l) {
        $leads++;
        my $last = $l->{history}[-1]{fields};
        $ok &&= ($l->{fields}{Status} // '') eq 'Closed - Converted'
            && join(',', sort keys %$last) eq 'Status';
    }
    $good++ if $ok;
    diag explain { contacts => \@c, lead => $l } unless $ok;
}
is($good, 8, 'each person: one Contact with the newest values; a Lead '
   . 'marked last');
cmp_ok($leads, '>=', 4, "the Leads made first were marked ($leads)");
is(scalar @{ $p->dlq('eu') }, 0, 'nothing dead-lettered');
$w2->stop;

# the promotion never makes a Contact older than its Lead (one worker,
# deterministic):
#  - a paid order older than the Lead's last values (sent late): the
#    Contact takes the Lead's newer values, not the order's older ones;
sub contact { one('Contact', 'Loyalty_Id__c', $_[0]) // { fields => {} } }
send_event('customer.updated', { customer => { ext_id => 'late_1',
    last_name => 'Newer', points_balance => 500 } },
    at => '2026-11-24T10:00:00Z');
ok(drained(), 'late_1: a Lead with newer values');
send_event('order.paid', { customer => { ext_id => 'late_1',
    last_name => 'Older', points_balance => 100 },
    order => { id => 'ord_late' } }, at => '2026-11-24T09:00:00Z');
ok(drained(), 'late_1: an older paid order promotes');
is_deeply([ map { contact('late_1')->{fields}{$_} }
            qw(LastName Points__c Last_Order__c) ],
          [ 'Newer', 500, 'ord_late' ],
          "late_1: the Lead's newer values win over the promoting event's "
          . 'older ones; its own other values are written');
like({ @{ $redis->cmd('HGETALL', 'loyalty:state:{sf:Contact:late_1}') }
     }->{LastName} // '', qr/^2026-11-24T10:00:00\.000Z\|/,
     "late_1: with the Lead's event time in the Contact's state");

#  - a Lead value confirmed by a later event (unchanged, not sent) keeps
#    that later time for the Contact: an event older than it but newer
#    than the first one cannot overwrite it after the promotion;
for (['09:00', 'Gold', 1], ['09:10', 'Gold', 2]) {
    send_event('customer.updated', { customer => { ext_id => 'late_2',
        tier => $_->[1], last_name => "L$_->[2]" } },
        at => "2026-11-24T$_->[0]:00Z");
    ok(drained(), "late_2: Lead event at $_->[0]");
}
send_event('order.paid', { customer => { ext_id => 'late_2' },
                           order => { id => 'ord_l2' } },
           at => '2026-11-24T09:20:00Z');
ok(drained(), 'late_2: promoted');
send_event('customer.updated', { customer => { ext_id => 'late_2',
    tier => 'Silver', last_name => 'L0' } }, at => '2026-11-24T09:05:00Z');
ok(drained(), 'late_2: an event older than the confirmation, sent late');
is_deeply([ map { contact('late_2')->{fields}{$_} } qw(Tier__c LastName) ],
          [ 'Gold', 'L2' ], 'late_2: the Contact keeps the newer Gold');

#  - a Lead write in flight when the promotion is decided: the Contact
#    gets its value (the Lead's values are read again after the marking)
send_event('customer.updated', { customer => { ext_id => 'late_3',
    last_name => 'First' } }, at => '2026-11-24T08:00:00Z');
ok(drained(), 'late_3: a Lead');
$sb->fault([ { service => 'salesforce', path => 'composite',
               latency_ms => 1500, times => 1 } ]);
send_event('customer.updated', { customer => { ext_id => 'late_3',
    last_name => 'Second' } }, at => '2026-11-24T09:10:00Z');
ok(wait_until(sub { $redis->cmd('EXISTS',
                    'loyalty:state:{sf:Lead:late_3}:lock') }, timeout => 5),
   'late_3: the Lead write is in flight (slow answer)');
send_event('order.paid', { customer => { ext_id => 'late_3' },
                           order => { id => 'ord_l3' } },
           at => '2026-11-24T09:05:00Z');
ok(drained(), 'late_3: promoted while the Lead was being written');
ok(!(grep { ($_->{times} // 0) > 0 } @{ $sb->faults }),
   'late_3: the slow answer was hit');
is_deeply([ map { contact('late_3')->{fields}{$_} }
            qw(LastName Last_Order__c) ], [ 'Second', 'ord_l3' ],
          'late_3: the Contact has the value of the Lead write in flight');
is(one('Lead', 'Loyalty_Id__c', 'late_3')->{fields}{Status},
   'Closed - Converted', 'late_3: the Lead is marked');

# --- event records: exactly once -------------------------------------------

my $e2 = send_event('points.redeemed', { customer => { ext_id => 'cus_1' },
                                         points => -50 });
ok(drained(), 'points.redeemed delivered');
my $dup = send_event('points.redeemed', { customer => { ext_id => 'cus_1' },
                                          points => -50 }, id => $e2->{id});
ok(drained(), 'the same webhook again');
# the same envelope as a second stream entry (a replay): upserted again
Loyalty::Test::Worker::xadd_envelope($redis, 'eu', $e2->{id},
    type => 'points.redeemed', ext_id => 'cus_1',
    data => '{"customer":{"ext_id":"cus_1"},"points":-50}');
ok(drained(), 'a duplicate stream entry delivered');
my @e2 = one('Loyalty_Event__c', 'Event_Id__c', $e2->{id});
is(scalar @e2, 1, 'one record per event id, whatever the duplicates');
is($e2[0]{fields}{Points__c}, -50, 'points');

$sb->action('salesforce', 'inject_error', { object => 'Loyalty_Event__c',
    field => 'Event_Id__c', value => 'evt_locked',
    statusCode => 'UNABLE_TO_LOCK_ROW', times => 2 });
send_event('points.earned', { customer => { ext_id => 'cus_1' },
                              points => 5 }, id => 'evt_locked');
ok(drained(), 'an event with two transient failures delivered');
is(scalar(my @l = one('Loyalty_Event__c', 'Event_Id__c', 'evt_locked')), 1,
   'written once after its retries');

# --- Tasks ------------------------------------------------------------------

my $t = send_event('reward.issued', { customer => { ext_id => 'cus_1' },
                                      reward => { name => 'Free coffee' } });
ok(drained(), 'reward.issued delivered');
my $task = one('Task', 'Loyalty_Task_Id__c', $t->{id});
ok($task, 'a Task upserted by its external id');
is($task->{fields}{WhoId}, $contact->{Id}, 'Who is the Contact');
is_deeply([ map { $task->{fields}{$_} } qw(Subject Status ActivityDate) ],
          [ 'Free coffee', 'Completed', '2026-11-24' ],
          'Subject, fixed Status, ActivityDate');
my $body = (grep { $_->{path} =~ m{/Task/} }
            @{ $sb->requests(service => 'salesforce',
                             path => 'composite/sobjects') })[-1]{body};
like($body, qr/"Who":\{"attributes":\{"type":"Contact"\},"Loyalty_Id__c":"cus_1"\}/,
     'the polymorphic Who carries attributes.type');

# --- platform events --------------------------------------------------------

my $u1 = send_event('points.adjusted', { customer => { ext_id => 'cus_1' },
                                         points => 7 });
ok(drained(), 'points.adjusted delivered');
$sb->config('salesforce', { enqueue_events => JSON::PP::true });
my $u2 = send_event('points.adjusted', { customer => { ext_id => 'cus_1' },
                                         points => 8 });
ok(drained(), 'an enqueued publish delivered');
my @pe = grep { $_->{type} eq 'Loyalty_Update__e' }
         @{ $sb->state('salesforce', 'events')->{events} };
is_deeply([ map { $_->{fields}{Event_Id__c} } @pe ], [ $u1->{id}, $u2->{id} ],
          'both published once, OPERATION_ENQUEUED counted as success');
is_deeply($pe[0]{fields}, { Customer_Ext_Id__c => 'cus_1', Points__c => 7,
                            Event_Id__c => $u1->{id} },
          'with the mapped fields, no external id');
ok((grep { $_->{method} eq 'POST' && $_->{path} =~ m{/composite/sobjects$} }
    @{ $sb->requests(service => 'salesforce') }),
   'through POST composite/sobjects');
like($w->log, qr/published Loyalty_Update__e/, 'logged as published');
is(scalar @{ $p->dlq('eu') }, 0, 'still nothing dead-lettered');

# --- Person Accounts --------------------------------------------------------

send_event('customer.created', { customer => { ext_id => 'cus_7',
    first_name => 'Grace', last_name => 'Hopper',
    email => 'grace@example.com' } });
ok(drained(), 'customer.created delivered');
my $acct = one('Account', 'Loyalty_Id__c', 'cus_7');
ok($acct && $acct->{fields}{IsPersonAccount}, 'a Person Account');
is_deeply([ map { $acct->{fields}{$_} }
            qw(FirstName LastName PersonEmail RecordTypeId) ],
          [ 'Grace', 'Hopper', 'grace@example.com', '012000000000PaAAA' ],
          'person fields and the fixed record type');
send_event('customer.created', { customer => { ext_id => 'cus_7',
    first_name => 'Grace', last_name => 'Hopper',
    email => 'grace.hopper@example.com' } });
ok(drained(), 'a second event for the person');
is(scalar(my @a = one('Account', 'Loyalty_Id__c', 'cus_7')), 1,
   'upserted by external id: still one Account');
is(one('Account', 'Loyalty_Id__c', 'cus_7')->{fields}{PersonEmail},
   'grace.hopper@example.com', 'updated');

unlike($w->log, qr/ada\@example|grace\@example/, 'no e-mail in the log');

done_testing();
