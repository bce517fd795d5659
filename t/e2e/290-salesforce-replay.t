#!/usr/bin/perl

# The replay test of issue 5: 10,000 mixed events for 500 customers
# across two stores, with 10 % duplicates (half re-sent to the edge with
# the same webhook-id, half redelivered into the stream as a sender's
# retry after the edge's dedupe window), 10 % out of order and injected
# transient failures (503s, dropped connections, slow answers, locked
# rows, an expired token), through nginx, Redis and two workers into the
# sandbox's Salesforce.  The stores know a customer by different keys
# (eu by the loyalty id, us by its own customer number; both by e-mail):
# the identity map makes them one person and one record.  A customer is
# a Lead until the first paid order arrives, then a Contact with the full
# profile (the lifecycle rule); the Lead is marked converted.  The sandbox's Contacts and ledger records must end equal
# to the state this test computes on its own from the events: no
# duplicate record, no missing event, no older value over a newer one,
# no CRM-owned field touched.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use POSIX qw(strftime :sys_wait_h);
use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until spew slurp);
use Loyalty::Test::Webhook qw(standard_request);
use Loyalty::Test::Worker;

my $N = $ENV{LOYALTY_REPLAY_EVENTS} // 10_000;
my $CUSTOMERS = 500;
my @STORES = qw(eu us);
my @TIERS = qw(Bronze Silver Gold);

my $p = Loyalty::Test::Pipeline->new(stores => [@STORES], receivers => []);
my $sb = $p->sandbox;
my $dir = $p->dir;
my $redis = $p->redis;
my $JSON = JSON::PP->new->utf8->canonical;

$sb->config('salesforce', {
    field_types => {
        Contact => { Points__c => 'number', Opt_In__c => 'boolean' },
        Lead => { Points__c => 'number', Opt_In__c => 'boolean' },
        Loyalty_Event__c => { Points__c => 'number',
                              Balance_After__c => 'number' },
    },
});

# --- the events, and the state they must leave -----------------------------

srand(20261125);
my $t0 = 1_795_000_000;                   # occurred: one second apart
my (@events, %balance);
for my $i (1 .. $N) {
    my $n = int(rand $CUSTOMERS);
    my $c = sprintf 'cus_%03d', $n;
    my $store = $STORES[int rand 2];
    # what the store knows the customer by
    my %keys = (email => "$c\@example.com",
                $store eq 'eu' ? (ext_id => $c)
                               : (store_cid => sprintf('7%04d', $n)));
    my $at = strftime('%Y-%m-%dT%H:%M:%SZ', gmtime($t0 + $i));
    my $ev = { i => $i, id => sprintf('evt_%05d', $i), store => $store,
               c => $c, at => $at };
    my $r = rand;
    if ($r >= 0.35 && $r < 0.42) {
        $ev->{type} = 'order.paid';
        $ev->{data} = { customer => { %keys },
                        order => { id => "ord_$i", total => 1000 + $i,
                                   currency => 'EUR' } };
    } elsif ($r < 0.35) {
        $ev->{type} = 'customer.updated';
        $ev->{data} = { customer => {
            %keys,
            last_name => 'Name ' . int(rand 1000),
            points_balance => int(rand 5000),
            tier => { name => $TIERS[int rand 3] },
            # owned by the CRM: the flow maps it, and must never write it
            opt_in_email => rand() < 0.5 ? JSON::PP::true : JSON::PP::false,
        } };
    } else {
        my $earn = $r < 0.78;
        my $delta = $earn ? 1 + int(rand 200) : -(1 + int(rand 100));
        $ev->{type} = $earn ? 'points.earned' : 'points.redeemed';
        $ev->{data} = {
            customer => { %keys },
            points => { delta => $delta,
                        balance_after => int(rand 5000),
                        reason => $earn ? 'order' : 'reward' },
        };
    }
    push @events, $ev;
}

