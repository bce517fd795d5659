package Loyalty::Test::Pipeline;

# The whole pipeline for the end-to-end tests (t/e2e): a real
# redis-server, nginx with the module (one Standard Webhooks location per
# store), the sandbox with one hooks receiver per destination, and
# loyalty-worker processes draining the stores into those receivers.
#
#   my $p = Loyalty::Test::Pipeline->new(stores => [qw(eu us)],
#       receivers => [qw(crm)], redis_opts => {...});
#   $p->redis; $p->nginx; $p->sandbox;
#   my $r = $p->send('eu', id => 'evt_1', type => 'order.paid');
#       # { status, id, corr } after a signed POST to nginx
#   my $cfg = $p->worker_config(flows => [...], destinations => {crm =>
#       {rate => 20}}, %top_level);          # written to a temp dir
#   my $w = $p->worker($cfg);                # Loyalty::Test::Worker
#   $p->load(store => 'eu', n => 500, rate => 100, out => $file);
#       # a forked sender: posts n events at about `rate`/s, retrying 503
#       # and transport errors like a real sender; appends "id status corr"
#       # per accepted event to $file; returns its pid
#   $p->accepted($file)                      # { id => corr } of 202s,
#       # { id => '' } for a 200 duplicate (an earlier try had landed)
#   $p->held('crm')                          # the receiver's state
#   $p->drained(@stores)                     # pending 0, retry 0
#   $p->dlq('eu')                            # the dead letters
#   $p->sf_destination(concurrency => 2)     # YAML of a salesforce
#       # destination on the sandbox (after "- name: X"), see below

use strict;
use warnings;

use JSON::PP ();
use Test::More ();
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

use Loyalty::Test::Edge;
use Loyalty::Test::Sandbox;
use Loyalty::Test::Util qw(wait_until slurp spew);
use Loyalty::Test::Webhook qw(standard_request new_secret);
use Loyalty::Test::Worker qw(write_config new_whsec temp_dir);

my $JSON = JSON::PP->new->utf8->canonical;


sub new {
    my ($class, %o) = @_;
    my $self = bless {
        stores    => $o{stores} // ['eu'],
        receivers => $o{receivers} // ['crm'],
        edge_secret => new_secret(),
        hook_secret => {},
        seq       => 0,
    }, $class;

    my $locations = join "\n", map {
        "location = /in/$_ { loyalty_webhook standard; "
        . "loyalty_secret $self->{edge_secret}; loyalty_store $_; }"
    } @{ $self->{stores} };
    @$self{qw(redis nginx)} = edge_setup(config => $locations,
        redis_opts => $o{redis_opts} // {}, %{ $o{nginx_opts} // {} });

    $self->{sandbox} = Loyalty::Test::Sandbox->new;
    for my $name (@{ $self->{receivers} }) {
        $self->{hook_secret}{$name} = new_whsec();
        $self->{sandbox}->receiver($name, $self->{hook_secret}{$name});
    }
    $self->{dir} = temp_dir('pipeline');
    return $self;
}


sub redis   { $_[0]{redis} }
sub nginx   { $_[0]{nginx} }
sub sandbox { $_[0]{sandbox} }
sub dir     { $_[0]{dir} }


sub event_json {
    my ($self, %o) = @_;
    my $type = $o{type} // 'order.paid';
    my $n = $o{n} // ++$self->{seq};
    return $JSON->encode({
        type => $type,
        timestamp => '2026-11-24T09:30:00Z',
        data => $o{data} // {
            order => { id => "ord_$n", total => 4990 + $n,
                       currency => 'EUR' },
            customer => { id => 'cus_77',
                          email => 'ada.lovelace@example.com' },
        },
    });
}


