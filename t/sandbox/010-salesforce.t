#!/usr/bin/perl

# The Salesforce emulation: both token grants and their failures, 401
# INVALID_SESSION_ID on expired tokens, Sforce-Limit-Info and the daily
# budget (403), upsert by external id (201/200/204/300/400/404 by API
# version), reads, create, platform events, sObject Collections with
# per-record errors and all-or-none rollback, and the record history.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Digest::SHA qw(hmac_sha256_base64);
use File::Temp qw(tempdir);
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use Test::More;

use Loyalty::Test::Sandbox;

my $JSON = JSON::PP->new->utf8->canonical;
my $sb = Loyalty::Test::Sandbox->new;
my $V = '/services/data/v62.0';
my $tok;

sub form {
    my (%f) = @_;
    my $esc = sub {
        (my $s = shift) =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
        $s;
    };
    return join '&', map { "$_=" . $esc->($f{$_}) } sort keys %f;
}

sub decoded {
    my ($r) = @_;
    $r->{json} = eval { $JSON->decode($r->{body}) } if length $r->{body};
    return $r;
}

sub token_call {
    my ($body, %h) = @_;
    return decoded($sb->call('POST', '/salesforce/services/oauth2/token',
        headers => { 'Content-Type' => 'application/x-www-form-urlencoded',
                     Host => '127.0.0.1:' . $sb->port, %h },
        body => $body));
}

