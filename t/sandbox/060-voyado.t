#!/usr/bin/perl

# The Voyado Engage emulation (src/sandbox/sandbox_voyado.js): apikey or
# x-api-key, the mandatory System/version User-Agent, the 500 for a body
# without a JSON content type, the per-key 429, contact id lookups
# (400/404/409), create, PATCH partial-update semantics with a change
# history per field, immutable receipts earning and reversing points,
# point accounts and their ledger, v2 point transactions.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Sandbox;

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;
my $sb = Loyalty::Test::Sandbox->new;
my $KEY = 'voyado_test_key';
my $UA = 'LoyaltyEdgeTest/1.0';

sub voyado {
    my ($method, $path, %o) = @_;
    my %h = %{ delete $o{headers} // {} };
    $h{apikey} = $KEY unless exists $h{apikey} || exists $h{'x-api-key'};
    $h{'User-Agent'} = $UA unless exists $h{'User-Agent'};
    delete @h{ grep { !defined $h{$_} } keys %h };
    my $r = $sb->call($method, "/voyado$path", headers => \%h, %o);
    $r->{json} = eval { $JSON->decode($r->{body}) } if length $r->{body};
    return $r;
}

sub contact_id {
    my ($query) = @_;
    return voyado('GET', "/api/v3/contacts/id?$query");
}

sub balance {
    my $r = voyado('GET', "/api/v3/point-accounts?contactId=$_[0]");
    return $r->{json}[0]{balance};
}

sub window_start { sleep(1.02 - (time - int(time))) }

is($sb->config('voyado')->{rate_limit}, 200, 'default: 200 requests/s');

# --- request rules -----------------------------------------------------------

my $r = voyado('GET', '/api/v3/contacts/id?email=a@b.io',
               headers => { apikey => undef });
is($r->{status}, 401, 'no API key: 401');
is($r->{json}{errorCode}, 'Unauthorized', 'Voyado error body');
is(voyado('GET', '/api/v3/contacts/id?email=a@b.io',
          headers => { apikey => 'wrong' })->{status}, 401,
   'wrong API key: 401');
is(voyado('GET', '/api/v3/contacts/id?email=a@b.io',
          headers => { 'x-api-key' => $KEY })->{status}, 404,
   'x-api-key is accepted too (auth_header any)');
$sb->config('voyado', { auth_header => 'apikey' });
is(voyado('GET', '/api/v3/contacts/id?email=a@b.io',
          headers => { 'x-api-key' => $KEY })->{status}, 401,
   'auth_header apikey: x-api-key no longer works');
$sb->config('voyado', { auth_header => 'any' });

$r = voyado('GET', '/api/v3/contacts/id?email=a@b.io',
            headers => { 'User-Agent' => undef });
is($r->{status}, 400, 'no User-Agent: 400');
is($r->{json}{errorCode}, 'InvalidUserAgent', 'says why');
is(voyado('GET', '/api/v3/contacts/id?email=a@b.io',
          headers => { 'User-Agent' => 'curl' })->{status}, 400,
   'User-Agent without /version: 400');

$r = voyado('POST', '/api/v3/contacts', body => '{"email":"x@y.io"}');
is($r->{status}, 500, 'a body without Content-Type: 500');
like($r->{body}, qr/An error has occurred/, '"An error has occurred"');
is(voyado('POST', '/api/v3/contacts', body => '{"email":"x@y.io"}',
          headers => { 'Content-Type' => 'text/plain' })->{status}, 500,
   'a text/plain body: 500');
is(scalar @{ $sb->state('voyado')->{contacts} }, 0, 'nothing created');

# --- create and look up ------------------------------------------------------

$r = voyado('POST', '/api/v3/contacts?source=ECOM&storeExternalId=600',
    json => { firstName => 'Eva', lastName => 'Berg',
              email => 'eva@example.com', mobilePhone => '+46701234567',
              memberNumber => 'M-1', countryCode => 'SE',
              favouriteColour => 'blue',
              preferences => { acceptsEmail => JSON::PP::true } });
is($r->{status}, 201, 'contact created: 201');
my $eva = $r->{json}{id};
like($eva, qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
     'a GUID');
is($r->{json}{contactType}, 'Member', 'contactType defaults to Member');
ok(!exists $r->{json}{favouriteColour}, 'unknown fields ignored');
is($sb->state('voyado', 'contacts', $eva)->{meta}{storeExternalId}, '600',
   'query parameters kept');

is(voyado('POST', '/api/v3/contacts', json => { email => 'not-an-email' })
   ->{json}{errorCode}, 'InvalidEmailAddress', 'bad e-mail: 400 code');
is(voyado('POST', '/api/v3/contacts', json => { mobilePhone => 'abc' })
   ->{status}, 400, 'bad mobile: 400');
is(voyado('POST', '/api/v3/contacts', json => { email => 'e@x.io',
   contactType => 'Alien' })->{json}{errorCode}, 'InvalidContactType',
   'bad contact type');
is(voyado('POST', '/api/v3/contacts', json => { email => 'eva@example.com' })
   ->{status}, 409, 'same e-mail again: 409');

$r = contact_id('email=eva@example.com');
is($r->{status}, 200, 'lookup by e-mail');
like($r->{headers}{'content-type'}, qr{application/json}, 'JSON');
is($r->{json}, $eva, 'body is the GUID as a JSON string');
is(contact_id('mobilePhone=%2B46701234567')->{json}, $eva, 'by mobile');
is(contact_id('customKey=M-1')->{json}, $eva, 'by customKey');
is(contact_id('any=eva@example.com')->{json}, $eva, 'any: an e-mail');
is(contact_id('any=M-1')->{json}, $eva, 'any: falls back to customKey');
is(contact_id('email=eva@example.com&contactType=Member')->{status}, 200,
   'with contactType');
is(contact_id('email=eva@example.com&contactType=Contact')->{status}, 404,
   'other contactType: 404');

$r = contact_id('email=broken');
is($r->{status}, 400, 'invalid e-mail: 400');
is($r->{json}{errorCode}, 'InvalidEmailAddress', 'InvalidEmailAddress');
is(contact_id('mobilePhone=12ab')->{json}{errorCode}, 'InvalidPhoneNumber',
   'InvalidPhoneNumber');
is(contact_id('')->{json}{errorCode}, 'InvalidSearchQuery',
   'no search parameter: InvalidSearchQuery');
is(contact_id('contactType=Bogus&email=eva@example.com')->{json}{errorCode},
   'InvalidContactType', 'InvalidContactType');
$r = contact_id('email=nobody@example.com');
is($r->{status}, 404, 'unknown: 404');
is($r->{json}{errorCode}, 'ContactNotFound', 'ContactNotFound');

$sb->action('voyado', 'contact', { contacts => [
    { email => 'twin@example.com', firstName => 'One' },
    { email => 'twin@example.com', firstName => 'Two' } ] });
$r = contact_id('email=twin@example.com');
is($r->{status}, 409, 'two contacts share an e-mail: 409');
is($r->{json}{errorCode}, 'MultipleMatches', 'MultipleMatches');

# --- get and partial update --------------------------------------------------

$r = voyado('GET', "/api/v3/contacts/$eva");
is($r->{status}, 200, 'get contact');
is($r->{json}{firstName}, 'Eva', 'with its fields');
ok($r->{json}{preferences}{acceptsEmail}, 'and preferences');
is(voyado('GET', '/api/v3/contacts/00000000-0000-0000-0000-000000000000')
   ->{status}, 404, 'unknown contact: 404');

sub patch { voyado('PATCH', "/api/v3/contacts/$eva", json => $_[0]) }

$r = patch({ lastName => 'Lind', shoeSize => 42 });
is($r->{status}, 200, 'PATCH: 200');
is($r->{json}{lastName}, 'Lind', 'present field changed');
is($r->{json}{firstName}, 'Eva', 'absent field untouched');
ok(!exists $r->{json}{shoeSize}, 'unknown field ignored');
$r = patch({ mobilePhone => '', firstName => undef });
ok(exists $r->{json}{mobilePhone} && $r->{json}{mobilePhone} eq '',
   'an empty value overwrites');
ok(exists $r->{json}{firstName} && !defined $r->{json}{firstName},
   'a null overwrites');
is($r->{json}{lastName}, 'Lind', 'others kept');
$r = patch({ contactType => 'Contact' });
is($r->{json}{contactType}, 'Member', 'contactType cannot change');
$r = patch({ preferences => { acceptsSms => JSON::PP::true } });
ok($r->{json}{preferences}{acceptsSms}, 'acceptsSms set');
ok($r->{json}{preferences}{acceptsEmail}, 'acceptsEmail kept');
ok(!$r->{json}{preferences}{acceptsPostal}, 'acceptsPostal kept');
is(patch({ email => 'broken' })->{status}, 400, 'invalid e-mail: 400');
is(voyado('GET', "/api/v3/contacts/$eva")->{json}{email}, 'eva@example.com',
   'and nothing changed');
$sb->config('voyado', { patch_contact_type => 'reject' });
is(patch({ contactType => 'Contact' })->{status}, 400,
   'patch_contact_type reject: 400');
$sb->config('voyado', { patch_contact_type => 'ignore' });

$r = voyado('POST', "/api/v3/contacts/$eva/updateContactType"
            . '?contactTypeId=Contact');
is($r->{json}{contactType}, 'Contact', 'updateContactType changes it');
is(voyado('POST', "/api/v3/contacts/$eva/updateContactType"
          . '?contactTypeId=Alien')->{status}, 400, 'to a bad type: 400');
voyado('POST', "/api/v3/contacts/$eva/updateContactType?contactTypeId=Member");

my $hist = $sb->state('voyado', 'contacts', $eva)->{history};
my @writes = map { "$_->{op}:$_->{field}" } grep { $_->{op} eq 'patch' }
             @$hist;
# (the harness encodes JSON with sorted keys: firstName before mobilePhone)
is_deeply(\@writes, [ 'patch:lastName', 'patch:firstName',
                      'patch:mobilePhone', 'patch:preferences.acceptsSms' ],
          'history: each write once, in the order written');
my ($ln) = grep { $_->{field} eq 'lastName' && $_->{op} eq 'patch' } @$hist;
is_deeply([ $ln->{from}, $ln->{to} ], [ 'Berg', 'Lind' ],
          'history: from and to');

# --- receipts and points -----------------------------------------------------

my $acc = voyado('GET', "/api/v3/point-accounts?contactId=$eva")->{json};
is(scalar @$acc, 1, 'a member has a point account');
is($acc->[0]{balance}, 0, 'starting at 0');
my $account = $acc->[0]{id};

sub receipt {
    my ($id, @items) = @_;
    return voyado('POST', '/api/v3/receipts', json => {
        contact => { matchKey => $eva, matchKeyType => 'contactId' },
        uniqueReceiptId => $id, receiptNumber => "R$id",
        createdDate => '2026-11-20T10:00:00+01:00', storeExternalId => '321',
        currency => 'SEK', totalGrossPrice => 0, items => \@items });
}

$r = receipt('1001', { type => 'PURCHASE', quantity => 2,
                       grossPaidPrice => 200.00, sku => 'A' },
                     { type => 'PURCHASE', quantity => 1,
                       grossPaidPrice => 49.90, sku => 'B' });
is($r->{status}, 201, 'receipt registered');
is(balance($eva), 249, '249.90 spent: 249 points');
is(receipt('1001', { type => 'PURCHASE', quantity => 1,
                     grossPaidPrice => 500 })->{status}, 409,
   'same uniqueReceiptId: 409');
is(balance($eva), 249, 'receipts are immutable: no change');
receipt('1002', { type => 'RETURN', quantity => -1, grossPaidPrice => 49.90,
                  sku => 'B' });
is(balance($eva), 200, 'a return reverses 49 points');

$r = voyado('GET', "/api/v3/point-transactions?accountId=$account");
is($r->{json}{totalCount}, 2, 'two ledger rows');
is_deeply([ map { $_->{amount} } @{ $r->{json}{items} } ], [ -49, 249 ],
          'newest first');
is($r->{json}{items}[1]{type}, 'Addition', 'type Addition');
is(voyado('GET', "/api/v3/point-transactions?accountId=$account&offset=1")
   ->{json}{items}[0]{amount}, 249, 'offset');

$r = voyado('POST', '/api/v3/receipts', json => {
    contact => { matchKey => 'nobody@example.com', matchKeyType => 'email' },
    uniqueReceiptId => '2001', items => [ { type => 'PURCHASE',
                                            grossPaidPrice => 10 } ] });
is($r->{status}, 404, 'receipt for an unknown contact: 404');
is(voyado('POST', '/api/v3/receipts', json => {
   contact => { matchKey => 'eva@example.com', matchKeyType => 'email' },
   items => [ { type => 'PURCHASE', grossPaidPrice => 10 } ] })->{status},
   400, 'no uniqueReceiptId: 400');
is(voyado('POST', '/api/v3/receipts', json => {
   contact => { matchKey => 'eva@example.com', matchKeyType => 'email' },
   uniqueReceiptId => '2002',
   items => [ { type => 'PURCHASE', grossPaidPrice => 10 } ] })->{status},
   201, 'matched by e-mail');
is(balance($eva), 210, 'balance 210');

is(voyado('GET', '/api/v3/point-accounts')->{status}, 400,
   'point accounts without contactId: 400');

# --- v2 point transactions ---------------------------------------------------

sub v2 { voyado('POST', '/api/v2/point-accounts/transactions', json => $_[0]) }

$r = v2([ { contactId => $eva, amount => 40, definitionId => 1,
            source => 'loyalty-edge', description => 'Welcome' },
          { contactId => $eva, amount => -10, definitionId => 1,
            source => 'loyalty-edge', description => 'Correction' } ]);
is($r->{status}, 200, 'v2 rows accepted');
is(scalar @{ $r->{json} }, 2, 'two rows back');
is(balance($eva), 240, 'balance 240');
$r = v2([ { contactId => $eva, amount => 5, source => 'x',
            description => 'ok' },
          { contactId => $eva, amount => 5, description => 'no source' } ]);
is($r->{status}, 400, 'a row without source: 400');
is($r->{json}{errors}[0]{index}, 1, 'the bad row named');
is(balance($eva), 240, 'no row applied');
is(v2([ { contactId => $eva, amount => 5, source => 'x' } ])->{status}, 400,
   'no description: 400');

# --- rate limit --------------------------------------------------------------

$sb->config('voyado', { rate_limit => 3 });
window_start();
my @st = map { contact_id('email=eva@example.com')->{status} } 1 .. 4;
is_deeply(\@st, [ 200, 200, 200, 429 ], '3 per second, then 429');
is(contact_id('email=eva@example.com')->{json}{errorCode}, 'TooManyRequests',
   '429 with an error code');
sleep 1.05;
is(contact_id('email=eva@example.com')->{status}, 200, 'next second: 200');

$sb->reset('voyado');
is(contact_id('email=eva@example.com')->{status}, 404, 'reset clears contacts');
$sb->action('voyado', 'defaults');

done_testing;
