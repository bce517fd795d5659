package Loyalty::Test::Nginx;

# The real nginx (master + workers) with ngx_http_loyalty_module, in a
# temp servroot, on free loopback ports.  See docs/testing.md.
#
#   my $ngx = Loyalty::Test::Nginx->new(
#       redis       => $redis,            # for %%REDIS%% / %%REDIS_PORT%%
#       http_config => 'loyalty_redis %%REDIS%%;',
#       config      => 'location = /hook { loyalty_webhook standard; ... }',
#                     # server-level text, wrapped in a default server
#       servers     => 'server { listen 127.0.0.1:%%PORT%%; ... }',
#                     # or whole server blocks (config and servers may mix)
#   );
#   my $r = $ngx->request(POST => '/hook', body => $b, headers => {...},
#                         host => 'eu.example');
#   $r->{status}; $r->{headers}{'x-correlation-id'}; $r->{body};
#
# After the test file (at done_testing) every nginx started by it is
# stopped with QUIT and its error log is checked: no [alert], no [emerg]
# (unless expect_emerg), no "open socket #N left in connection", no
# sanitizer report, and the master exited on QUIT before the deadline.

use strict;
use warnings;

use Carp qw(croak);
use File::Basename ();
use File::Copy ();
use File::Path qw(make_path remove_tree);
use JSON::PP ();
use POSIX qw(:sys_wait_h);
use Scalar::Util qw(weaken);
use Test2::API qw(test2_add_callback_testing_done context);
use Time::HiRes qw(time sleep);

use Loyalty::Test::HTTP ();
use Loyalty::Test::Util qw(free_port wait_until repo_root make_servroot
                           port_open slurp spew children_of proc_cmdline);

use Exporter 'import';
our @EXPORT_OK = qw(parallel_requests);

my @instances;      # every object created by this process, in order
my $counter = 0;
my $checks_done = 0;

$SIG{PIPE} = 'IGNORE';
$SIG{INT} = $SIG{TERM} = sub { exit 130 };   # so END blocks clean up


sub default_module {
    return $ENV{LOYALTY_MODULE}
        // repo_root() . '/build/ngx_http_loyalty_module.so';
}


sub new {
    my ($class, %o) = @_;

    my $self = bless {
        name          => $o{name} // "nginx[" . ++$counter . "]",
        nginx         => $o{nginx} // $ENV{LOYALTY_NGINX} // '/usr/sbin/nginx',
        module        => exists $o{module} ? $o{module} : default_module(),
        preload       => $o{preload} // $ENV{LOYALTY_NGINX_PRELOAD},
        workers       => $o{workers} // 1,
        log_level     => $o{log_level} // $ENV{LOYALTY_TEST_LOG_LEVEL} // 'info',
        main_config   => $o{main_config} // '',
        events_config => $o{events_config} // '',
        http_config   => $o{http_config} // '',
        config        => $o{config},
        servers       => $o{servers} // '',
        log_format    => $o{log_format},
        files         => $o{files} // {},
        vars          => $o{vars} // {},
        redis         => $o{redis},
        expect_emerg  => $o{expect_emerg} // 0,
        expect_alert  => $o{expect_alert} // 0,
        allow_log     => $o{allow_log} // [],
        quit_timeout  => $o{quit_timeout} // 10,
        port          => $o{port},
        port2         => $o{port2},
        servroot      => $o{servroot} // make_servroot('nginx'),
        owner         => $$,
        started_ever  => 0,
        mark          => 0,
        env           => $o{env} // {},
    }, $class;

    $self->{fixed_port} = defined $o{port};
    $self->{port} //= free_port();
    $self->{port2} //= free_port();

    push @instances, $self;

    $self->start unless defined $o{start} && !$o{start};

    return $self;
}


sub port      { $_[0]{port} }
sub port2     { $_[0]{port2} }
sub servroot  { $_[0]{servroot} }
sub name      { $_[0]{name} }
sub conf_path { "$_[0]{servroot}/conf/nginx.conf" }
sub error_log_path  { "$_[0]{servroot}/logs/error.log" }
sub access_log_path { "$_[0]{servroot}/logs/access.log" }
sub pid_path  { "$_[0]{servroot}/logs/nginx.pid" }


