package Loyalty::Test::Edge;

# Conveniences shared by t/edge/*.t on top of Nginx.pm, Redis.pm and
# Webhook.pm.  Everything here is plain functions.
#
#   stream_key($store)                 -> "loyalty:{STORE}:in"
#   seen_key($store, $id)              -> "loyalty:{STORE}:seen:ID"
#   json_of($resp)                     -> decoded JSON body or undef
#   post_standard($ngx, $path, %o)     -> ($resp, $req): signs with
#                                         standard_request(%o) and posts
#   post_generic($ngx, $path, %o)      -> ($resp, $req): body, key, alg,
#                                         encoding, header, id_header, id
#   log_lines($text, $re)              -> lines of $text matching $re
#   edge_setup(%o)                     -> ($redis, $ngx): one Redis and one
#                                         nginx with `loyalty_redis %%REDIS%%`
#                                         prepended to http_config
#   is_hex32($s)                       -> true for nginx $request_id shape

use strict;
use warnings;

use JSON::PP ();
use Test::More ();

use Loyalty::Test::Nginx;
use Loyalty::Test::Redis qw(is_error);
use Loyalty::Test::Webhook qw(:all);

use Exporter 'import';
our @EXPORT = qw(stream_key seen_key json_of post_standard post_generic
                 log_lines edge_setup is_hex32 is_error);

my $JSON = JSON::PP->new->utf8->allow_nonref;


sub stream_key { "loyalty:{$_[0]}:in" }
sub seen_key   { "loyalty:{$_[0]}:seen:$_[1]" }


sub json_of {
    my ($resp) = @_;
    my $body = ref $resp ? $resp->{body} : $resp;
    return undef unless defined $body && length $body;
    my $v = eval { $JSON->decode($body) };
    return $v;
}


sub post_standard {
    my ($ngx, $path, %o) = @_;
    my $host = delete $o{host};
    my $req = standard_request(%o);
    my $resp = $ngx->request('POST', $path, body => $req->{body},
                             headers => $req->{headers},
                             (defined $host ? (host => $host) : ()));
    return wantarray ? ($resp, $req) : $resp;
}


# post_generic($ngx, $path, key => K, body => B, alg => sha256|sha1,
#              encoding => hex|base64, header => 'X-Signature',
#              id_header => 'X-Event-Id', id => ID, signature => override,
#              headers => {...extra}, host => H)

sub post_generic {
    my ($ngx, $path, %o) = @_;

    my $body = $o{body} // event_body();
    my $alg = $o{alg} // 'sha256';
    my $enc = $o{encoding} // 'hex';
    my $sig = $o{signature}
        // ($enc eq 'hex' ? hmac_body_hex($o{key}, $body, $alg)
                          : hmac_body_b64($o{key}, $body, $alg));

    my %h = ('Content-Type' => 'application/json', %{ $o{headers} // {} });
    $h{ $o{header} // 'X-Signature' } = $sig unless $o{no_signature};
    $h{ $o{id_header} } = $o{id} if $o{id_header} && defined $o{id};

    my $resp = $ngx->request('POST', $path, body => $body, headers => \%h,
                             (defined $o{host} ? (host => $o{host}) : ()));
    my $req = { body => $body, headers => \%h, signature => $sig };
    return wantarray ? ($resp, $req) : $resp;
}


sub log_lines {
    my ($text, $re) = @_;
    return grep { $_ =~ $re } split /\n/, $text // '';
}


sub edge_setup {
    my (%o) = @_;
    my $redis = delete $o{redis} // Loyalty::Test::Redis->new(
        %{ delete $o{redis_opts} // {} });
    my $http = delete $o{http_config} // '';
    my $redis_line = delete $o{redis_directive} // 'loyalty_redis %%REDIS%%;';
    my $ngx = Loyalty::Test::Nginx->new(
        redis => $redis,
        http_config => "$redis_line\n$http",
        %o);
    return ($redis, $ngx);
}


sub is_hex32 {
    my ($s) = @_;
    return defined $s && $s =~ /^[0-9a-f]{32}\z/ ? 1 : 0;
}


1;
