package Loyalty::Test::Worker;

# build/loyalty-worker for the worker tests, and a webhook receiver.
#
#   my $path = write_config($dir, redis => $redis, stores => [..],
#       destinations => [{ name, url, secret, timeout_ms, ... }],
#       flows => [{ to => 'hooks', on => [..], ... }], %top_level_keys);
#       secrets are written to files next to the config
#   my $w = Loyalty::Test::Worker->new(config => $path);   # started
#   $w->pid; $w->log; $w->log_lines;     # stderr, one JSON object a line
#   $w->stop;                            # TERM, wait: returns the exit code
#   $w->kill;                            # KILL, wait
#   check_config($path)                  # (exit code, output) of -t -c
#   temp_dir($prefix)                    # removed at the end of the file
#
#   my $rx = Loyalty::Test::Receiver->new;   # forked HTTP/1.1 server
#   $rx->url('/hook'); $rx->requests;        # [{id, ts, sig, corr, body}]
#   $rx->fail(@ids); $rx->status(503);       # answer 500 for those ids /
#                                            # this status for all
#   $rx->delay(0.1);                         # before each answer
#   $rx->script(evt_1 => '503 503 200', evt_2 => '429/1 200');
#       the n-th request for that id gets the n-th status (the last one
#       repeats); "429/1" adds Retry-After: 1, "429/@2" an HTTP date 2 s
#       ahead
#   sw_verify($secret, $req)                 # Standard Webhooks check
#   envelope_fields($store, $id, %override)  # a valid envelope v1 as a
#                                            # field/value list (an undef
#                                            # override drops the field)
#   xadd_envelope($redis, $store, $id, %o)   # XADD it to loyalty:{S}:in:
#                                            # the entry id; dies on error

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use MIME::Base64 qw(decode_base64 encode_base64);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

use Loyalty::Test::Util qw(free_port wait_until repo_root make_servroot
                           pid_alive slurp spew spawn_child);

use Exporter 'import';
our @EXPORT_OK = qw(write_config check_config worker_bin sw_verify
                    new_whsec temp_dir envelope_fields xadd_envelope);

my $JSON = JSON::PP->new->utf8->canonical;
my @instances;
my @dirs;
my $owner = $$;


# a directory removed at the end of the test file (kept with
# LOYALTY_TEST_KEEP=1)
sub temp_dir {
    my ($prefix) = @_;
    my $dir = make_servroot($prefix);
    push @dirs, $dir;
    return $dir;
}


sub envelope_fields {
    my ($store, $id, %o) = @_;
    my %env = (v => 1, id => $id, src => 'standard', store => $store,
               type => 'order.paid', occurred => '2026-11-24T09:30:00Z',
               received => int(Time::HiRes::time() * 1000),
               corr => "c-$id", data => '{"order":{"id":"1"}}', %o);
    my @order = qw(v id src store type topic occurred received corr email
                   ext_id store_cid phone data);
    my %known = map { $_ => 1 } @order;
    return map { defined $env{$_} ? ($_ => $env{$_}) : () }
           @order, sort grep { !$known{$_} } keys %env;
}


sub xadd_envelope {
    my ($redis, $store, $id, %o) = @_;
    my $key = delete $o{key} // "loyalty:{$store}:in";
    my $r = $redis->cmd('XADD', $key, '*', envelope_fields($store, $id, %o));
    die "XADD: $r\n" if Loyalty::Test::Redis::is_error($r);
    return $r;
}


sub worker_bin {
    return $ENV{LOYALTY_WORKER} // repo_root() . '/build/loyalty-worker';
}


sub new_whsec {
    my $key = join '', map { chr int rand 256 } 1 .. 24;
    return 'whsec_' . encode_base64($key, '');
}


sub _yaml_list { '[' . join(', ', map { "\"$_\"" } @{ $_[0] }) . ']' }


