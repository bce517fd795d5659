#!/usr/bin/perl

# The sandbox's core: health, the request log (secrets masked), fault
# injection (status with Retry-After, times, skip, latency, dropped
# connections), the hooks receiver (Standard Webhooks checked, events
# kept once by webhook-id) and reset.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(time);

use Loyalty::Test::Sandbox;
use Loyalty::Test::Webhook qw(standard_headers new_secret);

my $JSON = JSON::PP->new->utf8->canonical;
my $sb = Loyalty::Test::Sandbox->new;

my $h = $sb->health;
ok($h->{ok}, 'health answers');
ok((grep { $_ eq 'hooks' } @{ $h->{services} }), 'hooks service is there');

# --- hooks receiver ---------------------------------------------------------

my $secret = new_secret();
my $url = $sb->receiver('crm', $secret);
like($url, qr{/hooks/crm$}, 'receiver URL');

sub deliver {
    my (%o) = @_;
    my $body = $o{body} // $JSON->encode({ v => 1, id => $o{id},
        store => 'eu', type => 'order.paid', src => 'standard',
        corr => "corr-$o{id}", data => {} });
    my $hd = standard_headers($o{secret} // $secret, $o{id},
                              $o{ts} // int(time), $body);
    $hd->{'X-Correlation-ID'} = "corr-$o{id}";
    $hd->{'Authorization'} = 'Bearer supersecrettoken' if $o{auth};
    return $sb->call('POST', $o{path} // '/hooks/crm', headers => $hd,
                     body => $body);
}

is(deliver(id => 'evt_1')->{status}, 204, 'signed delivery: 204');
is(deliver(id => 'evt_1')->{status}, 204, 'redelivery: 204');
is(deliver(id => 'evt_2', auth => 1)->{status}, 204, 'second event');
is(deliver(id => 'evt_3', secret => new_secret())->{status}, 401,
   'wrong secret: 401');
is(deliver(id => 'evt_4', ts => int(time) - 3600)->{status}, 401,
   'stale timestamp: 401');
is(deliver(id => 'evt_5', path => '/hooks/nobody')->{status}, 404,
   'unknown receiver: 404');
is(deliver(id => 'evt_6', body => 'not json')->{status}, 400,
   'signed non-JSON: 400');

my $st = $sb->state('hooks', 'crm');
is($st->{distinct}, 2, 'two distinct events kept');
is($st->{deliveries}, 3, 'three accepted deliveries');
is($st->{duplicates}, 1, 'one duplicate');
is($st->{rejected}, 3, 'three rejected');
my %ev = map { $_->{id} => $_ } @{ $st->{events} };
is($ev{evt_1}{deliveries}, 2, 'evt_1 delivered twice, kept once');
is($ev{evt_1}{corr}, 'corr-evt_1', 'correlation id kept');
is($sb->state('hooks', 'crm', { envelopes => 1 })->{events}[0]{envelope}{id},
   'evt_1', 'envelopes on request');

# --- request log ------------------------------------------------------------

my $log = $sb->requests(service => 'hooks');
is(scalar @$log, 7, 'every request logged');
is($log->[0]{corr}, 'corr-evt_1', 'correlation id in the log');
is($log->[0]{status}, 204, 'status in the log');
my ($authed) = grep { $_->{headers}{authorization} } @$log;
unlike($authed->{headers}{authorization}, qr/supersecrettoken/,
       'tokens are masked in the log');
my $since = $log->[-1]{seq};
deliver(id => 'evt_7');
is(scalar @{ $sb->requests(since => $since) }, 1, 'since= filters');

# --- faults -----------------------------------------------------------------

$sb->fault({ service => 'hooks', status => 429, retry_after => 2,
             times => 2 });
my $r = deliver(id => 'evt_8');
is($r->{status}, 429, 'injected 429');
is($r->{headers}{'retry-after'}, '2', 'with Retry-After');
is(deliver(id => 'evt_8')->{status}, 429, 'second time too');
is(deliver(id => 'evt_8')->{status}, 204, 'then the real answer');

$sb->fault({ service => 'hooks', status => 503, skip => 1, times => 1,
             path => '^/crm$' });
is(deliver(id => 'evt_9')->{status}, 204, 'skip: first request passes');
is(deliver(id => 'evt_10')->{status}, 503, 'then the 503');
is(deliver(id => 'evt_11')->{status}, 204, 'times used up');

$sb->fault({ service => 'hooks', match => 'evt_poison', status => 500 });
is(deliver(id => 'evt_poison')->{status}, 500, 'body match');
is(deliver(id => 'evt_12')->{status}, 204, 'others pass');
$sb->clear_faults;
is(deliver(id => 'evt_poison')->{status}, 204, 'cleared');

$sb->fault({ service => 'hooks', latency_ms => 300, times => 1 });
my $t0 = time;
is(deliver(id => 'evt_13')->{status}, 204, 'latency: answered');
cmp_ok(time - $t0, '>=', 0.29, 'latency: after the delay');

$sb->fault({ service => 'hooks', drop => JSON::PP::true, times => 1 });
$r = deliver(id => 'evt_14');
is($r->{status}, 599, 'dropped connection: no answer');
ok(!(grep { $_->{id} eq 'evt_14' } @{ $sb->state('hooks', 'crm')->{events} }),
   'a dropped request is not applied');

# --- reset ------------------------------------------------------------------

$sb->reset;
$st = $sb->state('hooks', 'crm');
is($st->{distinct}, 0, 'reset clears the state');
is(scalar @{ $sb->requests }, 0, 'reset clears the log');
is(deliver(id => 'evt_1')->{status}, 204, 'receivers survive a reset');

is($sb->call('GET', '/nowhere')->{status}, 404, 'unknown service: 404');
is($sb->call('GET', '/_sandbox/nowhere')->{status}, 404,
   'unknown control endpoint: 404');

done_testing;