# --- configuration -------------------------------------------------------

sub _vars {
    my ($self, $root) = @_;
    my $redis = $self->{redis};
    return {
        PORT       => $self->{port},
        PORT2      => $self->{port2},
        SERVROOT   => $root // $self->{servroot},
        MODULE     => $self->{module} || '',
        ($redis ? (REDIS => $redis->addr, REDIS_PORT => $redis->port,
                   REDIS_SOCKET => $redis->socket_path) : ()),
        %{ $self->{vars} },
    };
}


sub _expand {
    my ($self, $text, $vars) = @_;
    return '' unless defined $text;
    $text =~ s{%%(\w+)%%}{
        defined $vars->{$1} ? $vars->{$1}
            : croak "unknown placeholder %%$1%% (no redis given?)"
    }ge;
    return $text;
}


# render(%overrides) -> nginx.conf text for servroot $root

sub render {
    my ($self, %o) = @_;

    my %c = (%$self, %o);
    my $root = $o{root} // $self->{servroot};
    my $vars = $self->_vars($root);
    $vars = { %$vars, %{ $o{vars} } } if $o{vars};

    my $x = sub { $self->_expand($_[0], $vars) };

    my $load = '';
    if ($c{module}) {
        $load = "load_module $c{module};\n";
    }

    my $access = "access_log $root/logs/access.log;";
    my $format = '';
    if (defined $c{log_format}) {
        (my $f = $x->($c{log_format})) =~ s/'/\\'/g;
        $format = "log_format loyalty_test '$f';";
        $access = "access_log $root/logs/access.log loyalty_test;";
    }

    my $servers = $x->($c{servers});
    if (defined $c{config}) {
        $servers = "    server {\n"
            . "        listen 127.0.0.1:$vars->{PORT};\n"
            . "        server_name localhost;\n"
            . $x->($c{config}) . "\n"
            . "    }\n" . $servers;
    }

    return <<"CONF";
# generated by Loyalty::Test::Nginx for $0
$load
worker_processes $c{workers};
master_process on;
daemon on;
pid $root/logs/nginx.pid;
error_log $root/logs/error.log $c{log_level};
worker_rlimit_nofile 16384;
@{[ $x->($c{main_config}) ]}

events {
    worker_connections 4096;
    @{[ $x->($c{events_config}) ]}
}

http {
    default_type application/octet-stream;
    client_body_temp_path $root/tmp/client_body;
    proxy_temp_path $root/tmp/proxy;
    fastcgi_temp_path $root/tmp/fastcgi;
    uwsgi_temp_path $root/tmp/uwsgi;
    scgi_temp_path $root/tmp/scgi;
    $format
    $access

@{[ $x->($c{http_config}) ]}

$servers
}
CONF
}


