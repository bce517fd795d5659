#!/usr/bin/perl

# The sandbox's benchmark-only options (t/bench/worker): a hooks receiver
# created with "unsigned": true skips the signature check but still
# dedupes; state ?events=0 gives the counts only; --log-max and
# --log-body-max bound the request log.  The defaults are unchanged
# (000-core.t).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;

use Loyalty::Test::Sandbox;

my $sb = Loyalty::Test::Sandbox->new;

my $r = $sb->call('POST', '/_sandbox/do/hooks/receiver',
                  json => { name => 'nosecret' });
is($r->{status}, 400, 'a receiver without a secret is still refused');

$sb->action('hooks', 'receiver', { name => 'b', unsigned => JSON::PP::true });
my $body = '{"v":1,"id":"evt_1","store":"eu","type":"order.paid","data":{}}';
for (1 .. 2) {
    $r = $sb->call('POST', '/hooks/b', body => $body,
                   headers => { 'webhook-id' => 'evt_1' });
    is($r->{status}, 204, "unsigned receiver: no signature, 204 ($_)");
}
is($sb->call('POST', '/hooks/b', body => 'not json',
             headers => { 'webhook-id' => 'evt_2' })->{status}, 400,
   'unsigned receiver: non-JSON is still 400');

my $st = $sb->state('hooks', 'b', { events => 0 });
is($st->{distinct}, 1, 'deduped on webhook-id');
is($st->{duplicates}, 1, 'one duplicate');
ok($st->{unsigned}, 'state says unsigned');
ok(!exists $st->{events}, 'events=0: no event list');
is(scalar @{ $sb->state('hooks', 'b')->{events} }, 1,
   'without it the list is there');

# a signed receiver still refuses an unsigned request
$sb->receiver('s', 'whsec_' . ('A' x 32));
is($sb->call('POST', '/hooks/s', body => $body,
             headers => { 'webhook-id' => 'evt_1' })->{status}, 401,
   'a normal receiver still checks signatures');

my $log = $sb->requests(service => 'hooks');
is($log->[0]{body}, $body, 'default: the whole body is logged');

# --log-max 0: nothing kept, still counted; --log-body-max caps bodies
my $sb2 = Loyalty::Test::Sandbox->new(args => ['--log-max', 0]);
$sb2->action('hooks', 'receiver', { name => 'b', unsigned => JSON::PP::true });
$sb2->call('POST', '/hooks/b', body => $body,
           headers => { 'webhook-id' => "evt_$_" }) for 1 .. 3;
is(scalar @{ $sb2->requests }, 0, '--log-max 0 keeps no entries');
is($sb2->seq, 3, '... but counts them');

my $sb3 = Loyalty::Test::Sandbox->new(args => ['--log-body-max', 10]);
$sb3->action('hooks', 'receiver', { name => 'b', unsigned => JSON::PP::true });
$sb3->call('POST', '/hooks/b', body => $body,
           headers => { 'webhook-id' => 'evt_1' });
is($sb3->requests->[0]{body}, substr($body, 0, 10),
   '--log-body-max 10 keeps 10 bytes of the body');

done_testing;
