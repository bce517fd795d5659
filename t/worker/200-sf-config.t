#!/usr/bin/perl

# The salesforce destination in loyalty-worker -t: a full example (both
# auth flows, every field option) passes; each bad case fails with a
# message naming the key, and no message shows a secret.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Util qw(spew);
use Loyalty::Test::Worker qw(check_config worker_bin temp_dir);

plan skip_all => 'build/loyalty-worker not built' unless -x worker_bin();

my $dir = temp_dir('sfconf');
my $secret = 'S3cr3t-client-secret-value';
spew("$dir/sf.secret", "$secret\n", 0600);
spew("$dir/empty.secret", "\n", 0600);
system("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
       . "-out $dir/sf.key 2>/dev/null") == 0 or die "openssl: $?";
spew("$dir/bad.key", "-----BEGIN PRIVATE KEY-----\nnope\n"
     . "-----END PRIVATE KEY-----\n", 0600);

my %dest = (
    cc => <<"Y",
  - name: sfcc
    type: salesforce
    url: https://example.my.salesforce.com
    auth: client_credentials
    client_id: 3MVG9-consumer-key
    client_secret_file: $dir/sf.secret
    api_version: "62.0"
    batch_window_ms: 200
    limit_pause_ms: 60000
    timeout_ms: 20000
    concurrency: 4
Y
    jwt => <<"Y",
  - name: sfjwt
    type: salesforce
    url: https://login.salesforce.com
    auth: jwt_bearer
    client_id: 3MVG9-consumer-key
    username: integration\@loyalty.example
    audience: https://login.salesforce.com
    private_key_file: $dir/sf.key
Y
);

my $contact = <<'Y';
  - to: sfcc
    on: [customer.updated]
    object: Contact
    external_id: Loyalty_Id__c
    key: ext_id
    fields:
      - { field: Email, from: customer.email, type: email, owner: either }
      - { field: LastName, from: customer.last_name, type: text,
          max_length: 80 }
      - { field: Points__c, from: loyalty.points, type: integer,
          owner: loyalty }
      - { field: Spend__c, from: loyalty.spend, type: decimal, scale: 2,
          precision: 16, minor_units: true }
      - { field: Tier__c, from: loyalty.tier, type: picklist,
          values: [Bronze, Silver, Gold], nullable: true }
      - { field: Opt_In__c, from: customer.opt_in, type: boolean,
          owner: crm }
      - { field: Birthdate, from: customer.birthday, type: date }
      - { field: MobilePhone, from: customer.phone, type: phone,
          country: DE }
      - { field: Last_Event__c, from: $occurred, type: datetime }
Y
my $events = <<'Y';
  - to: sfjwt
    object: Loyalty_Event__c
    external_id: Event_Id__c
    key: id
    fields:
      - { field: Type__c, from: $type, type: text }
      - { field: Store__c, from: $store, type: text }
Y

