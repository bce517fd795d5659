#!/usr/bin/perl

# loyalty_webhook smile: HMAC-SHA256 of the raw body, by default base64
# in X-Smile-Hmac-Sha256 (apis.md §4: UNCONFIRMED, so the header and the
# encoding are directives); ping answers 200 and queues nothing; the
# event id is the SHA-256 of the body or the loyalty_id_header value.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Digest::SHA qw(sha256_hex);
use JSON::PP ();

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $k1 = 'smile-app-secret-one';
my $k2 = 'smile-app-secret-two';

my ($redis, $ngx) = edge_setup(config => qq{
    location = /smile {
        loyalty_webhook smile; loyalty_secret $k1; loyalty_store sm;
    }
    location = /custom {
        loyalty_webhook smile; loyalty_secret $k1; loyalty_store cu;
        loyalty_signature_header X-Smile-Signature;
        loyalty_signature_encoding hex;
    }
    location = /rot {
        loyalty_webhook smile; loyalty_store rot;
        loyalty_secret $k1; loyalty_secret $k2;
    }
    location = /withid {
        loyalty_webhook smile; loyalty_secret $k1; loyalty_store wi;
        loyalty_id_header X-Smile-Webhook-Id;
    }
});

my $json = JSON::PP->new->utf8->canonical;

# the first and the last stream entry of a store, {} when there is none
sub first_entry { my $s = $redis->stream(stream_key($_[0])); @$s ? $s->[0][1] : {} }
sub last_entry  { my $s = $redis->stream(stream_key($_[0])); @$s ? $s->[-1][1] : {} }
my $seq = 0;

sub customer_body {
    my (%o) = @_;
    $seq++;
    return $json->encode({ account_id => 123, topic => 'customer/updated',
        data => { customer => {
            id => 304169228 + $seq, first_name => 'Ada', last_name => 'Lovelace',
            email => 'Ada.Lovelace@Example.com', state => 'member',
            date_of_birth => $o{dob} // '1990-12-10',
            points_balance => 1250 + $seq, referral_url => 'https://i.refs.cc/A',
            vip_status => { vip_tier_id => 48211,
                            vip_tier => { id => 48211, name => 'Gold' } },
            created_at => '2023-04-18T14:02:11.000Z',
            updated_at => sprintf('2024-11-24T09:58:%02d.000Z', $seq % 60) } } });
}