sub _prepare_root {
    my ($self, $root, $files, $vars) = @_;
    make_path("$root/conf", "$root/logs", "$root/tmp", "$root/html");
    chmod 0755, $root, "$root/tmp", "$root/html";
    for my $rel (sort keys %$files) {
        my $spec = $files->{$rel};
        my ($content, $mode) = ref $spec eq 'HASH'
            ? ($spec->{content}, $spec->{mode} // 0640) : ($spec, 0640);
        spew("$root/$rel", $self->_expand($content, $vars), $mode);
    }
}


sub _env_for_nginx {
    my ($self) = @_;
    my %env = %{ $self->{env} };
    $env{LD_PRELOAD} = $self->{preload} if $self->{preload};
    return %env;
}


# run a command, return (exit code, stdout+stderr)

sub _capture {
    my ($self, @cmd) = @_;
    my %env = $self->_env_for_nginx;

    pipe my $r, my $w or die "pipe: $!\n";
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        close $r;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>&', $w;
        open STDERR, '>&', $w;
        $ENV{$_} = $env{$_} for keys %env;
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print STDERR "exec $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    close $w;
    local $/;
    my $out = <$r> // '';
    close $r;
    waitpid $pid, 0;
    my $code = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return ($code, $out);
}


# --- lifecycle -----------------------------------------------------------

sub start {
    my ($self) = @_;

    croak "$self->{name} is already running" if $self->running;

    if ($self->{module} && !-f $self->{module}) {
        croak "module not built: $self->{module} (run make, or set LOYALTY_MODULE)";
    }

    my $root = $self->{servroot};

    $self->_copy_module;

    for my $attempt (1 .. 5) {
        my $vars = $self->_vars;
        $self->_prepare_root($root, $self->{files}, $vars);
        spew($self->conf_path, $self->render);
        unlink $self->pid_path;

        my ($code, $out) = $self->_capture($self->{nginx}, '-p', "$root/",
                                           '-c', $self->conf_path);
        open my $fh, '>>', "$root/logs/stderr.log";
        print $fh $out;
        close $fh;

        if ($code != 0) {
            if ($out =~ /Address already in use/ && !$self->{fixed_port}
                && $attempt < 5)
            {
                $self->{port} = free_port();
                $self->{port2} = free_port();
                next;
            }
            croak "$self->{name}: nginx failed to start (exit $code):\n$out\n"
                . "--- config:\n" . slurp($self->conf_path);
        }
        last;
    }

    $self->{started_ever} = 1;

    my $ok = wait_until(sub {
        my $pid = $self->master_pid or return 0;
        return scalar($self->worker_pids) >= $self->{workers};
    }, timeout => 10);

    croak "$self->{name}: nginx did not bring up $self->{workers} worker(s):\n"
        . $self->error_log unless $ok;

    # the listening socket exists before the master daemonizes; this only
    # proves it accepts
    wait_until(sub { port_open($self->{port}) }, timeout => 5)
        or croak "$self->{name}: port $self->{port} does not accept";

    return $self;
}


# nginx maps the .so; a `make` that rewrites build/*.so in place while a
# test runs would crash the workers (SIGSEGV), so each servroot loads its
# own copy, taken at start.

sub _copy_module {
    my ($self) = @_;
    return unless $self->{module} && !$self->{module_copy};
    my $copy = "$self->{servroot}/modules/" . File::Basename::basename($self->{module});
    make_path("$self->{servroot}/modules");
    File::Copy::copy($self->{module}, "$copy.tmp")
        or croak "copy $self->{module}: $!";
    chmod 0755, "$copy.tmp";
    rename "$copy.tmp", $copy or croak "rename $copy: $!";
    $self->{module_source} = $self->{module};
    $self->{module} = $self->{module_copy} = $copy;
}


sub master_pid {
    my ($self) = @_;
    my $pid = slurp($self->pid_path);
    $pid =~ s/\s+//g;
    return undef unless $pid =~ /^\d+$/;
    return _alive($pid) ? $pid : undef;
}


sub _alive {
    my ($pid) = @_;
    return 0 unless kill 0, $pid;
    my $stat = slurp("/proc/$pid/stat");
    return 0 if $stat =~ /\)\s+[ZX]\s/;     # zombie: gone for our purposes
    return 1;
}


sub running {
    my ($self) = @_;
    return defined $self->master_pid;
}


# Live worker processes (those shutting down after a reload excluded).

sub worker_pids {
    my ($self, %o) = @_;
    my $master = $self->master_pid or return;
    my @w;
    for my $pid (children_of($master)) {
        my $cmd = proc_cmdline($pid);
        next unless $cmd =~ /worker process/;
        next if $cmd =~ /shutting down/ && !$o{all};
        next unless _alive($pid);
        push @w, $pid;
    }
    return @w;
}


sub rss_kb {
    my ($self, $pid) = @_;
    my ($kb) = slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)\s+kB/m;
    return $kb;
}


sub fd_count {
    my ($self, $pid) = @_;
    opendir my $d, "/proc/$pid/fd" or return undef;
    my $n = grep { /^\d+$/ } readdir $d;
    return $n;
}


sub signal {
    my ($self, $sig) = @_;
    my $pid = $self->master_pid or croak "$self->{name} is not running";
    kill $sig, $pid;
}


# reload(%changes): optionally change config options (http_config,
# config, servers, files, workers, ...), rewrite nginx.conf, run
# `nginx -s reload` (signal => 1: send HUP to the master instead) and
# wait until a full set of new workers is up and the old ones stopped
# accepting.  Returns true on success, false when nginx kept the old
# workers (bad config: see last_reload_output or error_log).

