package Loyalty::Test::HTTP;

# A small HTTP/1.1 client for the edge tests, core Perl only.
#
#   request(port => P, method => 'POST', path => '/x', body => ..,
#           headers => {..} | [name, value, ...], host => 'a.example')
#       one request on a fresh connection (Connection: close), blocking;
#       returns a response hash (see below).
#
#   run_requests(port => P, n => N, gen => sub { my ($i) = @_; {..spec..} },
#                concurrency => C, pipeline => 0|1, barrier => 0|1,
#                timeout => SECONDS)
#       N requests over C connections with IO::Select; all C connections
#       have a request in flight at the same time.  C < N means keep-alive
#       reuse (or pipelining with pipeline => 1).  barrier => 1 (default
#       when C == N) writes every request but its last byte on every
#       connection first, then the last bytes, so nginx sees all requests
#       complete at (nearly) the same moment.  Returns an array ref of
#       responses indexed like the requests.
#
# A response is { status, reason, headers => { lower-cased name => value },
# header_list => [ [name, value], ... ], body, elapsed, error }.  A
# transport failure (refused, reset, timeout, EOF before a full response)
# gives status 599 and a true `error`, like HTTP::Tiny.

use strict;
use warnings;

use Carp qw(croak);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select;
use IO::Socket::INET;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time);

use Exporter 'import';
our @EXPORT_OK = qw(request run_requests build_request parse_response);

$SIG{PIPE} = 'IGNORE';


