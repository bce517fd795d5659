package Loyalty::Test::Webhook;

# Signing helpers for the edge tests (what a sender does).
#
#   standard_sign($whsec_secret, $id, $ts, $body)  -> "v1,<base64>"
#   standard_headers($secret, $id, $ts, $body)     -> { webhook-id, webhook-timestamp, webhook-signature }
#   hmac_body_b64($key, $body, $alg)               -> base64 HMAC of the raw body (alg sha256|sha1)
#   hmac_body_hex($key, $body, $alg)               -> lower-case hex HMAC of the raw body
#   new_secret()                                   -> "whsec_" + base64 of 32 random bytes
#   new_id($prefix)                                -> a unique event id ("msg_...")
#   event_body(%fields)                            -> a JSON payload {"type","timestamp","data","nonce"}
#   standard_request(secret => S, [id, ts, body, type, sign_with => [S, ...]])
#       -> { body, headers, id, ts }: spread into $nginx->request('POST', $path, %$req)

use strict;
use warnings;

use Carp qw(croak);
use Digest::SHA qw(hmac_sha256 hmac_sha1 hmac_sha256_hex hmac_sha1_hex sha256_hex);
use JSON::PP ();
use MIME::Base64 qw(encode_base64 decode_base64);
use POSIX qw(strftime);
use Time::HiRes qw(time);

use Exporter 'import';
our @EXPORT_OK = qw(standard_sign standard_headers standard_request
                    hmac_body_b64 hmac_body_hex new_secret new_id event_body
                    secret_key sha256_hex);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

my $seq = 0;
my $JSON = JSON::PP->new->canonical->utf8;


# Standard Webhooks: strip an optional "whsec_", base64-decode (padding
# optional).

sub secret_key {
    my ($secret) = @_;
    (my $b64 = $secret) =~ s/^whsec_//;
    $b64 .= '=' x ((4 - length($b64) % 4) % 4);
    return decode_base64($b64);
}


sub standard_sign {
    my ($secret, $id, $ts, $body) = @_;
    my $mac = hmac_sha256("$id.$ts.$body", secret_key($secret));
    return 'v1,' . encode_base64($mac, '');
}


sub standard_headers {
    my ($secret, $id, $ts, $body) = @_;
    return {
        'webhook-id'        => $id,
        'webhook-timestamp' => $ts,
        'webhook-signature' => standard_sign($secret, $id, $ts, $body),
    };
}


sub _hmac {
    my ($key, $body, $alg) = @_;
    $alg //= 'sha256';
    return hmac_sha256($body, $key) if $alg eq 'sha256';
    return hmac_sha1($body, $key) if $alg eq 'sha1';
    croak "unknown algorithm $alg";
}


sub hmac_body_b64 {
    my ($key, $body, $alg) = @_;
    return encode_base64(_hmac($key, $body, $alg), '');
}


sub hmac_body_hex {
    my ($key, $body, $alg) = @_;
    return unpack 'H*', _hmac($key, $body, $alg);
}


sub new_secret {
    my $bytes = join '', map { chr int rand 256 } 1 .. 32;
    return 'whsec_' . encode_base64($bytes, '');
}


sub new_id {
    my ($prefix) = @_;
    $seq++;
    return sprintf '%s_%d_%d_%06d_%04x', $prefix // 'msg', $$, int(time),
        $seq, int rand 65536;
}


sub event_body {
    my (%f) = @_;
    # a nonce keeps bodies distinct (generic senders' ids are body hashes);
    # nonce => undef leaves it out
    $f{nonce} = new_id('n') unless exists $f{nonce};
    delete $f{nonce} unless defined $f{nonce};
    my $type = delete $f{type} // 'customer.updated';
    my $data = delete $f{data} // {
        customer => { email => 'ada@example.com', first_name => 'Ada',
                      id => 42 } };
    return $JSON->encode({
        type      => $type,
        timestamp => delete $f{timestamp}
                     // strftime('%Y-%m-%dT%H:%M:%SZ', gmtime),
        data      => $data,
        %f,
    });
}


# A ready-made signed Standard Webhooks request.  sign_with => [secrets]
# puts one v1 signature per secret into webhook-signature (rotation);
# signature => '...' sends that header verbatim instead.

sub standard_request {
    my (%o) = @_;
    my $secret = $o{secret} // croak 'standard_request: secret required';
    my $id = $o{id} // new_id();
    my $ts = $o{ts} // int time;
    my $body = $o{body} // event_body(type => $o{type} // 'customer.updated');

    my $sig = $o{signature}
        // join ' ', map { standard_sign($_, $id, $ts, $body) }
                     @{ $o{sign_with} // [$secret] };

    my %h = ('webhook-id' => $id, 'webhook-timestamp' => $ts,
             'webhook-signature' => $sig, 'Content-Type' => 'application/json',
             %{ $o{headers} // {} });

    delete $h{$_} for @{ $o{omit} // [] };

    return { body => $body, headers => \%h, id => $id, ts => $ts,
             (defined $o{host} ? (host => $o{host}) : ()) };
}


1;
