#!/usr/bin/perl

# Dedupe: loyalty:{STORE}:seen:<id> with the window as TTL; a second
# delivery inside the window is 200 duplicate and adds nothing; after
# the window it is a new delivery.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Time::HiRes qw(sleep time);

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = new_secret();

my ($redis, $ngx) = edge_setup(config => qq{
    loyalty_secret $secret;
    loyalty_store dd;
    location = /d    { loyalty_webhook standard; }
    location = /d2   { loyalty_webhook standard; }
    location = /w10m { loyalty_webhook standard; loyalty_dedupe_window 10m; loyalty_store w10m; }
    location = /w2s  { loyalty_webhook standard; loyalty_dedupe_window 2s;  loyalty_store w2s; }
});

my $stream = stream_key('dd');

my $id = new_id();
my $body = event_body(type => 'customer.updated', data => { n => 'first' });

my ($r) = post_standard($ngx, '/d', secret => $secret, id => $id, body => $body);
is $r->{status}, 202, 'first delivery: 202';

my $ttl = $redis->cmd('TTL', seen_key('dd', $id));
ok $ttl > 96 * 3600 - 60 && $ttl <= 96 * 3600, 'seen key TTL ~ 96h' or diag $ttl;

($r) = post_standard($ngx, '/d', secret => $secret, id => $id, body => $body);
is $r->{status}, 200, 'same delivery again: 200';
is json_of($r) && json_of($r)->{status}, 'duplicate', '... status duplicate';
ok is_hex32($r->{headers}{'x-correlation-id'}), '... X-Correlation-ID';
is $redis->xlen($stream), 1, '... still one entry';

($r) = post_standard($ngx, '/d', secret => $secret, id => $id, body => $body,
                     ts => int(time) - 100);
is $r->{status}, 200, 'a retry with a new timestamp and signature: duplicate';

($r) = post_standard($ngx, '/d', secret => $secret, id => $id,
                     body => event_body(data => { n => 'second' }));
is $r->{status}, 200, 'same id, different body: duplicate';
is $redis->xlen($stream), 1, '... one entry';
like $redis->stream($stream)->[0][1]{data}, qr/first/, '... the first body kept';

($r) = post_standard($ngx, '/d', secret => $secret, id => $id, body => $body,
                     sign_with => [new_secret()]);
is $r->{status}, 401, 'same id with a bad signature: 401, not duplicate';

($r) = post_standard($ngx, '/d2', secret => $secret, id => $id, body => $body);
is $r->{status}, 200, 'another location of the same store: duplicate (per store)';

my @st = map { (post_standard($ngx, '/d', secret => $secret, id => $id,
                              body => $body))[0]{status} } 1 .. 10;
is_deeply \@st, [(200) x 10], 'ten more deliveries: all duplicates';
is $redis->xlen($stream), 1, 'one entry after twelve deliveries';

my $id2 = new_id();
($r) = post_standard($ngx, '/d', secret => $secret, id => $id2, body => $body);
is $r->{status}, 202, 'same body, new id: 202';
is $redis->xlen($stream), 2, '... two entries';


# --- window directive ------------------------------------------------------------

($r) = post_standard($ngx, '/w10m', secret => $secret, id => $id);
is $r->{status}, 202, 'same id in another store: 202';
$ttl = $redis->cmd('TTL', seen_key('w10m', $id));
ok $ttl > 590 && $ttl <= 600, 'loyalty_dedupe_window 10m: TTL ~ 600' or diag $ttl;

my $id3 = new_id();
($r) = post_standard($ngx, '/w2s', secret => $secret, id => $id3);
is $r->{status}, 202, 'window 2s: first';
($r) = post_standard($ngx, '/w2s', secret => $secret, id => $id3);
is $r->{status}, 200, 'window 2s: duplicate at once';
ok $redis->cmd('PTTL', seen_key('w2s', $id3)) <= 2000, 'TTL <= 2 s';
sleep 2.3;
ok !$redis->cmd('EXISTS', seen_key('w2s', $id3)), 'seen key expired';
($r) = post_standard($ngx, '/w2s', secret => $secret, id => $id3);
is $r->{status}, 202, 'after the window: accepted again';
is $redis->xlen(stream_key('w2s')), 2, '... two entries';

done_testing;
