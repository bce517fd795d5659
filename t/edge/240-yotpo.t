#!/usr/bin/perl

# loyalty_webhook yotpo: the shared "Webhook Authentication" token in a
# header (X-Api-Key by default; apis.md §5 leaves the name UNCONFIRMED,
# so loyalty_signature_header overrides it), compared with every
# configured token; swell/* and yotpo/* topics; dedupe on eventid, else
# topic + perk/redemption/referral id, else the body's SHA-256.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Digest::SHA qw(sha256_hex);
use JSON::PP ();

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $t1 = 'yotpo-token-one-3b9f';
my $t2 = 'yotpo-token-two-c41d';

my ($redis, $ngx) = edge_setup(config => qq{
    location = /yotpo {
        loyalty_webhook yotpo; loyalty_secret $t1; loyalty_store yo;
    }
    location = /auth {
        loyalty_webhook yotpo; loyalty_secret $t1; loyalty_store au;
        loyalty_signature_header Authorization;
    }
    location = /rot {
        loyalty_webhook yotpo; loyalty_store rot;
        loyalty_secret $t1; loyalty_secret $t2;
    }
});

my $json = JSON::PP->new->utf8->canonical;

# the first and the last stream entry of a store, {} when there is none
sub first_entry { my $s = $redis->stream(stream_key($_[0])); @$s ? $s->[0][1] : {} }
sub last_entry  { my $s = $redis->stream(stream_key($_[0])); @$s ? $s->[-1][1] : {} }
my $perk_id = $$ * 1000;

sub points_body {
    my (%o) = @_;
    $perk_id++;
    return $json->encode({
        topic => $o{topic} // 'swell/points/earned', name => 'Swell Points Earned',
        email => 'john@example.com',
        customer => { email => 'John@Example.com', first_name => 'John',
                      last_name => 'Smith', points_balance => 200,
                      thirty_party_id => '4302977345',
                      referral_code => { code => '117yu4g' } },
        perk => { id => $o{perk} // $perk_id, customer_id => 139,
                  reward_points => 200, history_title => 'Create an account',
                  created_at => '2016-10-15T15:29:27.828Z' } });
}

