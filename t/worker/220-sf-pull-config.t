#!/usr/bin/perl

# The scheduled pulls (`pulls`) in loyalty-worker -t: a full example
# passes; each bad case fails with a message naming the pull and the
# key; a pull never carries a loyalty-owned field (owner loyalty, or a
# balance or tier path) and its `where` is a conservative SOQL subset
# (AND-ed comparisons: no OR, no sub-query, no relationship fields).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Util qw(spew);
use Loyalty::Test::Worker qw(check_config worker_bin temp_dir);

plan skip_all => 'build/loyalty-worker not built' unless -x worker_bin();

my $dir = temp_dir('pullconf');
spew("$dir/sf.secret", "client-secret\n", 0600);
spew("$dir/hook.whsec", "whsec_" . ('A' x 32) . "\n", 0600);

my $pull = <<'Y';
  - name: contacts
    from: sf
    store: eu
    object: Contact
    type: consent.changed
    where: WHERE
    interval_ms: 30000
    window_ms: 3600000
    overlap_ms: 2000
    lag_ms: 5000
    page_size: 500
    dedupe_window_ms: 86400000
    stream_cap: 50000
    fields:
      - { field: Email, to: customer.email, type: email }
      - { field: HasOptedOutOfEmail, to: consent.revoked, type: boolean,
          owner: crm }
      - { field: Preferred_Channel__c, to: consent.channel,
          type: picklist, values: [email, sms, postal], nullable: true }
      - { field: MobilePhone, to: customer.phone, type: phone,
          country: GB }
      - { field: Requested_Points__c, to: points.delta, type: decimal,
          scale: 0, precision: 10 }
Y

# every kind of condition the check lets through
my $where = "RecordTypeId IN ('012000000000001AAA', '012000000000002AAA')"
    . " AND Email LIKE '%\@example.com'"
    . " AND CreatedDate > 2026-01-01T00:00:00Z AND IsDeleted = false"
    . " AND Score__c >= -1.5 AND Name <> 'x' AND Id NOT IN ('a')";
$pull =~ s/WHERE/"$where"/;

sub config {
    my ($pulls) = @_;
    return "redis: 127.0.0.1:6379\nstores: [eu, us]\ndestinations:\n"
        . "  - name: sf\n    type: salesforce\n"
        . "    url: https://example.my.salesforce.com\n"
        . "    auth: client_credentials\n    client_id: key\n"
        . "    client_secret_file: $dir/sf.secret\n"
        . "  - name: hooks\n    type: webhook\n    url: http://x/\n"
        . "    secret_file: $dir/hook.whsec\n"
        . "flows:\n  - to: hooks\n"
        . (defined $pulls ? "pulls:\n$pulls" : '');
}

my $n = 0;
sub check {
    my ($yaml) = @_;
    my $f = "$dir/c" . ++$n . '.yaml';
    spew($f, $yaml);
    return check_config($f);
}

my ($rc, $out) = check(config($pull));
is($rc, 0, 'the full example passes -t') or diag $out;
like($out, qr/test is successful/, '... and says so');

($rc, $out) = check(config(<<'Y'));
  - name: min
    from: sf
    store: us
    object: Lead
    type: customer.updated
    fields:
      - { field: Email, to: customer.email, type: email }
Y
is($rc, 0, 'a minimal pull passes (defaults)') or diag $out;

($rc, $out) = check(config(undef));
is($rc, 0, 'pulls are optional') or diag $out;

