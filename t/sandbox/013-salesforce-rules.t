#!/usr/bin/perl

# The Salesforce emulation's save checks: unique external ids and
# configured unique fields (DUPLICATE_VALUE on create, on update and
# within one collection; seeding still bypasses them, so 300 stays
# reachable), duplicate rules (DUPLICATES_DETECTED), validation rules
# (FIELD_CUSTOM_VALIDATION_EXCEPTION, single and per record with
# all-or-none rollback), STRING_TOO_LONG and typed fields.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;

use Loyalty::Test::Sandbox;

my $JSON = JSON::PP->new->utf8->canonical;
my $sb = Loyalty::Test::Sandbox->new(config => { salesforce => {
    unique_fields => { Contact => ['Email'] },
    duplicate_rules => [ { object => 'Lead', field => 'Email',
                           name => 'Lead_Email_Rule' } ],
    validation_rules => [
        { object => 'Contact', field => 'Loyalty_Tier__c',
          allowed => [qw(Bronze Silver Gold)], name => 'Tier_Must_Be_Known' },
        { object => 'Contact', field => 'LastName',
          required => JSON::PP::true },
        { object => 'Contact', field => 'Phone', pattern => '^\+[0-9]+$',
          name => 'Phone_E164', message => 'Phone must be in E.164' },
        { object => 'Contact', field => 'Nickname__c', max_length => 5 },
    ],
    field_lengths => { Contact => { FirstName => 10 } },
    field_types => { Contact => { Points__c => 'number',
                                  Opt_In__c => 'boolean' } },
} });
my $V = '/services/data/v62.0';

sub decoded {
    my ($r) = @_;
    $r->{json} = eval { $JSON->decode($r->{body}) } if length $r->{body};
    return $r;
}

my $tok = do {
    my $r = decoded($sb->call('POST', '/salesforce/services/oauth2/token',
        headers => { 'Content-Type' => 'application/x-www-form-urlencoded' },
        body => 'grant_type=client_credentials&client_id=sandbox-client-id'
              . '&client_secret=sandbox-client-secret'));
    $r->{json}{access_token} or die "no token: $r->{body}\n";
};

sub sf {
    my ($method, $path, $json) = @_;
    return decoded($sb->call($method, "/salesforce$V$path",
        headers => { Authorization => "Bearer $tok" },
        (defined $json ? (json => $json) : ())));
}

sub upsert {
    my ($ext, %f) = @_;
    return sf('PATCH', "/sobjects/Contact/ExtId__c/$ext", \%f);
}

sub by_ext {
    my ($obj, $field, $value) = @_;
    return $sb->state('salesforce', 'records', $obj,
                      { field => $field, value => $value })->{records};
}

