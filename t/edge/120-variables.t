#!/usr/bin/perl

# $loyalty_event_id, $loyalty_correlation_id and $loyalty_result in a
# log_format: one access-log line per answer, with the result name, the
# event id and the correlation id the client saw.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Util qw(wait_until);
use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = new_secret();

my ($redis, $ngx) = edge_setup(
    log_format => 'R=$loyalty_result E=$loyalty_event_id C=$loyalty_correlation_id '
                . 'S=$status U=$request_uri',
    config => qq{
        loyalty_secret $secret;
        location = /h      { loyalty_webhook standard; loyalty_store vars; }
        location = /cap    { loyalty_webhook standard; loyalty_store capped;
                             loyalty_stream_cap 1; }
        location = /var    { loyalty_webhook standard; loyalty_store \$http_x_store; }
        location = /plain  { return 204; }
    });

my @expect;     # [uri tag, result, event id, corr, status]

sub send_and_expect {
    my ($tag, $path, $result, $status, %o) = @_;
    my ($r, $req) = post_standard($ngx, "$path?t=$tag", secret => $secret, %o);
    is $r->{status}, $status, "$tag: $status" or diag $r->{body};
    push @expect, [ $tag, $result, $req->{id}, $r->{headers}{'x-correlation-id'}, $status ];
    return ($r, $req);
}

my (undef, $first) = send_and_expect('accepted', '/h', 'accepted', 202);
send_and_expect('duplicate', '/h', 'duplicate', 200,
                id => $first->{id}, body => $first->{body});
send_and_expect('badsig', '/h', 'bad_signature', 401, sign_with => [new_secret()]);
send_and_expect('badjson', '/h', 'bad_json', 400, body => '{"type":');
# signed correctly, but the id cannot become a Redis key
send_and_expect('badreq', '/h', 'bad_request', 400, id => 'msg with space');
send_and_expect('badstore', '/var', 'bad_store', 400, headers => { 'X-Store' => 'a b' });
send_and_expect('cap1', '/cap', 'accepted', 202);
send_and_expect('backpressure', '/cap', 'backpressure', 503);
send_and_expect('corr', '/h', 'accepted', 202, headers => { 'X-Request-ID' => 'my-corr-1' });

$redis->kill;
send_and_expect('unavailable', '/h', 'unavailable', 503);
$redis->start;

is $ngx->request(GET => '/plain?t=plain')->{status}, 204, 'plain location';

my @lines;
wait_until(sub {
    @lines = split /\n/, $ngx->access_log;
    return @lines >= @expect + 1;
}, timeout => 3);

for my $x (@expect) {
    my ($tag, $result, $id, $corr, $status) = @$x;
    my ($line) = grep { /U=\S*[?&]t=\Q$tag\E(?:\s|$)/ } @lines;
    subtest "access log: $tag" => sub {
        ok defined $line, 'one line' or return;
        like $line, qr/R=\Q$result\E /, "\$loyalty_result = $result";
        like $line, qr/E=\Q$id\E /, '$loyalty_event_id = the event id'
            unless $tag =~ /^(?:badsig|badstore|badreq)$/;   # id only once verified and valid
        like $line, qr/C=\Q$corr\E /, '$loyalty_correlation_id = X-Correlation-ID';
        like $line, qr/S=$status /, "status $status";
    };
}

my ($plain) = grep { /t=plain/ } @lines;
like $plain // '', qr/^R=- E=- C=- /, 'variables are empty outside a webhook location';
like((grep { /t=corr/ } @lines)[0] // '', qr/C=my-corr-1 /, 'a kept X-Request-ID is the logged correlation id');

done_testing;
