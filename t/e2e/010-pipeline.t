#!/usr/bin/perl

# End to end: a signed webhook -> nginx with the module -> Redis -> the
# worker -> the sandbox.  Each store's events reach the receivers of its
# flows, once, with the envelope the edge wrote and the correlation id
# the edge answered with (in the sandbox's request log too); a duplicate
# delivery to the edge and a badly signed one never reach the sandbox.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Time::HiRes qw(time);

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until);
use Loyalty::Test::Webhook qw(new_secret);

my $p = Loyalty::Test::Pipeline->new(stores => [qw(eu us)],
                                     receivers => [qw(crm erp)]);
my $sb = $p->sandbox;

my $w = $p->worker($p->worker_config(flows => [
    { to => 'crm' },                                  # everything
    { to => 'erp', stores => ['us'], on => ['order.paid'] },
]));

my @sent;
for my $i (1 .. 10) {
    my $store = $i % 2 ? 'eu' : 'us';
    my $type = $i % 3 ? 'order.paid' : 'customer.updated';
    my $r = $p->send($store, type => $type);
    is($r->{status}, 202, "event $i accepted by the edge") or diag $r->{body};
    push @sent, { %$r, store => $store, type => $type };
}

# the same delivery again (sender retry) and a forged one
my $dup = $p->send('eu', id => $sent[0]{id}, n => 1);
is($dup->{status}, 200, 'duplicate delivery: 200 from the edge');
my $bad = $p->send('eu', secret => new_secret());
is($bad->{status}, 401, 'bad signature: 401');

my $want_erp = grep { $_->{store} eq 'us' && $_->{type} eq 'order.paid' }
               @sent;
ok(wait_until(sub {
        $p->held('crm')->{distinct} == 10
            && $p->held('erp')->{distinct} == $want_erp
            && $p->drained }, timeout => 20),
   'every event reached its receivers and was acked');

my $crm = $sb->state('hooks', 'crm', { envelopes => 1 });
my %got = map { $_->{id} => $_ } @{ $crm->{events} };
is($crm->{deliveries}, 10, 'crm: ten deliveries, no redelivery');
ok(!exists $got{ $bad->{id} }, 'the forged event never arrives');
for my $s (@sent) {
    my $e = $got{ $s->{id} };
    ok($e, "$s->{id} at crm") or next;
    is($e->{store}, $s->{store}, "$s->{id}: store");
    is($e->{type}, $s->{type}, "$s->{id}: type");
    is($e->{corr}, $s->{corr}, "$s->{id}: the edge's correlation id");
    is($e->{envelope}{src}, 'standard', "$s->{id}: src");
    ok($e->{envelope}{data}{order}{id}, "$s->{id}: data kept");
}

my $erp = $p->held('erp');
is_deeply([ sort map { $_->{id} } @{ $erp->{events} } ],
          [ sort map { $_->{id} }
            grep { $_->{store} eq 'us' && $_->{type} eq 'order.paid' }
            @sent ],
          'erp: only us order.paid, by the flow');

# the request log: signed, correlated
my $log = $sb->requests(service => 'hooks', path => '^/crm$');
is(scalar @$log, 10, 'ten requests logged for crm');
my %corr = map { $_->{id} => $_->{corr} } @sent;
is(scalar(grep { defined $_->{corr} && $corr{ $_->{headers}{'webhook-id'} }
                 && $_->{corr} eq $corr{ $_->{headers}{'webhook-id'} } }
          @$log), 10, 'X-Correlation-ID in every request = the edge\'s');
ok(!(grep { $_->{headers}{'content-type'} ne 'application/json' } @$log),
   'JSON content type');

is(scalar @{ $p->dlq($_) }, 0, "no dead letters in $_") for qw(eu us);
is($w->stop, 0, 'worker stops cleanly');

done_testing;