sub reload {
    my ($self, %changes) = @_;

    my $master = $self->master_pid or croak "$self->{name} is not running";
    my $timeout = delete $changes{timeout} // 10;
    my $signal_only = delete $changes{signal};

    for my $k (keys %changes) {
        $self->{$k} = $changes{$k};
    }
    $self->_prepare_root($self->{servroot}, $self->{files}, $self->_vars);
    spew($self->conf_path, $self->render);

    my %old = map { $_ => 1 } $self->worker_pids(all => 1);
    my $mark = -s $self->error_log_path;

    # done when a full set of new workers runs and every old worker has
    # closed its listening sockets (exited, or titled "is shutting down"):
    # until then an old worker may still accept a connection and then
    # drop it as idle when it handles QUIT
    my $bad = 0;

    if ($signal_only) {
        kill 'HUP', $master;
    } else {
        my ($code, $out) = $self->_capture($self->{nginx}, '-p', "$self->{servroot}/",
                                           '-c', $self->conf_path, '-s', 'reload');
        if ($code != 0) {
            $self->{last_reload_output} = $out;
            return 0;
        }
    }

    my $ok = wait_until(sub {
        if (slurp($self->error_log_path, $mark) =~ /\[emerg\]/) {
            $bad = 1;
            return 1;
        }
        my @new = grep { !$old{$_} } $self->worker_pids;
        return 0 unless @new >= $self->{workers};
        my %live = map { $_ => 1 } $self->worker_pids;
        return !grep { $live{$_} } keys %old;
    }, timeout => $timeout);

    return 0 if !$ok || $bad;

    # a bad config leaves the old workers in place and logs an [emerg]
    my $slice = slurp($self->error_log_path, $mark);
    return 0 if $slice =~ /\[emerg\]/;

    return 1;
}


sub restart {
    my ($self, %changes) = @_;
    $self->stop;
    for my $k (keys %changes) {
        $self->{$k} = $changes{$k};
    }
    return $self->start;
}


# stop: QUIT (graceful), TERM after quit_timeout, KILL after 5 more s.
# A master that needed TERM is remembered and fails the end checks.

sub stop {
    my ($self) = @_;

    my $master = $self->master_pid or return $self;

    my @procs = ($master, $self->worker_pids(all => 1));

    kill 'QUIT', $master;
    my $gone = sub { !grep { _alive($_) } @procs };

    unless (wait_until($gone, timeout => $self->{quit_timeout},
                       interval => 0.05))
    {
        $self->{quit_hung} = 1;
        kill 'TERM', $master;
        unless (wait_until($gone, timeout => 5)) {
            kill 'KILL', grep { _alive($_) } @procs;
            wait_until($gone, timeout => 5);
        }
    }

    return $self;
}


# --- logs ----------------------------------------------------------------

sub error_log {
    my ($self) = @_;
    return slurp($self->error_log_path);
}

sub mark_log {
    my ($self) = @_;
    $self->{mark} = -s $self->error_log_path // 0;
    $self->{access_mark} = -s $self->access_log_path // 0;
    return $self->{mark};
}

sub error_log_since_mark {
    my ($self) = @_;
    return slurp($self->error_log_path, $self->{mark});
}

# wait_for_log(qr/.../, timeout => 2): the text since the mark once it
# matches, or undef.

