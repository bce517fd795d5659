#!/usr/bin/perl

# Several flows to one Salesforce destination: each event becomes a
# Contact (by ext_id) and a Loyalty_Event__c record (by event id) in one
# org.  Deliveries are recorded per flow, so when one record fails and is
# retried, the retry writes only that record: the Contact written in the
# first attempt is not written again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until spew);
use Loyalty::Test::Worker;

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'], receivers => []);
my $sb = $p->sandbox;
my $dir = $p->dir;
my $redis = $p->redis;

$sb->config('salesforce', {
    field_types => { Contact => { Points__c => 'number' },
                     Loyalty_Event__c => { Points__c => 'number' } },
});

my $cfg = "$dir/w.yaml";
spew($cfg, "redis: " . $redis->addr . <<"Y");

stores: [eu]
destinations:
  - name: sf
@{[ $p->sf_destination(batch_window_ms => 100) ]}flows:
  - to: sf
    on: [points.earned]
    object: Contact
    external_id: Loyalty_Id__c
    key: ext_id
    fields:
      - { field: Points__c, from: balance, type: integer, owner: loyalty }
  - to: sf
    name: ledger
    on: [points.earned]
    object: Loyalty_Event__c
    external_id: Event_Id__c
    key: id
    fields:
      - { field: Points__c, from: points, type: integer }
      - { field: Type__c, from: \$type, type: text }
claim_timeout_ms: 10000
claim_interval_ms: 300
block_ms: 200
retry_base_ms: 100
retry_cap_ms: 300
retry_interval_ms: 50
max_attempts: 10
Y

my $w = Loyalty::Test::Worker->new(config => $cfg);

sub earned {
    my ($id, $key, $points, $balance) = @_;
    return $p->send('eu', id => $id, type => 'points.earned', data => {
        customer => { ext_id => $key }, points => $points,
        balance => $balance });
}

sub records {
    my ($obj) = @_;
    return $sb->state('salesforce', 'records', $obj)->{records};
}

# the ledger record of the second event fails once (a locked row)
$sb->action('salesforce', 'inject_error', { object => 'Loyalty_Event__c',
    value => 'evt_2', statusCode => 'UNABLE_TO_LOCK_ROW',
    message => 'unable to obtain exclusive access to this record' });

is(earned('evt_1', 'cus_1', 10, 10)->{status}, 202, 'evt_1 accepted');
is(earned('evt_2', 'cus_2', 20, 20)->{status}, 202, 'evt_2 accepted');
ok(wait_until(sub { $p->drained }, timeout => 30), 'drained')
    or diag 'worker log: ' . $w->log_file;

my %contacts = map { $_->{fields}{Loyalty_Id__c} => $_ } @{ records('Contact') };
my %ledger = map { $_->{fields}{Event_Id__c} => $_ }
             @{ records('Loyalty_Event__c') };
is(scalar keys %contacts, 2, 'two Contacts');
is(scalar keys %ledger, 2, 'two ledger records, one per event');
is($contacts{cus_2}{fields}{Points__c}, 20, 'cus_2 balance');
is($ledger{evt_2}{fields}{Points__c}, 20, 'evt_2 ledger record landed');
is($ledger{evt_2}{fields}{Type__c}, 'points.earned', '... with its type');

my $errs = $sb->state('salesforce', 'errors');
my ($e) = grep { $_->{statusCode} eq 'UNABLE_TO_LOCK_ROW' }
          @{ ref $errs eq 'HASH' ? $errs->{errors} : $errs };
is($e->{hits}, 1, 'the ledger write failed once and was retried');
is(scalar @{ $contacts{cus_2}{history} }, 1,
   'the retry did not write the Contact again (done per flow)');
is(scalar @{ $ledger{evt_2}{history} }, 1, 'one ledger write that landed');
like($w->log, qr/"attempt":2/, 'the worker made a second attempt');
is(scalar @{ $p->dlq('eu') }, 0, 'no dead letters');

# a retry parked in Redis names the flows it already served
$sb->action('salesforce', 'inject_error', { object => 'Loyalty_Event__c',
    value => 'evt_3', statusCode => 'UNABLE_TO_LOCK_ROW', times => 100,
    message => 'unable to obtain exclusive access to this record' });
earned('evt_3', 'cus_3', 5, 5);
my $done;
ok(wait_until(sub {
    for my $k (@{ $redis->cmd('KEYS', 'loyalty:{eu}:retry:*') }) {
        $done = $redis->cmd('HGET', $k, '_done');
        return 1 if defined $done;
    }
    return 0;
}, timeout => 20), 'the failing event waits in the retry set');
is($done, 'sf:Contact', '_done holds the id of the flow served (the '
   . 'unnamed one: destination:object)');

# an event from Salesforce itself (a pull, an outbound message) is not
# written back to the org by a flow without `from`
use Loyalty::Test::Worker qw(xadd_envelope);
my $echo = xadd_envelope($redis, 'eu', 'evt_from_sf', src => 'salesforce',
    type => 'points.earned', ext_id => 'cus_9',
    data => '{"customer":{"ext_id":"cus_9"},"points":5,"balance":5}');
ok(wait_until(sub { $w->log =~ /"event":"evt_from_sf"/ || !@{
    $redis->cmd('XPENDING', 'loyalty:{eu}:in', 'workers', '-', '+', 10) } },
    timeout => 10) && wait_until(sub {
        my $g = $redis->cmd('XINFO', 'GROUPS', 'loyalty:{eu}:in');
        my %g = @{ $g->[0] };
        $g{'last-delivered-id'} eq $echo && $g{pending} <= 1 }, timeout => 10),
   'the Salesforce-sourced event was read');
sleep 0.5;
ok(!(grep { ($_->{fields}{Loyalty_Id__c} // '') eq 'cus_9' }
     @{ records('Contact') }), '... and not written back to the org');

$w->stop;
done_testing();
