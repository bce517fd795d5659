#!/usr/bin/perl

# Bulk API 2.0 ingest in the Salesforce emulation: job creation and its
# checks, CSV upload (quoted cells with delimiters, quotes and line
# breaks), UploadComplete -> InProgress -> JobComplete, results joined on
# the external id (their order is not the upload's), failed rows with
# their Salesforce error (uniqueness, validation rules, types, injected
# errors), line endings that do not match, bad headers, abort, delete,
# the job list and one API call per request.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);

use Loyalty::Test::Sandbox;

my $JSON = JSON::PP->new->utf8->canonical;
my $sb = Loyalty::Test::Sandbox->new(config => { salesforce => {
    bulk_start_ms => 20, bulk_processing_ms => 250,
    validation_rules => [ { object => 'Contact', field => 'Loyalty_Tier__c',
                            allowed => [qw(Bronze Silver Gold)],
                            name => 'Tier_Must_Be_Known' } ],
    field_types => { Contact => { Points__c => 'number' } },
    objects => {
        Contact => { prefix => '003',
                     external_ids => [qw(ExtId__c Loyalty_Id__c)] },
        Account => { prefix => '001', external_ids => ['ExtId__c'],
                     fields => [qw(Name ExtId__c)] },
    },
} });
my $V = '/services/data/v62.0';
my $J = "$V/jobs/ingest";