sub err { $_[0]{json}[0] // {} }

my $C = '/composite/sobjects/Contact/ExtId__c';
sub recs {
    return [ map { { attributes => { type => 'Contact' }, %$_ } } @_ ];
}

# --- external ids are unique ------------------------------------------------

my $r = upsert('C-1', LastName => 'One');
is($r->{status}, 201, 'C-1 created');
my $id1 = $r->{json}{id};
$r = upsert('C-2', LastName => 'Two', Loyalty_Id__c => 'L-1');
is($r->{status}, 201, 'C-2 created with Loyalty_Id__c L-1');
my $id2 = $r->{json}{id};

$r = upsert('C-3', LastName => 'Three', Loyalty_Id__c => 'l-1');
is($r->{status}, 400, 'another record with the same external id: 400');
is(err($r)->{errorCode}, 'DUPLICATE_VALUE', 'DUPLICATE_VALUE');
is_deeply(err($r)->{fields}, ['Loyalty_Id__c'], 'fields names the field');
like(err($r)->{message}, qr/duplicate value found: Loyalty_Id__c .*\Q$id2\E/,
     'message names the record holding the value');
is(scalar @{ by_ext('Contact', 'ExtId__c', 'C-3') }, 0, 'C-3 not created');

# uniqueness on update
$r = sf('PATCH', "/sobjects/Contact/$id1", { ExtId__c => 'c-2' });
is($r->{status}, 400, 'update by id to a taken external id: 400');
is(err($r)->{errorCode}, 'DUPLICATE_VALUE', 'DUPLICATE_VALUE');
is($sb->state('salesforce', 'records', 'Contact', $id1)->{fields}{ExtId__c},
   'C-1', 'the record keeps its value');
$r = sf('PATCH', "/sobjects/Contact/$id1", { ExtId__c => 'C-1',
                                             FirstName => 'Ann' });
is($r->{status}, 204, 'rewriting its own value is no duplicate');
$r = upsert('C-1', Loyalty_Id__c => 'L-1');
is(err($r)->{errorCode}, 'DUPLICATE_VALUE',
   'upsert updating another external id to a taken value');

# uniqueness on create
$r = sf('POST', '/sobjects/Contact/', { LastName => 'X', ExtId__c => 'C-2' });
is($r->{status}, 400, 'create with a taken external id: 400');
is(err($r)->{errorCode}, 'DUPLICATE_VALUE', 'DUPLICATE_VALUE');
$r = sf('POST', '/sobjects/Contact/', { LastName => 'X', ExtId__c => 'C-9',
                                        Email => 'nine@x.io' });
is($r->{status}, 201, 'create with a free value: 201');

# configured unique field (Email)
$r = upsert('C-10', LastName => 'Ten', Email => 'NINE@x.io');
is(err($r)->{errorCode}, 'DUPLICATE_VALUE',
   'unique_fields: Email taken (any case)');
is_deeply(err($r)->{fields}, ['Email'], 'fields: Email');

$sb->config('salesforce', { unique_external_ids => JSON::PP::false });
$r = sf('POST', '/sobjects/Contact/', { LastName => 'X', ExtId__c => 'C-2' });
is($r->{status}, 201, 'unique_external_ids false: a shared value is saved');
$r = upsert('C-2', LastName => 'Y');
is($r->{status}, 300, 'and an upsert on it answers 300');
$sb->config('salesforce', { unique_external_ids => JSON::PP::true });

# seeding bypasses uniqueness
my $seed = $sb->action('salesforce', 'seed', { object => 'Contact',
    records => [ { ExtId__c => 'S-1', LastName => 'A' },
                 { ExtId__c => 'S-1', LastName => 'B' } ] });
is(scalar @{ $seed->{ids} }, 2, 'seed writes a shared value');
is(upsert('S-1', LastName => 'C')->{status}, 300, '300 still reachable');

# --- collections ------------------------------------------------------------

$r = sf('PATCH', $C, { allOrNone => JSON::PP::false, records => recs(
    { ExtId__c => 'C-1', Loyalty_Id__c => 'L-1' },
    { ExtId__c => 'C-20', LastName => 'A', Loyalty_Id__c => 'L-7' },
    { ExtId__c => 'C-21', LastName => 'B', Loyalty_Id__c => 'l-7' },
    { ExtId__c => 'C-22', LastName => 'C', Loyalty_Id__c => 'L-8' }) });
is($r->{status}, 200, 'collection: 200');
my @res = @{ $r->{json} };
is($res[0]{errors}[0]{statusCode}, 'DUPLICATE_VALUE',
   'update to a taken value: DUPLICATE_VALUE per record');
ok($res[1]{success} && $res[1]{created}, 'first claim of L-7 wins');
is($res[2]{errors}[0]{statusCode}, 'DUPLICATE_VALUE',
   'second L-7 in the same call: DUPLICATE_VALUE');
is_deeply($res[2]{errors}[0]{fields}, ['Loyalty_Id__c'], 'its fields');
ok($res[3]{success}, 'the rest succeed');
is(scalar @{ by_ext('Contact', 'Loyalty_Id__c', 'L-7') }, 1,
   'one record holds L-7');

# --- duplicate rules --------------------------------------------------------

$r = sf('POST', '/sobjects/Lead/', { LastName => 'L', Company => 'Co',
                                     Email => 'lead@x.io' });
is($r->{status}, 201, 'Lead created');
my $lead = $r->{json}{id};
$r = sf('POST', '/sobjects/Lead/', { LastName => 'M', Company => 'Co',
                                     Email => 'LEAD@x.io' });
is($r->{status}, 400, 'a second Lead with the e-mail: 400');
is(err($r)->{errorCode}, 'DUPLICATES_DETECTED', 'DUPLICATES_DETECTED');
is(err($r)->{duplicateResult}{duplicateRule}, 'Lead_Email_Rule',
   'names the duplicate rule');
is(err($r)->{duplicateResult}{matchResults}[0]{matchRecords}[0]{record}{Id},
   $lead, 'and the matching record');
$r = sf('PATCH', '/composite/sobjects/Lead/ExtId__c', { records => [
    { attributes => { type => 'Lead' }, ExtId__c => 'LD-1',
      LastName => 'N', Email => 'lead@x.io' } ] });
is($r->{json}[0]{errors}[0]{statusCode}, 'DUPLICATES_DETECTED',
   'per record in collections');
$r = sf('PATCH', "/sobjects/Lead/$lead", { Company => 'Other' });
is($r->{status}, 204, 'updating the holder itself is fine');

# --- validation rules, single -----------------------------------------------

$r = upsert('C-30', LastName => 'V', Loyalty_Tier__c => 'Platinum');
is($r->{status}, 400, 'tier not allowed: 400');
is(err($r)->{errorCode}, 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
   'FIELD_CUSTOM_VALIDATION_EXCEPTION');
like(err($r)->{message}, qr/^Tier_Must_Be_Known: /, 'message names the rule');
is_deeply(err($r)->{fields}, ['Loyalty_Tier__c'], 'fields');
is(scalar @{ by_ext('Contact', 'ExtId__c', 'C-30') }, 0, 'nothing saved');
is(upsert('C-30', LastName => 'V', Loyalty_Tier__c => 'Gold')->{status}, 201,
   'an allowed tier: 201');

$r = upsert('C-31', FirstName => 'NoLast');
is(err($r)->{errorCode}, 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
   'required field missing on create');
like(err($r)->{message}, qr/^Contact_LastName_2: LastName is required/,
     'default rule name: object, field, position');
is(upsert('C-30', FirstName => 'Vera')->{status}, 200,
   'update without the required field: the stored value counts');
is(err(upsert('C-30', LastName => ''))->{errorCode},
   'FIELD_CUSTOM_VALIDATION_EXCEPTION', 'blanking a required field fails');

$r = upsert('C-30', Phone => '0301234');
is(err($r)->{message}, 'Phone_E164: Phone must be in E.164',
   'pattern rule with its own message');
is(upsert('C-30', Phone => '+49301234')->{status}, 200, 'matching pattern');
is(err(upsert('C-30', Nickname__c => 'abcdef'))->{errorCode},
   'FIELD_CUSTOM_VALIDATION_EXCEPTION', 'max_length rule');

$r = upsert('C-30', FirstName => 'Bartholomew');
is($r->{status}, 400, 'longer than field_lengths: 400');
is(err($r)->{errorCode}, 'STRING_TOO_LONG', 'STRING_TOO_LONG');
like(err($r)->{message}, qr/max length=10/, 'message names the length');

$r = upsert('C-30', Points__c => '12');
is($r->{status}, 400, 'a string for a number field: 400');
is(err($r)->{errorCode}, 'JSON_PARSER_ERROR', 'JSON_PARSER_ERROR');
is(upsert('C-30', Points__c => 12, Opt_In__c => JSON::PP::true)->{status},
   200, 'the right types: 200');
$r = sf('PATCH', "/sobjects/Contact/$id1", { Loyalty_Tier__c => 'Tin' });
is(err($r)->{errorCode}, 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
   'rules apply to PATCH by id');
$r = sf('POST', '/sobjects/Contact/', { FirstName => 'X' });
is(err($r)->{errorCode}, 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
   'and to create');
$r = upsert('C-30', SystemModstamp => '2026-01-01T00:00:00Z');
is(err($r)->{errorCode}, 'INVALID_FIELD', 'system fields are read-only');

# --- validation rules in collections ----------------------------------------

my $writes = $sb->state('salesforce', 'records', 'Contact', $id1)->{writes};
$r = sf('PATCH', $C, { allOrNone => JSON::PP::true, records => recs(
    { ExtId__c => 'C-1', LastName => 'Renamed' },
    { ExtId__c => 'C-40', LastName => 'Ok', Loyalty_Tier__c => 'Silver' },
    { ExtId__c => 'C-41', LastName => 'Bad', Loyalty_Tier__c => 'Wood' }) });
is($r->{status}, 200, 'allOrNone with a rule violation: 200');
@res = @{ $r->{json} };
is($res[2]{errors}[0]{statusCode}, 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
   'the violating record shows the rule');
like($res[2]{errors}[0]{message}, qr/Tier_Must_Be_Known/, 'by name');
is_deeply([ map { $_->{errors}[0]{statusCode} } @res[0, 1] ],
          [ ('ALL_OR_NONE_OPERATION_ROLLED_BACK') x 2 ],
          'the others are rolled back');
ok(!(grep { $_->{success} } @res), 'none succeeds');
is(scalar @{ by_ext('Contact', 'ExtId__c', 'C-40') }, 0, 'nothing created');
is($sb->state('salesforce', 'records', 'Contact', $id1)->{writes}, $writes,
   'nothing updated');

$r = sf('PATCH', $C, { allOrNone => JSON::PP::false, records => recs(
    { ExtId__c => 'C-40', LastName => 'Ok', Loyalty_Tier__c => 'Silver' },
    { ExtId__c => 'C-41', LastName => 'Bad', Loyalty_Tier__c => 'Wood' },
    { ExtId__c => 'C-42', LastName => 'Long', FirstName => 'x' x 11 }) });
@res = @{ $r->{json} };
ok($res[0]{success}, 'without allOrNone the valid record is saved');
is($res[1]{errors}[0]{statusCode}, 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
   'the violating one fails');
is($res[2]{errors}[0]{statusCode}, 'STRING_TOO_LONG',
   'STRING_TOO_LONG per record');
is(scalar @{ by_ext('Contact', 'ExtId__c', 'C-40') }, 1, 'C-40 exists');

$r = sf('PATCH', $C, { records => recs(
    { ExtId__c => 'C-43', LastName => 'T', Points__c => 'many' }) });
is($r->{status}, 400, 'a wrong JSON type in a collection fails the call');
is(err($r)->{errorCode}, 'JSON_PARSER_ERROR', 'JSON_PARSER_ERROR');

done_testing;
