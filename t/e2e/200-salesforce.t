#!/usr/bin/perl

# End to end to Salesforce: signed webhooks -> nginx -> Redis -> two
# workers -> the sandbox's Salesforce.  Events become Contacts with typed
# fields (one record per key, one write per change), a CRM-owned field is
# never written, an invalid value is dead-lettered before any call, one
# token serves both workers, expire_tokens costs exactly one refresh,
# UNABLE_TO_LOCK_ROW is retried, a validation rule dead-letters with
# Salesforce's message, a backlog of 1000 goes in whole Collections
# calls, an exhausted budget pauses the destination (nothing
# dead-lettered), and the JWT bearer flow gets its token.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use POSIX qw(ceil);
use Test::More;

use Loyalty::Test::Pipeline;
use HTTP::Tiny;
use Loyalty::Test::Util qw(wait_until spew slurp free_port);
use Loyalty::Test::Worker;

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'], receivers => []);
my $sb = $p->sandbox;
my $dir = $p->dir;
my $redis = $p->redis;

$sb->config('salesforce', {
    field_types => { Contact => { Points__c => 'number',
                                  Spend__c => 'number',
                                  Opt_In__c => 'boolean',
                                  Birthdate => 'date' } },
    validation_rules => [ { object => 'Contact', field => 'LastName',
                            pattern => '^[^0-9]*$', name => 'No_Digits',
                            message => 'LastName may not hold digits' } ],
});

my $secret_file = "$dir/sf.secret";
spew($secret_file, "sandbox-client-secret\n", 0600);

