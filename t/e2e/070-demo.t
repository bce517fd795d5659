#!/usr/bin/perl

# make demo (t/demo/run) keeps working: the whole pipeline comes up,
# every accepted scenario event is drained into the sandbox once, the
# rejected ones never arrive, and everything is stopped again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Util qw(repo_root);

my $root = repo_root();
my $out = `cd '$root' && timeout 120 t/demo/run 2>&1`;
is($? >> 8, 0, 'the demo exits 0') or diag $out;

like($out, qr/both streams drained/, 'the worker drained both streams');
like($out, qr/what "crm" holds \(6 events, 6 deliveries\)/,
     'crm holds the six customer, consent, points and tier events');
like($out, qr/what "loyalty" holds \(5 events, 5 deliveries\)/,
     'loyalty holds the three orders and two refunds');
like($out, qr/eu order\.paid\s+msg_eu_0001\s+corr=demo-trace-0001/,
     'the sender\'s X-Request-ID follows the event to the sandbox');
unlike($out, qr/msg_eu_0003|msg_eu_0004|msg_us_0002/,
       'badly signed and stale deliveries never reach the worker');
like($out, qr/^\s+eu\s+7\s+0\s+0\s+0\s+0$/m,
     'stats: eu 7 entries, none left');
like($out, qr/test is successful/, 'the worker config passes -t');
unlike($out, qr/"level":"(?:error|warn)"|\berror\s+\S+\s+store=/,
       'no worker errors');
like($out, qr/done: stopping/, 'stops everything');

my ($dir) = $out =~ /files in (\S+)/;
ok($dir && !-d $dir, 'the temp directory is removed');

done_testing;