sub sf {
    my ($method, $path, %o) = @_;
    my %h = (Authorization => 'Bearer ' . ($o{token} // $tok));
    return decoded($sb->call($method, "/salesforce$path", headers => \%h,
                             (exists $o{json} ? (json => $o{json}) : ())));
}

sub usage {
    my ($r) = @_;
    my ($n) = ($r->{headers}{'sforce-limit-info'} // '') =~ /api-usage=(\d+)/;
    return $n;
}

sub new_token {
    my $r = token_call(form(grant_type => 'client_credentials',
                            client_id => 'sandbox-client-id',
                            client_secret => 'sandbox-client-secret'));
    return $r->{json}{access_token};
}

# --- client credentials -----------------------------------------------------

my $r = token_call(form(grant_type => 'client_credentials',
                        client_id => 'sandbox-client-id',
                        client_secret => 'sandbox-client-secret'));
is($r->{status}, 200, 'client credentials: 200');
my $t = $r->{json};
like($t->{access_token}, qr/^00D\w+!\S+$/, 'opaque access token');
is($t->{instance_url}, $sb->url('/salesforce'),
   'instance_url is the sandbox, from the Host header');
like($t->{issued_at}, qr/^\d{13}$/, 'issued_at in ms, as a string');
ok(!exists $t->{expires_in} && !exists $t->{refresh_token},
   'no expires_in, no refresh_token');
is($t->{token_type}, 'Bearer', 'token_type');
(my $sig = hmac_sha256_base64($t->{id} . $t->{issued_at},
                              'sandbox-client-secret')) .= '=';
is($t->{signature}, $sig, 'signature = HMAC-SHA256(id + issued_at)');
$tok = $t->{access_token};

$r = token_call('grant_type=client_credentials',
    Authorization => 'Basic '
        . encode_base64('sandbox-client-id:sandbox-client-secret', ''));
is($r->{status}, 200, 'client id and secret in HTTP Basic');

$r = token_call(form(grant_type => 'client_credentials',
                     client_id => 'sandbox-client-id',
                     client_secret => 'wrong'));
is($r->{status}, 400, 'wrong secret: 400');
is($r->{json}{error}, 'invalid_client', 'invalid_client');
$r = token_call(form(grant_type => 'client_credentials',
                     client_id => 'nobody', client_secret => 'x'));
is($r->{json}{error}, 'invalid_client', 'unknown client: invalid_client');
$r = token_call(form(grant_type => 'password', username => 'u'));
is($r->{status}, 400, 'other grant: 400');
is($r->{json}{error}, 'unsupported_grant_type', 'unsupported_grant_type');

$sb->config('salesforce', { clients => {
    'sandbox-client-id' => { secret => 'sandbox-client-secret',
                             user => 'integration@loyalty.example' },
    'no-user' => { secret => 's2' } } });
$r = token_call(form(grant_type => 'client_credentials',
                     client_id => 'no-user', client_secret => 's2'));
is($r->{json}{error}, 'invalid_grant', 'no run-as user: invalid_grant');

# --- session, limit header, versions ----------------------------------------

$r = sf('GET', "$V/sobjects/Contact/003000000000001AAA", token => 'bogus');
is($r->{status}, 401, 'unknown token: 401');
is($r->{json}[0]{errorCode}, 'INVALID_SESSION_ID', 'INVALID_SESSION_ID');
is($r->{json}[0]{message}, 'Session expired or invalid', 'its message');
$r = decoded($sb->call('GET', "/salesforce$V/sobjects/Contact/x"));
is($r->{status}, 401, 'no Authorization header: 401');

$r = decoded($sb->call('GET', '/salesforce/services/data/'));
is($r->{status}, 200, 'versions root needs no token');
ok(!exists $r->{headers}{'sforce-limit-info'},
   'and carries no Sforce-Limit-Info');
ok((grep { $_->{version} eq '62.0' } @{ $r->{json} }), 'v62.0 listed');

# --- single upsert ----------------------------------------------------------

my $u0 = usage(sf('GET', "$V/limits"));
ok(defined $u0, 'Sforce-Limit-Info on a data call');
$r = sf('PATCH', "$V/sobjects/Contact/ExtId__c/C-1",
        json => { LastName => 'Smith', Email => 's@x.io' });
is($r->{status}, 201, 'upsert of a new value: 201');
ok($r->{json}{created} && $r->{json}{success}, 'created: true');
like($r->{json}{id}, qr/^003\w{15}$/, '18-character Contact id');
my $id1 = $r->{json}{id};
is(usage($r), $u0 + 1, 'each call counts one');

$r = sf('PATCH', "$V/sobjects/Contact/ExtId__c/C-1",
        json => { LastName => 'Smyth' });
is($r->{status}, 200, 'upsert of an existing value (v62.0): 200');
ok(!$r->{json}{created}, 'created: false');
is($r->{json}{id}, $id1, 'same record');
is(usage($r), $u0 + 2, 'counted');

$r = sf('PATCH', "/services/data/v45.0/sobjects/Contact/ExtId__c/C-1",
        json => { FirstName => 'Ann' });
is($r->{status}, 204, 'update on v45.0: 204');
is($r->{body}, '', 'no body');

$r = sf('GET', "$V/sobjects/Contact/$id1");
is($r->{status}, 200, 'GET by id');
is($r->{json}{LastName}, 'Smyth', 'last write wins');
is($r->{json}{FirstName}, 'Ann', 'fields merged');
is($r->{json}{ExtId__c}, 'C-1', 'external id kept');
is($r->{json}{attributes}{type}, 'Contact', 'attributes.type');
$r = sf('GET', "$V/sobjects/Contact/" . substr($id1, 0, 15));
is($r->{json}{Id}, $id1, '15-character id works too');
$r = sf('GET', "$V/sobjects/Contact/ExtId__c/c-1");
is($r->{json}{Id}, $id1, 'GET by external id (case-insensitive)');

my $rec = $sb->state('salesforce', 'records', 'Contact', $id1);
is($rec->{writes}, 3, 'history: three writes');
is_deeply([ map { $_->{op} } @{ $rec->{history} } ],
          [qw(create update update)], 'create then two updates');
is($rec->{history}[1]{fields}{LastName}, 'Smyth', 'fields per write');

$r = sf('PATCH', "$V/sobjects/Contact/ExtId__c/C-2",
        json => { Id => $id1, LastName => 'X' });
is($r->{status}, 400, 'Id in the body: 400');
$r = sf('PATCH', "$V/sobjects/Contact/ExtId__c/C-2",
        json => { ExtId__c => 'C-2', LastName => 'X' });
is($r->{status}, 400, 'external id field in the body: 400');
is($r->{json}[0]{errorCode}, 'INVALID_FIELD', 'INVALID_FIELD');
$r = sf('PATCH', "$V/sobjects/Nope__c/ExtId__c/C-2", json => { A => 1 });
is($r->{status}, 404, 'unknown object: 404');
is($r->{json}[0]{errorCode}, 'NOT_FOUND', 'NOT_FOUND');
$r = sf('PATCH', "$V/sobjects/Contact/Bogus__c/C-2", json => { A => 1 });
is($r->{status}, 404, 'unknown external id field: 404');
is($r->{json}[0]{errorCode}, 'NOT_FOUND', 'NOT_FOUND');
$r = decoded($sb->call('PATCH', "/salesforce$V/sobjects/Contact/ExtId__c/C-2",
    headers => { Authorization => "Bearer $tok",
                 'Content-Type' => 'application/json' },
    body => '{"LastName":'));
is($r->{status}, 400, 'malformed JSON: 400');
is($r->{json}[0]{errorCode}, 'JSON_PARSER_ERROR', 'JSON_PARSER_ERROR');
$r = sf('PATCH', "$V/sobjects/Contact/ExtId__c/C-404?updateOnly=true",
        json => { LastName => 'X' });
is($r->{status}, 404, 'updateOnly and no match: 404');
$r = sf('GET', "$V/sobjects/Contact/003999999999999AAA");
is($r->{status}, 404, 'GET of a missing id: 404');
$r = sf('PATCH', "/services/data/v12.0/sobjects/Contact/ExtId__c/C-2",
        json => { LastName => 'X' });
is($r->{status}, 404, 'unsupported API version: 404');

# --- 300: several records share the value -----------------------------------

my $seeded = $sb->action('salesforce', 'seed', { object => 'Contact',
    records => [ { ExtId__c => 'DUP', LastName => 'A' },
                 { ExtId__c => 'DUP', LastName => 'B' } ] });
is(scalar @{ $seeded->{ids} }, 2, 'two records seeded with one value');
$r = sf('PATCH', "$V/sobjects/Contact/ExtId__c/DUP",
        json => { LastName => 'C' });
is($r->{status}, 300, 'upsert on a shared value: 300');
is(scalar @{ $r->{json} }, 2, 'lists both records');
like($r->{json}[0], qr{/sobjects/Contact/003}, 'as record URLs');
is(sf('GET', "$V/sobjects/Contact/ExtId__c/DUP")->{status}, 300,
   'GET by a shared value: 300');

# --- injected errors on a single upsert -------------------------------------

$sb->action('salesforce', 'inject_error', { object => 'Contact',
    value => 'C-1', statusCode => 'UNABLE_TO_LOCK_ROW',
    message => 'unable to obtain exclusive access to this record' });
$r = sf('PATCH', "$V/sobjects/Contact/ExtId__c/C-1",
        json => { LastName => 'Locked' });
is($r->{status}, 400, 'injected error: 400');
is($r->{json}[0]{errorCode}, 'UNABLE_TO_LOCK_ROW', 'UNABLE_TO_LOCK_ROW');
$r = sf('PATCH', "$V/sobjects/Contact/ExtId__c/C-1",
        json => { LastName => 'Unlocked' });
is($r->{status}, 200, 'times used up: the retry succeeds');
is($sb->state('salesforce', 'records', 'Contact', $id1)->{writes}, 4,
   'the failed write is not in the history');

# --- create, platform events ------------------------------------------------

$r = sf('POST', "$V/sobjects/Lead/",
        json => { LastName => 'L', Company => 'C' });
is($r->{status}, 201, 'create: 201');
like($r->{json}{id}, qr/^00Q/, 'Lead id prefix');
$r = sf('POST', "$V/sobjects/Loyalty_Update__e/",
        json => { Customer_Ext_Id__c => 'C-1', Points__c => 120 });
is($r->{status}, 201, 'platform event: 201');
is_deeply($r->{json}{errors}, [], 'no errors');
$sb->config('salesforce', { enqueue_events => JSON::PP::true });
$r = sf('POST', "$V/sobjects/Loyalty_Update__e/", json => { Points__c => 5 });
ok($r->{json}{success}, 'enqueued publish: success true');
is($r->{json}{errors}[0]{statusCode}, 'OPERATION_ENQUEUED',
   'OPERATION_ENQUEUED');
is(scalar @{ $sb->state('salesforce', 'events')->{events} }, 2,
   'events kept');

# --- sObject Collections upsert ---------------------------------------------

sub recs {
    return [ map { { attributes => { type => 'Contact' }, ExtId__c => $_,
                     LastName => "L-$_" } } @_ ];
}
my $C = "$V/composite/sobjects/Contact/ExtId__c";

$r = sf('PATCH', $C, json => { allOrNone => JSON::PP::false,
                               records => recs('C-1', 'C-10', 'C-11') });
is($r->{status}, 200, 'collection: 200');
is(scalar @{ $r->{json} }, 3, 'one result per record');
ok(!$r->{json}[0]{created} && $r->{json}[1]{created}
   && $r->{json}[2]{created}, 'in order: updated, created, created');
is($r->{json}[0]{id}, $id1, 'the existing record');

$sb->action('salesforce', 'inject_error', { object => 'Contact',
    value => 'C-21', statusCode => 'DUPLICATE_VALUE',
    message => 'duplicate value found: Email', fields => ['Email'] });
$r = sf('PATCH', $C, json => { records => recs('C-20', 'C-21', 'C-22') });
ok($r->{json}[0]{success} && $r->{json}[2]{success},
   'per-record error: the others succeed');
ok(!$r->{json}[1]{success}, 'the failing record fails');
is($r->{json}[1]{errors}[0]{statusCode}, 'DUPLICATE_VALUE',
   'statusCode per record');
is_deeply($r->{json}[1]{errors}[0]{fields}, ['Email'], 'fields');

$sb->action('salesforce', 'inject_error', { object => 'Contact',
    value => 'C-31', statusCode => 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
    message => 'bad' });
$r = sf('PATCH', $C, json => { allOrNone => JSON::PP::true,
                               records => recs('C-1', 'C-30', 'C-31') });
is($r->{status}, 200, 'allOrNone with a failure: still 200');
is($r->{json}[2]{errors}[0]{statusCode}, 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
   'the failing record shows its error');
is($r->{json}[0]{errors}[0]{statusCode}, 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
   'the others are rolled back');
ok(!$r->{json}[1]{success}, 'success false');
is(scalar @{ $sb->state('salesforce', 'records', 'Contact',
    { field => 'ExtId__c', value => 'C-30' })->{records} }, 0,
   'nothing was created');
is($sb->state('salesforce', 'records', 'Contact', $id1)->{writes}, 5,
   'nothing was updated');

$r = sf('PATCH', $C, json => { records => recs('C-40', 'C-40') });
is($r->{json}[0]{errors}[0]{statusCode}, 'DUPLICATE_EXTERNAL_ID',
   'one value twice in a call: DUPLICATE_EXTERNAL_ID');

$r = sf('PATCH', $C, json => { records => recs(map { "B-$_" } 1 .. 201) });
is($r->{status}, 400, 'more than 200 records: 400');
$r = sf('PATCH', $C, json => { records => recs(map { "B-$_" } 1 .. 200) });
is($r->{status}, 200, '200 records: 200');
my $before = usage($r);
$r = sf('PATCH', $C, json => { records => [ { attributes => {
    type => 'Lead' }, ExtId__c => 'X' } ] });
is($r->{status}, 400, 'attributes.type not the URI object: 400');
is(usage($r), $before + 1, 'a collection counts as one call');
$r = sf('PATCH', "/services/data/v45.0/composite/sobjects/Contact/ExtId__c",
        json => { records => recs('C-50') });
is($r->{status}, 404, 'collections before v46.0: 404');

# --- budget -----------------------------------------------------------------

$sb->config('salesforce', { daily_limit => 100 });
$sb->action('salesforce', 'set_api_usage', { used => 99 });
$r = sf('GET', "$V/sobjects/Contact/$id1");
is($r->{status}, 200, 'last call of the budget: 200');
is($r->{headers}{'sforce-limit-info'}, 'api-usage=100/100',
   'Sforce-Limit-Info api-usage=100/100');
$r = sf('GET', "$V/sobjects/Contact/$id1");
is($r->{status}, 403, 'over the daily budget: 403');
is($r->{json}[0]{errorCode}, 'REQUEST_LIMIT_EXCEEDED',
   'REQUEST_LIMIT_EXCEEDED');
is(token_call(form(grant_type => 'client_credentials',
                   client_id => 'sandbox-client-id',
                   client_secret => 'sandbox-client-secret'))->{status},
   200, 'the token endpoint does not count');
$sb->config('salesforce', { daily_limit => 15000 });

# --- token expiry -----------------------------------------------------------

is($sb->action('salesforce', 'expire_tokens')->{expired} >= 1, 1,
   'expire_tokens');
$r = sf('GET', "$V/sobjects/Contact/$id1");
is($r->{status}, 401, 'expired token: 401');
is($r->{json}[0]{errorCode}, 'INVALID_SESSION_ID', 'INVALID_SESSION_ID');
$tok = new_token();
is(sf('GET', "$V/sobjects/Contact/$id1")->{status}, 200,
   'a new token works');

$sb->config('salesforce', { token_ttl_s => 1 });
$tok = new_token();
is(sf('GET', "$V/sobjects/Contact/$id1")->{status}, 200, 'fresh: 200');
select(undef, undef, undef, 1.2);
is(sf('GET', "$V/sobjects/Contact/$id1")->{status}, 401,
   'after token_ttl_s: 401');
$sb->config('salesforce', { token_ttl_s => 7200 });
$tok = new_token();

# --- faults in Salesforce's format ------------------------------------------

$sb->fault({ service => 'salesforce', status => 503, times => 1 });
$r = sf('GET', "$V/sobjects/Contact/$id1");
is($r->{status}, 503, 'injected 503');
is($r->{json}[0]{errorCode}, 'SERVER_UNAVAILABLE', 'Salesforce error body');

# --- JWT bearer -------------------------------------------------------------

my $dir = tempdir(CLEANUP => 1);
my $js = <<'JS';
const c = require('crypto'), fs = require('fs');
const [cmd, dir, claims, alg] = process.argv.slice(1);
if (cmd === 'keys') {
    for (const n of ['a', 'b']) {
        const k = c.generateKeyPairSync('rsa', { modulusLength: 2048 });
        fs.writeFileSync(dir + '/' + n + '.pub',
            k.publicKey.export({ type: 'spki', format: 'pem' }));
        fs.writeFileSync(dir + '/' + n + '.key',
            k.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    }
} else {
    const b = (x) => Buffer.from(x).toString('base64url');
    const head = b(JSON.stringify({ alg: alg || 'RS256' }));
    const body = b(claims);
    const sig = c.sign('sha256', Buffer.from(head + '.' + body),
                       fs.readFileSync(dir + '/' + cmd + '.key'));
    process.stdout.write(head + '.' + body + '.' + b(sig));
}
JS
system('node', '-e', $js, 'keys', $dir) == 0 or die "node keys failed\n";
open my $fh, '<', "$dir/a.pub" or die;
my $pub = do { local $/; <$fh> };
close $fh;
$sb->config('salesforce', { jwt => {
    consumer_key => 'sandbox-client-id', public_key => $pub,
    usernames => ['integration@loyalty.example'],
    audiences => ['https://login.salesforce.com'],
    skew_s => 180, max_exp_ahead_s => 86400 } });

sub jwt_token {
    my ($claims, %o) = @_;
    my %c = (iss => 'sandbox-client-id', sub => 'integration@loyalty.example',
             aud => 'https://login.salesforce.com', exp => time + 180,
             %$claims);
    open my $p, '-|', 'node', '-e', $js, $o{key} // 'a', $dir,
        $JSON->encode(\%c), $o{alg} // 'RS256' or die;
    my $jwt = do { local $/; <$p> };
    close $p;
    return token_call(form(grant_type =>
        'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion => $jwt));
}

$r = jwt_token({});
is($r->{status}, 200, 'JWT bearer: 200');
ok($r->{json}{access_token} && $r->{json}{instance_url}, 'token and URL');
$tok = $r->{json}{access_token};
is(sf('GET', "$V/sobjects/Contact/$id1")->{status}, 200,
   'the JWT token works');
is(jwt_token({ exp => time - 60 })->{status}, 200,
   'expired within the 3 min skew: accepted');
$r = jwt_token({ exp => time - 600 });
is($r->{json}{error}, 'invalid_grant', 'expired beyond the skew');
$r = jwt_token({ exp => (time + 180) * 1000 });
is($r->{status}, 400, 'exp in milliseconds: 400');
is($r->{json}{error}, 'invalid_grant', 'invalid_grant');
is(jwt_token({ aud => 'https://evil.example' })->{json}{error},
   'invalid_grant', 'wrong aud');
is(jwt_token({ iss => 'other' })->{json}{error}, 'invalid_client_id',
   'wrong iss');
is(jwt_token({ sub => 'stranger@x.io' })->{json}{error}, 'invalid_grant',
   'unknown user');
is(jwt_token({}, key => 'b')->{json}{error}, 'invalid_grant',
   'signed by another key');
is(jwt_token({}, alg => 'RS512')->{json}{error}, 'invalid_grant',
   'not RS256');

# --- state summary ----------------------------------------------------------

my $st = $sb->state('salesforce');
ok($st->{objects}{Contact} > 200, 'records by object');
ok($st->{api_usage}{used} > 0, 'api usage in the state');

done_testing;