# one signed delivery to the edge
sub send {
    my ($self, $store, %o) = @_;
    my $id = $o{id} // sprintf('msg_%s_%d_%d', $store, $$, ++$self->{seq});
    my $req = standard_request(secret => $o{secret} // $self->{edge_secret},
        id => $id, body => $o{body} // $self->event_json(%o));
    my $r = $self->{nginx}->request('POST', "/in/$store",
        body => $req->{body}, headers => $req->{headers});
    return { status => $r->{status}, id => $id, body => $r->{body},
             corr => $r->{headers}{'x-correlation-id'},
             headers => $r->{headers} };
}


sub worker_config {
    my ($self, %o) = @_;
    my $dests = delete $o{destinations} // {};
    my @d = map {
        { name => $_, secret => $self->{hook_secret}{$_},
          url => $self->{sandbox}->url("/hooks/$_"), timeout_ms => 2000,
          concurrency => 8, %{ $dests->{$_} // {} } }
    } @{ $self->{receivers} };
    return write_config($self->{dir}, redis => $self->{redis},
        stores => $self->{stores}, destinations => \@d,
        flows => delete $o{flows}
                 // [ map { { to => $_ } } @{ $self->{receivers} } ],
        claim_timeout_ms => 6000, claim_interval_ms => 300,
        block_ms => 200, retry_base_ms => 50, retry_cap_ms => 500,
        retry_interval_ms => 50, %o);
}


# The keys of a salesforce destination on the sandbox's org (client
# credentials; the secret file written once), as YAML lines for a
# `destinations:` entry after its `- name:`; %o adds or replaces keys.
sub sf_destination {
    my ($self, %o) = @_;
    my $f = "$self->{dir}/sf.secret";
    spew($f, "sandbox-client-secret\n", 0600) unless -e $f;
    my %k = (type => 'salesforce',
             url => $self->{sandbox}->url('/salesforce'),
             auth => 'client_credentials', client_id => 'sandbox-client-id',
             client_secret_file => $f, batch_window_ms => 50,
             timeout_ms => 5000, %o);
    my @first = qw(type url auth client_id client_secret_file);
    my %seen = map { $_ => 1 } @first;
    return join '', map { "    $_: $k{$_}\n" }
        @first, sort grep { !$seen{$_} } keys %k;
}


sub worker {
    my ($self, $cfg) = @_;
    return Loyalty::Test::Worker->new(config => $cfg);
}


# A sender in a child process; see the synopsis.
sub load {
    my ($self, %o) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;

    my $n = $o{n} // 100;
    my $gap = 1 / ($o{rate} // 100);
    my $t = time;
    open my $out, '>>', $o{out} or POSIX::_exit(1);
    $out->autoflush(1);
    for my $i (1 .. $n) {
        my $id = sprintf '%s_%d_%05d', $o{prefix} // 'load', $$, $i;
        my $deadline = time + ($o{give_up} // 60);
        for (;;) {
            my $r = $self->send($o{store} // $self->{stores}[0], id => $id,
                                n => $i);
            if ($r->{status} == 202) {
                print $out "$id 202 $r->{corr}\n";
                last;
            }
            # a duplicate: an earlier attempt that got no answer (Redis
            # killed after the write) had landed after all
            if ($r->{status} == 200 && $r->{body} =~ /duplicate/) {
                print $out "$id 200 -\n";
                last;
            }
            # 503 (Redis away) and transport errors: retry, as senders do
            if (time > $deadline
                || ($r->{status} != 503 && $r->{status} != 599)) {
                print $out "$id $r->{status} -\n";
                last;
            }
            sleep 0.1;
        }
        $t += $gap;
        my $wait = $t - time;
        sleep $wait if $wait > 0;
    }
    close $out;
    POSIX::_exit(0);
}


sub wait_load {
    my ($self, $pid, $timeout) = @_;
    return wait_until(sub { waitpid($pid, WNOHANG) == $pid },
                      timeout => $timeout // 120);
}


sub accepted {
    my ($self, $file) = @_;
    my %a;
    for (split /\n/, slurp($file)) {
        my ($id, $st, $corr) = split / /;
        if ($st eq '202' || $st eq '200') {
            $a{$id} = $st eq '202' ? $corr : '';
        } else {
            Test::More::diag("$id: the edge answered $st");
        }
    }
    return \%a;
}


sub held { $_[0]{sandbox}->state('hooks', $_[1]) }


sub pending {
    my ($self, $store) = @_;
    my $r = $self->{redis}->cmd('XPENDING', "loyalty:{$store}:in", 'workers');
    return ref $r eq 'ARRAY' ? $r->[0] : -1;
}


sub retries {
    my ($self, $store) = @_;
    return $self->{redis}->cmd('ZCARD', "loyalty:{$store}:retry");
}


sub dlq {
    my ($self, $store) = @_;
    return $self->{redis}->stream("loyalty:{$store}:dlq");
}


# every entry of every store read by the group and finished
sub drained {
    my ($self, @stores) = @_;
    @stores = @{ $self->{stores} } unless @stores;
    for my $s (@stores) {
        my $len = $self->{redis}->cmd('XLEN', "loyalty:{$s}:in");
        my $g = $self->{redis}->cmd('XINFO', 'GROUPS', "loyalty:{$s}:in");
        return 0 unless ref $g eq 'ARRAY' && @$g;
        my %g = @{ $g->[0] };
        return 0 if $g{pending} != 0 || $self->retries($s) != 0;
        # last-delivered-id at the newest entry: nothing unread
        my $last = $self->{redis}->cmd('XREVRANGE', "loyalty:{$s}:in",
                                       '+', '-', 'COUNT', 1);
        return 0 if $len && @$last && $last->[0][0] ne $g{'last-delivered-id'}
            && _id_lt($g{'last-delivered-id'}, $last->[0][0]);
    }
    return 1;
}


sub _id_lt {
    my ($a, $b) = @_;
    my ($am, $as) = split /-/, $a;
    my ($bm, $bs) = split /-/, $b;
    return $am < $bm || ($am == $bm && $as < $bs);
}


1;
