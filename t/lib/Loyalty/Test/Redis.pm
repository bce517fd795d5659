package Loyalty::Test::Redis;

# A real redis-server for one test file.
#
#   my $redis = Loyalty::Test::Redis->new(%opt);   # started
#   $redis->port; $redis->addr;                    # "127.0.0.1:PORT"
#   $redis->cmd('XLEN', 'loyalty:{eu}:in');        # RESP client
#   $redis->stop;  $redis->kill;  $redis->start;   # same port, same dir
#
# Options: appendfsync (everysec), appendonly (yes), port (free one),
# requirepass, unixsocket (1: also listen on ->socket_path, mode 777),
# start (1; 0 = create but do not start), args => [extra redis-server
# arguments, e.g. '--maxmemory', '10mb'].
#
# Replies: simple strings and bulk strings are scalars, integers are
# numbers, nil is undef, arrays are array refs.  A Redis error reply is
# returned (not thrown) as a Loyalty::Test::Redis::Error object: it is
# true, stringifies to the message ("NOSCRIPT No matching ..."), and
# is_error($reply) tells it apart.  Transport failures (Redis down) die.

use strict;
use warnings;

use Carp qw(croak);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Scalar::Util qw(blessed weaken);
use Time::HiRes qw(time sleep);

use Loyalty::Test::Util qw(free_port wait_until make_servroot port_open
                           pid_alive slurp spawn_child);

use Exporter 'import';
our @EXPORT_OK = qw(is_error);

my @instances;


sub new {
    my ($class, %o) = @_;

    my $self = bless {
        port        => $o{port} // free_port(),
        dir         => $o{dir} // make_servroot('redis'),
        appendonly  => $o{appendonly} // 'yes',
        appendfsync => $o{appendfsync} // 'everysec',
        requirepass => $o{requirepass},
        unixsocket  => $o{unixsocket},
        args        => $o{args} // [],
        bin         => $o{bin} // $ENV{LOYALTY_REDIS_SERVER} // 'redis-server',
        pid         => undef,
        sock        => undef,
        owner       => $$,
    }, $class;

    push @instances, $self;
    weaken $instances[-1];

    $self->start unless defined $o{start} && !$o{start};

    return $self;
}


sub port { $_[0]{port} }
sub addr { '127.0.0.1:' . $_[0]{port} }
sub dir  { $_[0]{dir} }
sub pid  { $_[0]{pid} }
sub log_file { "$_[0]{dir}/redis.log" }
sub socket_path { "$_[0]{dir}/redis.sock" }


sub start {
    my ($self) = @_;

    croak 'redis already running' if $self->running;

    my @argv = ($self->{bin},
        '--port', $self->{port},
        '--bind', '127.0.0.1',
        '--dir', $self->{dir},
        '--save', '',
        '--appendonly', $self->{appendonly},
        '--appendfsync', $self->{appendfsync},
        '--daemonize', 'no',
        '--logfile', $self->log_file,
        '--enable-debug-command', 'yes',
        (defined $self->{requirepass}
            ? ('--requirepass', $self->{requirepass}) : ()),
        ($self->{unixsocket}
            ? ('--unixsocket', $self->socket_path, '--unixsocketperm', '777')
            : ()),
        @{ $self->{args} });

    my $pid = spawn_child(\@argv, log => "$self->{dir}/redis.stdout");
    $self->{pid} = $pid;

    my $up = wait_until(sub {
        return 0 unless pid_alive($pid);
        my $r = eval { $self->_raw_cmd('PING') };
        return defined $r && ($r eq 'PONG' || (is_error($r) && "$r" =~ /NOAUTH/));
    }, timeout => 10);

    unless ($up) {
        my $log = slurp($self->log_file) . slurp("$self->{dir}/redis.stdout");
        $self->kill;
        die "redis-server did not start on port $self->{port}:\n$log\n";
    }

    return $self;
}


sub running {
    my ($self) = @_;
    return pid_alive($self->{pid});
}


sub _disconnect {
    my ($self) = @_;
    close $self->{sock} if $self->{sock};
    $self->{sock} = undef;
}


# SHUTDOWN NOSAVE, then TERM, then KILL; always waits for the process.

sub stop {
    my ($self) = @_;

    return $self unless $self->{pid};

    if ($self->running) {
        eval { $self->_raw_cmd('SHUTDOWN', 'NOSAVE') };
        unless (wait_until(sub { !$self->running }, timeout => 5)) {
            CORE::kill('TERM', $self->{pid});
            unless (wait_until(sub { !$self->running }, timeout => 5)) {
                CORE::kill('KILL', $self->{pid});
            }
        }
    }

    $self->_reap;
    return $self;
}


sub kill {
    my ($self) = @_;
    return $self unless $self->{pid};
    CORE::kill('KILL', $self->{pid});
    $self->_reap;
    return $self;
}


sub _reap {
    my ($self) = @_;
    $self->_disconnect;
    return unless $self->{pid};
    if ($self->{owner} == $$) {
        waitpid $self->{pid}, 0;
    }
    $self->{pid} = undef;
}


sub flushall {
    my ($self) = @_;
    my $r = $self->cmd('FLUSHALL');
    croak "FLUSHALL: $r" if is_error($r);
    return $r;
}


sub cmd {
    my ($self, @args) = @_;
    return $self->_raw_cmd(@args);
}


# Several commands written at once, replies in order (MULTI-free batch).

