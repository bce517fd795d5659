#!/usr/bin/perl

# Permanent failures (4xx other than 408/423/425/429) are dead-lettered at
# once, with the ack, in one script; the operator commands: stats
# (human and --json), dlq list, show, replay (back to the stream once,
# delivered once the receiver is fixed), purge.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Redis qw(is_error);
use Loyalty::Test::Util qw(wait_until);
use Loyalty::Test::Worker qw(write_config new_whsec temp_dir worker_bin
    xadd_envelope);

plan skip_all => 'build/loyalty-worker not built' unless -x worker_bin();

my $JSON = JSON::PP->new->utf8;
my $redis = Loyalty::Test::Redis->new;
my $rx = Loyalty::Test::Receiver->new;
my $dir = temp_dir('wcfg');

my $cfg = write_config($dir,
    redis => $redis, stores => [qw(eu us)],
    destinations => [{ name => 'hooks', url => $rx->url,
                       secret => new_whsec(), timeout_ms => 1000 }],
    flows => [{ to => 'hooks' }],
    claim_timeout_ms => 2000, claim_interval_ms => 200, block_ms => 200,
    retry_base_ms => 50, retry_cap_ms => 100, retry_interval_ms => 50,
    max_attempts => 5);

sub xadd {
    my ($store, $id) = @_;
    return xadd_envelope($redis, $store, $id, received => 1795553266879,
                         data => '{"order":{"id":"1","total":4990}}');
}

sub cli {
    my @a = map { "'$_'" } @_;
    my $bin = worker_bin();
    my $out = `$bin -c '$cfg' @a 2>&1`;
    return ($? >> 8, $out);
}

sub reqs { [ grep { $_->{id} eq $_[0] } @{ $rx->requests } ] }
sub pending { $redis->cmd('XPENDING', "loyalty:{$_[0]}:in", 'workers')->[0] }

my $w = Loyalty::Test::Worker->new(config => $cfg);

# --- 400: dead-lettered at once ---

$rx->script(evt_bad => '400', evt_gone => '410', evt_lock => '423 204');
my $entry = xadd('eu', 'evt_bad');
xadd('eu', 'evt_gone');
xadd('us', 'evt_lock');
ok wait_until(sub { $redis->xlen('loyalty:{eu}:dlq') == 2
                    && pending('eu') == 0 }, timeout => 10),
    '400 and 410: dead-lettered and acked';
is scalar(@{ reqs('evt_bad') }), 1, '... after one attempt';
my ($d) = map { $_->[1] } grep { $_->[1]{id} eq 'evt_bad' }
    @{ $redis->stream('loyalty:{eu}:dlq') };
is $d->{dlq_reason}, 'permanent failure', '... reason';
is $d->{status}, 400, '... status 400';
is $d->{attempts}, 1, '... attempts 1';
like $d->{error}, qr/^HTTP 400: \{"status":400\}/,
    '... error with the first bytes of the answer';
is $d->{dest}, 'hooks', '... dest';
is $d->{corr}, 'c-evt_bad', '... corr';
is $d->{dlq_entry}, $entry, '... the stream entry';
ok $d->{failed_at} =~ /^\d{13}$/, '... failed_at in ms';
is $redis->cmd('ZCARD', 'loyalty:{eu}:retry'), 0, '... not in the retry set';
ok wait_until(sub { grep { $_->{status} == 204 } @{ reqs('evt_lock') } },
              timeout => 10), '423 (locked) is transient: retried, delivered';
is $redis->xlen('loyalty:{us}:dlq'), 0, '... not dead-lettered';

# --- stats ---

my ($rc, $out) = cli('stats');
is $rc, 0, 'stats: exit 0';
like $out, qr/^store\s+stream\s+pending\s+retry\s+dlq\s+conflicts$/m,
    '... header';
like $out, qr/^eu\s+2\s+0\s+0\s+2\s+0$/m, '... eu: 2 in the stream, 2 dead';
like $out, qr/^us\s+1\s+0\s+0\s+0\s+0$/m, '... us';
($rc, $out) = cli('stats', '--json');
my $j = eval { $JSON->decode($out) };
ok $j, 'stats --json: JSON' or diag $out;
is_deeply $j->{stores}[0], { store => 'eu', stream => 2, pending => 0,
                             retry => 0, dlq => 2, conflicts => 0 }, '... eu';
is $j->{stores}[1]{store}, 'us', '... us';

# --- list, show ---