my @bad = (
    [ 'owner loyalty', 'owner: crm }', 'owner: loyalty }',
      qr/pull[ ]"contacts":[ ]HasOptedOutOfEmail:[ ]owner[ ]loyalty:[ ]a[ ]CRM
         [ ]->[ ]loyalty[ ]pull[ ]never[ ]carries[ ]a[ ]field[ ]the[ ]loyalty
         [ ]platform/x ],
    [ 'a balance path', 'to: points.delta', 'to: customer.points_balance',
      qr/Requested_Points__c:[ ]to[ ]"customer.points_balance"[ ]is[ ]owned
         [ ]by[ ]the[ ]loyalty[ ]platform/x ],
    [ 'below a tier', 'to: points.delta', 'to: customer.tier.name',
      qr/to "customer.tier.name" is owned by the loyalty platform/ ],
    [ 'a webhook as source', 'from: sf', 'from: hooks',
      qr/pull "contacts": from: "hooks" names no salesforce destination/ ],
    [ 'an unknown source', 'from: sf', 'from: nope',
      qr/from: "nope" names no salesforce destination/ ],
    [ 'unknown store', 'store: eu', 'store: fr',
      qr/pull "contacts": store "fr" is not in stores/ ],
    [ 'unknown type', 'type: consent.changed', 'type: contact.changed',
      qr/type "contact.changed" is not a canonical event type/ ],
    [ 'object not an API name', 'object: Contact', 'object: "Contact x"',
      qr/object "Contact x" is not a Salesforce API name/ ],
    [ 'bad name', 'name: contacts', 'name: "con tacts"',
      qr/pulls\[0\]: name "con tacts" is not valid/ ],
    [ 'page_size too small', 'page_size: 500', 'page_size: 100',
      qr/page_size: 100 is out of range \[200, 2000\]/ ],
    [ 'interval out of range', 'interval_ms: 30000', 'interval_ms: 5',
      qr/pull "contacts": interval_ms: 5 is out of range/ ],
    [ 'overlap above window', 'overlap_ms: 2000', 'overlap_ms: 3600000',
      qr/overlap_ms \(3600000\) must be below window_ms \(3600000\)/ ],
    [ 'field twice', 'field: MobilePhone', 'field: Email',
      qr/field Email is pulled twice/ ],
    [ 'paths collide', 'to: consent.channel', 'to: consent.revoked.channel',
      qr/to "consent.revoked.channel" collides with "consent.revoked"/ ],
    [ 'reserved path', 'to: consent.channel', 'to: sobject.channel',
      qr/sobject and customer itself are written by the pull/ ],
    [ 'bad path', 'to: consent.channel', 'to: consent..channel',
      qr/to "consent..channel" is not a path/ ],
    [ 'relationship field', 'field: Email,', 'field: Account.Name,',
      qr/field "Account.Name" is not a Salesforce API name/ ],
    [ 'unknown field type', 'type: email }', 'type: mail }',
      qr/Email: unknown type "mail"/ ],
    [ 'picklist without values', 'values: [email, sms, postal], ', '',
      qr/Preferred_Channel__c: values are for a picklist/ ],
    [ 'country on a text', 'type: email }', 'type: email, country: GB }',
      qr/Email: country is for a phone/ ],
    [ 'unknown key', 'lag_ms: 5000', 'lag_ms: 5000\n    lag: 1',
      qr/Unexpected key: lag/ ],
);

my @where = (
    [ 'OR', "IsDeleted = false OR Email != null",
      qr/where: OR is not allowed: conditions are joined by AND only/ ],
    [ 'a sub-query', "Id IN (SELECT ContactId FROM Case)",
      qr/where: expected conditions/ ],
    [ 'a keyword as field', "SELECT = 1", qr/where: SELECT is not allowed/ ],
    [ 'a relationship', "Account.Name = 'x'",
      qr/where: only plain field names/ ],
    [ 'a function', "CALENDAR_YEAR(CreatedDate) = 2026",
      qr/where: only plain field names/ ],
    [ 'a date literal', "CreatedDate = LAST_N_DAYS:3",
      qr/where: only plain field names/ ],
    [ 'a statement end', "Email = 'x'; DELETE",
      qr/where: unexpected ';'/ ],
    [ 'an open quote', "Email = 'x",
      qr/where: unterminated string/ ],
    [ 'a trailing AND', "Email = 'x' AND",
      qr/where: expected conditions/ ],
    [ 'ORDER BY', "Email = 'x' ORDER BY Id",
      qr/where: ORDER is not allowed/ ],
    [ 'LIMIT', "Email = 'x' LIMIT 1", qr/where: LIMIT is not allowed/ ],
    [ 'parentheses', "(Email = 'x')", qr/where: expected conditions/ ],
    [ 'a bare field', "IsDeleted", qr/where: expected conditions/ ],
);

for my $w (@where) {
    my ($what, $text, $re) = @$w;
    (my $y = $pull) =~ s/where: ".*"/where: "$text"/ or die;
    push @bad, [ "where: $what", $y, $re ];
}

for my $b (@bad) {
    my ($what, $from, $to, $re) = @$b;
    my $y;
    if (defined $re) {
        ($y = $pull) =~ s/\Q$from\E/$to/ or die "no $from";
        $to =~ s/\\n/\n/g;
        ($y = $pull) =~ s/\Q$from\E/$to/;
    } else {
        ($y, $re) = ($from, $to);
    }
    my ($rc, $out) = check(config($y));
    is($rc, 1, "$what: refused");
    like($out, $re, "$what: the message names it") or diag $out;
    like($out, qr/test failed/, "$what: test failed");
    unlike($out, qr/client-secret/, "$what: no secret in the message");
}

done_testing;
