#!/usr/bin/perl

# The Salesforce emulation's record targets: relationships by external
# id (Contact__r, the polymorphic Task.Who) resolved to id fields, the
# per-record "Foreign key external ID ... not found", Task upsert by its
# own external id, Person Accounts by external id, and the create
# collection (POST composite/sobjects) with mixed types, platform events
# (success or OPERATION_ENQUEUED), allOrNone rollback and the 200 cap.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;

use Loyalty::Test::Sandbox;

my $JSON = JSON::PP->new->utf8->canonical;
my $sb = Loyalty::Test::Sandbox->new;
my $V = '/services/data/v62.0';

sub decoded {
    my ($r) = @_;
    $r->{json} = eval { $JSON->decode($r->{body}) } if length $r->{body};
    return $r;
}

my $tok = decoded($sb->call('POST', '/salesforce/services/oauth2/token',
    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' },
    body => 'grant_type=client_credentials&client_id=sandbox-client-id'
            . '&client_secret=sandbox-client-secret'))->{json}{access_token};
ok($tok, 'token');

sub sf {
    my ($method, $path, $json) = @_;
    return decoded($sb->call($method, "/salesforce$V$path",
        headers => { Authorization => "Bearer $tok" },
        (defined $json ? (json => $json) : ())));
}

sub records {
    my ($obj) = @_;
    return $sb->state('salesforce', 'records', $obj)->{records};
}

# --- lookups ---------------------------------------------------------------

my $r = sf('PATCH', '/sobjects/Contact/Loyalty_Id__c/cus_1',
           { LastName => 'Lovelace' });
is($r->{status}, 201, 'a Contact to look up');
my $contact = $r->{json}{id};

$r = sf('PATCH', '/composite/sobjects/Loyalty_Event__c/Event_Id__c', {
    allOrNone => JSON::PP::false,
    records => [
        { attributes => { type => 'Loyalty_Event__c' }, Event_Id__c => 'e1',
          Points__c => 10,
          Contact__r => { attributes => { type => 'Contact' },
                          Loyalty_Id__c => 'CUS_1' } },
        { attributes => { type => 'Loyalty_Event__c' }, Event_Id__c => 'e2',
          Contact__r => { Loyalty_Id__c => 'cus_1' } },
        { attributes => { type => 'Loyalty_Event__c' }, Event_Id__c => 'e3',
          Contact__r => { Loyalty_Id__c => 'cus_404' } },
    ] });
is($r->{status}, 200, 'collection with lookups: 200');
is_deeply([map { $_->{success} ? 1 : 0 } @{$r->{json}}], [1, 1, 0],
          'per record: two written, the missing customer fails');
is($r->{json}[2]{errors}[0]{statusCode}, 'INVALID_FIELD',
   'missing lookup target: INVALID_FIELD');
like($r->{json}[2]{errors}[0]{message},
     qr/^Foreign key external ID: cus_404 not found for field Loyalty_Id__c in entity Contact$/,
     "Salesforce's message");
my %ev = map { $_->{fields}{Event_Id__c} => $_ } @{records('Loyalty_Event__c')};
is($ev{e1}{fields}{Contact__c}, $contact,
   'Contact__r by external id (any case) is stored as Contact__c');
is($ev{e2}{fields}{Contact__c}, $contact,
   'the configured target serves a lookup without attributes');
ok(!exists $ev{e1}{fields}{Contact__r}, 'the relationship itself is not kept');
ok(!$ev{e3}, 'no record for the failed one');

# --- Task, polymorphic Who --------------------------------------------------

$r = sf('PATCH', '/composite/sobjects/Task/Loyalty_Task_Id__c', {
    records => [
        { attributes => { type => 'Task' }, Loyalty_Task_Id__c => 't1',
          Subject => 'Reward issued', Status => 'Completed',
          Who => { attributes => { type => 'Contact' },
                   Loyalty_Id__c => 'cus_1' } },
        { attributes => { type => 'Task' }, Loyalty_Task_Id__c => 't2',
          Subject => 'x', Who => { Loyalty_Id__c => 'cus_1' } },
    ] });
is($r->{json}[0]{success} ? 1 : 0, 1, 'Task with Who by external id');
like($r->{json}[0]{id}, qr/^00T/, 'Task ids start with 00T');
is($r->{json}[1]{errors}[0]{statusCode}, 'INVALID_FIELD',
   'a polymorphic Who without attributes.type is refused');
