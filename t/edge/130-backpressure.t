#!/usr/bin/perl

# loyalty_stream_cap: a stream holding cap entries answers 503 +
# Retry-After {"error":"backpressure"}, adds nothing, trims nothing and
# leaves no dedupe key (the retry after the stream drains is accepted);
# the cap holds exactly under concurrency.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Nginx qw(parallel_requests);
use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = new_secret();

my ($redis, $ngx) = edge_setup(
    workers => 2,
    config => qq{
        loyalty_secret $secret;
        location = /h   { loyalty_webhook standard; loyalty_store bp;  loyalty_stream_cap 5; }
        location = /pre { loyalty_webhook standard; loyalty_store pre; loyalty_stream_cap 3; }
        location = /c50 { loyalty_webhook standard; loyalty_store c50; loyalty_stream_cap 50; }
        location = /def { loyalty_webhook standard; loyalty_store def; }
    });

my $stream = stream_key('bp');

sub post { (post_standard($ngx, shift, secret => $secret, @_))[0] }

my @st = map { post('/h')->{status} } 1 .. 5;
is_deeply \@st, [(202) x 5], 'up to the cap (5): 202';
my @before = map { $_->[0] } @{ $redis->stream($stream) };

my $id = new_id();
my $r = post('/h', id => $id);
is $r->{status}, 503, 'stream at the cap: 503';
like $r->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/, '... Retry-After (seconds)';
is json_of($r) && json_of($r)->{error}, 'backpressure', '... error backpressure';
ok is_hex32($r->{headers}{'x-correlation-id'}), '... X-Correlation-ID';
is $redis->xlen($stream), 5, '... nothing added';
is_deeply [ map { $_->[0] } @{ $redis->stream($stream) } ], \@before, '... nothing trimmed';
ok !$redis->cmd('EXISTS', seen_key('bp', $id)), '... no dedupe key left behind';

$r = post('/h', id => $id);
is $r->{status}, 503, 'the same event retried while full: 503 again, not duplicate';

$redis->cmd('XDEL', $stream, $before[0]);       # a consumer finished one
$r = post('/h', id => $id);
is $r->{status}, 202, 'after the stream drained by one: the retry is accepted';
is $redis->xlen($stream), 5, '... XLEN back at the cap';
ok $redis->cmd('EXISTS', seen_key('bp', $id)), '... now with its dedupe key';
is post('/h')->{status}, 503, 'and the next one is refused again';


# --- a stream filled by someone else --------------------------------------------------

$redis->cmd('XADD', stream_key('pre'), '*', 'v', '1', 'id', "pre$_") for 1 .. 3;
$r = post('/pre');
is $r->{status}, 503, 'a stream pre-filled to the cap: 503';
is $redis->xlen(stream_key('pre')), 3, '... still 3';
$redis->cmd('XTRIM', stream_key('pre'), 'MAXLEN', 2);
is post('/pre')->{status}, 202, 'one below the cap: 202';
is post('/pre')->{status}, 503, 'at the cap again: 503';


# --- exact under concurrency ---------------------------------------------------------------

my @reqs = map { standard_request(secret => $secret) } 1 .. 100;
my $res = parallel_requests($ngx, 100, sub {
    my $q = $reqs[ $_[0] ];
    return { method => 'POST', path => '/c50', body => $q->{body}, headers => $q->{headers} };
});
my %codes;
$codes{ $_->{status} }++ for @$res;
is_deeply \%codes, { 202 => 50, 503 => 50 }, '100 at once against cap 50: 50 x 202, 50 x 503'
    or diag explain \%codes;
is $redis->xlen(stream_key('c50')), 50, 'XLEN exactly 50';
my @seen = $redis->keys(seen_key('c50', '*'));
is scalar @seen, 50, 'exactly 50 dedupe keys (none for the refused)';
my %accepted = map { $reqs[$_]{id} => 1 } grep { $res->[$_]{status} == 202 } 0 .. 99;
is_deeply { map { $_->[1]{id} => 1 } @{ $redis->stream(stream_key('c50')) } }, \%accepted,
    'the stream holds exactly the accepted ids';


# --- the default cap is not tiny -------------------------------------------------------

$redis->pipeline(map { ['XADD', stream_key('def'), '*', 'v', '1'] } 1 .. 2000);
is $redis->xlen(stream_key('def')), 2000, 'pre-filled 2000 entries';
is post('/def')->{status}, 202, 'default cap (1000000): still accepting';

done_testing;
