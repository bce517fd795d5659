package Loyalty::Test::Sandbox;

# The sandbox of external APIs (src/sandbox, docs/sandbox.md) for one
# test file: a real loyalty-sandbox process on a free loopback port.
#
#   my $sb = Loyalty::Test::Sandbox->new;          # started
#   ...->new(config => {..}, args => ['--log-max', 0])   # extra CLI args
#   $sb->port; $sb->url('/loyaltylion');           # base URL of a service
#   $sb->call('GET', '/loyaltylion/v2/orders/1', headers => {..},
#             body => '..' | json => {..})         # a response hash
#   $sb->receiver('crm', $whsec)                   # a webhook receiver
#   $sb->requests(service => 'hooks', since => N)  # the request log
#   $sb->state('hooks', 'crm')                     # what a service holds
#   $sb->fault({ service => .., status => 429, times => 3, ... })
#   $sb->clear_faults; $sb->reset; $sb->config('yotpo', { ... });
#   $sb->action('salesforce', 'expire_tokens', { ... });
#   $sb->stop; $sb->kill;
#
# Responses are those of Loyalty::Test::HTTP (status, headers, body);
# control calls die unless the sandbox answers 2xx, and return the
# decoded JSON.

use strict;
use warnings;

use Carp qw(croak);
use JSON::PP ();
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep);

use Loyalty::Test::HTTP qw(request);
use Loyalty::Test::Util qw(wait_until make_servroot pid_alive slurp
                           repo_root spawn_child);

my $JSON = JSON::PP->new->utf8->canonical;
my @instances;


sub bin { repo_root() . '/src/sandbox/loyalty-sandbox.js' }


sub new {
    my ($class, %o) = @_;
    my $self = bless { dir => make_servroot('sandbox'), owner => $$,
                       config => $o{config}, args => $o{args} // [] },
                  $class;
    push @instances, $self;
    $self->start;
    return $self;
}


sub start {
    my ($self) = @_;
    my $pf = "$self->{dir}/port";
    unlink $pf;
    my @argv = ('node', bin(), '--port-file', $pf, @{ $self->{args} });
    if ($self->{config}) {
        my $cf = "$self->{dir}/config.json";
        open my $fh, '>', $cf or die "$cf: $!";
        print $fh $JSON->encode($self->{config});
        close $fh;
        push @argv, '--config', $cf;
    }
    # the same port again after a restart
    push @argv, '--listen', "127.0.0.1:$self->{port}" if $self->{port};

    my $pid = spawn_child(\@argv, log => "$self->{dir}/sandbox.log");
    $self->{pid} = $pid;
    my $up = wait_until(sub { -s $pf || !pid_alive($pid) }, timeout => 15);
    unless ($up && -s $pf) {
        my $log = slurp("$self->{dir}/sandbox.log");
        $self->kill;
        die "loyalty-sandbox did not start:\n$log\n";
    }
    ($self->{port}) = slurp($pf) =~ /([0-9]+)/;
    return $self;
}


sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }
sub base { "http://127.0.0.1:$_[0]{port}" }
sub url  { $_[0]->base . ($_[1] // '') }
sub log  { slurp("$_[0]{dir}/sandbox.log") }


sub call {
    my ($self, $method, $path, %o) = @_;
    my %h = %{ $o{headers} // {} };
    my $body = $o{body};
    if (exists $o{json}) {
        $body = $JSON->encode($o{json});
        $h{'Content-Type'} //= 'application/json';
    }
    return request(port => $self->{port}, method => $method, path => $path,
                   headers => \%h, (defined $body ? (body => $body) : ()),
                   timeout => $o{timeout} // 30);
}


sub _control {
    my ($self, $method, $path, $input) = @_;
    my $r = $self->call($method, "/_sandbox$path",
                        (defined $input ? (json => $input) : ()));
    croak "sandbox $method $path: $r->{status} $r->{body}"
        unless $r->{status} >= 200 && $r->{status} < 300;
    return length $r->{body} ? $JSON->decode($r->{body}) : undef;
}


sub _qs {
    my (%q) = @_;
    my @p = map { "$_=$q{$_}" } grep { defined $q{$_} } sort keys %q;
    return @p ? '?' . join('&', @p) : '';
}


sub health   { $_[0]->_control('GET', '/health') }
sub reset    { $_[0]->_control('POST', '/reset' . _qs(service => $_[1])) }
sub fault    { $_[0]->_control('POST', '/faults', $_[1])->{ids} }
sub faults   { $_[0]->_control('GET', '/faults')->{faults} }
sub clear_faults {
    $_[0]->_control('DELETE', '/faults' . _qs(service => $_[1]));
}
sub config   { $_[0]->_control('POST', "/config/$_[1]", $_[2] // {}) }
sub action   { $_[0]->_control('POST', "/do/$_[1]/$_[2]", $_[3] // {}) }
sub seq      { $_[0]->_control('GET', '/requests?limit=1')->{seq} }


sub requests {
    my ($self, %q) = @_;
    return $self->_control('GET', '/requests' . _qs(%q))->{requests};
}


sub state {
    my ($self, $service, @rest) = @_;
    my $q = ref $rest[-1] eq 'HASH' ? pop @rest : {};
    return $self->_control('GET', join('/', '/state', $service, @rest)
                                  . _qs(%$q));
}


# a webhook receiver at /hooks/NAME checking Standard Webhooks with SECRET
sub receiver {
    my ($self, $name, $secret, %o) = @_;
    $self->action('hooks', 'receiver',
                  { name => $name, secret => $secret, %o });
    return $self->url("/hooks/$name");
}


sub running { pid_alive($_[0]{pid}) }


sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'TERM', $self->{pid};
    unless (wait_until(sub { waitpid($self->{pid}, WNOHANG) != 0 },
                       timeout => 10)) {
        kill 'KILL', $self->{pid};
        waitpid $self->{pid}, 0;
    }
    $self->{pid} = undef;
}


sub kill {
    my ($self) = @_;
    return unless $self->{pid};
    CORE::kill('KILL', $self->{pid});
    waitpid $self->{pid}, 0;
    $self->{pid} = undef;
}


END {
    local $?;
    for my $s (@instances) {
        next unless $s && $s->{owner} == $$;
        $s->kill if $s->{pid};
    }
}

1;
