#!/usr/bin/perl

# loyalty-worker -t -c FILE: a good configuration passes, a bad one fails
# (exit 1) with a message that names the problem, and the line when
# libcyaml knows it.  The worker refuses to start on a bad file.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Util qw(repo_root slurp spew);
use Loyalty::Test::Worker qw(check_config worker_bin new_whsec temp_dir);

plan skip_all => 'build/loyalty-worker not built' unless -x worker_bin();

my $dir = temp_dir('wconf');
my $secret = "$dir/hooks.whsec";
spew($secret, new_whsec() . "\n", 0600);
spew("$dir/plain.secret", "not-a-whsec-key\n", 0600);

my $good = <<"YAML";
redis: 127.0.0.1:6379
stores: [eu, us]
destinations:
  - name: hooks
    type: webhook
    url: http://127.0.0.1:9/hook
    secret_file: $secret
    timeout_ms: 5000
    concurrency: 8
flows:
  - stores: [eu]
    from: [shopify, standard]
    on: [order.paid, customer.updated]
    to: hooks
claim_timeout_ms: 30000
retry_base_ms: 500
retry_cap_ms: 60000
max_attempts: 8
YAML

sub check {
    my ($yaml, $name) = @_;
    my $f = "$dir/" . ($name // 'c') . '.yaml';
    spew($f, $yaml);
    return check_config($f);
}

my ($rc, $out) = check($good);
is $rc, 0, 'a good configuration passes -t';
like $out, qr/test is successful/, '... and says so (nginx -t style)';

# the documented example, with its secret path pointed at a real key
my $example = slurp(repo_root() . '/conf/loyalty-worker.yaml');
ok $example =~ s{secret_file: \S+}{secret_file: $secret}, 'example config read';
($rc, $out) = check($example, 'example');
is $rc, 0, 'conf/loyalty-worker.yaml passes -t' or diag $out;

($rc, $out) = check(<<"YAML");
stores: [eu]
destinations:
  - name: hooks
    type: webhook
    url: http://127.0.0.1:9/hook
    secret_file: $secret
flows:
  - to: hooks
YAML
is $rc, 0, 'a minimal configuration (defaults for the rest) passes';

# rate limits: fractional rates, burst defaults to 1
for my $rl ("rate: 20\n    burst: 5", "rate: 0.5\n    burst: 3", "rate: 0",
            "rate: 2.5") {
    my $y = $good =~ s/concurrency: 8/concurrency: 8\n    $rl/r;
    $y =~ s/claim_timeout_ms: 30000/claim_timeout_ms: 200000/;
    ($rc, $out) = check($y);
    (my $what = $rl) =~ s/\n\s*/, /;
    is $rc, 0, "destination with $what passes" or diag $out;
}

# entries waiting for a token are kept fresh (XCLAIM JUSTID): a backlog
# that takes longer than claim_timeout_ms to drain is fine
{
    my $y = $good =~ s/concurrency: 8/concurrency: 8\n    rate: 0.5/r;
    ($rc, $out) = check($y);
    is $rc, 0, 'batch / rate above claim_timeout_ms passes' or diag $out;
}

# Redis authentication and database; the password never shows
spew("$dir/empty-pass", "\n");
spew("$dir/redis-pass", "s3cr3t-PASSWORD\n", 0600);
{
    my $y = "$good" . "redis_password_file: $dir/redis-pass\nredis_db: 3\n"
          . "consumer_gc_ms: 60000\n";
    ($rc, $out) = check($y);
    is $rc, 0, 'redis_password_file, redis_db, consumer_gc_ms pass'
        or diag $out;
    unlike $out, qr/s3cr3t/, '... and -t does not print the password';
}

# [ description, transformation of $good, expected message ]
my @bad = (
    [ 'unknown key', sub { "bogus: 1\n$_[0]" },
      qr/:1: Unexpected key: bogus/ ],
    [ 'wrong type', sub { $_[0] =~ s/concurrency: 8/concurrency: lots/r },
      qr/:9: Invalid .*'lots'.*concurrency/ ],
    [ 'missing required key', sub { $_[0] =~ s/^stores:.*\n//mr },
      qr/Missing required mapping field: stores/ ],
    [ 'YAML syntax error', sub { $_[0] =~ s/    type: webhook/     type: webhook/r },
      qr/:[45]: libyaml: mapping values are not allowed/ ],
    [ 'a list where a string belongs', sub { $_[0] =~ s/  - name: hooks/  - name: [hooks]/r },
      qr/:4: Expecting STRING, got event: SEQUENCE_START; in mapping field 'name'/ ],
    [ 'claim_timeout_ms not above the longest timeout_ms',
      sub { $_[0] =~ s/claim_timeout_ms: 30000/claim_timeout_ms: 5000/r },
      qr/claim_timeout_ms \(5000\) must exceed the longest destination timeout_ms \(5000, destination "hooks"\)/ ],
    [ 'flow to an unknown destination', sub { $_[0] =~ s/to: hooks/to: crm/r },
      qr/flows\[0\]: "to: crm" names no destination/ ],
    [ 'unknown event type', sub { $_[0] =~ s/order\.paid/order.payed/r },
      qr/unknown event type "order\.payed"/ ],
    [ 'unknown sender', sub { $_[0] =~ s/shopify,/shopifi,/r },
      qr/unknown sender "shopifi"/ ],
    [ 'flow store not in stores', sub { $_[0] =~ s/stores: \[eu\]/stores: [asia]/r },
      qr/store "asia" is not in stores/ ],
    [ 'bad store name', sub { $_[0] =~ s/\[eu, us\]/[eu, "u s"]/r },
      qr/"u s" is not a valid store name/ ],
    [ 'duplicate store', sub { $_[0] =~ s/\[eu, us\]/[eu, eu]/r },
      qr/"eu" listed twice/ ],
    [ 'missing secret file', sub { $_[0] =~ s/\Q$secret\E/$dir\/nope/r },
      qr/secret_file "[^"]*nope": No such file/ ],
    [ 'secret not whsec_', sub { $_[0] =~ s/\Q$secret\E/$dir\/plain.secret/r },
      qr/must be a Standard Webhooks key \(whsec_/ ],
    [ 'unsupported destination type', sub { $_[0] =~ s/type: webhook/type: ftp/r },
      qr/type "ftp" is not supported/ ],
    [ 'url not http(s)', sub { $_[0] =~ s{url: http://}{url: gopher://}r },
      qr/is not an http:\/\/ or https:\/\/ URL/ ],
    [ 'concurrency out of range', sub { $_[0] =~ s/concurrency: 8/concurrency: 5000/r },
      qr/destination "hooks": concurrency: 5000 is out of range \[1, 1024\]/ ],
    [ 'bad redis port', sub { $_[0] =~ s/6379/99999/r },
      qr/redis "127\.0\.0\.1:99999": bad port/ ],
    [ 'bad log_level', sub { "$_[0]log_level: loud\n" },
      qr/log_level "loud"/ ],
    [ 'retry_cap_ms below retry_base_ms',
      sub { $_[0] =~ s/retry_cap_ms: 60000/retry_cap_ms: 100/r },
      qr/retry_cap_ms \(100\) must be at least retry_base_ms \(500\)/ ],
    [ 'max_attempts out of range',
      sub { $_[0] =~ s/max_attempts: 8/max_attempts: 5000/r },
      qr/max_attempts: 5000 is out of range \[1, 1000\]/ ],
    [ 'trim_interval_ms out of range', sub { "$_[0]trim_interval_ms: 5\n" },
      qr/trim_interval_ms: 5 is out of range \[100, 3600000\]/ ],
    [ 'negative rate', sub { $_[0] =~ s/concurrency: 8/concurrency: 8\n    rate: -1/r },
      qr/destination "hooks": rate: -1 is out of range \[0, 100000\]/ ],
    [ 'rate not a number', sub { $_[0] =~ s/concurrency: 8/concurrency: 8\n    rate: fast/r },
      qr/:10: Invalid FLOAT value: fast; in mapping field 'rate'/ ],
    [ 'burst without rate', sub { $_[0] =~ s/concurrency: 8/concurrency: 8\n    burst: 5/r },
      qr/destination "hooks": burst needs a rate/ ],
    [ 'burst out of range', sub { $_[0] =~ s/concurrency: 8/concurrency: 8\n    rate: 5\n    burst: 200000/r },
      qr/destination "hooks": burst: 200000 is out of range/ ],
    [ 'consumer_gc_ms below twice claim_timeout_ms',
      sub { "$_[0]consumer_gc_ms: 50000\n" },
      qr/consumer_gc_ms \(50000\) must be at least twice claim_timeout_ms \(30000\)/ ],
    [ 'consumer_gc_ms out of range', sub { "$_[0]consumer_gc_ms: 10\n" },
      qr/consumer_gc_ms: 10 is out of range \[1000, 2592000000\]/ ],
    [ 'redis_db out of range', sub { "$_[0]redis_db: 70000\n" },
      qr/redis_db: 70000 is out of range \[0, 65535\]/ ],
    [ 'redis_password_file missing',
      sub { "$_[0]redis_password_file: $dir/no-such-pass\n" },
      qr/redis_password_file "[^"]+no-such-pass": No such file/ ],
    [ 'redis_password_file empty',
      sub { "$_[0]redis_password_file: $dir/empty-pass\n" },
      qr/redis_password_file "[^"]+empty-pass": the first line must be a password or user:password/ ],
    [ 'retry_interval_ms not a number',
      sub { "$_[0]retry_interval_ms: soon\n" },
      qr/Invalid .*'soon'.*retry_interval_ms/ ],
);

for my $b (@bad) {
    my ($what, $edit, $re) = @$b;
    my $yaml = $edit->($good);
    isnt $yaml, $good, "$what: the edit applies";
    ($rc, $out) = check($yaml);
    is $rc, 1, "$what: -t exits 1";
    like $out, $re, "$what: the message names it" or diag $out;
    like $out, qr/test failed/, "$what: test failed";
}

($rc, $out) = check_config("$dir/does-not-exist.yaml");
is $rc, 1, 'missing file: exit 1';
like $out, qr/does-not-exist\.yaml: cannot open/, '... cannot open';

# the daemon itself refuses a bad file
spew("$dir/bad.yaml", "bogus: 1\n");
my $bin = worker_bin();
my $log = `$bin -c $dir/bad.yaml 2>&1`;
is $? >> 8, 1, 'the worker does not start on a bad file';
like $log, qr/^\{"time":"[^"]+","level":"error","msg":".*Unexpected key: bogus/,
    '... and logs why, as JSON';

done_testing;
