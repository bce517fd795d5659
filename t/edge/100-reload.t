#!/usr/bin/perl

# nginx -s reload under traffic: clients keep posting (a new connection
# each) through several reloads, one of which changes the config; every
# request gets 202, nothing is lost (the stream holds exactly the acked
# ids).  Requests parked on a slow Redis complete across a reload and
# across a graceful quit.  The automatic end checks catch Redis
# connections the old workers leave open ("open socket left").

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(sleep time);

use Loyalty::Test::Nginx qw(parallel_requests);
use Loyalty::Test::Util qw(slurp spew);
use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = new_secret();

my $config = qq{
    loyalty_secret $secret;
    location = /h { loyalty_webhook standard; loyalty_store rl; }
};

my ($redis, $ngx) = edge_setup(
    workers => 2,
    redis_directive => 'loyalty_redis %%REDIS%% timeout=3s;',
    config => $config);

my $stream = stream_key('rl');

my $bg = $ngx->background(clients => 4, gen => sub {
    my $req = standard_request(secret => $secret);
    return { method => 'POST', path => '/h', %$req };
});

sleep 0.4;
my @gens = ([ $ngx->worker_pids ]);

ok $ngx->reload, 'reload 1 (same config) under traffic';
push @gens, [ $ngx->worker_pids ];
sleep 0.3;

ok $ngx->reload(config => $config . q{
    loyalty_dedupe_window 1h;
    location = /extra { return 204; }
}), 'reload 2 (changed config) under traffic';
push @gens, [ $ngx->worker_pids ];
sleep 0.3;

is $ngx->request(GET => '/extra')->{status}, 204, 'the changed config is live';

ok $ngx->reload, 'reload 3 under traffic';
push @gens, [ $ngx->worker_pids ];
sleep 0.3;

ok $ngx->reload(signal => 1), 'reload 4 (HUP) under traffic';
push @gens, [ $ngx->worker_pids ];

my $c0 = $bg->count;
my $deadline = time + 5;
sleep 0.05 while $bg->count < $c0 + 200 && time < $deadline;
my $rec = $bg->stop;

for my $g (1 .. $#gens) {
    my %prev = map { $_ => 1 } @{ $gens[$g - 1] };
    is scalar(grep { $prev{$_} } @{ $gens[$g] }), 0, "reload $g replaced every worker";
}

my %by;
$by{ $_->{status} }++ for @$rec;
diag 'during reloads: ' . join ', ', map { "$_ x $by{$_}" } sort keys %by;
cmp_ok scalar(@$rec), '>', 300, 'traffic kept flowing (' . scalar(@$rec) . ' requests)';
is_deeply [grep { $_ != 202 } keys %by], [], 'every request during the reloads got 202'
    or diag explain [ (grep { $_->{status} != 202 } @$rec)[0 .. 4] ];

my @acked = map { $_->{id} } grep { $_->{status} == 202 } @$rec;
my %stored = map { $_->[1]{id} => 1 } @{ $redis->stream($stream) };
is $redis->xlen($stream), scalar @acked, 'XLEN = number of 202s';
is scalar(grep { !$stored{$_} } @acked), 0, 'every acked id is in the stream';
is scalar(keys %stored), scalar @acked, 'no id stored twice';


# --- requests parked on a sleeping Redis survive a reload ----------------------------------

sub redis_sleep {
    my ($secs) = @_;
    my $pid = fork // die;
    if ($pid == 0) {
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $redis->port)
            or POSIX::_exit(1);
        print $c "*3\r\n\$5\r\nDEBUG\r\n\$5\r\nSLEEP\r\n\$" . length($secs) . "\r\n$secs\r\n";
        my $x = <$c>;
        POSIX::_exit(0);
    }
    sleep 0.1;
    return $pid;
}

# parallel requests from a child process; results in a file
sub parked {
    my ($n, $file) = @_;
    my @reqs = map { standard_request(secret => $secret) } 1 .. $n;
    my $pid = fork // die;
    if ($pid == 0) {
        my $res = parallel_requests($ngx, $n, sub {
            my $q = $reqs[ $_[0] ];
            return { method => 'POST', path => '/h', body => $q->{body}, headers => $q->{headers} };
        }, timeout => 20);
        spew($file, JSON::PP->new->encode([ map { { status => $_->{status},
            id => (json_of($_) // {})->{id}, error => $_->{error},
            elapsed => $_->{elapsed} } } @$res ]));
        POSIX::_exit(0);
    }
    return ($pid, \@reqs);
}

$redis->flushall;
my $sleeper = redis_sleep(1.5);
my $file = $ngx->servroot . '/parked-reload.json';
my ($kid, $reqs) = parked(50, $file);
sleep 0.4;                                  # the 50 are waiting on Redis now
ok $ngx->reload, 'reload while 50 requests wait on Redis';
waitpid $kid, 0;
waitpid $sleeper, 0;
my $res = JSON::PP->new->decode(slurp($file) || '[]');
my %st;
$st{ $_->{status} }++ for @$res;
is_deeply \%st, { 202 => 50 }, 'all 50 parked requests completed with 202' or diag explain \%st;
my ($fastest) = sort { $a <=> $b } map { $_->{elapsed} // 0 } @$res;
cmp_ok $fastest, '>=', 0.9, sprintf('... none answered before Redis acknowledged (fastest %.2f s)', $fastest // 0);
is $redis->xlen($stream), 50, '... and are stored';


# --- ... and a graceful quit ------------------------------------------------------------------

$redis->flushall;
$sleeper = redis_sleep(1);
$file = $ngx->servroot . '/parked-quit.json';
($kid, $reqs) = parked(20, $file);
sleep 0.3;
my $t0 = time;
$ngx->stop;                                 # QUIT, waits for the exit
my $quit_took = time - $t0;
waitpid $kid, 0;
waitpid $sleeper, 0;
$res = JSON::PP->new->decode(slurp($file) || '[]');
%st = ();
$st{ $_->{status} }++ for @$res;
is_deeply \%st, { 202 => 20 }, 'QUIT with 20 requests waiting on Redis: all 202' or diag explain \%st;
is $redis->xlen($stream), 20, '... all stored';
ok !$ngx->{quit_hung}, sprintf('nginx exited on QUIT (%.2f s)', $quit_took);

done_testing;