sub post_smile {
    my ($path, %o) = @_;
    my $body = $o{body} // customer_body();
    my $enc = $o{encoding} // 'base64';
    my $sig = $o{signature}
        // ($enc eq 'hex' ? hmac_body_hex($o{key}, $o{signed} // $body)
                          : hmac_body_b64($o{key}, $o{signed} // $body));
    my %h = ('Content-Type' => 'application/json', %{ $o{headers} // {} });
    $h{ $o{header} // 'X-Smile-Hmac-Sha256' } = $sig unless $o{no_signature};
    my $r = $ngx->request('POST', $path, body => $body, headers => \%h);
    return wantarray ? ($r, $body) : $r;
}


# --- defaults: X-Smile-Hmac-Sha256, base64, id = SHA-256 of the body ---------------

my ($r, $body) = post_smile('/smile', key => $k1, body => customer_body(dob => '1004-07-14'));
is $r->{status}, 202, 'customer/updated: 202' or diag $r->{body};
is json_of($r)->{id}, sha256_hex($body), '... id = SHA-256 of the body';

my $e = first_entry("sm");
is $e->{id}, sha256_hex($body), 'stored id';
is $e->{src}, 'smile', 'src';
is $e->{type}, 'customer.updated', 'type';
is $e->{topic}, 'customer/updated', 'topic';
is $e->{occurred}, '2024-11-24T09:58:01.000Z', 'occurred = customer updated_at';
is $e->{email}, 'ada.lovelace@example.com', 'email normalized';
is $e->{ext_id}, '304169229', 'ext_id = Smile customer id';
ok !defined $e->{store_cid}, 'no store_cid';
my $d = $json->decode($e->{data} // "{}");
is $d->{customer}{points_balance}, 1251, 'data: points_balance';
is_deeply $d->{customer}{tier}, { id => '48211', name => 'Gold' }, 'data: VIP tier';
is $d->{customer}{enrolled}, JSON::PP::true, 'data: state member = enrolled';
ok !exists $d->{customer}{birthday}, 'data: birth year 1004: no birthday';
is $d->{account_id}, '123', 'data: account_id';

($r) = post_smile('/smile', key => $k1, body => $body);
is $r->{status}, 200, 'same body again: 200';
is json_of($r)->{status}, 'duplicate', '... duplicate';
is $redis->xlen(stream_key('sm')), 1, '... one entry';


# --- ping -------------------------------------------------------------------------

my $before = $redis->dbsize;
($r) = post_smile('/smile', key => $k1,
                  body => '{"account_id":123,"topic":"ping","data":{}}');
is $r->{status}, 200, 'ping: 200' or diag $r->{body};
is json_of($r)->{status}, 'ignored', '... ignored';
is $redis->xlen(stream_key('sm')), 1, '... nothing queued';
is $redis->dbsize, $before, '... nothing written at all';

($r) = post_smile('/smile', key => 'wrong', body => '{"topic":"ping"}');
is $r->{status}, 401, 'unsigned ping: 401';


# --- header and encoding directives -----------------------------------------------

($r, $body) = post_smile('/custom', key => $k1, header => 'X-Smile-Signature',
                         encoding => 'hex');
is $r->{status}, 202, 'configured header, hex: 202' or diag $r->{body};
is $redis->xlen(stream_key('cu')), 1, '... stored';

($r) = post_smile('/custom', key => $k1, header => 'X-Smile-Signature');
is $r->{status}, 401, 'base64 where hex is configured: 401';
($r) = post_smile('/custom', key => $k1, encoding => 'hex');
is $r->{status}, 401, 'the default header where another is configured: 401';


# --- rotation and the id header ---------------------------------------------------

for my $k ($k1, $k2) {
    ($r) = post_smile('/rot', key => $k);
    is $r->{status}, 202, 'rotation: 202 with ' . ($k eq $k1 ? 'first' : 'second')
        . ' secret' or diag $r->{body};
}
is $redis->xlen(stream_key('rot')), 2, 'rotation: two entries';

my $id = new_id('smile');
($r) = post_smile('/withid', key => $k1, headers => { 'X-Smile-Webhook-Id' => $id });
is $r->{status}, 202, 'id header: 202' or diag $r->{body};
is first_entry('wi')->{id}, $id, '... id from the header';
($r) = post_smile('/withid', key => $k1, headers => { 'X-Smile-Webhook-Id' => $id });
is $r->{status}, 200, 'same id, other body: duplicate';
($r) = post_smile('/withid', key => $k1);
is $r->{status}, 400, 'id header configured but missing: 400';


# --- 401 ---------------------------------------------------------------------------

sub rejected {
    my ($name, %o) = @_;
    my $before = $redis->dbsize;
    my ($r) = post_smile('/smile', %o);
    subtest "401: $name" => sub {
        is $r->{status}, 401, 'status 401' or diag $r->{body};
        is json_of($r) && json_of($r)->{error}, 'bad_signature', 'bad_signature';
        is $redis->dbsize, $before, 'nothing written to Redis';
    };
}

$body = customer_body();
(my $tampered = $body) =~ s/"points_balance":\d+/"points_balance":999999/;
isnt $tampered, $body, 'tampered body differs';
rejected('tampered body', key => $k1, body => $tampered, signed => $body);
rejected('wrong secret', key => $k2);
rejected('missing header', key => $k1, no_signature => 1);
rejected('hex where base64 is the default', key => $k1, encoding => 'hex');
rejected('signature in X-Signature', key => $k1, header => 'X-Signature');

done_testing;
