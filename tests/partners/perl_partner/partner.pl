#!/usr/bin/perl
# A Clever grade passback partner in Perl 5, core modules only (IO::Socket::INET, HTTP::Tiny,
# JSON::PP, MIME::Base64), written the way a small ed-tech shop writes one from Clever's
# guide: one process, one connection at a time, "Connection: close" on every answer.
# The contract suite must pass it as it passes the Python, Node and Java partners.
#
#   SIM_URL=http://127.0.0.1:8080 CLIENT_ID=... CLIENT_SECRET=... PORT=0 perl partner.pl
#
# Environment: SIM_URL, CLIENT_ID, CLIENT_SECRET, PORT (0 = any free port), HOST (default
# 127.0.0.1). Prints "listening on http://HOST:PORT". Routes: GET /clever/assignments
# (guide Step 1), GET /clever/callback (Step 2), GET /assignments/{id}, GET /dashboard,
# GET /login, and the suite's provider-state hook POST /test-hooks/complete (Step 3).
#
# Test-only: BUGS=name,name switches on one mistake each (the list in %KNOWN_BUGS, proven by
# tests/test_partner_depth_perl.py); unset, the partner is correct.
use strict;
use warnings;
use utf8;
use IO::Socket::INET;
use IO::Select;
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Encode qw(encode_utf8);
use Time::HiRes qw(sleep time);
use POSIX qw(floor);