# expected: per person field, the value of the newest event carrying it;
# a person with a paid order is a Contact, the others Leads
my (%contact, %ledger, %promoted);
for my $ev (@events) {
    my $k = $contact{ $ev->{c} } //= {};
    my $cu = $ev->{data}{customer};
    $k->{Email} = $cu->{email};
    if ($ev->{type} eq 'order.paid') {
        $promoted{ $ev->{c} } = 1;
    } elsif ($ev->{type} eq 'customer.updated') {
        $k->{LastName} = $cu->{last_name};
        $k->{Points__c} = $cu->{points_balance};
        $k->{Tier__c} = $cu->{tier}{name};
    } else {
        $k->{Points__c} = $ev->{data}{points}{balance_after};
        $ledger{ $ev->{id} } = {
            Points__c => $ev->{data}{points}{delta},
            Balance_After__c => $ev->{data}{points}{balance_after},
            Type__c => $ev->{type}, Store__c => $ev->{store},
            customer => $ev->{c},
        };
    }
    $k->{Last_Event__c} = $ev->{at};
}

# the send order: 10 % of the events moved 5 to 300 places later
my @order = @events;
my $moved = 0;
for my $i (reverse 0 .. $#order) {
    next unless rand() < 0.1;
    my $j = $i + 5 + int(rand 296);
    $j = $#order if $j > $#order;
    my ($ev) = splice @order, $i, 1;
    splice @order, $j, 0, $ev;
    $moved++;
}
# 5 % sent twice with the same webhook-id (the edge answers duplicate)
my @twice = grep { rand() < 0.05 } @order;
push @order, @twice;

# --- workers and faults ----------------------------------------------------

my $cfg = "$dir/w.yaml";
spew($cfg, "redis: " . $redis->addr . <<"Y");

stores: [eu, us]
identity:
  match: [store_cid, ext_id, email]
destinations:
  - name: sf
@{[ $p->sf_destination(batch_window_ms => 100, concurrency => 2,
                       timeout_ms => 3000) ]}flows:
  - to: sf
    name: profile
    on: [customer.updated, order.paid]
    object: Contact
    external_id: Loyalty_Id__c
    key: person
    lifecycle: &lead
      object: Lead
      until: [order.paid]
      converted:
        - { field: Status, value: Closed - Converted }
    fields:
      - { field: Email, from: customer.email, type: email }
      - { field: LastName, from: customer.last_name, type: text,
          max_length: 80 }
      - { field: Points__c, from: customer.points_balance, type: integer,
          owner: loyalty }
      - { field: Tier__c, from: customer.tier.name, type: picklist,
          values: [Bronze, Silver, Gold], owner: loyalty }
      - { field: Opt_In__c, from: customer.opt_in_email, type: boolean,
          owner: crm }
      - { field: Last_Event__c, from: \$occurred, type: datetime }
  - to: sf
    name: balance
    on: [points.earned, points.redeemed, order.paid]
    object: Contact
    external_id: Loyalty_Id__c
    key: person
    lifecycle: *lead
    fields:
      - { field: Points__c, from: points.balance_after, type: integer,
          owner: loyalty }
      - { field: Last_Event__c, from: \$occurred, type: datetime }
  - to: sf
    name: ledger
    on: [points.earned, points.redeemed]
    object: Loyalty_Event__c
    external_id: Event_Id__c
    key: id
    fields:
      - { field: Points__c, from: points.delta, type: integer }
      - { field: Balance_After__c, from: points.balance_after,
          type: integer }
      - { field: Type__c, from: \$type, type: text }
      - { field: Store__c, from: \$store, type: text }
      - { field: Customer__c, from: \$person, type: text }
batch: 2000
claim_timeout_ms: 8000
claim_interval_ms: 500
block_ms: 200
retry_base_ms: 100
retry_cap_ms: 1000
retry_interval_ms: 100
max_attempts: 50
log_level: info
Y

