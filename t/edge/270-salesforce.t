#!/usr/bin/perl

# loyalty_webhook salesforce: Outbound Messages (apis.md §9.1).  One
# stream entry per notification, all appended in one Redis round trip;
# the SOAP Ack only after Redis took them all (any refusal: no Ack,
# 503); OrganizationId checked against loyalty_salesforce_org (401);
# dedupe on the notification Id; unknown sObjects queued and counted.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use JSON::PP ();

use Loyalty::Test::Nginx;
use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $org18 = '00D5g000004ElLmEAK';
my $org15 = '00D5g000004ElLm';
my $other = '00D000000000001AAA';

my ($redis, $ngx) = edge_setup(config => qq{
    location = /sf     { loyalty_webhook salesforce;
                         loyalty_salesforce_org $org15 00D0000000000AB;
                         loyalty_default_country GB;
                         loyalty_store sf; }
    location = /sfcap  { loyalty_webhook salesforce;
                         loyalty_salesforce_org $org18;
                         loyalty_stream_cap 4; loyalty_store cap; }
    location = /sfraw  { loyalty_webhook salesforce;
                         loyalty_salesforce_org $org18;
                         loyalty_keep_raw on; loyalty_store raw; }
});

my $json = JSON::PP->new->utf8->canonical;
my $seq = 0;

sub notification {
    my (%o) = @_;
    my $id = $o{id} // sprintf('04l5g00000Ab%04dAAZ', ++$seq);
    my $type = $o{type} // 'Contact';
    my $fields = $o{fields} // {
        Id => sprintf('0035g00000Kx%04dAAV', $seq),
        Email => " Person$seq\@Example.COM ",
        FirstName => 'Ana',
        LastName => 'L&#243;pez &amp; Hijos',
        MobilePhone => '07700 900' . sprintf('%03d', $seq % 1000),
        LastModifiedDate => '2026-11-24T09:30:00.000+01:00',
    };
    my $x = join '', map { "<sf:$_>$fields->{$_}</sf:$_>" } sort keys %$fields;
    $x .= '<sf:HasOptedOutOfEmail xsi:nil="true"/>' if $o{nil};
    return ("<Notification><Id>$id</Id>"
            . qq{<sObject xsi:type="sf:$type" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">}
            . "$x</sObject></Notification>", $id);
}

