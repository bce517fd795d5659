#!/usr/bin/perl

# Stores: two vhosts (own store, own secrets) in one nginx write two
# streams; the default store is $host; a store from a variable must match
# [A-Za-z0-9._-]{1,64} or the answer is 400 bad_store and no key is made.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my ($sa, $sb, $sc) = map { new_secret() } 1 .. 3;

my ($redis, $ngx) = edge_setup(
    servers => qq{
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name a.example;
        loyalty_store eu;
        loyalty_secret $sa;
        location = /hook { loyalty_webhook standard; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name b.example;
        loyalty_store us;
        loyalty_secret $sb;
        location = /hook { loyalty_webhook standard; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name *.shops.test;
        loyalty_secret $sc;
        location = /hook { loyalty_webhook standard; }
        location = /var  { loyalty_webhook standard; loyalty_store \$http_x_store; }
    }
});

my ($r, $req) = post_standard($ngx, '/hook', secret => $sa, host => 'a.example');
is $r->{status}, 202, 'vhost a: 202';
my ($r2, $req2) = post_standard($ngx, '/hook', secret => $sb, host => 'b.example');
is $r2->{status}, 202, 'vhost b: 202';

is $redis->xlen(stream_key('eu')), 1, 'loyalty:{eu}:in has one entry';
is $redis->xlen(stream_key('us')), 1, 'loyalty:{us}:in has one entry';
is $redis->stream(stream_key('eu'))->[0][1]{id}, $req->{id}, 'eu holds a\'s event';
is $redis->stream(stream_key('us'))->[0][1]{id}, $req2->{id}, 'us holds b\'s event';
is $redis->stream(stream_key('eu'))->[0][1]{store}, 'eu', 'store field eu';
is $redis->stream(stream_key('us'))->[0][1]{store}, 'us', 'store field us';

is((post_standard($ngx, '/hook', secret => $sa, host => 'b.example'))[0]{status}, 401,
   'a\'s secret at vhost b: 401');
is((post_standard($ngx, '/hook', secret => $sb, host => 'a.example'))[0]{status}, 401,
   'b\'s secret at vhost a: 401');

my $id = new_id();
is((post_standard($ngx, '/hook', secret => $sa, host => 'a.example', id => $id))[0]{status},
   202, 'one id in store eu');
is((post_standard($ngx, '/hook', secret => $sb, host => 'b.example', id => $id))[0]{status},
   202, 'the same id in store us: 202 (dedupe is per store)');
ok $redis->cmd('EXISTS', seen_key('eu', $id)) && $redis->cmd('EXISTS', seen_key('us', $id)),
    'a seen key in each store';

# default store: $host
($r, $req) = post_standard($ngx, '/hook', secret => $sc, host => 'berlin.shops.test');
is $r->{status}, 202, 'default store: 202';
is $redis->xlen(stream_key('berlin.shops.test')), 1, 'default store is $host';
($r) = post_standard($ngx, '/hook', secret => $sc, host => 'Paris.Shops.Test:8080');
is $r->{status}, 202, 'Host with capitals and a port';
is $redis->xlen(stream_key('paris.shops.test')), 1, '... store is $host (lower case, no port)';


# --- store from a variable ---------------------------------------------------------

my %keys_before = map { $_ => 1 } $redis->keys('*');

for my $good ('shop-1.eu_A', 'x' x 64, '7', 'A.B') {
    ($r) = post_standard($ngx, '/var', secret => $sc, host => 'v.shops.test',
                         headers => { 'X-Store' => $good });
    my $label = length $good > 20 ? '64 characters' : $good;
    is $r->{status}, 202, "store '$label': 202";
    is $redis->xlen(stream_key($good)), 1, "... in loyalty:{$label}:in";
}

my @bad = ('x' x 65, 'has space', '{eu}', 'eu}x', 'a:b', '../etc', 'a/b',
           "caf\xc3\xa9", 'semi;colon', 'a*', 'quote"d');
for my $bad (@bad) {
    ($r) = post_standard($ngx, '/var', secret => $sc, host => 'v.shops.test',
                         headers => { 'X-Store' => $bad });
    my $label = length $bad > 20 ? '65 characters' : $bad;
    is $r->{status}, 400, "store '$label': 400";
    is json_of($r) && json_of($r)->{error}, 'bad_store', '... bad_store';
}

($r) = post_standard($ngx, '/var', secret => $sc, host => 'v.shops.test');
is $r->{status}, 400, 'empty store (no header): 400';
is json_of($r) && json_of($r)->{error}, 'bad_store', '... bad_store';

my @new_keys = grep { !$keys_before{$_} } $redis->keys('*');
my @unexpected = grep { !/^loyalty:\{(?:shop-1\.eu_A|x{64}|7|A\.B)\}:(?:in|seen:.*)$/ } @new_keys;
is_deeply \@unexpected, [], 'no Redis key for any refused store';

done_testing;
