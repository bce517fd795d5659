#!/usr/bin/perl

# dlq replay goes only to the destinations that failed: the dead letter
# keeps the destinations already served (dlq_done), the replayed stream
# entry carries them (_done, never sent on), and the worker skips them.
# Three events for two destinations a and b:
#   evt_r1: a 204, b 400 (permanent)       -> dlq_done "a"
#   evt_r2: a 204, b 503 until max_attempts -> dlq_done "a" (the retry
#           went to b only)
#   evt_r3: a 400, b 400                   -> no dlq_done: both again

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Redis qw(is_error);
use Loyalty::Test::Util qw(wait_until);
use Loyalty::Test::Worker qw(write_config new_whsec temp_dir worker_bin
    xadd_envelope);

plan skip_all => 'build/loyalty-worker not built' unless -x worker_bin();

my $JSON = JSON::PP->new->utf8;
my $redis = Loyalty::Test::Redis->new;
my $rxa = Loyalty::Test::Receiver->new;
my $rxb = Loyalty::Test::Receiver->new;
my $dir = temp_dir('wcfg');

my $cfg = write_config($dir, redis => $redis, stores => ['eu'],
    destinations => [
        { name => 'a', url => $rxa->url, secret => new_whsec(),
          timeout_ms => 1000 },
        { name => 'b', url => $rxb->url, secret => new_whsec(),
          timeout_ms => 1000 },
    ],
    flows => [ { to => 'a' }, { to => 'b' } ],
    claim_timeout_ms => 2000, claim_interval_ms => 200, block_ms => 200,
    retry_base_ms => 50, retry_cap_ms => 100, retry_interval_ms => 50,
    max_attempts => 2);

sub xadd {
    return xadd_envelope($redis, 'eu', $_[0], received => 1795553266879,
                         data => '{"order":{"id":"1","total":4990}}');
}

sub cli {
    my @a = map { "'$_'" } @_;
    my $bin = worker_bin();
    my $out = `$bin -c '$cfg' @a 2>&1`;
    return ($? >> 8, $out);
}

sub reqs {
    my ($rx, $id) = @_;
    return [ grep { $_->{id} eq $id } @{ $rx->requests } ];
}

sub dlq {
    my %d;
    for my $e (@{ $redis->cmd('XRANGE', 'loyalty:{eu}:dlq', '-', '+') }) {
        my %f = @{ $e->[1] };
        $d{ $f{id} } = { dlq_id => $e->[0], %f };
    }
    return \%d;
}

$rxa->script(evt_r3 => '400 204');
$rxb->script(evt_r1 => '400 204', evt_r2 => '503 503 204',
             evt_r3 => '400 204');

my $w = Loyalty::Test::Worker->new(config => $cfg);
xadd($_) for qw(evt_r1 evt_r2 evt_r3);

ok wait_until(sub { keys %{ dlq() } == 3 }, timeout => 10),
    'three dead letters';
my $d = dlq();
is $d->{evt_r1}{dlq_done}, 'a', 'evt_r1: dlq_done a (b refused it)';
is $d->{evt_r1}{dest}, 'b', '... dest b';
is $d->{evt_r2}{dlq_done}, 'a', 'evt_r2: dlq_done a (b exhausted)';
is $d->{evt_r2}{attempts}, 2, '... after 2 attempts';
is scalar(@{ reqs($rxa, 'evt_r2') }), 1, '... the retry skipped a';
ok !exists $d->{evt_r3}{dlq_done}, 'evt_r3: no dlq_done (nothing served)';

my ($rc, $out) = cli('dlq', 'show', 'eu', $d->{evt_r1}{dlq_id});
like $out, qr/"dlq_done":"a"/, 'dlq show has dlq_done';

my %before = map { $_ => scalar @{ reqs($rxa, $_) } } qw(evt_r1 evt_r2 evt_r3);

($rc, $out) = cli(qw(dlq replay eu --all));
is $rc, 0, 'dlq replay --all: exit 0' or diag $out;

ok wait_until(sub {
        (grep { $_->{status} == 204 } @{ reqs($rxb, 'evt_r1') })
        && (grep { $_->{status} == 204 } @{ reqs($rxb, 'evt_r2') })
        && (grep { $_->{status} == 204 } @{ reqs($rxb, 'evt_r3') })
        && (grep { $_->{status} == 204 } @{ reqs($rxa, 'evt_r3') })
    }, timeout => 10), 'replayed: b gets all three, a gets evt_r3';
sleep 0.5;
is scalar(@{ reqs($rxa, 'evt_r1') }), $before{evt_r1},
    'a is not sent evt_r1 again (it had it)';
is scalar(@{ reqs($rxa, 'evt_r2') }), $before{evt_r2},
    'a is not sent evt_r2 again';
is scalar(@{ reqs($rxa, 'evt_r3') }), $before{evt_r3} + 1,
    'a is sent evt_r3 again (it had refused it)';

my ($last) = grep { $_->{status} == 204 } @{ reqs($rxb, 'evt_r1') };
my $body = $JSON->decode($last->{body});
ok !exists $body->{_done}, 'the _done field is not sent on';
is $body->{id}, 'evt_r1', '... the body is the envelope';
is $redis->cmd('XLEN', 'loyalty:{eu}:dlq'), 0, 'the dlq is empty';
ok wait_until(sub { $redis->cmd('XPENDING', 'loyalty:{eu}:in',
                                'workers')->[0] == 0 }, timeout => 5),
    'all acked';

is $w->stop, 0, 'worker stops cleanly';

done_testing;
