#!/usr/bin/perl

# Identity conflicts are parked, never forced and never lost: with Email
# unique in the org, a second customer with the first one's e-mail gets
# DUPLICATE_VALUE and its event goes to loyalty:{eu}:conflicts (acked,
# not retried, not dead-lettered, no duplicate Contact).  A person fixes
# the record in the CRM, `conflicts resolve` replays the event and it
# lands once; `conflicts dismiss` drops another.  `stats` and the
# metrics count them.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until spew free_port);
use Loyalty::Test::Worker qw(worker_bin);
use Loyalty::Test::HTTP qw(request);

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'], receivers => []);
my $sb = $p->sandbox;
my $dir = $p->dir;
my $redis = $p->redis;
my $mport = free_port();

$sb->config('salesforce', { unique_fields => { Contact => ['Email'] } });

my $cfg = "$dir/sf.yaml";
spew($cfg, "redis: " . $redis->addr . "\nstores: [eu]\n" . <<"Y");
destinations:
  - name: sf
@{[ $p->sf_destination ]}flows:
  - to: sf
    on: [customer.updated]
    object: Contact
    external_id: Loyalty_Id__c
    key: ext_id
    fields:
      - { field: Email, from: customer.email, type: email }
      - { field: LastName, from: customer.last_name, type: text }
claim_timeout_ms: 10000
block_ms: 200
retry_base_ms: 50
retry_cap_ms: 200
retry_interval_ms: 50
max_attempts: 5
metrics: 127.0.0.1:$mport
Y

sub customer {
    my ($key, $email) = @_;
    my $r = $p->send('eu', type => 'customer.updated', data => {
        customer => { ext_id => $key, email => $email,
                      last_name => "Name $key" } });
    die "edge: $r->{status}" unless $r->{status} == 202;
    return $r;
}

sub contacts {
    my %by;
    for (@{ $sb->state('salesforce', 'records', 'Contact')->{records} }) {
        push @{ $by{ $_->{fields}{Loyalty_Id__c} // '' } }, $_;
    }
    return \%by;
}

sub cli {
    my @a = map { "'$_'" } @_;
    my $bin = worker_bin();
    my $out = `$bin -c '$cfg' @a 2>&1`;
    return ($? >> 8, $out);
}

my $w = Loyalty::Test::Worker->new(config => $cfg);

my $ada = customer('cus_1', 'ada@example.com');
ok(wait_until(sub { contacts()->{cus_1} && $p->drained }, timeout => 15),
   'the first customer is a Contact');

# a second person (or a data error) with the same e-mail
my $dup = customer('cus_2', 'ADA@example.com');
my $other = customer('cus_3', 'ada@example.com');
ok(wait_until(sub { $redis->xlen('loyalty:{eu}:conflicts') == 2
                    && $p->drained }, timeout => 15),
   'both clashing events are parked in the conflicts stream');

my $c = contacts();
is(scalar keys %$c, 1, 'no second Contact was created');
is(scalar @{ $c->{cus_1} }, 1, 'the first Contact is there once');
is($redis->xlen('loyalty:{eu}:dlq'), 0, 'nothing dead-lettered');
is($redis->cmd('ZCARD', 'loyalty:{eu}:retry'), 0, 'nothing being retried');

my %park = map { $_->[1]{id} => $_ }
           @{ $redis->stream('loyalty:{eu}:conflicts') };
my $e = $park{ $dup->{id} }[1];
ok($e, 'the first clash is there');
is($e->{dlq_reason}, 'conflict', 'reason: conflict');
like($e->{error}, qr/^conflict: DUPLICATE_VALUE/, 'with Salesforce\'s code');
is($e->{corr}, $dup->{corr}, 'and the correlation id');
is($e->{attempts}, 1, 'after one attempt: a conflict is not retried');

my ($rc, $out) = cli(qw(conflicts list eu));
is($rc, 0, 'conflicts list: exit 0');
is(scalar(() = $out =~ /\tconflict$/mg), 2, 'two listed, with the reason')
    or diag $out;
like($out, qr/\Q$dup->{id}\E/, 'by event id');

($rc, $out) = cli('stats', '--json');
my $st = JSON::PP->new->decode($out)->{stores}[0];
is($st->{conflicts}, 2, 'stats counts the conflicts');
is($st->{dlq}, 0, 'and no dead letters');

my $m = request(port => $mport, method => 'GET', path => '/metrics');
like($m->{body},
     qr/^loyalty_worker_events_total\{store="eu",outcome="conflict"\} 2$/m,
     'metrics count them');

# a person fixes the CRM: the first Contact had the wrong e-mail
$sb->action('salesforce', 'crm_edit', { object => 'Contact',
    id => $c->{cus_1}[0]{Id} // $c->{cus_1}[0]{id},
    fields => { Email => 'ada.lovelace@example.com' } });

($rc, $out) = cli('conflicts', 'resolve', 'eu', $park{ $dup->{id} }[0]);
is($rc, 0, 'conflicts resolve: exit 0') or diag $out;
like($out, qr/^replayed /, 'the event is replayed');
ok(wait_until(sub { contacts()->{cus_2} && $p->drained }, timeout => 15),
   'after the fix it lands');
$c = contacts();
is(scalar @{ $c->{cus_2} }, 1, 'once');
is($c->{cus_2}[0]{fields}{Email}, 'ada@example.com', 'with its e-mail');

($rc, $out) = cli('conflicts', 'dismiss', 'eu', $park{ $other->{id} }[0]);
is($rc, 0, 'conflicts dismiss: exit 0') or diag $out;
is($redis->xlen('loyalty:{eu}:conflicts'), 0, 'the conflicts stream is empty');
ok(!contacts()->{cus_3}, 'the dismissed event never reached Salesforce');

($rc, $out) = cli(qw(conflicts replay eu 1-0));
is($rc, 2, '"replay" is not a conflicts command (resolve is)');

is($w->stop, 0, 'worker stops cleanly');
unlike($w->log, qr/ada(\.lovelace)?\@example\.com/i,
       'no e-mail address in the worker log');

done_testing;
