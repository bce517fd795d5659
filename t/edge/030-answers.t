#!/usr/bin/perl

# The handler's answers other than signature failures: 405, 413, 400
# bad_json (and valid JSON that is not an object), hostile bodies that
# must not crash anything, X-Correlation-ID on every answer, and the
# X-Request-ID rules.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = new_secret();

my ($redis, $ngx) = edge_setup(config => qq{
    loyalty_store ans;
    loyalty_secret $secret;
    location = /h     { loyalty_webhook standard; }
    location = /small { loyalty_webhook standard; client_max_body_size 1k; }
    location = /store { loyalty_webhook standard; loyalty_store \$http_x_store; }
});

my $stream = stream_key('ans');


# --- 405 -------------------------------------------------------------------------

for my $m (qw(GET PUT DELETE PATCH HEAD)) {
    my $r = $ngx->request($m => '/h', ($m =~ /PUT|PATCH/ ? (body => '{}') : ()));
    is $r->{status}, 405, "$m: 405";
    ok is_hex32($r->{headers}{'x-correlation-id'}), "$m: X-Correlation-ID";
}
is $redis->dbsize, 0, 'nothing written by the 405s';


# --- 413 -------------------------------------------------------------------------

my $big = event_body(data => { pad => 'x' x 2000 });
my ($r, $req) = post_standard($ngx, '/small', secret => $secret, body => $big);
is $r->{status}, 413, 'body above client_max_body_size: 413';
is $redis->dbsize, 0, '... nothing written';

my $fits = event_body(data => { pad => 'y' x 100 });
($r) = post_standard($ngx, '/small', secret => $secret, body => $fits);
is $r->{status}, 202, 'body below client_max_body_size: 202';
$redis->flushall;


# --- 400 bad_json ---------------------------------------------------------------------

my %bad = (
    'not JSON'           => 'hello, world',
    'truncated object'   => '{"type":"customer.updated","data":{',
    'trailing garbage'   => '{"type":"customer.updated"} xyz',
    'empty body'         => '',
    'array'              => '[{"type":"customer.updated"}]',
    'string'             => '"customer.updated"',
    'number'             => '42',
    'null'               => 'null',
);

for my $name (sort keys %bad) {
    ($r, $req) = post_standard($ngx, '/h', secret => $secret, body => $bad{$name});
    subtest "400: $name" => sub {
        is $r->{status}, 400, 'status 400' or diag $r->{body};
        is json_of($r) && json_of($r)->{error}, 'bad_json', 'error bad_json';
        ok is_hex32($r->{headers}{'x-correlation-id'}), 'X-Correlation-ID';
        is $redis->dbsize, 0, 'nothing written (no stream, no dedupe key)';
    };
}


# --- hostile but signed bodies: an answer, never a crash ----------------------------

my %hostile = (
    'nesting 20000 deep'  => '{"type":"customer.updated","data":'
                             . ('[' x 20000) . (']' x 20000) . '}',
    'invalid UTF-8'       => qq({"type":"customer.updated","data":{"n":"\xff\xfe\xc3"}}),
    'NUL byte'            => qq({"type":"customer.updated","data":{"n":"a\0b"}}),
    'huge number'         => '{"type":"customer.updated","data":{"n":' . ('9' x 400) . '}}',
    'duplicate keys'      => '{"type":"customer.updated","type":"order.paid","data":{}}',
    'type not a string'   => '{"type":{"a":1},"data":{}}',
    'data not an object'  => '{"type":"customer.updated","data":"x"}',
    'no type'             => '{"data":{"a":1}}',
);

for my $name (sort keys %hostile) {
    ($r) = post_standard($ngx, '/h', secret => $secret, body => $hostile{$name});
    ok $r->{status} == 202 || $r->{status} == 400,
        "hostile body ($name): 202 or 400" or diag "$r->{status} $r->{body}";
}
my %odd_ids = ('4000-character id' => 'i' x 4000, 'id with spaces' => 'a b c',
               'id with braces' => '}x{y}', 'id with a colon' => 'a:b:c');