sub decoded {
    my ($r) = @_;
    $r->{json} = eval { $JSON->decode($r->{body}) }
        if length $r->{body} && ($r->{headers}{'content-type'} // '')
                                    =~ /json/;
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
    my ($method, $path, %o) = @_;
    my %h = (Authorization => "Bearer $tok", %{ $o{headers} // {} });
    return decoded($sb->call($method, "/salesforce$path", headers => \%h,
        (exists $o{json} ? (json => $o{json}) : ()),
        (exists $o{body} ? (body => $o{body}) : ())));
}

sub usage {
    my ($n) = ($_[0]{headers}{'sforce-limit-info'} // '') =~ /=(\d+)/;
    return $n;
}

# RFC 4180, for reading the results back
sub parse_csv {
    my ($text, $d) = @_;
    $d //= ',';
    my (@rows, @row);
    my ($cell, $quoted, $fresh) = ('', 0, 1);
    my @c = split //, $text;
    for (my $i = 0; $i < @c; $i++) {
        my $ch = $c[$i];
        if ($quoted) {
            if ($ch ne '"') { $cell .= $ch }
            elsif (($c[$i + 1] // '') eq '"') { $cell .= '"'; $i++ }
            else { $quoted = 0 }
        } elsif ($ch eq '"' && $fresh) {
            ($quoted, $fresh) = (1, 0);
        } elsif ($ch eq $d) {
            push @row, $cell; ($cell, $fresh) = ('', 1);
        } elsif ($ch eq "\n" || ($ch eq "\r" && ($c[$i + 1] // '') eq "\n")) {
            $i++ if $ch eq "\r";
            push @row, $cell;
            push @rows, [@row];
            @row = ();
            ($cell, $fresh) = ('', 1);
        } else {
            $cell .= $ch; $fresh = 0;
        }
    }
    if (!$fresh || @row) { push @row, $cell; push @rows, [@row] }
    return \@rows;
}

# results as { header => [...], rows => [ {col => value} ], order => [...] }
sub results {
    my ($id, $kind) = @_;
    my $r = sf('GET', "$J/$id/$kind/");
    return { status => $r->{status}, raw => $r->{body},
             ctype => $r->{headers}{'content-type'} }
        unless $r->{status} == 200;
    my ($head, @rows) = @{ parse_csv($r->{body}) };
    my @maps = map { my $row = $_; +{ map { $head->[$_] => $row->[$_] }
                                      0 .. $#$head } } @rows;
    return { status => 200, header => $head, rows => \@maps,
             raw => $r->{body}, ctype => $r->{headers}{'content-type'},
             by => { map { ($_->{ExtId__c} // '') => $_ } @maps } };
}

sub new_job {
    my (%spec) = @_;
    return sf('POST', $J, json => { object => 'Contact', operation => 'upsert',
        externalIdFieldName => 'ExtId__c', contentType => 'CSV',
        lineEnding => 'LF', columnDelimiter => 'COMMA', %spec });
}

sub upload {
    my ($job, $csv, $ctype) = @_;
    return sf('PUT', "/$job->{contentUrl}",
              headers => { 'Content-Type' => $ctype // 'text/csv' },
              body => $csv);
}

sub close_job {
    my ($id, $state) = @_;
    return sf('PATCH', "$J/$id",
              json => { state => $state // 'UploadComplete' });
}

# polls until a final state; -> (info, [states seen])
sub wait_done {
    my ($id) = @_;
    my (%seen, @states);
    my $end = time + 8;
    while (time < $end) {
        my $info = sf('GET', "$J/$id")->{json};
        push @states, $info->{state} unless $seen{ $info->{state} }++;
        return ($info, \@states)
            if $info->{state} =~ /^(JobComplete|Failed|Aborted)$/;
        sleep 0.02;
    }
    return (undef, \@states);
}

sub run_job {
    my ($csv, %spec) = @_;
    my $job = new_job(%spec)->{json};
    upload($job, $csv);
    close_job($job->{id});
    my ($info) = wait_done($job->{id});
    return $info;
}

# --- an existing record and an injected error -------------------------------

my $r = sf('PATCH', "$V/sobjects/Contact/ExtId__c/P-1",
           json => { LastName => 'Before', Loyalty_Id__c => 'L-1' });
my $p1 = $r->{json}{id};
$sb->action('salesforce', 'inject_error', { object => 'Contact',
    value => 'B-5', statusCode => 'UNABLE_TO_LOCK_ROW',
    message => 'unable to obtain exclusive access to this record' });

# --- the whole lifecycle ----------------------------------------------------

my $u = usage(sf('GET', "$V/limits"));
$r = new_job();
is($r->{status}, 200, 'create job: 200');
is(usage($r), $u + 1, 'one API call');
my $job = $r->{json};
like($job->{id}, qr/^750\w{15}$/, '18-character job id, prefix 750');
is($job->{state}, 'Open', 'state Open');
is($job->{contentUrl}, "services/data/v62.0/jobs/ingest/$job->{id}/batches",
   'contentUrl');
is_deeply([ @$job{qw(object operation externalIdFieldName lineEnding
                     columnDelimiter contentType apiVersion)} ],
          [qw(Contact upsert ExtId__c LF COMMA CSV), 62],
          'job info echoes the request');

my $csv = join '', map { "$_\n" }
    'ExtId__c,LastName,Description,Loyalty_Tier__c,Points__c,Loyalty_Id__c',
    'P-1,"Smith, Jr.",updated,Gold,10,',
    qq{B-2,Quote,"line one\nline ""two""",Silver,42,},
    'B-3,Wood,,Wood,1,',
    'B-4,Dup,,,,L-1',
    'B-5,Locked,,,,',
    'B-6,Typed,,,abc,',
    (map { "B-$_,Name$_,,Bronze,$_," } 7 .. 12);
$r = upload($job, $csv);
is($r->{status}, 201, 'upload: 201');
is($r->{body}, '', 'no body');
is(usage($r), $u + 2, 'one API call');
is(upload($job, $csv)->{status}, 409, 'a second upload: 409');

$r = results($job->{id}, 'successfulResults');
is($r->{status}, 409, 'results before the job finished: 409');

$r = close_job($job->{id});
is($r->{status}, 200, 'UploadComplete: 200');
is($r->{json}{state}, 'UploadComplete', 'state UploadComplete');
my ($info, $states) = wait_done($job->{id});
is($info->{state}, 'JobComplete', 'JobComplete');
ok((grep { $_ eq 'InProgress' } @$states), 'InProgress on the way')
    or diag explain $states;
is($states->[-1], 'JobComplete', 'ends there');
is($info->{numberRecordsProcessed}, 12, 'numberRecordsProcessed');
is($info->{numberRecordsFailed}, 4, 'numberRecordsFailed');

my $ok = results($job->{id}, 'successfulResults');
is($ok->{status}, 200, 'successfulResults: 200');
like($ok->{ctype}, qr{^text/csv}, 'as CSV');
like($ok->{raw}, qr/^"sf__Id","sf__Created",ExtId__c,LastName,/,
     'header "sf__Id","sf__Created", then the original columns');
is(scalar @{ $ok->{rows} }, 8, 'eight successful rows');
my @order = map { $_->{ExtId__c} } @{ $ok->{rows} };
isnt(join(',', @order), join(',', 'P-1', 'B-2', map { "B-$_" } 7 .. 12),
     'rows are not in upload order');
is($ok->{by}{'P-1'}{sf__Id}, $p1, 'joined on ExtId__c: P-1 is the record');
is($ok->{by}{'P-1'}{sf__Created}, 'false', 'updated: sf__Created false');
is($ok->{by}{'B-2'}{sf__Created}, 'true', 'created: sf__Created true');
is($ok->{by}{'B-2'}{Description}, qq{line one\nline "two"},
   'quoted cell with a line break and quotes echoed');
is($ok->{by}{'P-1'}{LastName}, 'Smith, Jr.', 'quoted cell with a comma');

my $rec = $sb->state('salesforce', 'records', 'Contact', $p1);
is($rec->{fields}{LastName}, 'Smith, Jr.', 'P-1 updated');
is($rec->{fields}{Loyalty_Id__c}, 'L-1', 'an empty cell leaves a field alone');
is($rec->{history}[-1]{via}, 'bulk', 'history: via bulk');
my $b2 = $sb->state('salesforce', 'records', 'Contact',
                    $ok->{by}{'B-2'}{sf__Id});
is($b2->{fields}{Description}, qq{line one\nline "two"}, 'B-2 stored');
is($b2->{fields}{Points__c}, 42, 'a number field as a number');

my $bad = results($job->{id}, 'failedResults');
like($bad->{raw}, qr/^"sf__Id","sf__Error",ExtId__c,/, 'failed header');
is_deeply([ sort keys %{ $bad->{by} } ], [qw(B-3 B-4 B-5 B-6)],
          'failed rows by external id');
like($bad->{by}{'B-3'}{sf__Error},
     qr/^FIELD_CUSTOM_VALIDATION_EXCEPTION:Tier_Must_Be_Known: .*
         :Loyalty_Tier__c\ --$/x,
     'validation rule: CODE:message:fields --');
like($bad->{by}{'B-4'}{sf__Error}, qr/^DUPLICATE_VALUE:duplicate value found:/,
     'DUPLICATE_VALUE');
like($bad->{by}{'B-5'}{sf__Error}, qr/^UNABLE_TO_LOCK_ROW:/,
     'injected error');
like($bad->{by}{'B-6'}{sf__Error}, qr/^INVALID_TYPE_ON_FIELD_IN_RECORD:/,
     'wrong type');
is($bad->{by}{'B-4'}{sf__Id}, '', 'no sf__Id for a failed row');
is($bad->{by}{'B-4'}{Loyalty_Id__c}, 'L-1', 'original columns echoed');
is(scalar @{ $sb->state('salesforce', 'records', 'Contact',
    { field => 'ExtId__c', value => 'B-3' })->{records} }, 0,
   'failed rows wrote nothing');
my $un = results($job->{id}, 'unprocessedrecords');
is(scalar @{ $un->{rows} }, 0, 'nothing unprocessed');

# --- line endings, CRLF, other delimiters -----------------------------------

$info = run_job("ExtId__c,LastName\r\nE-1,A\r\n");
is($info->{state}, 'Failed', 'CRLF data in an LF job: Failed');
like($info->{errorMessage}, qr/LineEnding is invalid on user data/,
     'errorMessage says why');
$un = results($info->{id}, 'unprocessedrecords');
is_deeply([ map { $_->{ExtId__c} } @{ $un->{rows} } ], ['E-1'],
          'its rows are unprocessed');
is(scalar @{ results($info->{id}, 'successfulResults')->{rows} }, 0,
   'no successful rows');

$info = run_job("ExtId__c,LastName\nE-2,A\n", lineEnding => 'CRLF');
is($info->{state}, 'Failed', 'LF data in a CRLF job: Failed');

$info = run_job(qq{ExtId__c,LastName,Description\r\nE-3,A,"x\ny"\r\n},
                lineEnding => 'CRLF');
is($info->{state}, 'JobComplete', 'CRLF job with CRLF data');
$r = sf('GET', "$J/$info->{id}/successfulResults/");
like($r->{body}, qr/\r\n$/, 'results use the job line ending');

$info = run_job(qq{ExtId__c|LastName\nE-4|"a|b"\n},
                columnDelimiter => 'PIPE');
is($info->{state}, 'JobComplete', 'PIPE delimiter');
is($sb->state('salesforce', 'records', 'Contact',
    { field => 'ExtId__c', value => 'E-4' })->{records}[0]{fields}{LastName},
   'a|b', 'quoted delimiter kept');

# --- bad headers, duplicates in one file ------------------------------------

$info = run_job("LastName,Email\nA,a\@x.io\n");
is($info->{state}, 'Failed', 'no external id column: Failed');
like($info->{errorMessage}, qr/ExtId__c/, 'errorMessage names it');
$info = run_job("ExtId__c,Bogus__c\nA-1,x\n", object => 'Account');
like($info->{errorMessage}, qr/Field name not found : Bogus__c/,
     'unknown column on an object with fields');
$info = run_job("ExtId__c,LastName\nD-1,a\nd-1,b\nD-2,c\n");
is($info->{numberRecordsFailed}, 2, 'one value twice: both rows fail');
like(results($info->{id}, 'failedResults')->{rows}[0]{sf__Error},
     qr/^DUPLICATE_EXTERNAL_ID:/, 'DUPLICATE_EXTERNAL_ID');
$info = run_job(qq{ExtId__c,LastName\nQ-1,"open\n});
is($info->{state}, 'Failed', 'an unterminated quote: Failed');

# --- insert and update ------------------------------------------------------

$info = run_job("ExtId__c,LastName\nP-1,Again\nI-1,New\n",
                operation => 'insert', externalIdFieldName => undef);
is($info->{numberRecordsFailed}, 1, 'insert of a taken external id fails');
like(results($info->{id}, 'failedResults')->{by}{'P-1'}{sf__Error},
     qr/^DUPLICATE_VALUE:/, 'DUPLICATE_VALUE on create');
$info = run_job("Id,LastName\n$p1,Updated\n003000000000000AAA,Nobody\n",
                operation => 'update', externalIdFieldName => undef);
is($info->{numberRecordsProcessed}, 2, 'update by Id');
is($sb->state('salesforce', 'records', 'Contact', $p1)->{fields}{LastName},
   'Updated', 'updated');
is($info->{numberRecordsFailed}, 1, 'an unknown Id fails');

# --- job creation checks ----------------------------------------------------

for my $case (
    [ { object => 'Nope__c' }, 'unknown object' ],
    [ { operation => 'merge' }, 'unknown operation' ],
    [ { externalIdFieldName => undef }, 'upsert without externalIdFieldName' ],
    [ { externalIdFieldName => 'LastName' }, 'not an external id field' ],
    [ { contentType => 'JSON' }, 'contentType JSON' ],
    [ { lineEnding => 'CR' }, 'lineEnding CR' ],
    [ { columnDelimiter => 'COLON' }, 'columnDelimiter COLON' ],
) {
    $r = new_job(%{ $case->[0] });
    is($r->{status}, 400, "$case->[1]: 400");
    is($r->{json}[0]{errorCode}, 'INVALIDJOB', "$case->[1]: INVALIDJOB");
}

# --- uploads, states, abort, delete, list -----------------------------------

$job = new_job()->{json};
is(upload($job, "ExtId__c\nX\n", 'application/json')->{status}, 400,
   'upload that is not text/csv: 400');
is(close_job($job->{id}, 'JobComplete')->{status}, 400,
   'PATCH to JobComplete: 400');
$r = close_job($job->{id}, 'Aborted');
is($r->{json}{state}, 'Aborted', 'abort an open job');
is(upload($job, "ExtId__c\nX\n")->{status}, 409, 'upload after abort: 409');
is(close_job($job->{id})->{status}, 409, 'UploadComplete after abort: 409');

$sb->config('salesforce', { bulk_start_ms => 5000 });
$job = new_job()->{json};
upload($job, "ExtId__c,LastName\nAB-1,x\n");
close_job($job->{id});
is(close_job($job->{id}, 'Aborted')->{json}{state}, 'Aborted',
   'abort after UploadComplete');
$un = results($job->{id}, 'unprocessedrecords');
is_deeply([ map { $_->{ExtId__c} } @{ $un->{rows} } ], ['AB-1'],
          'aborted rows are unprocessed');
$sb->config('salesforce', { bulk_start_ms => 20 });

$r = sf('GET', $J);
is($r->{status}, 200, 'list jobs: 200');
ok($r->{json}{done}, 'done');
ok((grep { $_->{id} eq $job->{id} } @{ $r->{json}{records} }),
   'the job is listed');
$r = sf('DELETE', "$J/$job->{id}");
is($r->{status}, 204, 'DELETE: 204');
is(sf('GET', "$J/$job->{id}")->{status}, 404, 'gone: 404');
ok(!(grep { $_->{id} eq $job->{id} } @{ sf('GET', $J)->{json}{records} }),
   'no longer listed');
is(scalar @{ $sb->state('salesforce', 'jobs')->{jobs} } > 5, 1,
   'jobs in the state');

done_testing;