sub build_request {
    my (%o) = @_;

    my $method = $o{method} // 'GET';
    my $path = $o{path} // '/';
    my $body = $o{body};
    my $hdrs = $o{headers} // {};

    my @pairs = ref $hdrs eq 'ARRAY'
        ? @$hdrs
        : map { ($_, $hdrs->{$_}) } sort keys %$hdrs;

    my (@lines, %have);

    while (@pairs) {
        my ($name, $value) = splice @pairs, 0, 2;
        $have{lc $name} = 1;
        for my $v (ref $value eq 'ARRAY' ? @$value : ($value)) {
            push @lines, "$name: $v";
        }
    }

    unshift @lines, 'Host: ' . ($o{host} // 'localhost') unless $have{host};

    unless ($have{connection}) {
        push @lines, 'Connection: ' . ($o{keepalive} ? 'keep-alive' : 'close');
    }

    if (!defined $body && $method =~ /^(?:POST|PUT|PATCH)$/
        && !$o{no_content_length})
    {
        $body = '';
    }

    my $payload = '';

    if ($o{chunked}) {
        push @lines, 'Transfer-Encoding: chunked' unless $have{'transfer-encoding'};
        my $size = $o{chunk_size} || 1024;
        my $b = $body // '';
        for (my $off = 0; $off < length $b; $off += $size) {
            my $part = substr $b, $off, $size;
            $payload .= sprintf("%x\r\n", length $part) . $part . "\r\n";
        }
        $payload .= "0\r\n\r\n";

    } elsif (defined $body) {
        push @lines, 'Content-Length: ' . length($body)
            unless $have{'content-length'} || $o{no_content_length};
        $payload = $body;
    }

    my $proto = $o{http10} ? 'HTTP/1.0' : 'HTTP/1.1';

    return "$method $path $proto\r\n" . join('', map { "$_\r\n" } @lines)
        . "\r\n" . $payload;
}


# parse_response(\$buf, $method, $eof): returns ($resp, $consumed) when a
# whole response sits at the start of $buf, else an empty list.

sub parse_response {
    my ($bufref, $method, $eof) = @_;

    my $off = 0;

    for (;;) {
        my $end = index $$bufref, "\r\n\r\n", $off;
        return if $end < 0;

        my $head = substr $$bufref, $off, $end - $off;
        my ($status_line, @hl) = split /\r\n/, $head;

        my ($status, $reason) = $status_line =~ m{^HTTP/\d\.\d\s+(\d{3})\s*(.*)$}
            or return ({ status => 599, error => "bad status line: $status_line",
                         headers => {}, header_list => [], body => '' },
                       length $$bufref);

        my (%h, @list);
        for my $l (@hl) {
            my ($n, $v) = $l =~ /^([^:]+):\s*(.*?)\s*$/ or next;
            push @list, [$n, $v];
            $h{lc $n} = exists $h{lc $n} ? "$h{lc $n}, $v" : $v;
        }

        my $body_start = $end + 4;

        if ($status >= 100 && $status < 200 && $status != 101) {
            $off = $body_start;            # skip 100 Continue and friends
            next;
        }

        my $resp = { status => $status, reason => $reason, headers => \%h,
                     header_list => \@list, body => '' };

        if (($method // '') eq 'HEAD' || $status == 204 || $status == 304) {
            return ($resp, $body_start);
        }

        if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
            my $p = $body_start;
            my $body = '';
            for (;;) {
                my $le = index $$bufref, "\r\n", $p;
                return if $le < 0;
                my ($hex) = substr($$bufref, $p, $le - $p) =~ /^([0-9a-fA-F]+)/
                    or return ({ %$resp, status => 599,
                                 error => 'bad chunk size' }, length $$bufref);
                my $size = hex $hex;
                $p = $le + 2;
                if ($size == 0) {
                    # trailers until an empty line
                    for (;;) {
                        my $te = index $$bufref, "\r\n", $p;
                        return if $te < 0;
                        my $empty = $te == $p;
                        $p = $te + 2;
                        last if $empty;
                    }
                    $resp->{body} = $body;
                    return ($resp, $p);
                }
                return if length($$bufref) < $p + $size + 2;
                $body .= substr $$bufref, $p, $size;
                $p += $size + 2;
            }
        }

        if (defined $h{'content-length'}) {
            my $len = $h{'content-length'};
            return if length($$bufref) < $body_start + $len;
            $resp->{body} = substr $$bufref, $body_start, $len;
            return ($resp, $body_start + $len);
        }

        # no length: the body ends at EOF
        return unless $eof;
        $resp->{body} = substr $$bufref, $body_start;
        return ($resp, length $$bufref);
    }
}


sub _connect {
    my ($addr, $port, $timeout) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => $addr, PeerPort => $port,
                                  Proto => 'tcp', Timeout => $timeout // 5)
        or return (undef, "connect $addr:$port: $!");
    setsockopt $s, IPPROTO_TCP, TCP_NODELAY, 1;
    binmode $s;
    return ($s, undef);
}


sub _error_resp {
    my ($err, $start) = @_;
    return { status => 599, reason => 'Internal Exception', error => $err,
             headers => {}, header_list => [], body => '',
             elapsed => time - ($start // time) };
}


sub request {
    my (%o) = @_;

    my $port = $o{port} // croak 'request: port required';
    my $timeout = $o{timeout} // 30;
    my $start = time;

    my ($s, $err) = _connect($o{addr} // '127.0.0.1', $port, $timeout);
    return _error_resp($err, $start) unless $s;

    my $raw = $o{raw} // build_request(%o, keepalive => 0);

    # a server may answer (413, 405) and close before reading all of a
    # large body: write errors are remembered, and the reply read anyway
    my $werr;
    my $sel = IO::Select->new($s);
    my $woff = 0;
    while ($woff < length $raw) {
        my $n = syswrite $s, $raw, 65536, $woff;
        if (!defined $n) {
            next if $! == EINTR;
            $werr = "write: $!";
            last;
        }
        $woff += $n;
        last if $o{abort_after_write} && $woff >= length $raw;
    }

    if ($o{close_after_write}) {
        close $s;
        return { status => 0, error => 'closed by client on purpose',
                 headers => {}, header_list => [], body => '',
                 elapsed => time - $start };
    }

    my $buf = '';
    my $deadline = $start + $timeout;

    for (;;) {
        my ($resp, $used) = parse_response(\$buf, $o{method}, 0);
        if ($resp) {
            $resp->{elapsed} = time - $start;
            close $s;
            return $resp;
        }

        my $left = $deadline - time;
        if ($left <= 0) {
            close $s;
            return _error_resp('timeout' . ($werr ? " ($werr)" : ''), $start);
        }

        next unless $sel->can_read($left);

        my $n = sysread $s, $buf, 65536, length $buf;

        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            my $e = "read: $!";
            # a reset after a complete reply is still a reply
            ($resp) = parse_response(\$buf, $o{method}, 1);
            close $s;
            if ($resp) {
                $resp->{elapsed} = time - $start;
                return $resp;
            }
            return _error_resp($e . ($werr ? " ($werr)" : ''), $start);
        }

        if ($n == 0) {
            ($resp) = parse_response(\$buf, $o{method}, 1);
            close $s;
            if ($resp) {
                $resp->{elapsed} = time - $start;
                return $resp;
            }
            return _error_resp('EOF before a complete response'
                               . ($werr ? " ($werr)" : ''), $start);
        }
    }
}


sub run_requests {
    my (%o) = @_;

    my $port = $o{port} // croak 'run_requests: port required';
    my $addr = $o{addr} // '127.0.0.1';
    my $n = $o{n} // ($o{requests} ? scalar @{ $o{requests} } : croak 'n required');
    my $gen = $o{gen} // sub { $o{requests}[$_[0]] };
    my $conc = $o{concurrency} // $n;
    $conc = $n if $conc > $n;
    my $pipeline = $o{pipeline} // 0;
    my $barrier = $o{barrier} // ($conc == $n && !$pipeline ? 1 : 0);
    my $timeout = $o{timeout} // 120;
    my $start = time;
    my $deadline = $start + $timeout;

    my @results;
    my $next = 0;          # next request index to hand out
    my $done = 0;

    my $sel_r = IO::Select->new;
    my $sel_w = IO::Select->new;
    my %conn;              # fileno => conn

    my $open = sub {
        my ($c) = @_;
        my ($s, $err) = _connect($addr, $port, 10);
        unless ($s) {
            return $err;
        }
        $s->blocking(0);
        $c->{sock} = $s;
        $c->{rbuf} = '';
        $c->{wbuf} = '';
        $c->{uses} = 0;
        $conn{fileno $s} = $c;
        $sel_r->add($s);
        return;
    };

    my $close = sub {
        my ($c) = @_;
        return unless $c->{sock};
        delete $conn{fileno $c->{sock}};
        $sel_r->remove($c->{sock});
        $sel_w->remove($c->{sock});
        close $c->{sock};
        $c->{sock} = undef;
    };

    my $fail_inflight = sub {
        my ($c, $err) = @_;
        for my $i (@{ $c->{inflight} }) {
            $results[$i] = _error_resp($err, $c->{started}{$i});
            $results[$i]{index} = $i;
            $done++;
        }
        $c->{inflight} = [];
    };

    my $queue_req = sub {
        my ($c, $i, $hold_last) = @_;
        my $spec = $gen->($i);
        my $raw = $spec->{raw}
            // build_request(%$spec, keepalive => 1);
        $c->{started}{$i} = time;
        push @{ $c->{inflight} }, $i;
        push @{ $c->{methods} }, $spec->{method} // 'GET';
        if ($hold_last) {
            $c->{wbuf} .= substr $raw, 0, -1;
            $c->{hold} = substr $raw, -1;
        } else {
            $c->{wbuf} .= $raw;
        }
        $sel_w->add($c->{sock});
    };

    my @conns = map { { id => $_, inflight => [], methods => [] } } 0 .. $conc - 1;

    # pipelining hands every connection its share at once
    my @share;
    if ($pipeline) {
        push @{ $share[$_ % $conc] }, $_ for 0 .. $n - 1;
        $next = $n;
    }

    for my $c (@conns) {
        if (my $err = $open->($c)) {
            if ($pipeline) {
                $c->{inflight} = $share[$c->{id}];
                $fail_inflight->($c, $err);
            } elsif ($next < $n) {
                my $i = $next++;
                $results[$i] = _error_resp($err, time);
                $done++;
            }
            next;
        }
        if ($pipeline) {
            $queue_req->($c, $_, 0) for @{ $share[$c->{id}] };
        } elsif ($next < $n) {
            $queue_req->($c, $next++, $barrier);
        }
    }

    my $released = !$barrier;

    while ($done < $n) {
        my $left = $deadline - time;
        if ($left <= 0) {
            for my $c (@conns) {
                $fail_inflight->($c, 'timeout');
                $close->($c);
            }
            last;
        }

        if (!$released) {
            my $pending = grep { $_->{sock} && length $_->{wbuf} } @conns;
            if (!$pending) {
                for my $c (grep { $_->{sock} && defined $_->{hold} } @conns) {
                    $c->{wbuf} .= delete $c->{hold};
                    $sel_w->add($c->{sock});
                }
                $released = 1;
            }
        }

        my ($r, $w) = IO::Select->select($sel_r, $sel_w, undef,
                                         $left < 1 ? $left : 1);
        next unless $r || $w;

        for my $s (@{ $w || [] }) {
            my $c = $conn{fileno $s} or next;
            if (length $c->{wbuf}) {
                my $k = syswrite $s, $c->{wbuf};
                if (defined $k) {
                    substr $c->{wbuf}, 0, $k, '';
                } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                    # let the read side collect a possible early answer
                    $c->{wbuf} = '';
                    $c->{write_error} = "$!";
                }
            }
            $sel_w->remove($s) unless length $c->{wbuf};
        }

        for my $s (@{ $r || [] }) {
            my $c = $conn{fileno $s} or next;
            my $k = sysread $s, $c->{rbuf}, 65536, length $c->{rbuf};
            my $eof = 0;
            if (!defined $k) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                $c->{read_error} = "$!";
                $eof = 1;
            } elsif ($k == 0) {
                $eof = 1;
            }

            my $server_closes = 0;

            while (@{ $c->{inflight} }) {
                my ($resp, $used) = parse_response(\$c->{rbuf},
                                                   $c->{methods}[0], $eof);
                last unless $resp;
                substr $c->{rbuf}, 0, $used, '';
                my $i = shift @{ $c->{inflight} };
                shift @{ $c->{methods} };
                $resp->{elapsed} = time - $c->{started}{$i};
                $resp->{index} = $i;
                $resp->{conn} = $c->{id};
                $results[$i] = $resp;
                $done++;
                $c->{uses}++;
                $server_closes = 1
                    if ($resp->{headers}{connection} // '') =~ /close/i;
            }

            if ($eof || $server_closes) {
                $fail_inflight->($c, $c->{read_error}
                    ? "read: $c->{read_error}" : 'EOF before a complete response');
                $close->($c);
                if (!$pipeline && $next < $n && $done < $n) {
                    if (my $err = $open->($c)) {
                        my $i = $next++;
                        $results[$i] = _error_resp($err, time);
                        $done++;
                    } else {
                        $queue_req->($c, $next++, 0);
                    }
                }
                next;
            }

            if (!$pipeline && !@{ $c->{inflight} } && $next < $n) {
                $queue_req->($c, $next++, 0);
            }
        }

        # connections that went idle with nothing left to do
        if (!$pipeline && $next >= $n) {
            for my $c (@conns) {
                $close->($c) if $c->{sock} && !@{ $c->{inflight} };
            }
        }
    }

    $close->($_) for @conns;

    return \@results;
}


1;
