#!/usr/bin/perl

# SOQL in the Salesforce emulation: the worker's scheduled pull
# (SystemModstamp window, ORDER BY SystemModstamp, Id, LIMIT), filters
# (=, !=, IN, NOT IN, LIKE, Id comparisons, escaped strings), pagination
# through nextRecordsUrl, errors for queries it does not support, and the
# system fields every write maintains, with crm_edit writing as a person
# so the integration's own writes can be told apart.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;

use Loyalty::Test::Sandbox;

my $JSON = JSON::PP->new->utf8->canonical;
my $sb = Loyalty::Test::Sandbox->new(config => { salesforce => {
    objects => {
        Contact => { prefix => '003',
                     external_ids => [qw(ExtId__c Loyalty_Id__c)] },
        Lead => { prefix => '00Q', external_ids => ['ExtId__c'] },
        Account => { prefix => '001', external_ids => ['ExtId__c'],
                     fields => [qw(Name ExtId__c)] },
    },
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
    my ($method, $path, $json, %h) = @_;
    return decoded($sb->call($method, "/salesforce$path",
        headers => { Authorization => "Bearer $tok", %h },
        (defined $json ? (json => $json) : ())));
}

sub esc {
    (my $s = shift) =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub query { sf('GET', "$V/query?q=" . esc($_[0]), undef, @_[1 .. $#_]) }

sub exts {
    my ($r) = @_;
    return [ map { $_->{ExtId__c} } @{ $r->{json}{records} } ];
}

sub usage {
    my ($n) = ($_[0]{headers}{'sforce-limit-info'} // '') =~ /=(\d+)/;
    return $n;
}

# --- seeded history ---------------------------------------------------------

# P-1..P-8, one minute apart from 10:00; P-4 and P-5 share 10:03
my @stamps = qw(10:00 10:01 10:02 10:03 10:03 10:04 10:05 10:06);
my @names = ('Adams', 'Baker', "O'Brien", 'Baxter', 'Clark', 'Davis',
             'Evans', 'ba_ker');
my $seed = $sb->action('salesforce', 'seed', { object => 'Contact',
    records => [ map { {
        ExtId__c => "P-$_", LastName => $names[$_ - 1],
        Loyalty_Tier__c => $_ % 2 ? 'Gold' : 'Silver',
        SystemModstamp => "2026-11-24T$stamps[$_ - 1]:00.000+0000",
        CreatedDate => '2026-11-01T00:00:00Z' } } 1 .. 8 ] });
my @ids = @{ $seed->{ids} };
is(scalar @ids, 8, 'eight contacts seeded');

my $q = 'SELECT Id, ExtId__c, LastName, SystemModstamp FROM Contact'
    . ' WHERE SystemModstamp > 2026-11-24T10:00:00Z'
    . ' AND SystemModstamp <= 2026-11-24T10:04:00Z'
    . ' ORDER BY SystemModstamp, Id LIMIT 10';
my $u0 = usage(sf('GET', "$V/limits"));
my $r = query($q);
is($r->{status}, 200, 'the pull query: 200');
is(usage($r), $u0 + 1, 'a query counts one API call');
is_deeply(exts($r), [qw(P-2 P-3 P-4 P-5 P-6)],
          'window > from, <= to, ordered by SystemModstamp then Id');
is($r->{json}{totalSize}, 5, 'totalSize');
ok($r->{json}{done}, 'done');
ok(!exists $r->{json}{nextRecordsUrl}, 'no nextRecordsUrl when done');
my $rec = $r->{json}{records}[0];
is_deeply($rec->{attributes}, { type => 'Contact',
    url => "$V/sobjects/Contact/$ids[1]" }, 'attributes type and url');
is($rec->{SystemModstamp}, '2026-11-24T10:01:00.000+0000',
   'SystemModstamp in Salesforce format');
is_deeply([ sort keys %$rec ],
          [qw(ExtId__c Id LastName SystemModstamp attributes)],
          'only the selected fields');

$r = query('select id, extid__c from Contact where systemmodstamp >='
           . ' 2026-11-24T11:03:00+01:00 order by SystemModstamp desc, Id'
           . ' desc limit 3');
is_deeply(exts($r), [qw(P-8 P-7 P-6)], 'DESC, LIMIT, offsets, any case');
ok(exists $r->{json}{records}[0]{Id}, 'fields come back in their API case');

# --- filters ----------------------------------------------------------------

is_deeply(exts(query("SELECT ExtId__c FROM Contact WHERE LastName ="
                     . " 'O\\'Brien'")), ['P-3'], 'escaped quote');
is_deeply(exts(query("SELECT ExtId__c FROM Contact WHERE LastName = 'ADAMS'")),
          ['P-1'], '= ignores case');
is_deeply(exts(query("SELECT ExtId__c FROM Contact WHERE Loyalty_Tier__c !="
                     . " 'Gold' AND LastName != 'Baker' ORDER BY Id")),
          [qw(P-4 P-6 P-8)], '!= with AND');
is_deeply(exts(query("SELECT ExtId__c FROM Contact WHERE ExtId__c IN"
                     . " ('P-1', 'p-7', 'nope') ORDER BY ExtId__c")),
          [qw(P-1 P-7)], 'IN');
is_deeply(exts(query("SELECT ExtId__c FROM Contact WHERE ExtId__c NOT IN"
                     . " ('P-1','P-2','P-3') AND LastName LIKE 'B%'"
                     . " ORDER BY Id")),
          [qw(P-4 P-8)], 'NOT IN and LIKE (ignoring case)');
is_deeply(exts(query("SELECT ExtId__c FROM Contact WHERE LastName LIKE"
                     . " 'ba\\_%' ORDER BY Id")), ['P-8'],
          'LIKE with an escaped _');
is_deeply(exts(query("SELECT ExtId__c FROM Contact WHERE Id = '"
                     . substr($ids[4], 0, 15) . "'")), ['P-5'],
          'Id = a 15-character id');
is_deeply(exts(query("SELECT ExtId__c FROM Contact WHERE Id > '$ids[5]'"
                     . " ORDER BY Id")), [qw(P-7 P-8)],
          'Id > for keyset paging');
is_deeply(exts(query("SELECT ExtId__c FROM Contact WHERE Nothing__c = null"
                     . " AND CreatedDate < 2026-11-02T00:00:00Z LIMIT 2"
                     . " ")), [qw(P-1 P-2)], '= null and CreatedDate');

# --- pagination -------------------------------------------------------------

$sb->config('salesforce', { query_batch_size => 3 });
$r = query('SELECT Id, ExtId__c FROM Contact ORDER BY SystemModstamp, Id');
is($r->{json}{totalSize}, 8, 'totalSize counts every record');
ok(!$r->{json}{done}, 'done false');
is(scalar @{ $r->{json}{records} }, 3, 'a batch of query_batch_size');
like($r->{json}{nextRecordsUrl}, qr{^\Q$V\E/query/01g\w+-3$},
     'nextRecordsUrl /query/01g...-3');
my @all = @{ exts($r) };
my @pages = (1);
while (!$r->{json}{done}) {
    my $u = usage($r);
    $r = sf('GET', $r->{json}{nextRecordsUrl});
    is($r->{status}, 200, 'next page: 200');
    is(usage($r), $u + 1, 'each page counts one call');
    push @all, @{ exts($r) };
    push @pages, scalar @{ $r->{json}{records} };
}
is_deeply(\@all, [ map { "P-$_" } 1 .. 8 ], 'all pages in order');
is_deeply([ @pages[1 .. $#pages] ], [3, 2], 'three pages: 3, 3, 2');
ok(!exists $r->{json}{nextRecordsUrl}, 'the last page has no next URL');
$r = sf('GET', "$V/query/01gNOPE-3");
is($r->{status}, 400, 'unknown locator: 400');
is($r->{json}[0]{errorCode}, 'INVALID_QUERY_LOCATOR', 'INVALID_QUERY_LOCATOR');
$r = sf('GET', "$V/queryAll?q=" . esc('SELECT Id FROM Contact'));
like($r->{json}{nextRecordsUrl}, qr{/queryAll/01g}, 'queryAll pages too');
$r = query('SELECT Id FROM Contact', 'Sforce-Query-Options' => 'batchSize=5');
is(scalar @{ $r->{json}{records} }, 8,
   'Sforce-Query-Options batchSize is at least 200');
$sb->config('salesforce', { query_batch_size => 2000 });

# --- errors -----------------------------------------------------------------

sub query_error {
    my ($soql, $code, $name) = @_;
    my $r = query($soql);
    is($r->{status}, 400, "$name: 400");
    is(ref $r->{json} eq 'ARRAY' && $r->{json}[0]{errorCode}, $code,
       "$name: $code");
    return $r;
}
$r = query_error('SELEC Id FROM Contact', 'MALFORMED_QUERY', 'typo');
like($r->{json}[0]{message}, qr/unexpected token/, 'says what is wrong');
query_error('SELECT Id FROM Contact WHERE LastName = \'a\' OR LastName ='
            . ' \'b\'', 'MALFORMED_QUERY', 'OR');
query_error('SELECT COUNT() FROM Contact', 'MALFORMED_QUERY', 'functions');
query_error('SELECT Account.Name FROM Contact', 'MALFORMED_QUERY',
            'relationship fields');
query_error('SELECT Id FROM Contact LIMIT', 'MALFORMED_QUERY', 'no LIMIT n');
query_error("SELECT Id FROM Contact WHERE LastName = 'open",
            'MALFORMED_QUERY', 'unterminated string');
query_error('SELECT Id FROM Contact WHERE SystemModstamp >'
            . " '2026-11-24T10:00:00Z'", 'INVALID_FIELD',
            'a quoted date-time');
query_error('SELECT Id, Bogus__c FROM Account', 'INVALID_FIELD',
            'unknown column on an object with fields');
query_error('SELECT Id FROM Nope__c', 'INVALID_TYPE', 'unknown object');
query_error("SELECT Id FROM Contact WHERE Id = 'short'",
            'INVALID_QUERY_FILTER_OPERATOR', 'a malformed id');
$r = sf('GET', "$V/query");
is($r->{json}[0]{errorCode}, 'MALFORMED_QUERY', 'no q: MALFORMED_QUERY');

# --- system fields on writes, echoes ----------------------------------------

my $me = $sb->action('salesforce', 'user_id',
                     { username => 'integration@loyalty.example' })->{id};
my $crm = $sb->action('salesforce', 'user_id')->{id};
like($me, qr/^005\w{15}$/, 'integration user id');
isnt($me, $crm, 'the CRM user is another user');

$r = sf('PATCH', "$V/sobjects/Contact/ExtId__c/W-1", { LastName => 'W' });
my $wid = $r->{json}{id};
$r = sf('GET', "$V/sobjects/Contact/$wid");
is($r->{json}{LastModifiedById}, $me, 'LastModifiedById: the token user');
is($r->{json}{CreatedById}, $me, 'CreatedById too');
like($r->{json}{SystemModstamp},
     qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000$/,
     'stamps in whole seconds');
my $first = $r->{json}{SystemModstamp};

$sb->action('salesforce', 'advance_clock', { seconds => 5 });
my $e = $sb->action('salesforce', 'crm_edit', { object => 'Contact',
    field => 'ExtId__c', value => 'W-1', fields => { Phone => '+4912' } });
is($e->{by}, $crm, 'crm_edit writes as the CRM user');
$r = sf('GET', "$V/sobjects/Contact/$wid");
is($r->{json}{LastModifiedById}, $crm, 'LastModifiedById changed');
is($r->{json}{CreatedById}, $me, 'CreatedById did not');
ok($r->{json}{SystemModstamp} gt $first, 'SystemModstamp moved forward');
is($r->{json}{Phone}, '+4912', 'the edit is stored');

$sb->action('salesforce', 'advance_clock', { seconds => 5 });
sf('PATCH', "$V/sobjects/Contact/ExtId__c/W-2", { LastName => 'Mine' });
(my $since = $first) =~ s/\.000\+0000$/Z/;
$r = query("SELECT ExtId__c, LastModifiedById FROM Contact WHERE"
           . " SystemModstamp > $since AND LastModifiedById != '$me'"
           . " ORDER BY SystemModstamp, Id");
is_deeply(exts($r), ['W-1'], 'changes since, without our own writes');
$r = query("SELECT ExtId__c FROM Contact WHERE SystemModstamp > $since"
           . " ORDER BY SystemModstamp, Id");
is_deeply(exts($r), [qw(W-1 W-2)], 'with them: both, in write order');
my $h = $sb->state('salesforce', 'records', 'Contact', $wid)->{history};
is_deeply([ map { $_->{via} } @$h ], [qw(upsert crm_edit)],
          'history shows crm_edit');
is($h->[1]{by}, $crm, 'and who wrote');

done_testing;
