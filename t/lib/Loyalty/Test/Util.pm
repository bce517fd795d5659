package Loyalty::Test::Util;

# Bits shared by the harness modules: free ports, waiting, the repo root,
# temp directories, process helpers.

use strict;
use warnings;

use Config;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

use Exporter 'import';
our @EXPORT_OK = qw(free_port wait_until repo_root make_servroot port_open
                    pid_alive slurp spew children_of proc_cmdline
                    spawn_child die_with_parent);

my %handed_out;


# In a forked child: SIGKILL when the parent dies, however it dies, so no
# server outlives a killed test (Linux prctl PR_SET_PDEATHSIG).

sub die_with_parent {
    eval {
        my $prctl = $Config{archname} =~ /x86_64/ ? 157
                  : $Config{archname} =~ /aarch64/ ? 167 : undef;
        syscall($prctl, 1, 9) if $prctl;
    };
}


# spawn_child(\@argv, log => FILE, env => {...}): fork and exec argv with
# stdin from /dev/null and stdout + stderr appended to FILE; the child is
# killed with the test process, even when that is killed.  Returns the pid.

sub spawn_child {
    my ($argv, %o) = @_;
    my $pid = fork // die "fork: $!\n";
    return $pid if $pid;

    die_with_parent();
    $ENV{$_} = $o{env}{$_} for keys %{ $o{env} // {} };
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', $o{log} // '/dev/null';
    open STDERR, '>&', \*STDOUT;
    { no warnings 'exec'; exec { $argv->[0] } @$argv; }
    POSIX::_exit(127);
}


# A port nobody listens on now.  Random within a range away from the
# ephemeral range (32768-60999 on Linux) so that parallel test files
# (prove -j) and outgoing connections rarely collide; a caller that then
# fails to bind asks again.

sub free_port {
    for (1 .. 200) {
        my $port = 20000 + int rand 12000;
        next if $handed_out{$port};
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $port, Proto => 'tcp',
                                      Listen => 1, ReuseAddr => 0)
            or next;
        close $s;
        $handed_out{$port} = 1;
        return $port;
    }
    die "free_port: no free loopback port found\n";
}


sub port_open {
    my ($port, $addr) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $addr // '127.0.0.1',
                                  PeerPort => $port, Proto => 'tcp',
                                  Timeout => 1)
        or return 0;
    close $s;
    return 1;
}


# wait_until(sub { ... }, timeout => 5, interval => 0.02): true when the
# condition held before the deadline.

sub wait_until {
    my ($cond, %o) = @_;
    my $deadline = time + ($o{timeout} // 5);
    my $interval = $o{interval} // 0.02;
    for (;;) {
        my $r = $cond->();
        return $r if $r;
        return 0 if time > $deadline;
        sleep $interval;
    }
}


sub repo_root {
    # t/lib/Loyalty/Test/Util.pm -> repo root
    return abs_path(dirname(__FILE__) . '/../../../..');
}


# One directory per harness object, under $LOYALTY_TEST_TMPDIR or the
# system temp dir; kept when LOYALTY_TEST_KEEP=1.

sub make_servroot {
    my ($prefix) = @_;
    my $base = $ENV{LOYALTY_TEST_TMPDIR};
    make_path($base) if $base && !-d $base;
    my $dir = tempdir("loyalty-$prefix-XXXXXX",
                      ($base ? (DIR => $base) : (TMPDIR => 1)),
                      CLEANUP => 0);
    chmod 0755, $dir;    # nginx workers run as nobody when we are root
    return $dir;
}


sub pid_alive {
    my ($pid) = @_;
    return 0 unless $pid;
    # a zombie child of ours still answers kill 0: reap it first
    waitpid $pid, WNOHANG;
    return kill(0, $pid) ? 1 : 0;
}


sub slurp {
    my ($path, $offset) = @_;
    open my $fh, '<:raw', $path or return '';
    seek $fh, $offset, 0 if $offset;
    local $/;
    my $data = <$fh>;
    return $data // '';
}


sub spew {
    my ($path, $data, $mode) = @_;
    make_path(dirname($path));
    open my $fh, '>:raw', $path or die "write $path: $!\n";
    print $fh $data;
    close $fh or die "close $path: $!\n";
    chmod $mode, $path if defined $mode;
}


sub proc_cmdline {
    my ($pid) = @_;
    my $c = slurp("/proc/$pid/cmdline");
    $c =~ s/\0+/ /g;
    $c =~ s/\s+$//;
    return $c;
}


sub children_of {
    my ($ppid) = @_;
    my @kids;
    opendir my $d, '/proc' or return;
    for my $pid (grep { /^\d+$/ } readdir $d) {
        my $stat = slurp("/proc/$pid/stat") or next;
        # pid (comm) state ppid ...; comm may hold spaces and parens
        my ($rest) = $stat =~ /\)\s+(.*)$/s or next;
        my (undef, $pp) = split ' ', $rest;
        push @kids, $pid + 0 if $pp == $ppid;
    }
    closedir $d;
    return sort { $a <=> $b } @kids;
}


1;
