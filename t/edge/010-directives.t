#!/usr/bin/perl

# Directives: configurations nginx -t must refuse (with an [emerg] that
# names the problem), a configuration using every directive, and the
# loyalty_redis options that change behaviour at run time: a host name,
# password_file, db=N.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Nginx;
use Loyalty::Test::Redis;
use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my $secret = new_secret();
my $redis_line = 'loyalty_redis 127.0.0.1:6399;';

sub conftest {
    my (%o) = @_;
    return Loyalty::Test::Nginx->config_test(
        http_config => $o{http_config} // $redis_line,
        config      => $o{config} // '',
        (defined $o{servers} ? (servers => $o{servers}) : ()),
        files       => $o{files} // {});
}

sub must_die {
    my ($name, $re, %o) = @_;
    my ($code, $out) = conftest(%o);
    isnt $code, 0, "must die: $name (nginx -t fails)";
    like $out, qr/\[emerg\]/, "must die: $name ([emerg])" or diag $out;
    like $out, $re, "must die: $name (names the problem)" or diag $out;
}

sub hook {
    my ($extra) = @_;
    return "location = /h { loyalty_webhook standard; $extra }";
}


# --- must die ---------------------------------------------------------------

must_die('webhook location without any secret', qr/secret/i,
         config => 'location = /h { loyalty_webhook standard; }');

must_die('generic location without any secret', qr/secret/i,
         config => 'location = /h { loyalty_webhook generic; }');

must_die('secret file holding no secret', qr/\[emerg\]/,
         config => hook('loyalty_secret_file %%SERVROOT%%/conf/empty.secret;'),
         files => { 'conf/empty.secret' => "\n" });

must_die('unknown sender', qr/no-such-sender/,
         config => "location = /h { loyalty_webhook no-such-sender; loyalty_secret $secret; }");

must_die('missing secret file', qr/missing\.secret/,
         config => hook('loyalty_secret_file %%SERVROOT%%/conf/missing.secret;'));

must_die('unresolvable redis host', qr/no-such-host\.invalid/,
         http_config => 'loyalty_redis no-such-host.invalid:6379;',
         config => hook("loyalty_secret $secret;"));

must_die('bad redis port', qr/loyalty_redis|notaport/,
         http_config => 'loyalty_redis 127.0.0.1:notaport;',
         config => hook("loyalty_secret $secret;"));

must_die('bad redis timeout', qr/timeout/,
         http_config => 'loyalty_redis 127.0.0.1:6379 timeout=abc;',
         config => hook("loyalty_secret $secret;"));

must_die('bad redis db', qr/db/,
         http_config => 'loyalty_redis 127.0.0.1:6379 db=abc;',
         config => hook("loyalty_secret $secret;"));

must_die('unknown loyalty_redis option', qr/bogus/,
         http_config => 'loyalty_redis 127.0.0.1:6379 bogus=1;',
         config => hook("loyalty_secret $secret;"));

must_die('missing redis password file', qr/missing\.pass/,
         http_config => 'loyalty_redis 127.0.0.1:6379 password_file=%%SERVROOT%%/conf/missing.pass;',
         config => hook("loyalty_secret $secret;"));

must_die('loyalty_redis inside server{}', qr/"loyalty_redis" directive is not allowed here/,
         http_config => '',
         config => "loyalty_redis 127.0.0.1:6379;\n" . hook("loyalty_secret $secret;"));

must_die('loyalty_webhook at server level', qr/"loyalty_webhook" directive is not allowed here/,
         config => "loyalty_webhook standard; loyalty_secret $secret;");

must_die('unknown signature algorithm', qr/md5/,
         config => "location = /h { loyalty_webhook generic; loyalty_secret k; loyalty_signature_algorithm md5; }");

must_die('unknown signature encoding', qr/base32/,
         config => "location = /h { loyalty_webhook generic; loyalty_secret k; loyalty_signature_encoding base32; }");

must_die('stream cap not a number', qr/loyalty_stream_cap|lots/,
         config => hook("loyalty_secret $secret; loyalty_stream_cap lots;"));

must_die('dedupe window not a time', qr/loyalty_dedupe_window|forever/,
         config => hook("loyalty_secret $secret; loyalty_dedupe_window forever;"));

must_die('timestamp tolerance not a time', qr/loyalty_timestamp_tolerance|soon/,
         config => hook("loyalty_secret $secret; loyalty_timestamp_tolerance soon;"));

must_die('keep_raw not on|off', qr/loyalty_keep_raw|maybe/,
         config => hook("loyalty_secret $secret; loyalty_keep_raw maybe;"));

must_die('store with an unknown variable', qr/no_such_variable/,
         config => hook("loyalty_secret $secret; loyalty_store \$no_such_variable;"));


# --- every directive at once passes -------------------------------------------

my ($code, $out) = conftest(
    http_config => 'loyalty_redis 127.0.0.1:6379 password_file=%%SERVROOT%%/conf/redis.pass db=2 timeout=250ms;',
    config => q{
        loyalty_store eu;
        loyalty_secret_file %%SERVROOT%%/conf/hooks.secret;
        loyalty_dedupe_window 48h;
        loyalty_stream_cap 5000;
        loyalty_keep_raw on;
        loyalty_timestamp_tolerance 120s;
        location = /std { loyalty_webhook standard; }
        location = /gen {
            loyalty_webhook generic;
            loyalty_secret plain-key;
            loyalty_secret another-key;
            loyalty_signature_header X-Hub-Signature;
            loyalty_signature_algorithm sha1;
            loyalty_signature_encoding base64;
            loyalty_id_header X-Event-Id;
            loyalty_store $http_x_store;
        }
    },
    files => { 'conf/redis.pass' => "pw\n",
               'conf/hooks.secret' => new_secret() . "\n" . new_secret() . "\n" });
is $code, 0, 'a config using every directive passes nginx -t' or diag $out;


# --- run time: host name, password_file, db ------------------------------------

my $redis = Loyalty::Test::Redis->new(requirepass => 's3cret pass');

my $ngx = Loyalty::Test::Nginx->new(
    redis => $redis,
    name => 'password+db',
    http_config => 'loyalty_redis localhost:%%REDIS_PORT%% password_file=%%SERVROOT%%/conf/redis.pass db=3;',
    files => { 'conf/redis.pass' => "s3cret pass\n" },
    config => qq{
        loyalty_store dir;
        loyalty_secret $secret;
        location = /h { loyalty_webhook standard; }
        location = /inherit { loyalty_webhook standard; }
    });

my ($r, $req) = post_standard($ngx, '/h', secret => $secret);
is $r->{status}, 202, 'host name + password_file + db=3: accepted' or diag $r->{body};

$redis->cmd('SELECT', 3);
is $redis->xlen(stream_key('dir')), 1, 'the event is in db 3';
is $redis->stream(stream_key('dir'))->[0][1]{id}, $req->{id}, '... with its id';
$redis->cmd('SELECT', 0);
is $redis->dbsize, 0, 'db 0 untouched';

$r = post_standard($ngx, '/inherit', secret => $secret);
is $r->{status}, 202, 'a server-level loyalty_secret is inherited by the location';

# unix socket
my $redis_unix = Loyalty::Test::Redis->new(unixsocket => 1);
my $unix = Loyalty::Test::Nginx->new(
    redis => $redis_unix,
    name => 'unix socket',
    http_config => 'loyalty_redis unix:%%REDIS_SOCKET%%;',
    config => qq{
        location = /h { loyalty_webhook standard; loyalty_secret $secret; loyalty_store unix; }
    });
($r) = post_standard($unix, '/h', secret => $secret);
is $r->{status}, 202, 'loyalty_redis unix:/path: 202' or diag $r->{body};
is $redis_unix->xlen(stream_key('unix')), 1, '... stored through the unix socket';

# the same Redis with a wrong password: never a 2xx
my $wrong = Loyalty::Test::Nginx->new(
    redis => $redis,
    name => 'wrong password',
    http_config => 'loyalty_redis %%REDIS%% password_file=%%SERVROOT%%/conf/redis.pass timeout=500ms;',
    files => { 'conf/redis.pass' => "not the password\n" },
    config => qq{
        loyalty_store wrongpw;
        location = /h { loyalty_webhook standard; loyalty_secret $secret; }
    });

$r = post_standard($wrong, '/h', secret => $secret);
is $r->{status}, 503, 'wrong Redis password: 503';
ok defined $r->{headers}{'retry-after'}, '... with Retry-After';
is json_of($r)->{error}, 'unavailable', '... error unavailable';
$redis->cmd('SELECT', 0);
is $redis->xlen(stream_key('wrongpw')), 0, '... nothing stored';


# --- sender settings (issue 3) ----------------------------------------------

must_die('salesforce without loyalty_salesforce_org', qr/loyalty_salesforce_org/,
         config => 'location = /sf { loyalty_webhook salesforce; }');

must_die('an organization id of the wrong length', qr/15 or 18/,
         config => 'location = /sf { loyalty_webhook salesforce; loyalty_salesforce_org 00D123; }');

must_die('an organization id with punctuation', qr/letters and digits/,
         config => 'location = /sf { loyalty_webhook salesforce; loyalty_salesforce_org 00D5g000004El-m; }');

must_die('an unknown default country', qr/unknown country "ZZ"/,
         config => hook("loyalty_secret $secret; loyalty_default_country ZZ;"));

must_die('a default country that is not two letters', qr/two letters/,
         config => hook("loyalty_secret $secret; loyalty_default_country GBR;"));

{
    my ($code, $out) = conftest(config => q{
        location = /sf { loyalty_webhook salesforce;
                         loyalty_salesforce_org 00D5g000004ElLm 00D5g000004ElLmEAK; }
        location = /d  { loyalty_webhook salesforce; loyalty_default_country se;
                         loyalty_salesforce_org 00D5g000004ElLm; }});
    is $code, 0, 'salesforce needs no secret; lower-case country accepted' or diag $out;
}

{
    my ($code, $out) = conftest(config => qq{
        loyalty_secret $secret;
        loyalty_salesforce_org 00D5g000004ElLm;
        location = /sf { loyalty_webhook salesforce; }
        location = /st { loyalty_webhook standard; }});
    is $code, 0, 'server-level secret and org list inherited by both kinds' or diag $out;
}

done_testing;
