#!/usr/bin/perl

# The identity map, end to end (signed webhooks -> nginx -> Redis ->
# worker -> the sandbox): two stores send customer events for one person
# with their own store customer ids and the same e-mail -> ONE Contact,
# keyed by the person id (which derives from the first key seen); an
# event record carries the person id ($person).  An ambiguous event (the
# e-mail of person A, the external id of person B) is parked in the
# conflicts stream and changes nothing; after a person merged the
# records in the CRM, `conflicts resolve --merge` merges the persons in
# the map and replays the event: one record, and every key of both now
# lands there.  A retry and a restart keep the person id; an event with
# no identity key is dead-lettered.  No e-mail address is logged.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Digest::SHA qw(sha256_hex);
use JSON::PP ();
use Test::More;

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until spew free_port);
use Loyalty::Test::Worker qw(worker_bin);
use Loyalty::Test::HTTP qw(request);

my $p = Loyalty::Test::Pipeline->new(stores => ['eu', 'us'],
                                     receivers => []);
my $sb = $p->sandbox;
my $dir = $p->dir;
my $redis = $p->redis;
my $mport = free_port();

my $dest = $p->sf_destination;
my $cfg = "$dir/sf.yaml";
spew($cfg, "redis: " . $redis->addr . "\nstores: [eu, us]\n" . <<"Y");
identity:
  match: [store_cid, ext_id, email, phone]
destinations:
  - name: crm
$dest
flows:
  - to: crm
    on: [customer.updated]
    object: Contact
    external_id: Loyalty_Id__c
    key: person
    fields:
      - { field: Email, from: customer.email, type: email }
      - { field: LastName, from: customer.last_name, type: text }
  - to: crm
    on: [points.earned, customer.updated]
    object: Loyalty_Event__c
    external_id: Event_Id__c
    key: id
    fields:
      - { field: Person__c, from: \$person, type: text }
      - { field: Type__c, from: \$type, type: text }
claim_timeout_ms: 10000
block_ms: 200
retry_base_ms: 50
retry_cap_ms: 200
retry_interval_ms: 50
max_attempts: 5
metrics: 127.0.0.1:$mport
Y

# the id a new person gets: sha256 of its highest-priority key
sub person_of { 'p_' . substr(sha256_hex($_[0]), 0, 24) }