sub write_config {
    my ($dir, %o) = @_;

    my $y = '';
    $y .= "redis: " . ($o{redis_addr} // $o{redis}->addr) . "\n";
    $y .= "stores: " . _yaml_list($o{stores}) . "\n";
    $y .= "destinations:\n";

    for my $d (@{ $o{destinations} }) {
        my $sf = $d->{secret_file} // "$dir/$d->{name}.whsec";
        spew($sf, "$d->{secret}\n", 0600) if defined $d->{secret};
        $y .= "  - name: $d->{name}\n";
        $y .= "    type: " . ($d->{type} // 'webhook') . "\n";
        $y .= "    url: $d->{url}\n";
        $y .= "    secret_file: $sf\n";
        for my $k (qw(timeout_ms connect_timeout_ms concurrency rate burst)) {
            $y .= "    $k: $d->{$k}\n" if defined $d->{$k};
        }
    }

    $y .= "flows:\n";
    for my $f (@{ $o{flows} }) {
        $y .= "  - to: $f->{to}\n";
        for my $k (qw(stores from on)) {
            $y .= "    $k: " . _yaml_list($f->{$k}) . "\n" if $f->{$k};
        }
    }

    for my $k (qw(claim_timeout_ms claim_interval_ms block_ms batch
                  shutdown_timeout_ms retry_base_ms retry_cap_ms
                  max_attempts retry_interval_ms trim_interval_ms
                  consumer_gc_ms redis_password_file redis_db log_level
                  metrics))
    {
        $y .= "$k: $o{$k}\n" if defined $o{$k};
    }

    my $path = "$dir/" . ($o{file} // 'loyalty-worker.yaml');
    spew($path, $y);
    return $path;
}


sub check_config {
    my ($path) = @_;
    my $bin = worker_bin();
    my $out = `$bin -t -c '$path' 2>&1`;
    return ($? >> 8, $out);
}


sub new {
    my ($class, %o) = @_;
    my $self = bless {
        config => $o{config},
        dir    => $o{dir} // temp_dir('worker'),
        owner  => $$,
    }, $class;
    push @instances, $self;
    $self->start;
    return $self;
}


sub log_file { "$_[0]{dir}/worker.log" }
sub pid { $_[0]{pid} }
sub log { slurp($_[0]->log_file) }


sub log_lines {
    my ($self) = @_;
    my @l;
    for (split /\n/, $self->log) {
        my $v = eval { $JSON->decode($_) };
        push @l, $v // { unparsed => $_ };
    }
    return @l;
}


sub start {
    my ($self) = @_;
    my @argv = (worker_bin(), '-c', $self->{config});
    $self->{pid} = spawn_child(\@argv, log => $self->log_file);
    return $self;
}


sub running { pid_alive($_[0]{pid}) }


# TERM, then wait up to $timeout: the exit code, or -1 after a KILL
sub stop {
    my ($self, $timeout) = @_;
    return undef unless $self->{pid};
    kill 'TERM', $self->{pid};
    my $code = $self->_wait($timeout // 20);
    unless (defined $code) {
        kill 'KILL', $self->{pid};
        waitpid $self->{pid}, 0;
        $code = -1;
    }
    $self->{pid} = undef;
    return $code;
}


sub kill {
    my ($self) = @_;
    return unless $self->{pid};
    CORE::kill('KILL', $self->{pid});
    waitpid $self->{pid}, 0;
    $self->{pid} = undef;
}


sub _wait {
    my ($self, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        my $r = waitpid $self->{pid}, WNOHANG;
        if ($r == $self->{pid}) {
            return WIFEXITED($?) ? WEXITSTATUS($?) : 128 + WTERMSIG($?);
        }
        sleep 0.02;
    }
    return undef;
}


sub DESTROY {
    my ($self) = @_;
    local ($@, $!, $?);
    $self->kill if $self->{pid} && $self->{owner} == $$;
}


END {
    for my $w (grep { defined } @instances) {
        local ($@, $!, $?);
        $w->kill if $w->{pid} && $w->{owner} == $$;
    }

    # a sanitizer report in any worker's log (make test-asan) fails the
    # file: Test::More turns this exit status into a failure
    if ($$ == $owner) {
        for my $w (grep { defined } @instances) {
            my $log = eval { $w->log } // '';
            my @bad = grep { /ERROR: \w+Sanitizer|runtime error:|SUMMARY: \w+Sanitizer/ }
                      split /\n/, $log;
            next unless @bad;
            print STDERR "# sanitizer report in ", $w->log_file, ":\n",
                map { "#   $_\n" } @bad[0 .. ($#bad < 9 ? $#bad : 9)];
            $? = 255;
        }
    }

    if ($$ == $owner) {
        local ($@, $!, $?);
        if ($ENV{LOYALTY_TEST_KEEP}) {
            print STDERR "# kept $_\n" for @dirs;
        } else {
            require File::Path;
            File::Path::remove_tree($_) for @dirs;
        }
    }
}


# Standard Webhooks: "v1,<base64 HMAC-SHA256(key, id.ts.body)>"
sub sw_verify {
    my ($secret, $req) = @_;
    (my $b64 = $secret) =~ s/^whsec_//;
    my $key = decode_base64($b64);
    my $want = encode_base64(
        hmac_sha256("$req->{id}.$req->{ts}.$req->{body}", $key), '');
    for my $s (split ' ', $req->{sig} // '') {
        return 1 if $s eq "v1,$want";
    }
    return 0;
}


package Loyalty::Test::Receiver;

# A keep-alive HTTP/1.1 server in a forked child; every request is
# appended to requests.log as one JSON line before it is answered.

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

use Loyalty::Test::Util qw(die_with_parent free_port make_servroot slurp spew
                           wait_until port_open);

my $RJSON = JSON::PP->new->utf8->canonical;


sub new {
    my ($class, %o) = @_;
    my $self = bless { dir => Loyalty::Test::Worker::temp_dir('receiver'),
                       owner => $$ }, $class;
    spew("$self->{dir}/requests.log", '');

    my $sock;
    for (1 .. 20) {
        $self->{port} = free_port();
        $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => $self->{port}, Listen => 128, ReuseAddr => 1,
            Proto => 'tcp') and last;
    }
    die "receiver: cannot listen: $!\n" unless $sock;

    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        die_with_parent();
        $self->_serve($sock);
        POSIX::_exit(0);
    }
    close $sock;
    $self->{pid} = $pid;
    return $self;
}


sub port { $_[0]{port} }
sub url { "http://127.0.0.1:$_[0]{port}" . ($_[1] // '/hook') }


sub fail {
    my ($self, @ids) = @_;
    spew("$self->{dir}/fail.tmp", join('', map { "$_\n" } @ids));
    rename "$self->{dir}/fail.tmp", "$self->{dir}/fail";
}


sub status {
    my ($self, $st) = @_;
    spew("$self->{dir}/status.tmp", defined $st ? "$st\n" : '');
    rename "$self->{dir}/status.tmp", "$self->{dir}/status";
}


sub script {
    my ($self, %s) = @_;
    spew("$self->{dir}/script.tmp",
         join('', map { "$_ $s{$_}\n" } sort keys %s));
    rename "$self->{dir}/script.tmp", "$self->{dir}/script";
}


sub delay {
    my ($self, $sec) = @_;
    spew("$self->{dir}/delay.tmp", $sec // 0);
    rename "$self->{dir}/delay.tmp", "$self->{dir}/delay";
}


sub requests {
    my ($self) = @_;
    my @r;
    for (split /\n/, slurp("$self->{dir}/requests.log")) {
        push @r, $RJSON->decode($_);
    }
    return \@r;
}


sub _serve {
    my ($self, $listen) = @_;
    my $sel = IO::Select->new($listen);
    my (%buf, %seen);

    open my $log, '>>', "$self->{dir}/requests.log" or die;
    binmode $log;
    $log->autoflush(1);

    for (;;) {
        for my $s ($sel->can_read(1)) {
            if ($s == $listen) {
                my $c = $listen->accept or next;
                $sel->add($c);
                $buf{fileno $c} = '';
                next;
            }

            my $fd = fileno $s;
            my $n = sysread $s, $buf{$fd}, 65536, length $buf{$fd};
            if (!$n) {
                $sel->remove($s);
                delete $buf{$fd};
                close $s;
                next;
            }

            while ((my $end = index $buf{$fd}, "\r\n\r\n") >= 0) {
                my $head = substr $buf{$fd}, 0, $end;
                my ($line, @hl) = split /\r\n/, $head;
                my %h;
                for (@hl) {
                    my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
                    $h{lc $k} = $v;
                }
                my $len = $h{'content-length'} // 0;
                last if length($buf{$fd}) < $end + 4 + $len;
                my $body = substr $buf{$fd}, $end + 4, $len;
                substr $buf{$fd}, 0, $end + 4 + $len, '';

                my $id = $h{'webhook-id'} // '';
                my $st = 204;
                my $dflt = slurp("$self->{dir}/status");
                $st = $1 if $dflt =~ /(\d{3})/;
                my %fail = map { $_ => 1 }
                    split /\n/, slurp("$self->{dir}/fail");
                $st = 500 if $fail{$id};

                my $extra = '';
                my %script = map { split / /, $_, 2 }
                    split /\n/, slurp("$self->{dir}/script");
                if (defined $script{$id}) {
                    my @seq = split ' ', $script{$id};
                    my $tok = $seq[ $seen{$id}++ ] // $seq[-1];
                    my ($code, $ra) = split m{/}, $tok;
                    $st = $code;
                    if (defined $ra && $ra =~ /^@(\d+)$/) {
                        $ra = POSIX::strftime('%a, %d %b %Y %H:%M:%S GMT',
                                              gmtime(time + $1));
                    }
                    $extra = "Retry-After: $ra\r\n" if defined $ra;
                }

                my $delay = slurp("$self->{dir}/delay");
                sleep $delay if $delay =~ /^[\d.]+$/ && $delay > 0;

                my $rb = $st == 204 ? '' : "{\"status\":$st}";
                my $resp = "HTTP/1.1 $st X\r\n${extra}Content-Length: "
                    . length($rb) . "\r\n\r\n$rb";
                my $ok = syswrite $s, $resp;

                # logged once answered: a request in the log got its answer
                print $log $RJSON->encode({ line => $line, id => $id,
                    ts => $h{'webhook-timestamp'},
                    sig => $h{'webhook-signature'},
                    corr => $h{'x-correlation-id'},
                    ctype => $h{'content-type'},
                    answered => $ok ? 1 : 0,
                    status => $st, body => $body, t => time }), "\n";
            }
        }
    }
}


sub DESTROY {
    my ($self) = @_;
    local ($@, $!, $?);
    return unless $self->{owner} == $$ && $self->{pid};
    kill 'KILL', $self->{pid};
    waitpid $self->{pid}, 0;
    $self->{pid} = undef;
}


1;
