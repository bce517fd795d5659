#!/usr/bin/perl

# The identity block in loyalty-worker -t: `identity: { match: [...] }`
# with a salesforce flow keyed by person (and a field from $person)
# passes, as does a config without the block (the default order); an
# unknown rule, a rule listed twice, an empty list and an unknown key
# fail with a message naming identity.match.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Util qw(spew);
use Loyalty::Test::Worker qw(check_config worker_bin temp_dir);

plan skip_all => 'build/loyalty-worker not built' unless -x worker_bin();

my $dir = temp_dir('idconf');
spew("$dir/sf.secret", "client-secret\n", 0600);

sub config {
    my ($identity, %o) = @_;
    my $key = $o{key} // 'person';
    my $from = $o{from} // '$person';
    return "redis: 127.0.0.1:6379\nstores: [eu, us]\n"
        . "destinations:\n"
        . "  - name: crm\n    type: salesforce\n"
        . "    url: https://example.my.salesforce.com\n"
        . "    auth: client_credentials\n    client_id: ck\n"
        . "    client_secret_file: $dir/sf.secret\n"
        . "  - name: crm_events\n    type: salesforce\n"
        . "    url: https://example.my.salesforce.com\n"
        . "    auth: client_credentials\n    client_id: ck\n"
        . "    client_secret_file: $dir/sf.secret\n"
        . "flows:\n"
        . "  - to: crm\n    object: Contact\n    external_id: Person_Id__c\n"
        . "    key: $key\n    fields:\n"
        . "      - { field: Email, from: customer.email, type: email }\n"
        . "  - to: crm_events\n    object: Loyalty_Event__c\n"
        . "    external_id: Event_Id__c\n    key: id\n    fields:\n"
        . "      - { field: Person__c, from: $from, type: text }\n"
        . ($identity // '');
}

my $n = 0;
sub check {
    my $f = "$dir/c" . ++$n . '.yaml';
    spew($f, $_[0]);
    return check_config($f);
}

my ($rc, $out) = check(config("identity:\n  match: [email, store_cid]\n"));
is($rc, 0, 'identity.match with a person flow passes -t') or diag $out;
like($out, qr/test is successful/, '... and says so');

($rc, $out) = check(config(undef));
is($rc, 0, 'no identity block: the default rules') or diag $out;

($rc, $out) = check(config("identity: { match: [store_cid, ext_id, email, "
                           . "phone] }\n"));
is($rc, 0, 'all four rules in flow style') or diag $out;

my @bad = (
    [ 'unknown rule', config("identity:\n  match: [email, loyalty_id]\n"),
      qr/identity\.match: "loyalty_id": use store_cid, ext_id, email or phone/ ],
    [ 'rule twice', config("identity:\n  match: [email, phone, email]\n"),
      qr/identity\.match: "email" listed twice/ ],
    [ 'empty list', config("identity:\n  match: []\n"),
      qr/Insufficient entries.*'match'.*'identity'/ ],
    [ 'more than four', config("identity:\n  match: [email, phone, ext_id, "
                               . "store_cid, email]\n"),
      qr/Excessive entries \(4 max\).*'match'/ ],
    [ 'unknown key', config("identity:\n  rules: [email]\n"),
      qr/Unexpected key: rules/ ],
    [ 'unknown flow key', config(undef, key => 'persona'),
      qr/key "persona": use ext_id, store_cid, email or id \(or person/ ],
    [ 'unknown envelope value', config(undef, from => '$persons'),
      qr/from "\$persons": the envelope values are .*\$person\b/ ],
);

for my $b (@bad) {
    my ($what, $yaml, $re) = @$b;
    my ($rc, $out) = check($yaml);
    is($rc, 1, "$what: refused");
    like($out, $re, "$what: clear message") or diag $out;
}

done_testing;