sub wait_for_log {
    my ($self, $re, %o) = @_;
    my $text;
    wait_until(sub {
        $text = $self->error_log_since_mark;
        return $text =~ $re;
    }, timeout => $o{timeout} // 2) or return undef;
    return $text;
}

sub access_log {
    my ($self) = @_;
    return slurp($self->access_log_path);
}

sub access_log_since_mark {
    my ($self) = @_;
    return slurp($self->access_log_path, $self->{access_mark});
}


# --- requests ------------------------------------------------------------

# request($method, $path, body => .., headers => {..}, host => ..,
#         timeout => .., chunked => 1, raw => "...", port => ..)

sub request {
    my ($self, $method, $path, %o) = @_;
    delete @o{qw(id ts)};         # extras of Webhook::standard_request
    return Loyalty::Test::HTTP::request(port => $self->{port}, %o,
                                        method => $method, path => $path);
}


sub post {
    my ($self, $path, %o) = @_;
    return $self->request('POST', $path, %o);
}


# run_requests(n => N, gen => sub { spec }, concurrency => C, ...): see
# Loyalty::Test::HTTP::run_requests.

sub run_requests {
    my ($self, %o) = @_;
    return Loyalty::Test::HTTP::run_requests(port => $self->{port}, %o);
}


# parallel_requests($nginx, $n, sub { my ($i) = @_; return {method =>
# 'POST', path => .., body => .., headers => {..}} }, %opt): all $n
# requests in flight at once, each on its own connection, released
# together (barrier).  Returns an array ref of responses, index = $i.

sub parallel_requests {
    my ($self, $n, $gen, %o) = @_;
    return $self->run_requests(n => $n, gen => $gen, concurrency => $n, %o);
}


# background(clients => K, gen => sub { my ($client, $seq) = @_; spec })
# forks K client processes that post one request after another (a new
# connection each) until ->stop; ->stop returns every record
# { client, seq, status, error, body, corr, id (spec id) }.

sub background {
    my ($self, %o) = @_;
    return Loyalty::Test::Nginx::Background->new(nginx => $self, %o);
}


# --- must-die / nginx -t ---------------------------------------------------

# config_test(%opts) or config_test(\%opts): renders a config from this
# object's settings overridden by %opts (http_config, config, servers,
# files, ...) into a fresh directory and runs `nginx -t`.  Returns
# (exit code, output).  config_test($text) tests $text as the whole
# nginx.conf (placeholders expanded; %%SERVROOT%% is the fresh directory).
# Works as a class method too.

sub config_test {
    my ($self, @args) = @_;
    my %o = @args == 1 && ref $args[0] eq 'HASH' ? %{ $args[0] }
          : @args == 1 ? (full_config => $args[0])
          : @args;

    unless (ref $self) {
        $self = $self->new(start => 0, name => 'config_test', %o);
        $self->{no_checks} = 1;
    }

    if ($self->{module} && !-f $self->{module}) {
        croak "module not built: $self->{module}";
    }
    $self->_copy_module;

    my $root = "$self->{servroot}/t-" . ++$self->{conftests};
    my $files = $o{files} // $self->{files};
    my $vars = $self->_vars($root);
    $vars = { %$vars, %{ $o{vars} } } if $o{vars};
    $self->_prepare_root($root, $files, $vars);
    spew("$root/conf/nginx.conf", defined $o{full_config}
        ? $self->_expand($o{full_config}, $vars)
        : $self->render(%o, root => $root));

    return $self->_capture($self->{nginx}, '-t', '-p', "$root/",
                           '-c', "$root/conf/nginx.conf");
}


# --- end of file checks --------------------------------------------------

sub _bad_lines {
    my ($self) = @_;

    my $text = $self->error_log . slurp("$self->{servroot}/logs/stderr.log");
    my @bad;

    LINE: for my $l (split /\n/, $text) {
        for my $re (@{ $self->{allow_log} }) {
            next LINE if $l =~ $re;
        }
        if ($l =~ /open socket #\d+ left in connection/
            || $l =~ /AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:/
            || (!$self->{expect_alert} && $l =~ /\[alert\]/)
            || (!$self->{expect_emerg} && $l =~ /\[emerg\]/))
        {
            push @bad, $l;
        }
    }
    return @bad;
}


sub end_checks {
    my ($self) = @_;

    return if $self->{checked}++ || $self->{no_checks} || !$self->{started_ever};

    $self->stop;

    my @bad = $self->_bad_lines;
    my $ctx = context();
    $ctx->ok(!@bad, "$self->{name}: error log free of [alert], [emerg], "
                    . "open sockets and sanitizer reports",
             [ @bad ? ('offending lines:', @bad[0 .. ($#bad < 19 ? $#bad : 19)]) : () ]);
    $ctx->ok(!$self->{quit_hung},
             "$self->{name}: all processes exited on QUIT within "
             . "$self->{quit_timeout} s",
             [ $self->{quit_hung} ? ('nginx needed TERM; error log tail:',
                 (split /\n/, $self->error_log)[-10 .. -1]) : () ]);
    $ctx->release;
}


test2_add_callback_testing_done(sub {
    return if $checks_done++;
    for my $n (@instances) {
        next unless $n->{owner} == $$;
        $n->end_checks;
    }
});


sub _cleanup {
    my ($self) = @_;
    return unless $self->{owner} == $$;
    if (my $m = $self->master_pid) {
        kill 'TERM', $m;
        wait_until(sub { !_alive($m) }, timeout => 5) or kill 'KILL', $m;
    }
    return if $self->{cleaned}++;
    if ($ENV{LOYALTY_TEST_KEEP}) {
        print STDERR "# kept nginx servroot $self->{servroot}\n";
    } else {
        remove_tree($self->{servroot});
    }
}


END {
    local ($@, $!, $?);
    $_->_cleanup for @instances;
}


package Loyalty::Test::Nginx::Background;

use strict;
use warnings;

use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

use Loyalty::Test::Util qw(slurp wait_until);

sub new {
    my ($class, %o) = @_;

    my $ngx = $o{nginx};
    my $dir = $ngx->servroot . '/bg-' . int(time * 1000) . "-$$";
    mkdir $dir or die "mkdir $dir: $!\n";

    my $self = bless { dir => $dir, kids => [], nginx => $ngx }, $class;
    my $clients = $o{clients} // 4;
    my $gen = $o{gen} or die "background: gen required\n";
    my $pause = $o{pause} // 0;

    for my $k (0 .. $clients - 1) {
        my $pid = fork // die "fork: $!\n";
        if ($pid == 0) {
            my $json = JSON::PP->new->canonical;
            open my $out, '>', "$dir/client-$k.jsonl" or POSIX::_exit(1);
            select((select($out), $| = 1)[0]);
            my $seq = 0;
            until (-e "$dir/stop") {
                my $spec = $gen->($k, $seq);
                my $r = Loyalty::Test::HTTP::request(port => $ngx->port,
                    timeout => 10, %$spec);
                print $out $json->encode({
                    client => $k, seq => $seq, status => $r->{status},
                    error => $r->{error}, body => $r->{body},
                    corr => $r->{headers}{'x-correlation-id'},
                    retry_after => $r->{headers}{'retry-after'},
                    id => $spec->{id}, t => time,
                }), "\n";
                $seq++;
                sleep $pause if $pause;
            }
            close $out;
            POSIX::_exit(0);     # no END blocks, no DESTROY in children
        }
        push @{ $self->{kids} }, $pid;
    }

    return $self;
}


# count(): records written so far (all clients)
sub count {
    my ($self) = @_;
    my $n = 0;
    for my $f (glob "$self->{dir}/client-*.jsonl") {
        $n += () = slurp($f) =~ /\n/g;
    }
    return $n;
}


# records(): what the clients have recorded so far (they keep running)
sub records {
    my ($self) = @_;
    my $json = JSON::PP->new;
    my @rec;
    for my $f (sort glob "$self->{dir}/client-*.jsonl") {
        # parse each file incrementally: only whole lines, once
        my $c = $self->{cache}{$f} //= { off => 0, recs => [] };
        my $new = slurp($f, $c->{off});
        my $end = rindex $new, "\n";
        if ($end >= 0) {
            for my $l (split /\n/, substr $new, 0, $end) {
                my $r = eval { $json->decode($l) } or next;
                push @{ $c->{recs} }, $r;
            }
            $c->{off} += $end + 1;
        }
        push @rec, @{ $c->{recs} };
    }
    return \@rec;
}


sub stop {
    my ($self) = @_;
    open my $fh, '>', "$self->{dir}/stop";
    close $fh;
    for my $pid (@{ $self->{kids} }) {
        my $deadline = time + 20;
        while (waitpid($pid, POSIX::WNOHANG()) == 0) {
            if (time > $deadline) {
                kill 'KILL', $pid;
                waitpid $pid, 0;
                last;
            }
            sleep 0.02;
        }
    }
    $self->{kids} = [];

    return $self->records;
}


sub DESTROY {
    my ($self) = @_;
    local ($@, $!, $?);
    for my $pid (@{ $self->{kids} || [] }) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
}


1;
