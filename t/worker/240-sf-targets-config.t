#!/usr/bin/perl

# loyalty-worker -t on the record-target keys of salesforce flows:
# lookup fields, fixed values, append, platform events and lifecycle.
# A full example passes; each bad case fails with a message naming the
# key.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Util qw(spew);
use Loyalty::Test::Worker qw(check_config worker_bin temp_dir);

plan skip_all => 'build/loyalty-worker not built' unless -x worker_bin();

my $dir = temp_dir('sftconf');
spew("$dir/sf.secret", "secret\n", 0600);
spew("$dir/hook.secret", Loyalty::Test::Worker::new_whsec() . "\n", 0600);

sub dest {
    my ($name) = @_;
    return "  - name: $name\n    type: salesforce\n"
        . "    url: https://example.my.salesforce.com\n"
        . "    auth: client_credentials\n    client_id: k\n"
        . "    client_secret_file: $dir/sf.secret\n";
}

my %flow = (
    person => <<'Y',
  - to: person
    on: [customer.updated, order.paid]
    object: Contact
    external_id: Loyalty_Id__c
    key: ext_id
    lifecycle:
      object: Lead
      external_id: Loyalty_Id__c
      until: [order.paid]
      converted:
        - { field: Status, value: Closed - Converted }
    fields:
      - { field: LastName, from: customer.last_name, type: text }
Y
    events => <<'Y',
  - to: events
    on: [points.earned]
    object: Loyalty_Event__c
    external_id: Event_Id__c
    key: id
    append: true
    fields:
      - { field: Points__c, from: points, type: integer }
      - { field: Contact__r, from: $ext_id,
          lookup: { object: Contact, external_id: Loyalty_Id__c } }
      - { field: Source__c, value: loyalty }
Y
    updates => <<'Y',
  - to: updates
    on: [points.adjusted]
    object: Loyalty_Update__e
    fields:
      - { field: Points__c, from: points, type: integer }
Y
);

sub config {
    my (%f) = (%flow, @_);
    return "redis: 127.0.0.1:6379\nstores: [eu]\ndestinations:\n"
        . join('', map { dest($_) } qw(person events updates))
        . "flows:\n" . join('', map { $f{$_} } qw(person events updates))
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

my @bad;
sub bad {
    my ($what, $which, $from, $to, $re) = @_;
    (my $f = $flow{$which}) =~ s/\Q$from\E/$to/ or die "no $from";
    push @bad, [ $what, config($which => $f), $re ];
}

bad('lookup with a bad object', 'events', 'object: Contact,',
    'object: "Con tact",', qr/flows\[1\]\.fields\[1\]: Contact__r: lookup object "Con tact"/);
bad('lookup without external_id', 'events',
    ', external_id: Loyalty_Id__c }', ' }', qr/external_id/);
bad('lookup with a number type', 'events', 'from: $ext_id,',
    'from: $ext_id, type: integer,', qr/Contact__r: a lookup writes the other record's external id: type text/);
bad('lookup nullable', 'events', 'from: $ext_id,',
    'from: $ext_id, nullable: true,', qr/Contact__r: a lookup .* not nullable/);
bad('from and value', 'events', 'value: loyalty',
    'value: loyalty, from: x', qr/Source__c: give either from \(an event value\) or value/);
bad('neither from nor value', 'events', ', value: loyalty', '',
    qr/Source__c: give either from/);
bad('no type', 'events', ', type: integer', '',
    qr/Points__c: type is required/);
bad('append with lifecycle', 'person', "    key: ext_id\n",
    "    key: ext_id\n    append: true\n",
    qr/flows\[0\]: append .* and lifecycle .* do not go together/);
bad('platform event with external_id', 'updates', "    fields:\n",
    "    external_id: Event_Id__c\n    fields:\n",
    qr/flows\[2\]: object Loyalty_Update__e is a platform event: it is published, so external_id, key and lifecycle do not apply/);
bad('platform event with key', 'updates', "    fields:\n",
    "    key: id\n    fields:\n", qr/is a platform event/);
bad('lifecycle object is the flow object', 'person', 'object: Lead',
    'object: Contact', qr/flows\[0\]: lifecycle.object "Contact" must be a Salesforce object other than the flow's Contact/);
bad('lifecycle object a platform event', 'person', 'object: Lead',
    'object: Lead__e', qr/lifecycle.object "Lead__e"/);
bad('lifecycle without until', 'person', "      until: [order.paid]\n", '',
    qr/until/);
bad('until not in on', 'person', 'until: [order.paid]',
    'until: [order.refunded]', qr/lifecycle.until "order.refunded" is not in the flow's on/);
bad('converted from an event value', 'person',
    '{ field: Status, value: Closed - Converted }',
    '{ field: Status, from: status }',
    qr/lifecycle.converted\[0\]: \{ field, value \}/);
bad('converted writes the external id', 'person', 'field: Status',
    'field: Loyalty_Id__c', qr/converted\[0\]: Loyalty_Id__c is the Lead's external id/);
push @bad, [ 'append on a webhook flow',
             "redis: 127.0.0.1:6379\nstores: [eu]\ndestinations:\n"
             . "  - name: h\n    type: webhook\n    url: http://x/\n"
             . "    secret_file: $dir/hook.secret\n"
             . "flows:\n  - to: h\n    append: true\n",
             qr/append and lifecycle are for salesforce destinations/ ];

for my $b (@bad) {
    my ($what, $yaml, $re) = @$b;
    my ($rc, $out) = check($yaml);
    is($rc, 1, "$what: refused");
    like($out, $re, "$what: message") or diag $out;
}

done_testing();