($rc, $out) = cli(qw(dlq list eu));
is $rc, 0, 'dlq list: exit 0';
my @lines = split /\n/, $out;
is scalar(@lines), 2, '... one line per dead letter';
my @f = split /\t/, $lines[0];
is_deeply [ @f[1 .. 5] ], ['evt_bad', 'order.paid', 400, 1,
                           'permanent failure'], '... id, type, status, '
    . 'attempts, reason';
my $dlq_id = $f[0];
ok $dlq_id =~ /^\d+-\d+$/, '... the dead letter id first';
($rc, $out) = cli(qw(dlq list eu --count 1));
is scalar(split /\n/, $out), 1, '... --count 1';

($rc, $out) = cli('dlq', 'show', 'eu', $dlq_id);
is $rc, 0, 'dlq show: exit 0';
$j = eval { $JSON->decode($out) };
is $j->{dlq_id}, $dlq_id, '... dlq_id';
is $j->{id}, 'evt_bad', '... the envelope';
is $j->{data}, '{"order":{"id":"1","total":4990}}', '... data unchanged';
($rc, $out) = cli('dlq', 'show', 'eu', '1-1');
is $rc, 1, '... an unknown id: exit 1';
like $out, qr/no entry 1-1/, '... and says so';
($rc, $out) = cli(qw(dlq show eu));
is $rc, 2, 'missing argument: exit 2 with the usage';
($rc, $out) = cli(qw(dlq list no/such));
is $rc, 2, 'bad store name: exit 2';

# --- replay once fixed ---

$rx->script(evt_bad => '204', evt_gone => '204');
($rc, $out) = cli('dlq', 'replay', 'eu', $dlq_id);
is $rc, 0, 'dlq replay ID: exit 0';
like $out, qr/^replayed \Q$dlq_id\E as loyalty:\{eu\}:in \d+-\d+$/,
    '... prints the new entry';
ok wait_until(sub { grep { $_->{status} == 204 } @{ reqs('evt_bad') } },
              timeout => 10), '... delivered once the receiver is fixed';
ok wait_until(sub { pending('eu') == 0 }, timeout => 5), '... acked';
is scalar(grep { $_->{status} == 204 } @{ reqs('evt_bad') }), 1,
    '... exactly once';
my ($again) = grep { $_->{status} == 204 } @{ reqs('evt_bad') };
my $body = $JSON->decode($again->{body});
is $body->{corr}, 'c-evt_bad', '... the original envelope (corr)';
is $body->{data}{order}{total}, 4990, '... (data)';
ok !exists $body->{dlq_reason}, '... without the dead letter fields';
is $redis->xlen('loyalty:{eu}:dlq'), 1, '... and it left the dlq';
($rc, $out) = cli('dlq', 'replay', 'eu', $dlq_id);
is $rc, 1, 'replaying it again: exit 1 (gone)';

# --- replay --all, purge ---

($rc, $out) = cli(qw(dlq replay eu --all));
is $rc, 0, 'dlq replay --all: exit 0';
ok wait_until(sub { grep { $_->{status} == 204 } @{ reqs('evt_gone') } },
              timeout => 10), '... delivered';
is $redis->xlen('loyalty:{eu}:dlq'), 0, '... dlq empty';

$rx->script(evt_p1 => '400', evt_p2 => '400', evt_p3 => '400');
xadd('us', $_) for qw(evt_p1 evt_p2 evt_p3);
ok wait_until(sub { $redis->xlen('loyalty:{us}:dlq') == 3 }, timeout => 10),
    'three more dead letters';
my $first = $redis->stream('loyalty:{us}:dlq')->[0][0];
($rc, $out) = cli('dlq', 'purge', 'us', $first);
is "$rc $out", "0 purged 1\n", 'dlq purge ID';
is $redis->xlen('loyalty:{us}:dlq'), 2, '... one gone';
($rc, $out) = cli('dlq', 'purge', 'us', $first);
is $rc, 1, '... purging it again: exit 1';
($rc, $out) = cli(qw(dlq purge us --all));
is "$rc $out", "0 purged 2\n", 'dlq purge --all';
is $redis->xlen('loyalty:{us}:dlq'), 0, '... empty';
is scalar(grep { $_->{status} == 204 } map { @{ reqs($_) } }
          qw(evt_p1 evt_p2 evt_p3)), 0, '... and nothing was delivered';

# --- Redis down ---

is $w->stop(10), 0, 'SIGTERM: exit 0';
$redis->stop;
($rc, $out) = cli('stats');
is $rc, 1, 'stats with Redis down: exit 1';
like $out, qr/redis/, '... names Redis';

done_testing;