sub send_event {
    my ($store, $type, %c) = @_;
    my $r = $p->send($store, type => $type, data => { customer => \%c,
        ($type eq 'points.earned' ? (points => { delta => 10 }) : ()) });
    die "edge: $r->{status}" unless $r->{status} == 202;
    return $r;
}
sub customer { send_event($_[0], 'customer.updated', @_[1 .. $#_]) }

sub records {
    my ($object, $field) = @_;
    my %by;
    for (@{ $sb->state('salesforce', 'records', $object)->{records} }) {
        push @{ $by{ $_->{fields}{$field} // '' } }, $_;
    }
    return \%by;
}
sub contacts { records('Contact', 'Loyalty_Id__c') }
sub drained { wait_until(sub { $p->drained }, timeout => $_[0] // 15) }
sub hget { $redis->cmd('HGET', @_) // '' }
sub metric {
    my ($outcome) = @_;
    my $m = request(port => $mport, method => 'GET', path => '/metrics');
    return ($m->{body} // '') =~
        /^loyalty_worker_identity_resolutions_total\{outcome="$outcome"\}
          \ (\d+)$/mx ? $1 : -1;
}
sub cli {
    my @a = map { "'$_'" } @_;
    my $bin = worker_bin();
    my $out = `$bin -c '$cfg' @a 2>&1`;
    return ($? >> 8, $out);
}

my $A = person_of('cid:eu:eu-1');
my $B = person_of('cid:eu:eu-2');
my $log = '';

my $w = Loyalty::Test::Worker->new(config => $cfg);

# --- 1. two stores, one person: one Contact --------------------------------

my $first = customer('eu', store_cid => 'eu-1', email => 'ada@example.com',
                     last_name => 'Lovelace');
ok(wait_until(sub { contacts()->{$A} && $p->drained }, timeout => 15),
   'eu: a Contact keyed by the new person id (from the store customer id)');
is(records('Loyalty_Event__c', 'Event_Id__c')->{ $first->{id} }[0]{fields}
   {Person__c}, $A, 'its event record (second flow) has the same person');
is(metric('new'), 1, 'two flows, one resolution of the event');

customer('us', store_cid => 'us-9', email => 'ada@example.com',
         last_name => 'Lovelace-US');
ok(drained(), 'us: delivered');
my $c = contacts();
is(scalar keys %$c, 1, 'the second store\'s customer is the same Contact')
    or diag explain [ keys %$c ];
is($c->{$A}[0]{fields}{LastName}, 'Lovelace-US', 'updated by the us event');
is($c->{$A}[0]{writes}, 2, 'two writes to the one record');

is(hget('loyalty:{eu}:identity', 'cid:eu-1'), $A, 'eu map: cid -> person');
is(hget('loyalty:{us}:identity', 'cid:us-9'), $A, 'us map: cid -> person');
is(hget('loyalty:identity', 'email:ada@example.com'), $A,
   'global map: e-mail -> person');
is(hget('loyalty:{us}:identity', 'email:ada@example.com'), $A,
   'the us store\'s own view has the e-mail too');
is($redis->cmd('HGET', 'loyalty:identity', 'cid:us-9'), undef,
   'a store customer id is never global');
is(metric('new'), 1, 'metrics: one new person');
is(metric('matched'), 1, 'metrics: one match (two flows)');

# an event record carries the customer's person id
my $pts = send_event('us', 'points.earned', store_cid => 'us-9');
ok(wait_until(sub { records('Loyalty_Event__c', 'Event_Id__c')
                    ->{ $pts->{id} } && $p->drained }, timeout => 15),
   'points.earned: an event record');
is(records('Loyalty_Event__c', 'Event_Id__c')->{ $pts->{id} }[0]{fields}
   {Person__c}, $A, '... with $person: the Contact\'s person id');

# --- 2. a second person; then an ambiguous event ---------------------------

customer('eu', store_cid => 'eu-2', ext_id => 'cus_B',
         email => 'bob@example.com', last_name => 'Babbage');
ok(wait_until(sub { contacts()->{$B} && $p->drained }, timeout => 15),
   'person B: its own Contact');
my %writes = map { $_ => $c->{$_}[0]{writes} } keys %{ $c = contacts() };
my $maplen = $redis->cmd('HLEN', 'loyalty:identity');

my $amb = customer('us', ext_id => 'cus_B', email => 'ada@example.com',
                   last_name => 'Merged');
ok(wait_until(sub { $redis->xlen('loyalty:{us}:conflicts') == 1
                    && $p->drained }, timeout => 15),
   'ambiguous (A\'s e-mail, B\'s external id): parked in the conflicts');
$c = contacts();
is(scalar keys %$c, 2, 'no record created');
is_deeply({ map { $_ => $c->{$_}[0]{writes} } keys %$c }, \%writes,
          'no record changed');
is($redis->cmd('HLEN', 'loyalty:identity'), $maplen,
   'nothing registered in the map');
is($redis->xlen('loyalty:{us}:dlq'), 0, 'not a dead letter');
my ($park) = @{ $redis->stream('loyalty:{us}:conflicts') };
is($park->[1]{id}, $amb->{id}, 'the parked event');
is($park->[1]{dlq_reason}, 'conflict', 'reason: conflict');
is($park->[1]{error},
   "identity: ambiguous match: ext_id -> $B, email -> $A",
   'the error names the key kinds and the persons, no values');
is(metric('ambiguous'), 1, 'metrics: one ambiguous match (two flows)');
ok(!records('Loyalty_Event__c', 'Event_Id__c')->{ $amb->{id} },
   'no event record either');

# --- 3. a person merges the records in the CRM, then --merge ---------------

$sb->action('salesforce', 'crm_delete', { object => 'Contact',
    field => 'Loyalty_Id__c', value => $A });
is(scalar keys %{ contacts() }, 1, 'the CRM user merged A into B');

my ($rc, $out) = cli(qw(conflicts resolve us), $park->[0], '--merge');
is($rc, 0, 'conflicts resolve --merge: exit 0') or diag $out;
like($out, qr/^merged \Q$A\E into \Q$B\E$/m,
     'B (found by the higher-priority rule, ext_id) survives');
like($out, qr/^replayed /m, 'and the event is replayed');
ok(wait_until(sub { (contacts()->{$B}[0]{fields}{LastName} // '') eq
                    'Merged' && $p->drained }, timeout => 15),
   'the replayed event lands on the survivor');
is(records('Loyalty_Event__c', 'Event_Id__c')->{ $amb->{id} }[0]{fields}
   {Person__c}, $B, 'its event record names the survivor');
$c = contacts();
is(scalar keys %$c, 1, 'one record');
is($c->{$B}[0]{fields}{Email}, 'ada@example.com', 'with the e-mail');
is($redis->xlen('loyalty:{us}:conflicts'), 0, 'the conflict is resolved');

is(hget('loyalty:identity:merged', $A), $B, 'merged-into record A -> B');
is(hget('loyalty:{eu}:identity', 'cid:eu-1'), $B, 'eu: A\'s cid -> B');
is(hget('loyalty:{us}:identity', 'cid:us-9'), $B, 'us: A\'s cid -> B');
is(hget('loyalty:identity', 'email:ada@example.com'), $B,
   'global: A\'s e-mail -> B');
is($redis->cmd('EXISTS', "loyalty:identity:keys:$A"), 0,
   'A has no keys left');

# late keys of A follow
customer('eu', store_cid => 'eu-1', last_name => 'Late');
ok(wait_until(sub { (contacts()->{$B}[0]{fields}{LastName} // '') eq 'Late'
                    && $p->drained }, timeout => 15),
   'an event with A\'s old store customer id updates B\'s record');
is(scalar keys %{ contacts() }, 1, 'still one record');

($rc, $out) = cli(qw(conflicts resolve us 1-0 --merge));
is($rc, 1, '--merge of an unknown entry: exit 1');
($rc, $out) = cli(qw(conflicts resolve us --all --merge));
is($rc, 2, '--merge takes one entry, not --all');
($rc, $out) = cli(qw(dlq replay us 1-0 --merge));
is($rc, 2, '--merge is for conflicts only');
($rc, $out) = cli(qw(conflicts show us --all));
is($rc, 2, 'show still takes one entry');

# --- 4. a retry and a restart keep the person id ---------------------------

my $C = person_of('cid:us:us-3');
$sb->action('salesforce', 'inject_error', { object => 'Contact',
    field => 'Loyalty_Id__c', value => $C,
    statusCode => 'UNABLE_TO_LOCK_ROW', times => 1 });
my $new = metric('new');
customer('us', store_cid => 'us-3', email => 'cy@example.com',
         last_name => 'Cy');
ok(wait_until(sub { contacts()->{$C} && $p->drained }, timeout => 15),
   'a transient failure, then the retry lands');
is(scalar @{ contacts()->{$C} }, 1, 'one record for the person');
is(metric('new'), $new + 1, 'the person was new once');
like($w->log, qr/"attempt":2/, 'it took a second attempt');

is($w->stop, 0, 'worker stops');
$log .= $w->log;
$w = Loyalty::Test::Worker->new(config => $cfg);

customer('us', store_cid => 'us-3', last_name => 'Cy-again');
ok(wait_until(sub { (contacts()->{$C}[0]{fields}{LastName} // '') eq
                    'Cy-again' && $p->drained }, timeout => 15),
   'after a restart the same person (and record)');
is(scalar keys %{ contacts() }, 2, 'two records in all: B and C');

# --- 5. no identity key: a dead letter --------------------------------------

customer('eu', last_name => 'Nobody');
ok(wait_until(sub { $redis->xlen('loyalty:{eu}:dlq') == 1
                    && $p->drained }, timeout => 15),
   'an event with no identity key is dead-lettered');
like($redis->stream('loyalty:{eu}:dlq')->[0][1]{error},
     qr/no identity key/, 'with the reason');

is($w->stop, 0, 'worker stops cleanly');
$log .= $w->log;
unlike($log, qr/(ada|bob|cy)\@example\.com/i,
       'no e-mail address in the worker logs');
like($log, qr/identity: ambiguous match: ext_id -> \Q$B\E/,
     'the ambiguous match is logged with kinds and persons');

done_testing;
