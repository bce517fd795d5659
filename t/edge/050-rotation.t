#!/usr/bin/perl

# Secret rotation: several loyalty_secret / loyalty_secret_file entries
# (a file may hold several lines); any configured secret verifies, an
# unknown one does not; dropping the old secret (reload) rejects bodies
# signed with it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;

use Loyalty::Test::Webhook qw(:all);
use Loyalty::Test::Edge;

my ($old, $new, $third, $f1, $f2, $f3) = map { new_secret() } 1 .. 6;

my %files = ('conf/std.secrets' => "$f1\n$f2\n");

my $config = qq{
    location = /two {
        loyalty_webhook standard; loyalty_store rot;
        loyalty_secret $old;
        loyalty_secret $new;
    }
    location = /file {
        loyalty_webhook standard; loyalty_store rotf;
        loyalty_secret_file %%SERVROOT%%/conf/std.secrets;
    }
    location = /mixed {
        loyalty_webhook standard; loyalty_store rotm;
        loyalty_secret $old;
        loyalty_secret_file %%SERVROOT%%/conf/std.secrets;
    }
    location = /gen {
        loyalty_webhook generic; loyalty_store rotg;
        loyalty_secret generic-old;
        loyalty_secret generic-new;
    }
};

my ($redis, $ngx) = edge_setup(config => $config, files => \%files);

sub st { (post_standard($ngx, @_))[0]{status} }

is st('/two', secret => $old), 202, 'two secrets: old verifies';
is st('/two', secret => $new), 202, 'two secrets: new verifies';
is st('/two', secret => $third), 401, 'two secrets: a third does not';
is st('/two', secret => $old, sign_with => [$third, $new]), 202,
    'a header with an unknown and the new signature';
is st('/two', secret => $old, sign_with => [$old, $new]), 202,
    'a header with both signatures (sender rotating)';
is $redis->xlen(stream_key('rot')), 4, 'four events stored, none for the third secret';

is st('/file', secret => $f1), 202, 'secret file, line 1 verifies';
is st('/file', secret => $f2), 202, 'secret file, line 2 verifies';
is st('/file', secret => $old), 401, 'secret file: another secret does not';

is st('/mixed', secret => $old), 202, 'loyalty_secret + loyalty_secret_file: the inline one';
is st('/mixed', secret => $f2), 202, '... and one from the file';
is st('/mixed', secret => $third), 401, '... but not a third';

is((post_generic($ngx, '/gen', key => 'generic-old'))[0]{status}, 202,
   'generic: old key verifies');
is((post_generic($ngx, '/gen', key => 'generic-new'))[0]{status}, 202,
   'generic: new key verifies');
is((post_generic($ngx, '/gen', key => 'generic-third'))[0]{status}, 401,
   'generic: a third key does not');

# finish the rotation: drop the old secrets and reload
(my $rotated = $config) =~ s/\n\s*loyalty_secret \Q$old\E;//g;
$rotated =~ s/loyalty_secret generic-old;//;
ok $ngx->reload(config => $rotated,
                files => { 'conf/std.secrets' => "$f2\n$f3\n" }),
    'reload without the old secrets';

is st('/two', secret => $old), 401, 'after rotation: old is rejected';
is st('/two', secret => $new), 202, 'after rotation: new verifies';
is st('/file', secret => $f1), 401, 'after rotation: the removed file line is rejected';
is st('/file', secret => $f3), 202, 'after rotation: the added file line verifies';
is st('/mixed', secret => $old), 401, 'after rotation: mixed location drops the old one';
is((post_generic($ngx, '/gen', key => 'generic-old'))[0]{status}, 401,
   'after rotation: generic old key rejected');
is((post_generic($ngx, '/gen', key => 'generic-new'))[0]{status}, 202,
   'after rotation: generic new key verifies');

done_testing;
