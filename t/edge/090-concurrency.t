#!/usr/bin/perl

# Concurrency: requests really in flight together (released at once)
# land exactly once and each gets its own answer; the same id sent twice
# at the same moment is stored once; 1000 at once (many replies arrive
# from Redis together); pipelined and keep-alive requests; a mixed burst.

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
    servers => qq{
    server {
        listen 127.0.0.1:%%PORT%% backlog=4096;
        loyalty_secret $secret;
        location = /h { loyalty_webhook standard; loyalty_store \$arg_s; }
    }
});

# requests for $n new events into store $store (ids kept for the ledger)
sub batch {
    my ($store, $n, %o) = @_;
    my @req = map { standard_request(secret => $secret, %o) } 1 .. $n;
    my $gen = sub {
        my $q = $req[ $_[0] ];
        return { method => 'POST', path => "/h?s=$store", body => $q->{body},
                 headers => $q->{headers} };
    };
    return (\@req, $gen);
}

sub ledger {
    my ($store, $reqs, $res, $label) = @_;
    my $n = @$reqs;
    my %status;
    $status{ $_->{status} }++ for @$res;
    is_deeply \%status, { 202 => $n }, "$label: $n x 202"
        or diag explain { map { $_ => $status{$_} } keys %status },
           (grep { $_->{status} != 202 } @$res)[0];
    my @mismatch = grep { (json_of($res->[$_]) // {})->{id} ne $reqs->[$_]{id} } 0 .. $n - 1;
    is scalar @mismatch, 0, "$label: every answer carries its own request's id";
    my $entries = $redis->stream(stream_key($store));
    is scalar @$entries, $n, "$label: XLEN = $n";
    my %ids = map { $_->[1]{id} => 1 } @$entries;
    is scalar keys %ids, $n, "$label: $n distinct ids stored";
    is_deeply [sort keys %ids], [sort map { $_->{id} } @$reqs], "$label: exactly the ids sent";
}


# --- 200 at once -------------------------------------------------------------------

my ($reqs, $gen) = batch('c200', 200);
my $res = parallel_requests($ngx, 200, $gen);
ledger('c200', $reqs, $res, '200 concurrent');


# --- each id twice, at the same moment ----------------------------------------------

my @twice = map { standard_request(secret => $secret) } 1 .. 100;
$res = parallel_requests($ngx, 200, sub {
    my $q = $twice[ int($_[0] / 2) ];           # 0,0,1,1,2,2,...
    # the second copy is signed afresh (a sender retry), same id
    my $h = $_[0] % 2
        ? standard_headers($secret, $q->{id}, $q->{ts}, $q->{body})
        : $q->{headers};
    return { method => 'POST', path => '/h?s=twice', body => $q->{body}, headers => $h };
});
my (%per_id, %codes);
for my $i (0 .. 199) {
    my $r = $res->[$i];
    $codes{ $r->{status} }++;
    push @{ $per_id{ $twice[ int($i / 2) ]{id} } }, $r->{status};
}
is_deeply \%codes, { 202 => 100, 200 => 100 }, 'each id twice: 100 x 202, 100 x 200'
    or diag explain \%codes;
my @wrong = grep { join(',', sort @{ $per_id{$_} }) ne '200,202' } keys %per_id;
is scalar @wrong, 0, 'every id: exactly one 202 and one duplicate';
is $redis->xlen(stream_key('twice')), 100, 'XLEN = 100';
my %ids = map { $_->[1]{id} => 1 } @{ $redis->stream(stream_key('twice')) };
is scalar keys %ids, 100, 'one entry per id';


# --- 1000 at once -------------------------------------------------------------------

($reqs, $gen) = batch('c1000', 1000);
$res = parallel_requests($ngx, 1000, $gen, timeout => 60);
ledger('c1000', $reqs, $res, '1000 concurrent');


# --- pipelined on keep-alive ----------------------------------------------------------

($reqs, $gen) = batch('pipe', 200);
$res = $ngx->run_requests(n => 200, concurrency => 4, pipeline => 1, gen => $gen);
ledger('pipe', $reqs, $res, '200 pipelined over 4 connections');

($reqs, $gen) = batch('ka', 1000);
$res = $ngx->run_requests(n => 1000, concurrency => 10, gen => $gen);
ledger('ka', $reqs, $res, '1000 keep-alive over 10 connections');


# --- mixed burst: each request gets its own answer --------------------------------------

my $dup = standard_request(secret => $secret);
is $ngx->request(POST => '/h?s=mix', %$dup)->{status}, 202, 'seed the duplicate';

my @kinds = map { (qw(good badsig dup badjson badstore))[ $_ % 5 ] } 0 .. 249;
my %expect = (good => 202, badsig => 401, dup => 200, badjson => 400, badstore => 400);
my @mix = map {
    my $k = $_;
    $k eq 'good'     ? standard_request(secret => $secret)
  : $k eq 'badsig'   ? standard_request(secret => $secret, sign_with => [new_secret()])
  : $k eq 'dup'      ? standard_request(secret => $secret, id => $dup->{id}, body => $dup->{body})
  : $k eq 'badjson'  ? standard_request(secret => $secret, body => '{"type":')
  :                    standard_request(secret => $secret)
} @kinds;
$res = parallel_requests($ngx, 250, sub {
    my $i = $_[0];
    my $store = $kinds[$i] eq 'badstore' ? 'bad%20store' : 'mix';
    return { method => 'POST', path => "/h?s=$store", body => $mix[$i]{body},
             headers => $mix[$i]{headers} };
});
my @off = grep { $res->[$_]{status} != $expect{ $kinds[$_] } } 0 .. 249;
is scalar @off, 0, 'mixed burst of 250: every request got the answer for its kind'
    or diag join "\n", map { "$kinds[$_]: $res->[$_]{status}" } @off[0 .. ($#off < 9 ? $#off : 9)];
is $redis->xlen(stream_key('mix')), 51, 'mixed burst: 50 good + the seed stored';

done_testing;