my %KNOWN_BUGS = (
    latin1_json          => 'the assignments JSON is written as Latin-1 bytes (JSON::PP->latin1)',
    char_length          => 'Content-Length counts characters (length of a decoded string), not bytes',
    double_encoded_names => 'names are UTF-8 encoded twice (encode_utf8, then JSON::PP->utf8): "GÃ©omÃ©trie"',
    null_description     => 'an assignment without a description sends "description": null (a DB NULL)',
    standards_string     => 'standards is the DB column as is: one comma-joined string, not an array',
    no_length_keepalive  => 'HTTP/1.1 answers with neither Content-Length nor Connection: close, socket kept open',
    basic_with_newline   => 'HTTP Basic built with encode_base64("$id:$secret"): its default end of line "\\n" stays in the header',
    cookie_without_path  => 'Set-Cookie without Path=: the cookie is only sent back under /clever/',
    forked_sessions      => 'one forked child per connection, sessions kept in the child\'s memory',
    location_unescaped   => 'the landing Location is /assignments/$id, the id not URI-escaped',
    state_not_decoded    => 'the query string is split by hand and never percent-decoded',
    dies_on_bad_code     => 'a refused code exchange die()s outside any eval: the server exits',
    truncated_percent    => 'percentage = int(score * 100) / 100: 0.57 becomes 0.56',
    numeric_id_compare   => 'the hook finds its assignment with == instead of eq (every id numifies to 0)',
    # Not a mistake: HTTP/1.0 answers whose body ends when the connection closes (no Content-Length)
    http10_close         => 'HTTP/1.0 answers, no Content-Length, body ended by closing the connection',
);
my %BUGS = map { $_ => 1 } grep { length } map { s/^\s+|\s+$//gr } split /,/, ($ENV{BUGS} // '');
for my $name (sort keys %BUGS) {
    die "unknown bug $name; known: " . join(', ', sort keys %KNOWN_BUGS) . "\n" unless $KNOWN_BUGS{$name};
}
sub bug { return $BUGS{$_[0]} }

(my $SIM = $ENV{SIM_URL} || 'http://127.0.0.1:8080') =~ s{/+$}{};
my $CLIENT_ID = $ENV{CLIENT_ID} or die "set CLIENT_ID and CLIENT_SECRET\n";
my $CLIENT_SECRET = $ENV{CLIENT_SECRET} or die "set CLIENT_ID and CLIENT_SECRET\n";
my $HOST = $ENV{HOST} || '127.0.0.1';
my $PORT = $ENV{PORT} // 5004;

# Ids stable and alphanumeric; names with accents (teachers in LAUSD read Spanish and French).
my @ASSIGNMENTS = (
    { id => 'frac4nf1', name => 'Fracciones equivalentes', description => 'Práctica con fracciones.',
      standards => ['CCSS.MATH.CONTENT.4.NF.A.1'], format => 'percentage' },
    { id => 'geom5g3', name => 'Géométrie : les triangles', format => 'points', max => 20 },
    { id => 'read5ri2', name => 'Main Idea – “Nonfiction”', description => 'Finding the main idea.',
      standards => ['CCSS.ELA-LITERACY.RI.5.2', 'CCSS.ELA-LITERACY.RI.5.1'], format => 'percentage' },
);
my %BY_ID = map { $_->{id} => $_ } @ASSIGNMENTS;

my $JSON = JSON::PP->new->utf8->canonical;
my $http = HTTP::Tiny->new(timeout => 10, agent => 'perl-partner/1.0');
my $BASIC = 'Basic ' . (bug('basic_with_newline') ? encode_base64("$CLIENT_ID:$CLIENT_SECRET")
                                                    : encode_base64("$CLIENT_ID:$CLIENT_SECRET", ''));
my $LAUNCH = 'assignment:';
my @BACKOFF = (0.15, 0.3, 0.6);       # seconds before retries 1, 2, 3
my $MAX_RETRIES = 3;
my $REDIRECT_URI;

my (%sessions, %il_tokens, %district_tokens);

# --- little helpers ---------------------------------------------------------------------

sub uri_escape {
    my ($s) = @_;
    my $bytes = encode_utf8($s);
    $bytes =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $bytes;
}

sub uri_unescape {   # bytes -> characters
    my ($s) = @_;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return Encode::decode('UTF-8', $s);
}

sub parse_query {
    my ($q) = @_;
    my %out;
    for my $pair (split /&/, $q // '') {
        next unless length $pair;
        my ($k, $v) = split /=/, $pair, 2;
        $v //= '';
        $out{bug('state_not_decoded') ? $k : uri_unescape($k)} = bug('state_not_decoded') ? $v : uri_unescape($v);
    }
    return \%out;
}

sub html_escape {
    my ($s) = @_;
    $s =~ s/&/&amp;/g; $s =~ s/</&lt;/g; $s =~ s/>/&gt;/g; $s =~ s/"/&quot;/g; $s =~ s/'/&#39;/g;
    return $s;
}

sub decode_or_undef { my ($text) = @_; my $v = eval { $JSON->decode($text) }; return $v }

# --- talking to Clever --------------------------------------------------------------------

sub me {
    my ($token) = @_;
    my $res = $http->get("$SIM/v3.0/me", { headers => { Authorization => "Bearer $token" } });
    return undef unless $res->{status} == 200;
    my $body = decode_or_undef($res->{content});
    return undef unless ref $body eq 'HASH' && ref $body->{data} eq 'HASH' && defined $body->{data}{id};
    return $body->{data};
}

sub exchange_code {
    my ($code) = @_;
    my $res = $http->post_form("$SIM/oauth/tokens",
        { code => $code, grant_type => 'authorization_code', redirect_uri => $REDIRECT_URI },
        { headers => { Authorization => $BASIC } });
    my $body = decode_or_undef($res->{content});
    return ($body->{access_token}, undef) if $res->{status} == 200 && ref $body eq 'HASH' && $body->{access_token};
    return (undef, (ref $body eq 'HASH' && ($body->{error_description} || $body->{error})) || "HTTP $res->{status}");
}

sub retry_wait {
    my ($res, $attempt) = @_;
    my $ra = $res->{headers}{'retry-after'};
    return $BACKOFF[$attempt] unless defined $ra && $ra =~ /^\s*(\d+)\s*$/;
    return $1 > 10 ? 10 : $1;
}

# One logical request, retried on 429, 5xx and network errors (HTTP::Tiny's 599).
sub with_retries {
    my ($send) = @_;
    my @tries;
    for my $attempt (0 .. $MAX_RETRIES) {
        my $res = $send->();
        push @tries, $res->{status};
        my $retryable = $res->{status} == 429 || $res->{status} >= 500;
        return ($res, \@tries) if !$retryable || $attempt == $MAX_RETRIES;
        sleep retry_wait($res, $attempt);
    }
}

sub district_token {
    my ($district, $refresh) = @_;
    return $district_tokens{$district} if !$refresh && $district_tokens{$district};
    my ($res) = with_retries(sub {
        $http->get("$SIM/oauth/tokens?owner_type=district&district=" . uri_escape($district),
                   { headers => { Authorization => $BASIC } });
    });
    my $body = decode_or_undef($res->{content});
    return undef unless ref $body eq 'HASH' && ref $body->{data} eq 'ARRAY';
    my ($found) = grep { ref $_ eq 'HASH' && $_->{access_token} } @{ $body->{data} };
    return undef unless $found;
    return $district_tokens{$district} = $found->{access_token};
}

sub post_grade {
    my ($token, $grade) = @_;
    my %auth = (Authorization => "Bearer $token");
    return with_retries(sub {
        return $http->request('POST', "$SIM/v1/grade", {
            headers => { %auth, 'Content-Type' => 'application/json' }, content => $JSON->encode($grade) });
    });
}

# The student's il token while they are logged in, else the district-app token; after a 401
# (a revoked token) once more with the district-app token Clever lists now.
sub send_grade {
    my ($grade, $district, $il) = @_;
    my ($res, $tries) = post_grade($il || district_token($district), $grade);
    return ($res, $tries) unless $res->{status} == 401;
    my $fresh = district_token($district, 1) or return ($res, $tries);
    my ($again, $more) = post_grade($fresh, $grade);
    return ($again, [@$tries, @$more]);
}

sub score_fields {
    my ($assignment, $score) = @_;
    return (percentage => int($score * 100) / 100) if bug('truncated_percent');
    if ($assignment->{format} eq 'points') {
        return (scoreGiven => 0 + sprintf('%.6f', $score * $assignment->{max}), scoreMaximum => $assignment->{max});
    }
    return (percentage => $score);
}

# --- HTTP answers --------------------------------------------------------------------------

my %REASON = (200 => 'OK', 302 => 'Found', 400 => 'Bad Request', 401 => 'Unauthorized',
              403 => 'Forbidden', 404 => 'Not Found', 405 => 'Method Not Allowed', 502 => 'Bad Gateway');

sub respond {
    my ($sock, $status, $body, %headers) = @_;
    my $keepalive = delete $headers{_keepalive};
    my $chars = delete $headers{_chars};    # bug char_length: $body is characters, not bytes
    $headers{'Content-Type'} //= 'text/html; charset=utf-8';
    $body //= '';
    $body = encode_utf8($body) if utf8::is_utf8($body) && !$chars;
    my $head;
    if (bug('http10_close')) {
        $head = "HTTP/1.0 $status $REASON{$status}\r\n";
    } elsif (bug('no_length_keepalive') && $keepalive) {
        $head = "HTTP/1.1 $status $REASON{$status}\r\n";
    } else {
        $head = "HTTP/1.1 $status $REASON{$status}\r\nContent-Length: " . length($body) . "\r\nConnection: close\r\n";
    }
    for my $name (sort keys %headers) {
        $head .= "$name: $headers{$name}\r\n";
    }
    binmode $sock, ':raw';
    print {$sock} "$head\r\n";
    binmode $sock, ':encoding(UTF-8)' if $chars;
    print {$sock} $body;
    binmode $sock, ':raw';
    if ($keepalive && bug('no_length_keepalive')) {   # "keep-alive": wait for the client's next request
        IO::Select->new($sock)->can_read(3);
    }
    return;
}

sub json_answer {
    my ($sock, $status, $value) = @_;
    respond($sock, $status, $JSON->encode($value), 'Content-Type' => 'application/json');
}

sub page {
    my ($sock, $status, $title, $text) = @_;
    my $t = html_escape($title);
    respond($sock, $status, "<!doctype html><meta charset=utf-8><title>$t</title><h1>$t</h1><p>"
                            . html_escape($text // '') . "</p>");
}

sub redirect_to {
    my ($sock, $location, @cookie) = @_;
    respond($sock, 302, '', Location => $location, (@cookie ? ('Set-Cookie' => $cookie[0]) : ()));
}

sub current_user {
    my ($req) = @_;
    my ($sid) = ($req->{headers}{cookie} // '') =~ /(?:^|;\s*)pp_session=([^;\s]+)/;
    return defined $sid ? $sessions{$sid} : undef;
}

# --- routes ------------------------------------------------------------------------------------

sub assignments_api {
    my ($sock, $req) = @_;
    my ($token) = ($req->{headers}{authorization} // '') =~ /^Bearer\s+(\S+)\s*$/i;
    return json_answer($sock, 401, { error => 'send Authorization: Bearer {token}' }) unless $token;
    return json_answer($sock, 401, { error => 'the bearer token is not valid' }) unless me($token);
    my @list;
    for my $a (@ASSIGNMENTS) {
        my %item = (name => $a->{name}, id => $a->{id}, type => 'assignment');
        $item{name} = encode_utf8($a->{name}) if bug('double_encoded_names');
        $item{description} = $a->{description} if defined $a->{description} || bug('null_description');
        if ($a->{standards}) {
            $item{standards} = bug('standards_string') ? join(',', @{ $a->{standards} }) : $a->{standards};
        }
        push @list, \%item;
    }
    my $doc = { assignments => \@list };
    if (bug('latin1_json')) {
        my $latin1 = JSON::PP->new->latin1->canonical->encode($doc);
        return respond($sock, 200, $latin1, 'Content-Type' => 'application/json');
    }
    if (bug('char_length')) {   # encoded to characters, printed through an :encoding(UTF-8) layer
        return respond($sock, 200, JSON::PP->new->canonical->encode($doc),
                       'Content-Type' => 'application/json', _chars => 1);
    }
    respond($sock, 200, $JSON->encode($doc), 'Content-Type' => 'application/json', _keepalive => 1);
}

sub callback {
    my ($sock, $req) = @_;
    my $q = $req->{query};
    return page($sock, 400, 'Login was cancelled') if $q->{error};
    return page($sock, 400, 'Login link incomplete', 'This link has no code from Clever.') unless $q->{code};
    my ($token, $error) = exchange_code($q->{code});
    die "code exchange failed: $error\n" if !$token && bug('dies_on_bad_code');
    return page($sock, 401, 'Login failed', "Clever said: $error. Start again from Schoology.") unless $token;
    my $who = me($token) or return page($sock, 401, 'Login failed', 'Clever did not say who you are.');
    my $sid = join '', map { sprintf '%02x', int rand 256 } 1 .. 24;
    $sessions{$sid} = { id => $who->{id}, district => $who->{district}, token => $token };
    $il_tokens{ $who->{id} } = $token;
    my $cookie = "pp_session=$sid; HttpOnly; SameSite=Lax" . (bug('cookie_without_path') ? '' : '; Path=/');
    my $state = $q->{state} // '';
    if (index($state, $LAUNCH) == 0 && length $state > length $LAUNCH) {
        my $id = substr $state, length $LAUNCH;
        my $path = bug('location_unescaped') ? "/assignments/$id" : '/assignments/' . uri_escape($id);
        return redirect_to($sock, $path, $cookie);
    }
    redirect_to($sock, '/dashboard', $cookie);
}

sub assignment_page {
    my ($sock, $req) = @_;
    my $user = current_user($req) or return redirect_to($sock, '/login');
    my $id = uri_unescape(substr $req->{path}, length '/assignments/');
    my $a = $BY_ID{$id} or return page($sock, 404, 'Assignment not found', "There is no assignment \"$id\".");
    page($sock, 200, $a->{name}, "Good luck, $user->{id}!");
}

sub find_assignment {
    my ($id) = @_;
    if (bug('numeric_id_compare')) {
        no warnings 'numeric';
        for my $a (@ASSIGNMENTS) { return $a if $a->{id} == $id }
        return undef;
    }
    return $BY_ID{$id};
}

sub complete_hook {
    my ($sock, $req) = @_;
    my $body = decode_or_undef($req->{body});
    return json_answer($sock, 400, { error => 'body must be a JSON object' }) unless ref $body eq 'HASH';
    for my $key (qw(user_id assignment_id district_id)) {
        return json_answer($sock, 400, { error => "$key must be a string" })
            unless defined $body->{$key} && !ref $body->{$key} && length $body->{$key};
    }
    my $score = $body->{score};
    return json_answer($sock, 400, { error => 'score must be a number from 0 to 1.0' })
        unless defined $score && !ref $score && $score =~ /^[0-9.eE+-]+$/ && $score >= 0 && $score <= 1;
    my $a = find_assignment($body->{assignment_id})
        or return json_answer($sock, 404, { error => "unknown assignment $body->{assignment_id}" });
    my $il = $il_tokens{ $body->{user_id} };
    return json_answer($sock, 502, { error => 'no district-app token for that district' })
        unless $il || district_token($body->{district_id});
    my %grade = (assignmentID => $a->{id}, userID => $body->{user_id}, score_fields($a, $score));
    my ($res, $tries) = send_grade(\%grade, $body->{district_id}, $il);
    return json_answer($sock, 200, { status => 'sent', tries => $tries }) if $res->{success};
    json_answer($sock, 502, { status => 'failed', tries => $tries, error => $res->{content} });
}

sub handle {
    my ($sock, $req) = @_;
    my ($m, $p) = ($req->{method}, $req->{path});
    return assignments_api($sock, $req) if $m eq 'GET' && $p eq '/clever/assignments';
    return callback($sock, $req) if $m eq 'GET' && $p eq '/clever/callback';
    return assignment_page($sock, $req) if $m eq 'GET' && index($p, '/assignments/') == 0;
    return (current_user($req) ? page($sock, 200, 'Dashboard') : redirect_to($sock, '/login'))
        if $m eq 'GET' && $p eq '/dashboard';
    return page($sock, 200, 'Please log in with Clever') if $m eq 'GET' && ($p eq '/login' || $p eq '/');
    return json_answer($sock, 200, { status => 'ok' }) if $m eq 'GET' && $p eq '/healthz';
    return complete_hook($sock, $req) if $m eq 'POST' && $p eq '/test-hooks/complete';
    page($sock, 404, 'Page not found');
}

# --- the server: one request per connection -------------------------------------------------

sub read_request {
    my ($sock) = @_;
    my $sel = IO::Select->new($sock);
    my $buf = '';
    while ($buf !~ /\r?\n\r?\n/) {
        return undef unless $sel->can_read(5);
        my $n = sysread $sock, $buf, 8192, length $buf;
        return undef unless $n;
        return undef if length $buf > 65536;
    }
    my ($head, $rest) = split /\r?\n\r?\n/, $buf, 2;
    my ($line, @lines) = split /\r?\n/, $head;
    my ($method, $target) = $line =~ m{^(\S+)\s+(\S+)\s+HTTP/\d\.\d$} or return undef;
    my %headers;
    for (@lines) { my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next; $headers{lc $k} = $v }
    my $length = $headers{'content-length'} // 0;
    return undef unless $length =~ /^\d+$/ && $length <= 65536;
    while (length $rest < $length) {
        return undef unless $sel->can_read(5);
        my $n = sysread $sock, $rest, $length - length $rest, length $rest;
        return undef unless $n;
    }
    my ($path, $query) = split /\?/, $target, 2;
    return { method => $method, path => $path, headers => \%headers, query => parse_query($query),
             body => substr($rest, 0, $length) };
}

sub serve_one {
    my ($sock) = @_;
    my $req = read_request($sock);
    if ($req) {
        if (bug('dies_on_bad_code')) {
            handle($sock, $req);   # no eval: a die() ends the process
        } elsif (!eval { handle($sock, $req); 1 }) {
            warn "error on $req->{method} $req->{path}: $@";
            page($sock, 502, 'Something went wrong', 'Please try again.');
        }
    }
    close $sock;
}

my $server = IO::Socket::INET->new(LocalAddr => $HOST, LocalPort => $PORT, Listen => 128,
                                   ReuseAddr => 1, Proto => 'tcp') or die "cannot listen: $!\n";
my $port = $server->sockport;
$REDIRECT_URI = "http://$HOST:$port/clever/callback";
$| = 1;
print "listening on http://$HOST:$port\n";
$SIG{PIPE} = 'IGNORE';
$SIG{TERM} = $SIG{INT} = sub { close $server; exit 0 };
$SIG{CHLD} = 'IGNORE' if bug('forked_sessions');

while (1) {
    my $sock = $server->accept or next;
    if (bug('forked_sessions')) {
        my $pid = fork;
        if (defined $pid && $pid == 0) { close $server; serve_one($sock); exit 0 }
        close $sock;
        next;
    }
    serve_one($sock);
}
