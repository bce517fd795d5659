#!/usr/bin/perl

# Bodies nginx does not hold in one memory buffer: larger than
# client_body_buffer_size (written to a temp file), client_body_in_file_only,
# chunked, trickled in pieces, Expect: 100-continue, HTTP/1.0.  The
# signature is over every byte and raw (keep_raw on) is the exact body.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use Time::HiRes qw(sleep);

use Loyalty::Test::HTTP qw(parse_response);
use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = new_secret();

my ($redis, $ngx) = edge_setup(config => qq{
    loyalty_secret $secret;
    loyalty_keep_raw on;
    client_body_buffer_size 1k;
    client_max_body_size 1m;
    location = /h    { loyalty_webhook standard; loyalty_store big; }
    location = /only { loyalty_webhook standard; loyalty_store only;
                       client_body_in_file_only clean; }
    location = /gen  { loyalty_webhook generic; loyalty_secret gkey; loyalty_store gen;
                       loyalty_secret_file %%SERVROOT%%/conf/none; }
}, files => { 'conf/none' => "unused-generic-key\n" });

sub body_of {
    my ($size, $tag) = @_;
    my $pad = join '', map { chr(97 + $_ % 26) } 0 .. $size;
    my $b = event_body(type => 'order.created',
                       data => { order => { id => $tag, note => $pad, end => "END-$tag" } });
    return $b;
}

sub last_entry { $redis->stream(stream_key($_[0]))->[-1][1] }

for my $kb (4, 64, 256) {
    my $body = body_of($kb * 1024, "kb$kb");
    $ngx->mark_log;
    my ($r, $req) = post_standard($ngx, '/h', secret => $secret, body => $body);
    is $r->{status}, 202, "$kb KB body (buffer 1k): 202" or diag $r->{body};
    ok $ngx->wait_for_log(qr/a client request body is buffered to a temporary file/),
        "... nginx wrote it to a temp file";
    my $e = last_entry('big');
    is $e->{id}, $req->{id}, '... stored';
    ok $e->{raw} eq $body, '... raw is the exact body (' . length($body) . ' bytes)';
    like $e->{data}, qr/END-kb$kb/, '... data parsed to the end';
}

my $body = body_of(100, 'small');
my ($r, $req) = post_standard($ngx, '/only', secret => $secret, body => $body);
is $r->{status}, 202, 'client_body_in_file_only, small body: 202' or diag $r->{body};
is last_entry('only')->{raw}, $body, '... raw exact';

$body = body_of(100 * 1024, 'chunked');
$req = standard_request(secret => $secret, body => $body);
$r = $ngx->request(POST => '/h', %$req, chunked => 1, chunk_size => 777);
is $r->{status}, 202, 'chunked 100 KB body: 202' or diag $r->{body};
ok last_entry('big')->{raw} eq $body, '... raw exact';

$body = body_of(20 * 1024, 'expect');
$req = standard_request(secret => $secret, body => $body,
                        headers => { Expect => '100-continue' });
$r = $ngx->request(POST => '/h', %$req);
is $r->{status}, 202, 'Expect: 100-continue: 202';

$req = standard_request(secret => $secret);
$r = $ngx->request(POST => '/h', %$req, http10 => 1);
is $r->{status}, 202, 'HTTP/1.0: 202';

# body trickled in pieces with pauses
$body = body_of(8 * 1024, 'trickle');
$req = standard_request(secret => $secret, body => $body);
my $raw = Loyalty::Test::HTTP::build_request(method => 'POST', path => '/h',
                                             body => $body, headers => $req->{headers});
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ngx->port) or die;
my $third = int(length($raw) / 3);
for my $piece (substr($raw, 0, $third), substr($raw, $third, $third), substr($raw, 2 * $third)) {
    syswrite $s, $piece;
    sleep 0.15;
}
my $buf = '';
while (sysread $s, $buf, 65536, length $buf) { }
close $s;       # nginx lingers on the connection until the client closes
($r) = parse_response(\$buf, 'POST', 1);
is $r && $r->{status}, 202, 'body trickled in three pieces: 202';
ok last_entry('big')->{raw} eq $body, '... raw exact';

# generic: the id is the hash of the whole file-buffered body
$body = body_of(50 * 1024, 'gen');
($r) = post_generic($ngx, '/gen', key => 'gkey', body => $body);
is $r->{status}, 202, 'generic, 50 KB body in a temp file: 202' or diag $r->{body};
is json_of($r)->{id}, sha256_hex($body), '... id = SHA-256 over every byte';
($r) = post_generic($ngx, '/gen', key => 'gkey', body => $body,
                    signature => hmac_body_hex('gkey', substr($body, 0, -1) . 'X'));
is $r->{status}, 401, 'generic: a signature over a body differing in the last byte: 401';

($r) = post_standard($ngx, '/h', secret => $secret, body => body_of(1100 * 1024, 'huge'));
is $r->{status}, 413, 'above client_max_body_size 1m: 413';

done_testing;