sub post_yotpo {
    my ($path, %o) = @_;
    my $body = $o{body} // points_body();
    my %h = ('Content-Type' => 'application/json', %{ $o{headers} // {} });
    $h{ $o{header} // 'X-Api-Key' } = $o{token} unless $o{no_token};
    my $r = $ngx->request('POST', $path, body => $body, headers => \%h);
    return wantarray ? ($r, $body) : $r;
}


# --- points earned: id from topic and perk ----------------------------------------

my ($r, $body) = post_yotpo('/yotpo', token => $t1);
is $r->{status}, 202, 'swell/points/earned: 202' or diag $r->{body};
my $id = "swell/points/earned:perk:$perk_id";
is json_of($r)->{id}, $id, '... id = topic:perk:ID';

my $e = first_entry('yo');
is $e->{v}, '1', 'v';
is $e->{id}, $id, 'stored id';
is $e->{src}, 'yotpo', 'src';
is $e->{type}, 'points.earned', 'type';
is $e->{topic}, 'swell/points/earned', 'topic';
is $e->{occurred}, '2016-10-15T15:29:27.828Z', 'occurred = perk created_at';
is $e->{email}, 'john@example.com', 'email normalized';
is $e->{store_cid}, '4302977345', 'store_cid = thirty_party_id';
is $e->{ext_id}, '139', 'ext_id = Yotpo customer id (perk.customer_id)';
my $d = $json->decode($e->{data} // '{}');
is_deeply $d->{points}, { delta => 200, balance_after => 200,
                          reason => 'Create an account', source_id => "$perk_id" },
    'data: points';
is $d->{customer}{referral_code}, '117yu4g', 'data: referral_code';

# a retry is the same body: duplicate
($r) = post_yotpo('/yotpo', token => $t1, body => $body);
is $r->{status}, 200, 'same delivery again: 200';
is json_of($r)->{status}, 'duplicate', '... duplicate';

# the same perk in another body (e.g. a later balance): still the same event
(my $other = $body) =~ s/"points_balance":200/"points_balance":250/;
($r) = post_yotpo('/yotpo', token => $t1, body => $other);
is $r->{status}, 200, 'same topic and perk, other body: duplicate';
is $redis->xlen(stream_key('yo')), 1, '... one entry';


# --- eventid header ---------------------------------------------------------------

my $evid = new_id('yevt');
($r) = post_yotpo('/yotpo', token => $t1, headers => { eventid => $evid });
is $r->{status}, 202, 'eventid: 202' or diag $r->{body};
is last_entry('yo')->{id}, $evid, '... id = eventid';
($r) = post_yotpo('/yotpo', token => $t1, headers => { EventId => $evid });
is $r->{status}, 200, 'same eventid, other body: duplicate';


# --- other topics -----------------------------------------------------------------

($r, $body) = post_yotpo('/yotpo', token => $t1, body => $json->encode({
    topic => 'yotpo/referral/shared', email => 'john@example.com',
    customer => { email => 'john@example.com' }, referral_code => { code => '117yu4g' },
    nonce => $$ }));
is $r->{status}, 202, 'yotpo/referral/shared: 202' or diag $r->{body};
$e = last_entry('yo');
is $e->{type}, 'referral.created', '... referral.created';
is $e->{id}, sha256_hex($body), '... no object id: SHA-256 of the body';

($r) = post_yotpo('/yotpo', token => $t1, body => $json->encode({
    topic => 'swell/redemption/created', email => 'john@example.com',
    customer => { email => 'john@example.com', points_balance => 700 },
    redemption => { id => 551 + $$, reward_text => 'SWELL-5OFF' },
    redemption_option => { id => 31, name => '$5 off', amount => 500 } }));
is $r->{status}, 202, 'swell/redemption/created: 202' or diag $r->{body};
$e = last_entry('yo');
is $e->{type}, 'reward.issued', '... reward.issued';
is $e->{id}, 'swell/redemption/created:redemption:' . (551 + $$), '... id from the redemption';
$d = $json->decode($e->{data} // "{}");
is_deeply $d->{reward}, { id => '' . (551 + $$), code => 'SWELL-5OFF',
                          points_cost => 500, name => '$5 off' }, '... reward';

($r) = post_yotpo('/yotpo', token => $t1,
                  body => '{"topic":"swell/tier/earned","new_tier":{"id":3,"name":"Gold","rank":3}}');
is $r->{status}, 202, 'swell/tier/earned: 202';
is last_entry('yo')->{type}, 'tier.changed', '... tier.changed';

($r) = post_yotpo('/yotpo', token => $t1, body => '{"topic":"swell/points/earned"');
is $r->{status}, 400, 'malformed JSON with the right token: 400';


# --- the header directive and Bearer ---------------------------------------------

($r) = post_yotpo('/auth', token => "Bearer $t1", header => 'Authorization');
is $r->{status}, 202, 'Authorization: Bearer <token>: 202' or diag $r->{body};
($r) = post_yotpo('/auth', token => $t1, header => 'Authorization');
is $r->{status}, 202, 'Authorization: <token>: 202' or diag $r->{body};
($r) = post_yotpo('/auth', token => $t1);
is $r->{status}, 401, 'X-Api-Key where Authorization is configured: 401';
is $redis->xlen(stream_key('au')), 2, '... two entries';


# --- rotation ---------------------------------------------------------------------

for my $t ($t1, $t2) {
    ($r) = post_yotpo('/rot', token => $t);
    is $r->{status}, 202, 'rotation: 202 with ' . ($t eq $t1 ? 'first' : 'second')
        . ' token' or diag $r->{body};
}
is $redis->xlen(stream_key('rot')), 2, 'rotation: two entries';


# --- 401 ---------------------------------------------------------------------------

sub rejected {
    my ($name, %o) = @_;
    my $before = $redis->dbsize;
    $ngx->mark_log;
    my ($r) = post_yotpo('/yotpo', %o);
    subtest "401: $name" => sub {
        is $r->{status}, 401, 'status 401' or diag $r->{body};
        is json_of($r) && json_of($r)->{error}, 'bad_signature', 'bad_signature';
        is $redis->dbsize, $before, 'nothing written to Redis';
        unlike $ngx->error_log_since_mark, qr/\Q$t1\E|\Q$t2\E/, 'no token in the log';
    };
}

rejected('wrong token', token => 'yotpo-token-one-3b9e');
rejected('the other location\'s token', token => $t2);
rejected('a prefix of the token', token => substr($t1, 0, -1));
rejected('the token and more', token => "${t1}x");
rejected('missing header', no_token => 1);
rejected('empty header', token => '');
rejected('token in Authorization', token => $t1, header => 'Authorization');

done_testing;
