#!/usr/bin/perl

# org_concurrency: three workers with concurrency 4 each write to one
# org whose Collections answers take 300 ms.  With org_concurrency 2
# the sandbox never sees more than 2 calls at once (from the request
# log's start times and latencies), every event is delivered; with the
# cap high the same load does overlap more (the check can fail).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until spew);
use Loyalty::Test::Worker;

my $p = Loyalty::Test::Pipeline->new(stores => ['eu'], receivers => []);
my $sb = $p->sandbox;
my $dir = $p->dir;
my $redis = $p->redis;

my $secret_file = "$dir/sf.secret";
spew($secret_file, "sandbox-client-secret\n", 0600);

sub sf_config {
    my ($cap, $file) = @_;
    my $f = "$dir/$file";
    spew($f, "redis: " . $redis->addr . "\nstores: [eu]\ndestinations:\n"
        . "  - name: sf\n    type: salesforce\n"
        . "    url: " . $sb->url('/salesforce') . "\n"
        . "    auth: client_credentials\n"
        . "    client_id: sandbox-client-id\n"
        . "    client_secret_file: $secret_file\n"
        . "    batch_window_ms: 1\n    timeout_ms: 3000\n"
        . "    concurrency: 4\n    org_concurrency: $cap\n"
        . "flows:\n  - to: sf\n" . <<'Y'
    on: [customer.updated]
    object: Contact
    external_id: Loyalty_Id__c
    key: ext_id
    fields:
      - { field: LastName, from: customer.last_name, type: text }
Y
        . "claim_timeout_ms: 6000\nclaim_interval_ms: 300\nblock_ms: 100\n"
        . "batch: 8\nretry_base_ms: 100\nretry_cap_ms: 500\n"
        . "retry_interval_ms: 50\nmax_attempts: 10\nlog_level: info\n");
    return $f;
}

# the most Collections calls the sandbox was answering at one time
sub max_overlap {
    my ($since) = @_;
    my @ev;
    for (@{ $sb->requests(service => 'salesforce', since => $since) }) {
        next unless $_->{method} eq 'PATCH'
            && $_->{path} =~ m{composite/sobjects};
        push @ev, [ $_->{t}, 1 ], [ $_->{t} + $_->{latency_ms}, -1 ];
    }
    my ($n, $max) = (0, 0);
    # an end before a start at the same instant
    for (sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @ev) {
        $n += $_->[1];
        $max = $n if $n > $max;
    }
    return ($max, scalar(@ev) / 2);
}

sub round {
    my ($cap, $tag) = @_;
    my @w = map { Loyalty::Test::Worker->new(
                      config => sf_config($cap, "$tag$_.yaml")) } 1 .. 3;
    my $since = $sb->seq;
    for my $i (1 .. 60) {
        my $r = $p->send('eu', type => 'customer.updated', data => {
            customer => { ext_id => "cus_${tag}_$i", last_name => "L$i" } });
        $r->{status} == 202 or diag "event $i: $r->{status}";
    }
    ok(wait_until(sub { $p->drained }, timeout => 60),
       "cap $cap: 60 events delivered");
    my ($max, $calls) = max_overlap($since);
    diag("cap $cap: $calls calls, at most $max at once");
    $_->stop for @w;
    return ($max, $calls);
}

$sb->fault({ service => 'salesforce', method => 'PATCH',
             path => 'composite/sobjects', latency_ms => 300 });

# -t
my ($code, $out) = Loyalty::Test::Worker::check_config(
    sf_config(5000, 'bad.yaml'));
like($out, qr/org_concurrency: 5000 is out of range \[1, 1000\]/,
     '-t refuses org_concurrency above 1000');

my ($max, $calls) = round(2, 'a');
cmp_ok($calls, '>=', 6, 'several calls were made');
cmp_ok($max, '<=', 2, 'never more than org_concurrency (2) at once');
is($max, 2, '... and the cap was reached');
is($redis->cmd('ZCARD', 'loyalty:sf:{' . $sb->url('/salesforce')
                        . '}:slots'), 0, 'every slot given back');

($max) = round(100, 'b');
cmp_ok($max, '>', 2, 'with a high cap the same load overlaps more');

is(scalar @{ $p->dlq('eu') }, 0, 'nothing dead-lettered');
is(scalar @{ $sb->state('salesforce', 'records', 'Contact')->{records} },
   120, '120 Contacts');

done_testing();