sub config {
    my (%o) = @_;
    return "redis: 127.0.0.1:6379\nstores: [eu, us]\ndestinations:\n"
        . ($o{dests} // $dest{cc} . $dest{jwt})
        . "flows:\n" . ($o{flows} // $contact . $events)
        . "claim_timeout_ms: 60000\n";
}

my $n = 0;
sub check {
    my ($yaml) = @_;
    my $f = "$dir/c" . ++$n . '.yaml';
    spew($f, $yaml);
    return check_config($f);
}

my ($rc, $out) = check(config());
is($rc, 0, 'the full example passes -t') or diag $out;
like($out, qr/test is successful/, '... and says so');

# bad cases: (what, yaml, message)
my @bad;
sub bad_dest {
    my ($what, $from, $to, $re) = @_;
    (my $d = $dest{cc}) =~ s/\Q$from\E/$to/ or die "no $from";
    push @bad, [ $what, config(dests => $d, flows => $contact), $re ];
}
sub bad_jwt {
    my ($what, $from, $to, $re) = @_;
    (my $d = $dest{jwt}) =~ s/\Q$from\E/$to/ or die "no $from";
    push @bad, [ $what, config(dests => $d, flows => $events), $re ];
}
sub bad_flow {
    my ($what, $from, $to, $re) = @_;
    (my $f = $contact) =~ s/\Q$from\E/$to/ or die "no $from";
    push @bad, [ $what, config(dests => $dest{cc}, flows => $f), $re ];
}

bad_dest('unknown auth', 'auth: client_credentials', 'auth: password',
         qr/auth "password": use client_credentials or jwt_bearer/);
bad_dest('no auth', "    auth: client_credentials\n", '',
         qr/auth is required/);
bad_dest('no client_id', "    client_id: 3MVG9-consumer-key\n", '',
         qr/client_id is required/);
bad_dest('missing secret file', "$dir/sf.secret", "$dir/nope.secret",
         qr/client_secret_file "\Q$dir\E\/nope.secret": No such file/);
bad_dest('empty secret file', "$dir/sf.secret", "$dir/empty.secret",
         qr/client_secret_file .* is empty/);
bad_dest('no secret file', "    client_secret_file: $dir/sf.secret\n", '',
         qr/client_credentials needs client_secret_file/);
bad_dest('webhook secret_file', "    api_version",
         "    secret_file: $dir/sf.secret\n    api_version",
         qr/secret_file is for webhooks/);
bad_dest('bad api_version', '"62.0"', '"62"',
         qr/api_version "62": use NN.0/);
bad_dest('old api_version', '"62.0"', '"45.0"',
         qr/api_version "45.0".*46.0 or later/);
bad_dest('batch window too long', 'batch_window_ms: 200',
         'batch_window_ms: 90000', qr/batch_window_ms: 90000 is out of/);
bad_dest('unknown type', 'type: salesforce', 'type: hubspot',
         qr/type "hubspot" is not supported \(webhook, salesforce\)/);
bad_jwt('jwt without key', "    private_key_file: $dir/sf.key\n", '',
        qr/jwt_bearer needs username, audience and private_key_file/);
bad_jwt('jwt bad key', "$dir/sf.key", "$dir/bad.key",
        qr/private_key_file "\Q$dir\E\/bad.key"/);
bad_jwt('jwt missing key', "$dir/sf.key", "$dir/none.key",
        qr/private_key_file .*No such file/);

bad_flow('no object', "    object: Contact\n", '',
         qr/flows\[0\]: a salesforce flow needs object, external_id and key/);
bad_flow('bad object', 'object: Contact', 'object: "Con tact"',
         qr/must be Salesforce API names/);
bad_flow('unknown key', 'key: ext_id', 'key: phone',
         qr/key "phone": use ext_id, store_cid, email or id/);
bad_flow('unknown type', 'type: integer,', 'type: int,',
         qr/fields\[2\]: Points__c: unknown type "int"/);
bad_flow('unknown owner', 'owner: loyalty', 'owner: marketing',
         qr/fields\[2\]: Points__c: unknown owner "marketing"/);
bad_flow('picklist without values', 'values: [Bronze, Silver, Gold], ', '',
         qr/Tier__c: a picklist needs values/);
bad_flow('values on a text', 'max_length: 80', 'values: [a]',
         qr/LastName: values are for a picklist/);
bad_flow('external id mapped', 'field: LastName', 'field: Loyalty_Id__c',
         qr/Loyalty_Id__c is the external_id/);
bad_flow('field twice', 'field: LastName', 'field: Email',
         qr/field Email is mapped twice/);
bad_flow('scale on integer', 'type: integer,', 'type: integer, scale: 2,',
         qr/scale, precision and minor_units are for a decimal/);
bad_flow('scale >= precision', 'precision: 16', 'precision: 2',
         qr/Spend__c: precision \(at most 18\) must exceed scale/);
bad_flow('unknown envelope value', 'from: $occurred', 'from: $when',
         qr/from "\$when": the envelope values are/);
bad_flow('bad path', 'from: customer.email', 'from: customer..email',
         qr/from "customer..email" is not a path/);

# several flows may share a salesforce destination; each delivery is
# recorded under the flow's id, so two with one id are refused
my $lead = "  - to: sfcc\n    object: Lead\n"
    . "    external_id: ExtId__c\n    key: ext_id\n"
    . "    fields:\n      - { field: Email, from: e, type: email }\n";
($rc, $out) = check(config(dests => $dest{cc}, flows => $contact . $lead));
is($rc, 0, 'two flows to one salesforce destination pass -t') or diag $out;
(my $lead2 = $lead) =~ s/Lead/Contact/;
push @bad, [ 'two flows with one id',
             config(dests => $dest{cc}, flows => $contact . $lead2),
             qr/flows\[1\]: flows\[0\] has the same id "sfcc:Contact"; give one of them a distinct name/ ];
(my $points = $lead2) =~ s/^  - to:/  - name: contact-points\n    to:/;
($rc, $out) = check(config(dests => $dest{cc}, flows => $contact . $points));
is($rc, 0, '... unless one has a name') or diag $out;
(my $named = $contact) =~ s/^  - to: sfcc/  - name: sfjwt\n    to: sfcc/m;
push @bad, [ 'a flow named like another destination',
             config(flows => $named . $events),
             qr/flows\[0\]: name "sfjwt" is another destination's name/ ];
(my $spaced = $contact) =~ s/^  - to: sfcc/  - name: "a b"\n    to: sfcc/m;
push @bad, [ 'a flow name with a space',
             config(flows => $spaced . $events),
             qr/flows\[0\]: name "a b" may hold letters, digits and _ \. : - only/ ];
push @bad, [ 'salesforce keys on a webhook flow',
             "redis: 127.0.0.1:6379\nstores: [eu]\ndestinations:\n"
             . "  - name: h\n    type: webhook\n    url: http://x/\n"
             . "    secret_file: $dir/sf.secret\n    auth: jwt_bearer\n"
             . "flows:\n  - to: h\n",
             qr/auth, client_id.*are for type salesforce/ ];

for my $b (@bad) {
    my ($what, $yaml, $re) = @$b;
    my ($rc, $out) = check($yaml);
    is($rc, 1, "$what: refused");
    like($out, $re, "$what: clear message") or diag $out;
    unlike($out, qr/\Q$secret\E/, "$what: no secret in the message");
}

done_testing;
