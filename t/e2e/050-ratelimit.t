#!/usr/bin/perl

# Two workers share a destination limit of 20 requests/s with a burst of
# 5 (GCRA in Redis): in the sandbox's own request log no window of one
# second holds more than rate + burst = 25 requests, every event arrives
# once, and both workers did part of the work.  Then the sandbox answers
# 429 with Retry-After: the shared pause stops both workers for it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Time::HiRes qw(time sleep);

use Loyalty::Test::Pipeline;
use Loyalty::Test::Util qw(wait_until);

my $p = Loyalty::Test::Pipeline->new(stores => [qw(eu us)],
                                     receivers => ['crm']);
my $sb = $p->sandbox;
my $cfg = $p->worker_config(
    destinations => { crm => { rate => 20, burst => 5, concurrency => 8 } },
    batch => 8, claim_timeout_ms => 10000);

my $N = 100;
for my $i (1 .. $N) {
    my $r = $p->send($i % 2 ? 'eu' : 'us');
    die "edge: $r->{status}" unless $r->{status} == 202;
}

my @w = map { $p->worker($cfg) } 1 .. 2;
my $t0 = time;
ok(wait_until(sub { $p->held('crm')->{distinct} == $N && $p->drained },
              timeout => 30), "all $N events delivered");
my $took = time - $t0;

my @t = sort { $a <=> $b } map { $_->{t} }
        @{ $sb->requests(service => 'hooks') };
is(scalar @t, $N, 'one request per event');
my ($max, $j) = (0, 0);
for my $i (0 .. $#t) {
    $j++ while $t[$i] - $t[$j] >= 1000;
    $max = $i - $j + 1 if $i - $j + 1 > $max;
}
cmp_ok($max, '<=', 25, "at most rate + burst in any second (max $max)");
cmp_ok($max, '>=', 15, 'and the limit is actually reached');
cmp_ok($took, '>=', ($N - 25) / 20 - 0.5,
       sprintf('the drain took %.1f s, as 20/s allows', $took));

my %by_worker;
for my $w (@w) {
    $by_worker{ $w->pid } = grep { ($_->{msg} // '') eq 'delivered' }
                            $w->log_lines;
}
is(scalar(grep { $_ > 0 } values %by_worker), 2,
   'both workers delivered some: ' . join('/', values %by_worker));

# --- a 429 with Retry-After pauses both workers ------------------------------

$sb->fault({ service => 'hooks', status => 429, retry_after => 2,
             times => 1 });
my $seq = $sb->seq;
$p->send('eu') for 1 .. 10;
ok(wait_until(sub { $p->held('crm')->{distinct} == $N + 10 && $p->drained },
              timeout => 30), 'the next ten delivered after the pause');
my @after = @{ $sb->requests(service => 'hooks', since => $seq) };
my ($first429) = grep { $_->{status} == 429 } @after;
ok($first429, 'the sandbox answered 429');
my @later = grep { $_->{seq} > $first429->{seq} } @after;
# requests granted before the 429 arrived may still go out; after that
# nothing for 2 s
my @inside = grep { $_->{t} > $first429->{t} + 300
                    && $_->{t} < $first429->{t} + 1900 } @later;
is(scalar @inside, 0, 'no request while the shared pause lasts');
my @ok = grep { $_->{status} == 204 } @later;
cmp_ok($ok[-1]{t} - $first429->{t}, '>=', 1900, 'delivery resumed after it');

for my $w (@w) {
    my $pid = $w->pid;
    is($w->stop, 0, "worker $pid stops cleanly");
}

done_testing;