for my $name (sort keys %odd_ids) {
    ($r) = post_standard($ngx, '/h', secret => $secret, id => $odd_ids{$name});
    ok $r->{status} == 202 || $r->{status} == 400,
        "odd webhook-id ($name): 202 or 400" or diag "$r->{status} $r->{body}";
}
($r) = post_standard($ngx, '/h', secret => $secret);
is $r->{status}, 202, 'still serving after the hostile bodies and ids';


# --- bad_store via a variable ---------------------------------------------------------

($r) = post_standard($ngx, '/store', secret => $secret,
                     headers => { 'X-Store' => 'no spaces allowed' });
is $r->{status}, 400, 'store with a space: 400';
is json_of($r) && json_of($r)->{error}, 'bad_store', '... bad_store';
ok is_hex32($r->{headers}{'x-correlation-id'}), '... X-Correlation-ID';


# --- X-Correlation-ID on 200 / 202 / 401 ------------------------------------------------

$redis->flushall;
my $id = new_id();
($r) = post_standard($ngx, '/h', secret => $secret, id => $id);
is $r->{status}, 202, 'first delivery accepted';
my $corr1 = $r->{headers}{'x-correlation-id'};
ok is_hex32($corr1), '202: generated correlation id';
($r) = post_standard($ngx, '/h', secret => $secret, id => $id);
is $r->{status}, 200, '200 duplicate';
ok is_hex32($r->{headers}{'x-correlation-id'}), '200: X-Correlation-ID';
isnt $r->{headers}{'x-correlation-id'}, $corr1, '... a new one per request';
is json_of($r)->{status}, 'duplicate', '200 body status duplicate';


# --- X-Request-ID ------------------------------------------------------------------------

sub with_request_id {
    my ($rid) = @_;
    my ($r, $req) = post_standard($ngx, '/h', secret => $secret,
                                  headers => { 'X-Request-ID' => $rid });
    my $e = (grep { $_->[1]{id} eq $req->{id} } @{ $redis->stream($stream) })[0];
    return ($r, $e ? $e->[1] : {});
}

for my $valid ('3b241101-e2bb-4255-8caf-4136c566a962', 'req_42.A-b',
               'a' x 128)
{
    my ($r, $e) = with_request_id($valid);
    my $label = length $valid > 40 ? '128 characters' : $valid;
    is $r->{status}, 202, "X-Request-ID $label: 202";
    is $r->{headers}{'x-correlation-id'}, $valid, "... echoed in X-Correlation-ID";
    is json_of($r)->{corr}, $valid, '... in the 202 body';
    is $e->{corr}, $valid, '... stored as corr';
}

for my $invalid ('has spaces in it', 'b' x 129, '') {
    my ($r, $e) = with_request_id($invalid);
    my $label = length $invalid > 40 ? '129 characters'
              : length $invalid ? "'$invalid'" : 'empty';
    is $r->{status}, 202, "invalid X-Request-ID ($label): still 202";
    ok is_hex32($r->{headers}{'x-correlation-id'}),
        '... replaced by $request_id (32 hex)' or diag $r->{headers}{'x-correlation-id'};
    is $e->{corr}, $r->{headers}{'x-correlation-id'}, '... and stored';
}

# the rejection log line carries the correlation id
$ngx->mark_log;
($r) = post_standard($ngx, '/h', secret => new_secret(),
                     headers => { 'X-Request-ID' => 'corr-in-the-log-1' });
is $r->{status}, 401, '401 with X-Request-ID';
is $r->{headers}{'x-correlation-id'}, 'corr-in-the-log-1', '... echoed on a 401';
ok $ngx->wait_for_log(qr/loyalty.*corr-in-the-log-1/),
    '... and written in the error_log line';

done_testing;