my ($task) = @{records('Task')};
is($task->{fields}{WhoId}, $contact, 'Who is stored as WhoId');
is($task->{fields}{Subject}, 'Reward issued', 'Task fields');

$r = sf('PATCH', '/composite/sobjects/Task/Loyalty_Task_Id__c', {
    records => [ { attributes => { type => 'Task' },
                   Loyalty_Task_Id__c => 't1', Status => 'Completed' } ] });
is($r->{json}[0]{created} ? 1 : 0, 0, 'the same Task id updates');
is(scalar @{records('Task')}, 1, 'one Task');

# --- Person Account ---------------------------------------------------------

$r = sf('PATCH', '/composite/sobjects/Account/Loyalty_Id__c', {
    records => [ { attributes => { type => 'Account' },
                   Loyalty_Id__c => 'cus_7', FirstName => 'Grace',
                   LastName => 'Hopper', PersonEmail => 'g@example.com',
                   RecordTypeId => '012000000000PaAAA' } ] });
ok($r->{json}[0]{success}, 'Person Account upserted by external id');
my ($acct) = @{records('Account')};
ok($acct->{fields}{IsPersonAccount}, 'no Name: a Person Account');
is($acct->{fields}{PersonEmail}, 'g@example.com', 'PersonEmail');

# --- create collection ------------------------------------------------------

$r = sf('POST', '/composite/sobjects', {
    allOrNone => JSON::PP::false,
    records => [
        { attributes => { type => 'Loyalty_Update__e' }, Points__c => 5 },
        { attributes => { type => 'Task' }, Subject => 'created',
          Who => { attributes => { type => 'Contact' },
                   Loyalty_Id__c => 'cus_1' } },
        { attributes => { type => 'Nope__c' }, Name => 'x' },
        { attributes => { type => 'Task' }, Id => '00T000000000001' },
    ] });
is($r->{status}, 200, 'create collection: 200');
is_deeply([map { $_->{success} ? 1 : 0 } @{$r->{json}}], [1, 1, 0, 0],
          'mixed types: event and Task created, unknown type and Id refused');
is_deeply($r->{json}[0]{errors}, [], 'event published: no errors');
is($r->{json}[2]{errors}[0]{statusCode}, 'INVALID_TYPE', 'INVALID_TYPE');
is($r->{json}[3]{errors}[0]{statusCode}, 'INVALID_FIELD', 'Id is read-only');
my $events = $sb->state('salesforce', 'events')->{events};
is(scalar @$events, 1, 'one event published');
is($events->[0]{type}, 'Loyalty_Update__e', 'its type');
is($events->[0]{fields}{Points__c}, 5, 'its fields');
is(scalar @{records('Task')}, 2, 'the Task was created');

$sb->config('salesforce', { enqueue_events => JSON::PP::true });
$r = sf('POST', '/composite/sobjects', {
    records => [ { attributes => { type => 'Loyalty_Update__e' },
                   Points__c => 6 } ] });
ok($r->{json}[0]{success}, 'enqueued: success true');
is($r->{json}[0]{errors}[0]{statusCode}, 'OPERATION_ENQUEUED',
   'with OPERATION_ENQUEUED');

$r = sf('POST', '/composite/sobjects', {
    allOrNone => JSON::PP::true,
    records => [
        { attributes => { type => 'Loyalty_Update__e' }, Points__c => 7 },
        { attributes => { type => 'Loyalty_Event__c' }, Event_Id__c => 'x1',
          Contact__r => { Loyalty_Id__c => 'cus_nobody' } },
    ] });
is($r->{json}[0]{errors}[0]{statusCode}, 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
   'allOrNone: the others roll back');
like($r->{json}[1]{errors}[0]{message}, qr/^Foreign key external ID/,
     'the failing one says why');
is(scalar @{$sb->state('salesforce', 'events')->{events}}, 2,
   'a rolled back event is not published');

$r = sf('POST', '/composite/sobjects', {
    records => [ map { { attributes => { type => 'Loyalty_Update__e' } } }
                 1 .. 201 ] });
is($r->{status}, 400, 'more than 200 records: 400');
is($r->{json}[0]{errorCode}, 'EXCEEDED_ID_LIMIT', 'EXCEEDED_ID_LIMIT');

done_testing();