# the events and their order are fixed above; what follows (temporary
# directories, the redeliveries) must not repeat between runs
srand();

my @w = map { Loyalty::Test::Worker->new(config => $cfg) } 1 .. 2;

$sb->fault([
    { service => 'salesforce', path => 'composite', status => 503,
      times => 4, skip => 7 },
    { service => 'salesforce', path => 'composite', drop => JSON::PP::true,
      times => 2, skip => 23 },
    { service => 'salesforce', path => 'composite', latency_ms => 2000,
      times => 2, skip => 31 },
]);
# locked rows: five ledger records, twice each (Contacts are keyed by
# person ids the worker makes: not known here)
my @points = grep { $_->{type} =~ /^points/ } @events;
for my $n (1 .. 5) {
    $sb->action('salesforce', 'inject_error', {
        object => 'Loyalty_Event__c', value => $points[$n * 100]{id},
        statusCode => 'UNABLE_TO_LOCK_ROW', times => 2,
        message => 'unable to obtain exclusive access to this record' });
}

# --- send: one sender per store, as fast as the edge takes them ------------

sub body {
    my ($ev) = @_;
    return $JSON->encode({ type => $ev->{type}, timestamp => $ev->{at},
                           data => $ev->{data} });
}

my $started = time;
my %pid;
for my $store (@STORES) {
    my $out = "$dir/sent-$store";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open my $fh, '>', $out or POSIX::_exit(1);
        for my $ev (grep { $_->{store} eq $store } @order) {
            my $r;
            for (1 .. 50) {
                $r = $p->send($store, id => $ev->{id}, body => body($ev));
                last unless $r->{status} == 503 || $r->{status} == 599;
                sleep 0.1;
            }
            print {$fh} "$ev->{id} $r->{status}\n";
        }
        close $fh;
        POSIX::_exit(0);
    }
    $pid{$store} = $pid;
}

# mid-run: every token expires once
ok(wait_until(sub { $redis->cmd('XLEN', 'loyalty:{eu}:in') > $N / 4 },
              timeout => 120), 'a quarter sent');
$sb->action('salesforce', 'expire_tokens');

for my $store (@STORES) {
    ok(wait_until(sub { waitpid($pid{$store}, WNOHANG) == $pid{$store} },
                  timeout => 300), "$store: sender finished");
}

my (%status, %seen);
for my $store (@STORES) {
    for (split /\n/, slurp("$dir/sent-$store")) {
        my ($id, $st) = split / /;
        $status{$st}++;
        $seen{$id}++;
    }
}
is($status{202}, $N, "every event accepted once ($N)");
is($status{200} // 0, scalar @twice, 'each one sent twice answered as a '
   . 'duplicate by the edge (' . scalar(@twice) . ')');
is(scalar keys %status, ($status{200} ? 2 : 1), 'no other answer');

# 5 % more: the same entries again in the stream, as a redelivery that
# came after the edge's dedupe window would be
my $redelivered = 0;
for my $store (@STORES) {
    my $entries = $redis->stream("loyalty:{$store}:in");
    for my $e (@$entries) {
        next unless rand() < 0.05;
        my @fv = map { $_, $e->[1]{$_} } sort keys %{ $e->[1] };
        $redis->cmd('XADD', "loyalty:{$store}:in", '*', @fv);
        $redelivered++;
    }
}
ok($redelivered > $N / 40, "$redelivered entries redelivered into the "
   . "streams");
diag(sprintf '%d events, %d moved out of order, %d sent twice, %d '
     . 'redelivered; sent in %.1f s', $N, $moved, scalar @twice,
     $redelivered, time - $started);

ok(wait_until(sub { $p->drained }, timeout => 300, interval => 0.5),
   'every stream drained') or diag $w[0]->log_file;
diag(sprintf 'drained %.1f s after the first send', time - $started);

# --- what the org holds ----------------------------------------------------

