#!/usr/bin/perl

# Dead consumers are removed from the group `workers`: a consumer with
# nothing pending, idle longer than consumer_gc_ms (2000 here), goes
# (XGROUP DELCONSUMER, in a script that checks XINFO CONSUMERS); one with
# pending entries stays however idle it is (DELCONSUMER would drop them),
# and a worker never removes itself.
#
# Worker A reads 3 events and is killed (its requests hang on a socket
# that never answers): its consumer keeps 3 pending entries.  Worker B
# never claims (claim_interval_ms 1 h) and blocks 5 s in XREADGROUP, so
# its own consumer is idle over consumer_gc_ms too: it removes an empty
# consumer but neither A's nor its own.  Worker C then claims A's entries
# and delivers them; A's consumer, empty now, is removed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Redis qw(is_error);
use Loyalty::Test::Util qw(wait_until free_port);
use Loyalty::Test::Worker qw(write_config new_whsec temp_dir xadd_envelope);

plan skip_all => 'build/loyalty-worker not built'
    unless -x Loyalty::Test::Worker::worker_bin();

my $KEY = 'loyalty:{eu}:in';

my $redis = Loyalty::Test::Redis->new;
my $rx = Loyalty::Test::Receiver->new;
my $dir = temp_dir('wcfg');
my $secret = new_whsec();

# accepts connections (the kernel does) but never answers
my $hang_port = free_port();
my $hang = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
    LocalPort => $hang_port, Listen => 16, ReuseAddr => 1)
    or die "listen: $!";

my %common = (redis => $redis, stores => ['eu'], flows => [ { to => 'd' } ],
    claim_timeout_ms => 1000, consumer_gc_ms => 2000,
    trim_interval_ms => 200, retry_base_ms => 50, retry_cap_ms => 100,
    retry_interval_ms => 50);

my $cfg_ab = write_config($dir, %common, file => 'ab.yaml',
    destinations => [ { name => 'd', url => "http://127.0.0.1:$hang_port/h",
                        secret => $secret, timeout_ms => 900 } ],
    claim_interval_ms => 3600000, block_ms => 5000);
my $cfg_c = write_config($dir, %common, file => 'c.yaml',
    destinations => [ { name => 'd', url => $rx->url, secret => $secret,
                        timeout_ms => 900 } ],
    claim_interval_ms => 100, block_ms => 200);

sub xadd { xadd_envelope($redis, 'eu', $_[0], key => $KEY) }

# name => { pending, idle }
sub consumers {
    my $r = $redis->cmd('XINFO', 'CONSUMERS', $KEY, 'workers');
    return {} if is_error($r) || !ref $r;
    my %c;
    for (@$r) {
        my %h = @$_;
        $c{ $h{name} } = \%h;
    }
    return \%c;
}

sub connected {
    my ($w) = @_;
    return wait_until(sub { grep { ($_->{msg} // '') =~ /^redis connected/ }
                                 $w->log_lines }, timeout => 10);
}

sub consumer_name {
    my ($w) = @_;
    for ($w->log_lines) {
        return $1 if ($_->{msg} // '') =~ /^redis connected, consumer (\S+)/;
    }
    return '';
}

sub removed {
    my (@w) = @_;
    return map { ($_->{msg} // '') =~ /^removed consumer (\S+) / ? $1 : () }
           map { $_->log_lines } @w;
}


# --- A reads 3 events and dies with them pending ---

my $a = Loyalty::Test::Worker->new(config => $cfg_ab);
ok connected($a), 'worker A connected';
my $a_name = consumer_name($a);
sleep 0.2;
xadd("evt_g$_") for 1 .. 3;
ok wait_until(sub { (consumers()->{$a_name}{pending} // 0) == 3 },
              timeout => 5, interval => 0.01),
    "A ($a_name) holds 3 entries";
$a->kill;

# an empty consumer, as a worker that died holding nothing leaves
is $redis->cmd('XGROUP', 'CREATECONSUMER', $KEY, 'workers', 'ghost:1'), 1,
    'an empty consumer ghost:1';


# --- B: removes the empty one, keeps A's (pending) and itself ---

my $b = Loyalty::Test::Worker->new(config => $cfg_ab);
ok connected($b), 'worker B connected';
my $b_name = consumer_name($b);

ok wait_until(sub { !exists consumers()->{'ghost:1'} }, timeout => 5),
    'the empty consumer is removed';
ok((grep { $_ eq 'ghost:1' } removed($b)), '... by B, which logs it');

# by now A's consumer has been idle over 2 s, B's too (5 s blocks)
ok wait_until(sub { (consumers()->{$a_name}{idle} // 0) > 3000
                    && (consumers()->{$b_name}{idle} // 0) > 2500 },
              timeout => 8),
    'A and B idle over consumer_gc_ms';
sleep 0.5;    # two more cleanup runs
my $c = consumers();
is $c->{$a_name}{pending}, 3,
    "A's consumer, idle $c->{$a_name}{idle} ms, stays: 3 entries pending";
is scalar(grep { $_ eq $b_name } removed($b)), 0, 'B never removes itself';


# --- C claims A's entries: A's consumer is empty, then removed ---

my $cw = Loyalty::Test::Worker->new(config => $cfg_c);
ok connected($cw), 'worker C connected';

ok wait_until(sub { my %ok = map { $_->{id} => 1 }
                             grep { $_->{status} =~ /^2/ } @{ $rx->requests };
                    keys %ok == 3 }, timeout => 10),
    "C claimed and delivered A's 3 events";
ok wait_until(sub { !exists consumers()->{$a_name} }, timeout => 5),
    "A's consumer is removed once nothing is pending";
ok((grep { $_ eq $a_name } removed($b, $cw)), '... and that is logged');
is $redis->cmd('XPENDING', $KEY, 'workers')->[0], 0, 'nothing pending';
ok exists consumers()->{ consumer_name($cw) }, 'C is still there';

is $_->stop, 0, 'worker stops cleanly' for $b, $cw;

done_testing;
