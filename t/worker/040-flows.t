#!/usr/bin/perl

# Routing: flows select by store, sender (from) and event type (on); an
# event that matches two flows goes to both destinations and is acked only
# when both succeeded; an event no flow takes is acked without a request;
# concurrency bounds the requests in flight per destination.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Redis qw(is_error);
use Loyalty::Test::Util qw(wait_until);
use Loyalty::Test::Worker qw(write_config sw_verify new_whsec temp_dir
    xadd_envelope);

plan skip_all => 'build/loyalty-worker not built'
    unless -x Loyalty::Test::Worker::worker_bin();

my $redis = Loyalty::Test::Redis->new;
my ($ra, $rb) = (Loyalty::Test::Receiver->new, Loyalty::Test::Receiver->new);
my ($sa, $sb) = (new_whsec(), new_whsec());
my $dir = temp_dir('wcfg');

my $cfg = write_config($dir,
    redis => $redis, stores => [qw(eu us)],
    destinations => [
        { name => 'a', url => $ra->url('/a'), secret => $sa,
          timeout_ms => 2000, concurrency => 2 },
        { name => 'b', url => $rb->url('/b'), secret => $sb,
          timeout_ms => 2000 },
    ],
    flows => [
        { to => 'a', stores => ['eu'], on => [qw(order.paid order.refunded)] },
        { to => 'b', from => ['shopify'], on => ['customer.updated', 'order.paid'] },
    ],
    claim_timeout_ms => 2500, claim_interval_ms => 200, block_ms => 200);

sub xadd {
    my ($store, $id, %f) = @_;
    xadd_envelope($redis, $store, $id, data => '{"x":1}', %f);
}

sub ids { [ sort map { $_->{id} } @{ $_[0]->requests } ] }

sub pending_all {
    my $n = 0;
    for my $s (qw(eu us)) {
        my $r = $redis->cmd('XPENDING', "loyalty:{$s}:in", 'workers');
        $n += is_error($r) ? 0 : $r->[0];
    }
    return $n;
}

my $w = Loyalty::Test::Worker->new(config => $cfg);

xadd('eu', 'e1');                                      # a
xadd('eu', 'e2', type => 'order.refunded');            # a
xadd('us', 'e3');                                      # none (us, standard)
xadd('us', 'e4', src => 'shopify', type => 'customer.updated');  # b
xadd('eu', 'e5', src => 'shopify');                    # a and b
xadd('eu', 'e6', type => 'customer.updated');          # none
xadd('eu', 'e7', src => 'shopify', type => 'order.cancelled');   # none

ok wait_until(sub { @{ ids($ra) } == 3 && @{ ids($rb) } == 2
                    && pending_all() == 0 }, timeout => 10),
    'all routed and acked';
is_deeply ids($ra), [qw(e1 e2 e5)], 'destination a: eu order.paid/refunded';
is_deeply ids($rb), [qw(e4 e5)], 'destination b: shopify customer.updated/order.paid';
is scalar(grep { !sw_verify($sa, $_) } @{ $ra->requests }), 0,
    'a: signed with the key of a';
is scalar(grep { !sw_verify($sb, $_) } @{ $rb->requests }), 0,
    'b: signed with the key of b';
is scalar(grep { $_->{line} !~ m{^POST /a } } @{ $ra->requests }), 0,
    'a: its own URL';

# both destinations must succeed; a retry goes only to the one that failed
$rb->script(e8 => '503 204');
xadd('eu', 'e8', src => 'shopify');
ok wait_until(sub { (grep { $_ eq 'e8' } @{ ids($ra) })
                    && (grep { $_ eq 'e8' } @{ ids($rb) }) }, timeout => 10),
    'an event for two destinations: both tried';
ok wait_until(sub { (grep { $_->{id} eq 'e8' && $_->{status} == 204 }
                     @{ $rb->requests }) && pending_all() == 0
                    && $redis->cmd('ZCARD', 'loyalty:{eu}:retry') == 0 },
              timeout => 10),
    '... b failed once, was retried and succeeded; nothing left';
is scalar(grep { $_ eq 'e8' } @{ ids($rb) }), 2, '... b saw it twice';
is scalar(grep { $_ eq 'e8' } @{ ids($ra) }), 1,
    '... a, which had succeeded, saw it once (per-destination progress)';

# concurrency 2 on a: never more than 2 requests at the receiver at once
$ra->delay(0.1);
xadd('eu', "c$_") for 1 .. 6;
ok wait_until(sub { (grep { /^c\d$/ } @{ ids($ra) }) == 6 }, timeout => 10),
    'six slow requests to a delivered';
my @slow = sort { $a->{t} <=> $b->{t} } grep { $_->{id} =~ /^c\d$/ }
    @{ $ra->requests };
my $span = $slow[-1]{t} - $slow[0]{t};
cmp_ok $span, '>=', 0.45, "... serially by the receiver ($span s)";
my @inflight = grep { ($_->{msg} // '') eq 'delivered'
                      && ($_->{event} // '') =~ /^c\d$/ } $w->log_lines;
cmp_ok((sort { $b <=> $a } map { $_->{latency_ms} } @inflight)[0], '<', 450,
    '... at most 2 in flight: no request waited behind more than one other');

is $w->stop(10), 0, 'SIGTERM: exit 0';

done_testing;