# Contacts and Leads by the person id the worker gave them; the test
# knows the customer by e-mail (a Lead made by a points event before any
# profile event has none: its person id says whose it is)
my (%got, %lead, %person, %whose, $dups);
my %recs = map { $_ => $sb->state('salesforce', 'records', $_)->{records} }
           qw(Contact Lead);
for my $r (map { @$_ } values %recs) {
    (my $c = $r->{fields}{Email} // '') =~ s/\@example\.com$//;
    next unless $c;
    my $id = $r->{fields}{Loyalty_Id__c} // '';
    $dups++ if $whose{$id} && $whose{$id} ne $c;
    $dups++ if $person{$c} && $person{$c} ne $id;
    $whose{$id} = $c;
    $person{$c} = $id;
}
for my $obj (qw(Contact Lead)) {
    my $into = $obj eq 'Contact' ? \%got : \%lead;
    for my $r (@{ $recs{$obj} }) {
        my $c = $whose{ $r->{fields}{Loyalty_Id__c} // '' } // 'unknown';
        $dups++ if $into->{$c};
        $into->{$c} = $r;
    }
}
is($dups // 0, 0, 'no duplicate Contact or Lead: two stores\' keys for '
   . 'one customer resolved to one person, one id on both records');
my %ids;
$ids{ $person{$_} // '' }++ for keys %person;
is(scalar(grep { /^p_[0-9a-f]{24}$/ } keys %ids), scalar keys %contact,
   'every customer keyed by its own person id');
is(scalar keys %got, scalar keys %promoted, 'a Contact for each customer '
   . 'with a paid order (' . scalar(keys %promoted) . ')');
is(scalar(grep { !$got{$_} } keys %promoted), 0, '... and for no other');
is(scalar(grep { !$promoted{$_} && !$lead{$_} } keys %contact), 0,
   'a Lead for each customer without one ('
   . scalar(grep { !$promoted{$_} } keys %contact) . ')');

# the person's current record holds every field's newest value
my (%wrong, $older);
for my $c (sort keys %contact) {
    my $rec = $promoted{$c} ? $got{$c} : $lead{$c};
    my $f = $rec ? $rec->{fields} : {};
    for my $field (sort keys %{ $contact{$c} }) {
        my $want = $contact{$c}{$field};
        my $have = $f->{$field};
        if ($field eq 'Last_Event__c') {
            # the sandbox keeps Salesforce's form: ...T..:..:..000+0000
            $have = defined $have ? substr($have, 0, 19) . 'Z' : undef;
        }
        next if defined $have && $have eq $want;
        $wrong{$field}++;
        diag(($promoted{$c} ? 'Contact' : 'Lead') . " $c $field: want "
             . "$want, have " . ($have // 'none'))
            if ($wrong{$field} // 0) <= 3;
    }
}
is(scalar keys %wrong, 0, 'every field of each Contact and Lead holds its '
   . 'newest event\'s value (no older value over a newer one)')
    or diag explain \%wrong;

# a promoted person's Lead: marked converted by its last write, never
# written after
my $unmarked = 0;
for my $c (grep { $promoted{$_} && $lead{$_} } keys %contact) {
    my $h = $lead{$c}{history};
    $unmarked++ unless ($h->[-1]{fields}{Status} // '') eq
                       'Closed - Converted';
}
is($unmarked, 0, 'the Leads of promoted customers end with the '
   . 'conversion mark (' . scalar(grep { $promoted{$_} && $lead{$_} }
                                  keys %contact) . ' Leads converted)');

my %crm_touched;
for my $r (values %got, values %lead) {
    $crm_touched{ $r->{Id} }++
        if grep { exists $_->{fields}{Opt_In__c} } @{ $r->{history} };
}
is(scalar keys %crm_touched, 0, 'the CRM-owned Opt_In__c never written');

my $lrecs = $sb->state('salesforce', 'records', 'Loyalty_Event__c')
                ->{records};
my (%lgot, $ldups);
for my $r (@$lrecs) {
    my $k = $r->{fields}{Event_Id__c} // '';
    $ldups++ if $lgot{$k};
    $lgot{$k} = $r;
}
is($ldups // 0, 0, 'no duplicate ledger record');
is(scalar keys %lgot, scalar keys %ledger, 'one ledger record per points '
   . 'event (' . scalar(keys %ledger) . '), none missing');
my $lwrong = 0;
for my $id (sort keys %ledger) {
    my $f = $lgot{$id} ? $lgot{$id}{fields} : {};
    my %want = %{ $ledger{$id} };
    $want{Customer__c} = $person{ delete $want{customer} } // 'unknown';
    for my $field (sort keys %want) {
        next if defined $f->{$field} && $f->{$field} eq $want{$field};
        diag("$id $field: want $want{$field}, have "
             . ($f->{$field} // 'none')) if ++$lwrong <= 3;
    }
}
is($lwrong, 0, 'every ledger record holds its event\'s values');
my $rewritten = grep { @{ $_->{history} } > 1 } values %lgot;
is($rewritten, 0, 'each ledger record written once (a redelivered or '
   . 'retried event finds it written)');

is(scalar @{ $p->dlq($_) }, 0, "$_: no dead letters") for @STORES;
is($redis->cmd('XLEN', "loyalty:{$_}:conflicts"), 0, "$_: no conflicts")
    for @STORES;

my $faults = $sb->faults;
ok(!(grep { ($_->{times} // 0) > 0 } @$faults), 'every injected fault was '
   . 'hit');
my $errs = $sb->state('salesforce', 'errors');
$errs = $errs->{errors} if ref $errs eq 'HASH';
is(scalar(grep { $_->{hits} == 2 } @$errs), 5,
   'every injected locked row was hit twice');
my $log = join '', map { $_->log } @w;
like($log, qr/not written \(transient\): UNABLE_TO_LOCK_ROW/,
     'locked rows retried');
unlike($log, qr/example\.com|sandbox-client-secret/,
       'no e-mail address or secret in the logs');

# --- a person sets consent in the CRM; later events carry it too ----------

my %consent;
my @crm = (sort keys %promoted)[0 .. 49];
for my $n (0 .. 49) {
    my $c = $crm[$n];
    $consent{$c} = $n % 2 ? JSON::PP::true : JSON::PP::false;
    $sb->action('salesforce', 'crm_edit', { object => 'Contact',
        id => $got{$c}{Id}, fields => { Opt_In__c => $consent{$c} } });
}
my $since = $sb->seq;
for my $c (sort keys %consent) {
    my $r = $p->send('eu', id => "evt_consent_$c", body => $JSON->encode({
        type => 'customer.updated', timestamp => '2026-11-25T10:00:00Z',
        data => { customer => { ext_id => $c, email => "$c\@example.com",
                                opt_in_email => JSON::PP::true,
                                points_balance => 1 } } }));
    die "consent event: $r->{status}" unless $r->{status} == 202;
}
ok(wait_until(sub { $p->drained }, timeout => 60), 'consent round drained');
my $after = $sb->state('salesforce', 'records', 'Contact')->{records};
my $kept = 0;
for my $r (@$after) {
    (my $c = $r->{fields}{Email} // '') =~ s/\@example\.com$//;
    next unless exists $consent{$c};
    $kept++ if ($r->{fields}{Opt_In__c} ? 1 : 0) == ($consent{$c} ? 1 : 0)
               && $r->{fields}{Points__c} == 1;
}
is($kept, 50, 'the consent a person set in the CRM stays, whatever the '
   . 'events say; the loyalty-owned balance beside it was written');
ok(!(grep { ($_->{body} // '') =~ /Opt_In__c/ }
     @{ $sb->requests(service => 'salesforce', since => $since) }),
   'no request carried Opt_In__c');

$_->stop for @w;
done_testing();