sub message {
    my (%o) = @_;
    my $org = $o{org} // $org18;
    my $n = join '', @{ $o{notifications} };
    return qq{<?xml version="1.0" encoding="UTF-8"?>}
        . qq{<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" }
        . qq{xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>}
        . qq{<notifications xmlns="http://soap.sforce.com/2005/09/outbound">}
        . qq{<OrganizationId>$org</OrganizationId><ActionId>04k5g000000XyZ1AAK</ActionId>}
        . qq{<SessionId>00D5g!AQ4AQSECRETSESSION</SessionId>}
        . qq{<EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/60.0/$org15</EnterpriseUrl>}
        . qq{<PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/60.0/$org15</PartnerUrl>}
        . $n . qq{</notifications></soapenv:Body></soapenv:Envelope>};
}

sub post_sf {
    my ($path, $body) = @_;
    return $ngx->request('POST', $path, body => $body,
                         headers => { 'Content-Type' => 'text/xml; charset=utf-8',
                                      'SOAPAction' => '""' });
}

sub is_ack {
    my ($r, $name) = @_;
    is $r->{status}, 200, "$name: 200" or diag $r->{body};
    like $r->{headers}{'content-type'} // '', qr{^text/xml}, "$name: text/xml";
    like $r->{body}, qr{<notificationsResponse xmlns="http://soap\.sforce\.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>},
        "$name: SOAP Ack true";
}

sub no_ack {
    my ($r, $status, $name) = @_;
    is $r->{status}, $status, "$name: $status" or diag $r->{body};
    unlike $r->{body} // '', qr{<Ack>true</Ack>}, "$name: no Ack";
}


# --- three notifications: three entries, one Ack -----------------------------

my @n = map { [ notification() ] } 1 .. 3;
my $body = message(notifications => [ map { $_->[0] } @n ]);
my $r = post_sf('/sf', $body);
is_ack($r, '3 notifications');
ok is_hex32($r->{headers}{'x-correlation-id'}), 'X-Correlation-ID';

my $entries = $redis->stream(stream_key('sf'));
is scalar @$entries, 3, 'one stream entry per notification';
is_deeply [ map { $_->[1]{id} } @$entries ], [ map { $_->[1] } @n ],
    'ids are the notification Ids, in document order';

my $e = $entries->[1][1];
is $e->{src}, 'salesforce', 'src';
is $e->{store}, 'sf', 'store';
is $e->{type}, 'customer.updated', 'Contact -> customer.updated';
is $e->{topic}, 'Contact', 'topic: the sObject type';
is $e->{occurred}, '2026-11-24T08:30:00.000Z', 'occurred: LastModifiedDate in UTC';
is $e->{email}, 'person2@example.com', 'email trimmed and lower-cased';
is $e->{phone}, '+447700900002', 'phone to E.164 with loyalty_default_country';
is $e->{ext_id}, '0035g00000Kx0002AAV', 'ext_id: the record Id';
is $e->{corr}, $r->{headers}{'x-correlation-id'}, 'corr';
my $data = $json->decode($e->{data});
is $data->{customer}{last_name}, "L\x{f3}pez & Hijos", 'entities decoded in data';
is $data->{sobject}{type}, 'Contact', 'data.sobject.type';
is $data->{sobject}{fields}{Id}, '0035g00000Kx0002AAV', 'data.sobject.fields';
is $data->{message}{organization_id}, $org18, 'data.message.organization_id';
unlike $e->{data}, qr/SECRETSESSION/, 'the SessionId is never stored';
unlike join('', map { @{ $_->[1] }{ sort keys %{ $_->[1] } } } @$entries),
    qr/SECRETSESSION/, '... in no field of any entry';
ok !exists $e->{raw}, 'no raw without loyalty_keep_raw';

is_ack(post_sf('/sf', $body), 'the same message again');
is $redis->xlen(stream_key('sf')), 3, '... deduped on the notification Ids';

my ($n4, $id4) = notification();
is_ack(post_sf('/sf', message(notifications => [ $n[0][0], $n4 ])),
       'one old and one new notification');
is $redis->xlen(stream_key('sf')), 4, '... only the new one added';
$r = post_sf('/sf', message(notifications => [ $n[0][0], $n4 ]));
is $redis->xlen(stream_key('sf')), 4, '... and not again';


# --- organization allow-list -----------------------------------------------

my ($n5, $id5) = notification();
$r = post_sf('/sf', message(org => $other, notifications => [ $n5 ]));
no_ack($r, 401, 'organization not on the allow-list');
is $redis->xlen(stream_key('sf')), 4, '... nothing queued';
ok !$redis->cmd('EXISTS', seen_key('sf', $id5)), '... no dedupe key';
like $ngx->error_log, qr/organization is not allowed/, '... logged why';

$r = post_sf('/sf', message(org => '00D0000000000ABXYZ', notifications => [ $n5 ]));
is_ack($r, 'an 18-character id of a 15-character allow-list entry');

$r = post_sf('/sf', message(org => '00d0000000000ab', notifications => [ $n5 ]));
no_ack($r, 401, 'org ids are case-sensitive');


# --- bad messages ------------------------------------------------------------

my $before = $redis->xlen(stream_key('sf'));
no_ack(post_sf('/sf', '<not-soap/>'), 400, 'not an outbound message');
no_ack(post_sf('/sf', substr($body, 0, 200)), 400, 'truncated XML');
no_ack(post_sf('/sf', qq{<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>} . $body),
       400, 'a DOCTYPE (XXE)');
no_ack(post_sf('/sf', message(notifications => [])), 400, 'no notification');
is $redis->xlen(stream_key('sf')), $before, '... none of them queued anything';

my @many = map { (notification())[0] } 1 .. 101;
no_ack(post_sf('/sf', message(notifications => \@many)), 400, '101 notifications');
is $redis->xlen(stream_key('sf')), $before, '... nothing queued';

pop @many;
is_ack(post_sf('/sf', message(notifications => \@many)), '100 notifications');
is $redis->xlen(stream_key('sf')), $before + 100, '... 100 entries';


# --- unknown sObjects are queued and counted --------------------------------

my ($opp, $opp_id) = notification(type => 'Opportunity',
                                  fields => { Id => '0065g00000AAAAAAAA', Amount => '12.50' });
is_ack(post_sf('/sf', message(notifications => [ $opp ])), 'an Opportunity');
$entries = $redis->stream(stream_key('sf'));
is $entries->[-1][1]{type}, 'unknown', '... type unknown';
is $entries->[-1][1]{topic}, 'Opportunity', '... topic kept';
is $redis->cmd('HGET', 'loyalty:{sf}:stats', 'unknown:salesforce'), 1,
    '... counted in loyalty:{sf}:stats';
is_ack(post_sf('/sf', message(notifications => [ $opp ])), 'the Opportunity again');
is $redis->cmd('HGET', 'loyalty:{sf}:stats', 'unknown:salesforce'), 1,
    '... a duplicate is not counted again';


# --- backpressure: no Ack until every notification is kept ------------------

my @c = map { [ notification() ] } 1 .. 6;
is_ack(post_sf('/sfcap', message(notifications => [ map { $_->[0] } @c[0 .. 2] ])),
       'three into a stream capped at 4');
$r = post_sf('/sfcap', message(notifications => [ map { $_->[0] } @c[3 .. 5] ]));
no_ack($r, 503, 'three more: only one fits');
like $r->{headers}{'retry-after'} // '', qr/^\d+$/, '... Retry-After';
is $redis->xlen(stream_key('cap')), 4, '... the one that fit was kept';

my @ids = map { $_->[0] } @{ $redis->stream(stream_key('cap')) };
$redis->cmd('XDEL', stream_key('cap'), @ids[0 .. 2]);     # consumers finished
is_ack(post_sf('/sfcap', message(notifications => [ map { $_->[0] } @c[3 .. 5] ])),
       'Salesforce retries the message');
is_deeply [ sort map { $_->[1]{id} } @{ $redis->stream(stream_key('cap')) } ],
    [ sort map { $_->[1] } @c[3 .. 5] ],
    '... every notification exactly once';


# --- keep_raw: the body once per delivery ----------------------------------

my @r = map { [ notification() ] } 1 .. 2;
$body = message(notifications => [ map { $_->[0] } @r ]);
is_ack(post_sf('/sfraw', $body), 'loyalty_keep_raw on');
$entries = $redis->stream(stream_key('raw'));
is $entries->[0][1]{raw}, $body, '... the first event keeps the raw body';
ok !exists $entries->[1][1]{raw}, '... the others do not repeat it';


# --- Redis down: no Ack -------------------------------------------------------

$redis->stop;
no_ack(post_sf('/sf', message(notifications => [ (notification())[0] ])), 503,
       'Redis down');

done_testing();
