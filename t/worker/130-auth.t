#!/usr/bin/perl

# Redis authentication and database: redis_password_file (first line, a
# password or user:password for an ACL user) and redis_db (SELECT), on
# every connection of the worker and of its commands, and again after a
# reconnect.  A wrong password is a clear error (never the password
# itself in a log line) and nothing is delivered.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Redis qw(is_error);
use Loyalty::Test::Util qw(wait_until spew);
use Loyalty::Test::Worker qw(write_config new_whsec temp_dir worker_bin
    envelope_fields);

plan skip_all => 'build/loyalty-worker not built'
    unless -x Loyalty::Test::Worker::worker_bin();

my $PASS = 'pw-Secret-42';
my $KEY = 'loyalty:{eu}:in';

my $redis = Loyalty::Test::Redis->new(requirepass => $PASS);
my $rx = Loyalty::Test::Receiver->new;
my $dir = temp_dir('wcfg');
my $secret = new_whsec();

spew("$dir/good.pass", "$PASS\n", 0600);
spew("$dir/bad.pass", "not-the-password\n", 0600);
spew("$dir/acl.pass", "loyal:acl-Pass-7\n", 0600);
spew("$dir/badacl.pass", "loyal:wrong-7\n", 0600);

sub cfg {
    my ($file, $pass, %o) = @_;
    return write_config($dir, redis => $redis, stores => ['eu'],
        destinations => [ { name => 'hooks', url => $rx->url,
                            secret => $secret, timeout_ms => 2000 } ],
        flows => [ { to => 'hooks' } ], block_ms => 200,
        claim_timeout_ms => 5000, redis_password_file => "$dir/$pass",
        file => $file, %o);
}

# commands in database 2 (the test's own connection, SELECTed each time)
sub db2 { return ($redis->pipeline(['SELECT', 2], [@_]))[1] }
sub db0 { return ($redis->pipeline(['SELECT', 0], [@_]))[1] }

sub xadd2 {
    my $r = db2('XADD', $KEY, '*', envelope_fields('eu', $_[0]));
    die "XADD: $r" if is_error($r);
    return $r;
}

sub delivered {
    my ($id) = @_;
    return grep { $_->{id} eq $id && $_->{status} =~ /^2/ }
           @{ $rx->requests };
}

sub cli {
    my ($cfg, @args) = @_;
    my $bin = worker_bin();
    my $out = `$bin -c '$cfg' @args 2>&1`;
    return ($? >> 8, $out);
}

my $bad = cfg('bad.yaml', 'bad.pass', redis_db => 2);
my $good = cfg('good.yaml', 'good.pass', redis_db => 2);


# --- a wrong password: a clear error, nothing read ---

xadd2('evt_a1');
my $w = Loyalty::Test::Worker->new(config => $bad);
ok wait_until(sub { grep { ($_->{msg} // '') =~ /^redis AUTH: /
                           && $_->{level} eq 'error' } $w->log_lines },
              timeout => 10),
    'wrong password: the worker logs an error';
my ($line) = grep { ($_->{msg} // '') =~ /^redis AUTH: / } $w->log_lines;
like $line->{msg}, qr/WRONGPASS|invalid password|invalid username/i,
    "... Redis' reason: $line->{msg}";
like $line->{msg}, qr/redis_password_file/, '... naming the key to check';
sleep 1;
ok $w->running, '... and keeps retrying (the password may change)';
is scalar(delivered('evt_a1')), 0, '... nothing delivered';
my $groups = db2('XINFO', 'GROUPS', $KEY);
ok !ref $groups || !@$groups, '... not even the group created';
unlike $w->log, qr/not-the-password|\Q$PASS\E/, '... the password is not logged';
$w->stop;

my ($rc, $out) = cli($bad, 'stats');
is $rc, 1, 'stats with a wrong password: exit 1';
like $out, qr/redis AUTH: .*\(check redis_password_file\)/, '... says why';
unlike $out, qr/not-the-password/, '... without the password';

($rc, $out) = cli(cfg('db100.yaml', 'good.pass', redis_db => 100), 'stats');
is $rc, 1, 'stats with a database Redis does not have: exit 1';
like $out, qr/redis SELECT: .*out of range.*\(check redis_db\)/,
    '... says why';


# --- the right one, database 2 ---

$w = Loyalty::Test::Worker->new(config => $good);
ok wait_until(sub { delivered('evt_a1') }, timeout => 10),
    'right password: the backlog is delivered';
ok wait_until(sub { db2('XPENDING', $KEY, 'workers')->[0] == 0 },
              timeout => 5),
    '... and acked in database 2';
is db0('EXISTS', $KEY), 0, '... nothing written to database 0';

($rc, $out) = cli($good, 'stats', '--json');
is $rc, 0, 'stats works' or diag $out;
like $out, qr/"store":"eu","stream":1,/, '... and reads database 2';

# every reconnect authenticates again
$redis->stop;
$redis->start;
ok wait_until(sub { !is_error(db2('PING')) }, timeout => 5), 'Redis restarted';
xadd2('evt_a2');
ok wait_until(sub { delivered('evt_a2') }, timeout => 10),
    '... the worker reconnects, authenticates, selects, delivers';
unlike $w->log, qr/\Q$PASS\E/, 'the password is never logged';
is $w->stop, 0, 'worker stops cleanly';


# --- an ACL user (user:password) ---

is $redis->cmd('ACL', 'SETUSER', 'loyal', 'on', '>acl-Pass-7', '~*', '&*',
               '+@all'), 'OK', 'ACL user loyal';
($rc, $out) = cli(cfg('acl.yaml', 'acl.pass'), 'stats');
is $rc, 0, 'stats as ACL user loyal' or diag $out;
($rc, $out) = cli(cfg('badacl.yaml', 'badacl.pass'), 'stats');
is $rc, 1, '... a wrong ACL password: exit 1';
like $out, qr/WRONGPASS|invalid username-password/i, '... says why';

$w = Loyalty::Test::Worker->new(config => cfg('acl.yaml', 'acl.pass'));
my $r = db0('XADD', $KEY, '*', v => 1, id => 'evt_a3', src => 'standard',
    store => 'eu', type => 'order.paid', occurred => '2026-11-24T09:30:00Z',
    received => int(time * 1000), corr => 'c-a3',
    data => '{"order":{"id":"1"}}');
ok wait_until(sub { delivered('evt_a3') }, timeout => 10),
    'the worker drains as ACL user loyal (database 0)';
is $w->stop, 0, 'worker stops cleanly';

done_testing;