sub sf_config {
    my (%o) = @_;
    my $name = $o{name} // 'sf';
    my $auth = $o{auth} // <<"Y";
    auth: client_credentials
    client_id: sandbox-client-id
    client_secret_file: $secret_file
Y
    my $flow = $o{flow} // <<'Y';
    on: [customer.updated]
    object: Contact
    external_id: Loyalty_Id__c
    key: ext_id
    fields:
      - { field: Email, from: customer.email, type: email }
      - { field: LastName, from: customer.last_name, type: text,
          max_length: 80 }
      - { field: Points__c, from: customer.points_balance, type: integer,
          owner: loyalty }
      - { field: Spend__c, from: customer.spend, type: decimal, scale: 2,
          minor_units: true }
      - { field: Tier__c, from: customer.tier.name, type: picklist,
          values: [Bronze, Silver, Gold] }
      - { field: Opt_In__c, from: customer.opt_in_email, type: boolean,
          owner: crm }
      - { field: Last_Event__c, from: $occurred, type: datetime }
Y
    my $y = "redis: " . $redis->addr . "\nstores: [eu]\ndestinations:\n"
        . "  - name: $name\n    type: salesforce\n"
        . "    url: " . $sb->url('/salesforce') . "\n"
        . $auth
        . "    batch_window_ms: 200\n    limit_pause_ms: 1500\n"
        . "    timeout_ms: 5000\n    concurrency: " . ($o{concurrency} // 2)
        . "\nflows:\n  - to: $name\n" . $flow
        . "claim_timeout_ms: 10000\nclaim_interval_ms: 300\nblock_ms: 200\n"
        . "batch: 1000\nretry_base_ms: 100\nretry_cap_ms: 1000\n"
        . "retry_interval_ms: 50\nmax_attempts: 30\nlog_level: info\n"
        . ($o{metrics} ? "metrics: 127.0.0.1:$o{metrics}\n" : '');
    my $f = "$dir/" . ($o{file} // "$name.yaml");
    spew($f, $y);
    return $f;
}

my $seq = 0;
sub customer {
    my ($key, %c) = @_;
    return $p->send('eu', type => 'customer.updated', data => {
        customer => { ext_id => $key, email => "$key\@example.com",
                      last_name => 'Lovelace', points_balance => 100,
                      spend => 12345, tier => { name => 'Silver' },
                      opt_in_email => JSON::PP::true(), %c } });
}

sub records {
    my ($obj) = @_;
    return $sb->state('salesforce', 'records', $obj // 'Contact')->{records};
}
sub by_key {
    my %r;
    for (@{ records() }) {
        push @{ $r{ $_->{fields}{Loyalty_Id__c} // '' } }, $_;
    }
    return \%r;
}
sub tokens {
    scalar @{ $sb->requests(service => 'salesforce', method => 'POST',
                            path => 'oauth2/token') };
}
sub collections {
    my (%q) = @_;
    return [ grep { $_->{method} eq 'PATCH' }
             @{ $sb->requests(service => 'salesforce',
                              path => 'composite/sobjects', %q) } ];
}
sub dlq_by_id { +{ map { $_->[1]{id} => $_->[1] } @{ $p->dlq('eu') } } }
sub drained { wait_until(sub { $p->drained }, timeout => $_[0] // 30) }

my $cfg = sf_config();
my $w1 = Loyalty::Test::Worker->new(config => $cfg);
my $w2 = Loyalty::Test::Worker->new(config => $cfg);

# --- typed fields, one record per key, one write per change ----------------

my @keys = map { "cus_$_" } 1 .. 10;
for my $i (0 .. $#keys) {
    my $r = customer($keys[$i], points_balance => 10 * $i);
    is($r->{status}, 202, "round 1: $keys[$i] accepted") or diag $r->{body};
}
ok(drained(), 'round 1 delivered and acked');
for my $i (0 .. $#keys) {
    customer($keys[$i], points_balance => 10 * $i + 5, spend => 99);
}
ok(drained(), 'round 2 delivered and acked');

my $recs = by_key();
is(scalar(keys %$recs), 10, 'ten Contacts');
for my $i (0 .. $#keys) {
    my $rs = $recs->{ $keys[$i] } // [];
    is(scalar @$rs, 1, "$keys[$i]: exactly one record") or next;
    my $r = $rs->[0];
    my $f = $r->{fields};
    is($f->{Points__c}, 10 * $i + 5, "$keys[$i]: Points__c, newest value");
    ok(!ref $f->{Points__c} && $f->{Points__c} =~ /^\d+$/,
       "$keys[$i]: Points__c is a number");
    is($f->{Spend__c}, 0.99, "$keys[$i]: Spend__c from minor units");
    is($f->{Email}, "$keys[$i]\@example.com", "$keys[$i]: Email");
    is($f->{Tier__c}, 'Silver', "$keys[$i]: picklist value");
    like($f->{Last_Event__c} // '', qr/^\d{4}-\d\d-\d\dT/,
         "$keys[$i]: datetime from \$occurred");
    ok(!exists $f->{Opt_In__c}, "$keys[$i]: CRM-owned Opt_In__c never "
       . "written");
    is(scalar @{ $r->{history} }, 2, "$keys[$i]: two writes for two "
       . "changes");
    ok(!(grep { exists $_->{fields}{Opt_In__c} } @{ $r->{history} }),
       "$keys[$i]: no write touched Opt_In__c");
}
is(tokens(), 1, 'one token for 20 events and two workers (shared cache)');
ok($w1->log =~ /collection of/ && $w2->log =~ /collection of/,
   'both workers wrote with it');
ok(!(grep { ($_->{body} // '') =~ /Opt_In__c/ }
     @{ $sb->requests(service => 'salesforce') }),
   'Opt_In__c never in a request body');
like($w1->log . $w2->log, qr/conflict: Contact.Opt_In__c is owned by the CRM/,
     'each refusal logged as a conflict with the field name');
my $own = $redis->stream('loyalty:{eu}:ownership');
is(scalar @$own, 20, 'each refused write kept in loyalty:{eu}:ownership');
is(scalar(grep { $_->[1]{field} eq 'Opt_In__c' && $_->[1]{value} eq 'true'
                 && $_->[1]{object} eq 'sf:Contact'
                 && $_->[1]{record} =~ /^cus_\d+$/ && $_->[1]{event} }
          @$own), 20, '... with the object, field, record, event entry and '
   . 'the value the event had');
unlike($w1->log . $w2->log, qr/example\.com|sandbox-client-secret|00D\w+!/,
       'no e-mail address, secret or token in the logs');
is(scalar @{ $p->dlq('eu') }, 0, 'no dead letters');
my $usage = { @{ $redis->cmd('HGETALL', 'loyalty:sf:{sf}:usage') } };
ok($usage->{used} > 0 && $usage->{limit} == 15000 && $usage->{at},
   'Sforce-Limit-Info kept in loyalty:sf:{sf}:usage');

# --- an invalid value: dead letter before any call -------------------------

my $since = $sb->seq;
my $bad = customer('cus_bad', points_balance => 'lots');
ok(drained(), 'invalid event finished');
my $dl = dlq_by_id()->{ $bad->{id} };
ok($dl, 'invalid value: dead-lettered');
like($dl->{error} // '',
     qr/Points__c \(integer from customer\.points_balance\)/,
     'reason names field, type and source') or diag explain $dl;
ok(!(grep { ($_->{body} // '') =~ /cus_bad/ }
     @{ $sb->requests(service => 'salesforce', since => $since) }),
   'no Salesforce request carried it');

# --- expire_tokens mid-run: exactly one refresh, nothing lost --------------

$since = $sb->seq;
$sb->action('salesforce', 'expire_tokens');
customer($_, points_balance => 500) for @keys;
ok(drained(), 'after expire_tokens: delivered');
ok(scalar(grep { $_->{status} == 401 }
          @{ $sb->requests(service => 'salesforce', since => $since) }),
   'the expired token was refused (401)');
is(tokens(), 2, 'exactly one refresh for both workers');
is(scalar(grep { ($_->{fields}{Points__c} // 0) == 500 } @{ records() }),
   10, 'nothing lost: every Contact has the new value');

# --- UNABLE_TO_LOCK_ROW: retried, lands ------------------------------------

$sb->action('salesforce', 'inject_error', { object => 'Contact',
    value => 'cus_3', statusCode => 'UNABLE_TO_LOCK_ROW',
    message => 'unable to obtain exclusive access to this record' });
my $lock = customer('cus_3', points_balance => 777);
ok(drained(), 'locked row: finished');
is(by_key()->{cus_3}[0]{fields}{Points__c}, 777, 'retried and landed');
my $errs = $sb->state('salesforce', 'errors');
my ($e) = grep { $_->{statusCode} eq 'UNABLE_TO_LOCK_ROW' }
          @{ ref $errs eq 'HASH' ? $errs->{errors} : $errs };
is($e->{hits}, 1, 'the injected error was hit once');
ok(!dlq_by_id()->{ $lock->{id} }, 'not dead-lettered');

# --- validation rule: dead letter with Salesforce's message ----------------

my $val = customer('cus_val', last_name => 'R2D2');
ok(drained(), 'validation failure: finished');
$dl = dlq_by_id()->{ $val->{id} };
ok($dl, 'validation failure: dead-lettered');
like($dl->{error} // '',
     qr/\QFIELD_CUSTOM_VALIDATION_EXCEPTION: No_Digits: LastName may\E
        \Q not hold digits (LastName)\E/x,
     "dead letter carries Salesforce's message") or diag explain $dl;
ok(!by_key()->{cus_val}, 'no record for it');

# --- daily budget exhausted: 403, paused, retried, nothing dead-lettered ---

my $dlq_before = scalar @{ $p->dlq('eu') };
$sb->action('salesforce', 'set_api_usage', { used => 15000 });
my @budget = map { customer("cus_b$_", points_balance => 7) } 1 .. 5;
ok(wait_until(sub {
    ($w1->log . $w2->log) =~ /403: destination paused for 1500 ms/ },
    timeout => 10), '403 REQUEST_LIMIT_EXCEEDED pauses the destination');
sleep 1;
$sb->action('salesforce', 'set_api_usage', { used => 0 });
ok(drained(), 'budget back: delivered');
is(scalar(grep { /^cus_b\d$/ } keys %{ by_key() }), 5,
   'every paused event landed later');
is(scalar @{ $p->dlq('eu') }, $dlq_before, 'none dead-lettered');

is($w1->stop, 0, 'worker 1 stops cleanly');
is($w2->stop, 0, 'worker 2 stops cleanly');

# --- a backlog of 1000: whole Collections calls -----------------------------

for my $i (1 .. 1000) {
    my $r = customer(sprintf('cus_k%04d', $i), points_balance => $i);
    $r->{status} == 202 or diag "backlog $i: $r->{status}";
}
$since = $sb->seq;
my $w3 = Loyalty::Test::Worker->new(config => sf_config(concurrency => 1));
ok(drained(60), 'backlog of 1000 delivered');
my $calls = collections(since => $since);
my $records = 0;
$records += scalar @{ (JSON::PP->new->decode($_->{body}))->{records} }
    for @$calls;
is($records, 1000, '1000 records sent');
diag(scalar(@$calls) . " calls for the backlog");
cmp_ok(scalar @$calls, '<=', ceil(1000 / 200) + 2,
       'at most ceil(1000/200) + 2 calls');
cmp_ok($records / (@$calls || 1), '>=', 150, '>= 150 records per call');
is(scalar(grep { /^cus_k/ } keys %{ by_key() }), 1000,
   '1000 Contacts');

# five changes of one record at once: never two in one call; those that
# wait together are coalesced into one write, the last value winning
$since = $sb->seq;
my $coalesced0 = () = $w3->log =~ /coalesced with another event/g;
customer('cus_dup', points_balance => $_) for 1 .. 5;
ok(drained(), 'five changes of one record delivered');
my @dup = map { scalar(() = $_->{body} =~ /"cus_dup"/g) }
          @{ collections(since => $since) };
is(scalar(grep { $_ > 1 } @dup), 0, 'never the same external id twice '
   . 'in one call');
my $dr = by_key()->{cus_dup}[0];
is($dr->{fields}{Points__c}, 5, 'the last change wins (stream order)');
my $coalesced = (() = $w3->log =~ /coalesced with another event/g)
                - $coalesced0;
is(scalar @{ $dr->{history} } + $coalesced, 5, 'each change written or '
   . 'coalesced into a write (' . scalar @{ $dr->{history} } . ' writes)');
is($w3->stop, 0, 'backlog worker stops cleanly');

# --- token endpoint refuses: logged, retried with backoff, nothing lost ----

my $cfg_sb = $sb->_control('GET', '/config/salesforce');
$sb->config('salesforce', { clients => {} });
my $mport = free_port();
my $w5 = Loyalty::Test::Worker->new(config => sf_config(name => 'sfauth',
                                                        metrics => $mport));
my @auth = map { customer("cus_a$_", points_balance => 3) } 1 .. 3;
ok(wait_until(sub { $w5->log =~ /token\ endpoint\ refused
                                  \ \(client_credentials\):
                                  \ HTTP\ 400\ invalid_client/x },
              timeout => 10), 'invalid_client logged clearly');
sleep 1;
is(scalar @{ $p->dlq('eu') }, $dlq_before,
   'auth failure: nothing dead-lettered');
$sb->config('salesforce', { clients => $cfg_sb->{clients} });
ok(drained(30), 'credentials back: the retry with backoff gets a token, '
   . 'events land');
is(scalar(grep { /^cus_a\d$/ } keys %{ by_key() }), 3, 'all three written');
unlike($w5->log, qr/sandbox-client-secret/, 'the secret is never logged');
my $m = HTTP::Tiny->new(timeout => 5)->get("http://127.0.0.1:$mport/metrics");
like($m->{content} // '',
     qr/^loyalty_worker_salesforce_api_used\{destination="sfauth"\} [1-9]\d*$/m,
     'metrics: API usage gauge');
like($m->{content} // '',
     qr/^loyalty_worker_salesforce_api_limit\{destination="sfauth"\} 15000$/m,
     'metrics: API limit gauge');
like($m->{content} // '',
     qr/^loyalty_worker_deliveries_total
        \{destination="sfauth",outcome="success"\}\ 3$/mx,
     'metrics: one success per record');
is($w5->stop, 0, 'auth worker stops cleanly');

# --- JWT bearer -------------------------------------------------------------

system("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
       . "-out $dir/jwt.key 2>/dev/null") == 0 or die 'openssl';
system("openssl pkey -in $dir/jwt.key -pubout -out $dir/jwt.pub") == 0
    or die 'openssl';
$sb->config('salesforce', { jwt => {
    consumer_key => 'sandbox-client-id',
    public_key => slurp("$dir/jwt.pub"),
    usernames => ['integration@loyalty.example'],
    audiences => ['https://login.salesforce.com'] } });
my $jcfg = sf_config(name => 'sfjwt', auth => <<"Y", flow => <<'Y');
    auth: jwt_bearer
    client_id: sandbox-client-id
    username: integration\@loyalty.example
    audience: https://login.salesforce.com
    private_key_file: $dir/jwt.key
Y
    on: [points.earned]
    object: Loyalty_Event__c
    external_id: Event_Id__c
    key: id
    fields:
      - { field: Type__c, from: $type, type: text }
      - { field: Store__c, from: $store, type: text }
      - { field: Points__c, from: points.delta, type: integer }
Y
my $w4 = Loyalty::Test::Worker->new(config => $jcfg);
my @ev = map {
    $p->send('eu', type => 'points.earned', data => {
        points => { delta => $_ * 10, balance_after => 100 },
        customer => { ext_id => 'cus_1' } })
} 1 .. 3;
ok(drained(), 'JWT: delivered');
my %le = map { $_->{fields}{Event_Id__c} => $_ }
         @{ records('Loyalty_Event__c') };
for my $i (0 .. 2) {
    my $r = $le{ $ev[$i]{id} };
    ok($r, "JWT: event record $ev[$i]{id}") or next;
    is($r->{fields}{Points__c}, ($i + 1) * 10, 'JWT: typed value');
    is($r->{fields}{Type__c}, 'points.earned', 'JWT: $type');
}
my @jt = grep { $_->{grant} =~ /jwt/ }
         @{ $sb->state('salesforce', 'tokens')->{tokens} };
is(scalar @jt, 1, 'JWT bearer: one token');
is($w4->stop, 0, 'JWT worker stops cleanly');

done_testing;