sub pipeline {
    my ($self, @cmds) = @_;
    my $s = $self->_sock;
    my $out = join '', map { _encode(@$_) } @cmds;
    _write_all($s, $out);
    return map { $self->_read_reply } @cmds;
}


sub _sock {
    my ($self) = @_;

    return $self->{sock} if $self->{sock} && $self->{sock}->connected;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $self->{port}, Proto => 'tcp',
                                  Timeout => 5)
        or die "redis connect 127.0.0.1:$self->{port}: $!\n";
    binmode $s;
    $self->{sock} = $s;
    $self->{rbuf} = '';

    if (defined $self->{requirepass}) {
        _write_all($s, _encode('AUTH', $self->{requirepass}));
        my $r = $self->_read_reply;
        die "redis AUTH: $r\n" if is_error($r);
    }

    return $s;
}


sub _encode {
    my @a = @_;
    my $out = '*' . @a . "\r\n";
    for my $x (@a) {
        my $v = defined $x ? "$x" : '';
        utf8::encode($v) if utf8::is_utf8($v);
        $out .= '$' . length($v) . "\r\n$v\r\n";
    }
    return $out;
}


sub _write_all {
    my ($s, $buf) = @_;
    my $off = 0;
    while ($off < length $buf) {
        my $n = syswrite $s, $buf, length($buf) - $off, $off;
        die "redis write: $!\n" unless defined $n;
        $off += $n;
    }
}


sub _raw_cmd {
    my ($self, @args) = @_;
    my $s = $self->_sock;
    my $ok = eval {
        _write_all($s, _encode(@args));
        1;
    };
    unless ($ok) {
        # the server went away and came back: one fresh connection
        $self->_disconnect;
        $s = $self->_sock;
        _write_all($s, _encode(@args));
    }
    my $r = eval { $self->_read_reply };
    if (my $e = $@) {
        $self->_disconnect;
        die $e;
    }
    return $r;
}


sub _fill {
    my ($self) = @_;
    my $sel = IO::Select->new($self->{sock});
    my $timeout = $self->{timeout} // 30;
    $sel->can_read($timeout) or die "redis read timeout\n";
    my $n = sysread $self->{sock}, $self->{rbuf}, 65536, length $self->{rbuf};
    die "redis read: $!\n" unless defined $n;
    die "redis: connection closed\n" if $n == 0;
}


sub _line {
    my ($self) = @_;
    for (;;) {
        my $i = index $self->{rbuf}, "\r\n";
        if ($i >= 0) {
            my $l = substr $self->{rbuf}, 0, $i;
            substr $self->{rbuf}, 0, $i + 2, '';
            return $l;
        }
        $self->_fill;
    }
}


sub _read_reply {
    my ($self) = @_;
    my $l = $self->_line;
    my ($t, $rest) = (substr($l, 0, 1), substr($l, 1));

    return $rest if $t eq '+';
    return $rest + 0 if $t eq ':';
    return Loyalty::Test::Redis::Error->new($rest) if $t eq '-';

    if ($t eq '$') {
        return undef if $rest < 0;
        $self->_fill while length $self->{rbuf} < $rest + 2;
        my $v = substr $self->{rbuf}, 0, $rest;
        substr $self->{rbuf}, 0, $rest + 2, '';
        return $v;
    }

    if ($t eq '*') {
        return undef if $rest < 0;
        return [ map { $self->_read_reply } 1 .. $rest ];
    }

    die "redis: unexpected reply line '$l'\n";
}


sub is_error {
    my ($r) = @_;
    return blessed($r) && $r->isa('Loyalty::Test::Redis::Error') ? 1 : 0;
}


# Helpers for the tests.

# stream($key) -> [ [entry_id, { field => value }], ... ] (XRANGE - +)
sub stream {
    my ($self, $key) = @_;
    my $r = $self->cmd('XRANGE', $key, '-', '+');
    die "XRANGE $key: $r\n" if is_error($r);
    return [ map { [ $_->[0], { @{ $_->[1] } } ] } @$r ];
}


sub xlen {
    my ($self, $key) = @_;
    my $r = $self->cmd('XLEN', $key);
    die "XLEN $key: $r\n" if is_error($r);
    return $r;
}


sub keys {
    my ($self, $pattern) = @_;
    my $r = $self->cmd('KEYS', $pattern // '*');
    die "KEYS: $r\n" if is_error($r);
    return sort @$r;
}


sub dbsize {
    my ($self) = @_;
    return $self->cmd('DBSIZE');
}


sub DESTROY {
    my ($self) = @_;
    local ($@, $!, $?);
    return unless $self->{owner} == $$;
    $self->kill if $self->{pid};
    _cleanup_dir($self);
}


sub _cleanup_dir {
    my ($self) = @_;
    return if $ENV{LOYALTY_TEST_KEEP} || !$self->{dir} || $self->{cleaned}++;
    require File::Path;
    File::Path::remove_tree($self->{dir});
}


END {
    for my $r (grep { defined } @instances) {
        next unless $r->{owner} == $$;
        local ($@, $!, $?);
        $r->kill if $r->{pid};
        if ($ENV{LOYALTY_TEST_KEEP}) {
            print STDERR "# kept redis dir $r->{dir}\n" unless $r->{told}++;
        } else {
            _cleanup_dir($r);
        }
    }
}


package Loyalty::Test::Redis::Error;

use overload '""' => sub { $_[0]{message} }, 'bool' => sub { 1 },
             fallback => 1;

sub new { bless { message => $_[1] }, $_[0] }
sub message { $_[0]{message} }


1;
