package state

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// checkErr asserts that err is a *Error with the given code and field and
// that its message contains every one of want.
func checkErr(t *testing.T, err error, code, field string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s (field %q)", code, field)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *state.Error", err, err)
	}
	if e.Code != code {
		t.Errorf("code = %q, want %q (message %q)", e.Code, code, e.Message)
	}
	if e.Field != field {
		t.Errorf("field = %q, want %q (message %q)", e.Field, field, e.Message)
	}
	if e.Message == "" {
		t.Errorf("empty message")
	}
	for _, w := range want {
		if !strings.Contains(e.Message, w) {
			t.Errorf("message %q does not contain %q", e.Message, w)
		}
	}
}

func label(c byte, n int) string { return strings.Repeat(string(c), n) }

func TestNormalizeDomainNameGood(t *testing.T) {
	l63 := label('a', 63)
	// 63+1+63+1+63+1+61 = 253 characters.
	name253 := l63 + "." + label('b', 63) + "." + label('c', 63) + "." + label('d', 61)
	if len(name253) != 253 {
		t.Fatalf("test setup: len = %d", len(name253))
	}
	tests := []struct {
		in, want string
	}{
		{"example.com", "example.com"},
		{"Example.COM", "example.com"},
		{"WWW.Example.Com", "www.example.com"},
		{"example.com.", "example.com"},
		{"  example.com  ", "example.com"},
		{"\texample.com.\n", "example.com"},
		{"xn--bcher-kva.de", "xn--bcher-kva.de"},
		{"XN--BCHER-KVA.DE", "xn--bcher-kva.de"},
		{"shop.xn--p1ai", "shop.xn--p1ai"},
		{"1.example.com", "1.example.com"},
		{"123.456.example", "123.456.example"},
		{"web-1.my-site.io", "web-1.my-site.io"},
		{"a--b.example.org", "a--b.example.org"},
		{"a.b", "a.b"},
		{"deep.sub.domain.example.co.uk", "deep.sub.domain.example.co.uk"},
		{"example.c0m", "example.c0m"},
		{"example.1a", "example.1a"},
		{l63 + ".com", l63 + ".com"},
		{name253, name253},
		{strings.ToUpper(name253) + ".", name253},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeDomainName(tc.in)
			if err != nil {
				t.Fatalf("NormalizeDomainName(%q) error: %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("NormalizeDomainName(%q) = %q, want %q", tc.in, got, tc.want)
			}
			// Normalizing is idempotent.
			again, err := NormalizeDomainName(got)
			if err != nil || again != got {
				t.Errorf("NormalizeDomainName(%q) = %q, %v; want it unchanged", got, again, err)
			}
		})
	}
}

func TestNormalizeDomainNameBad(t *testing.T) {
	l64 := label('a', 64)
	name254 := label('a', 63) + "." + label('b', 63) + "." + label('c', 63) + "." + label('d', 62)
	if len(name254) != 254 {
		t.Fatalf("test setup: len = %d", len(name254))
	}
	tests := []struct {
		name string
		in   string
		want []string // message fragments besides the input itself
	}{
		{"empty", "", []string{"empty"}},
		{"blank", "   ", []string{"empty"}},
		{"only dot", ".", []string{"empty"}},
		{"single label", "localhost", []string{`"localhost"`, "two labels"}},
		{"single label trailing dot", "com.", []string{`"com."`, "two labels"}},
		{"empty middle label", "example..com", []string{`"example..com"`, "empty label"}},
		{"leading dot", ".example.com", []string{`".example.com"`, "empty label"}},
		{"two trailing dots", "example.com..", []string{`"example.com.."`, "empty label"}},
		{"leading hyphen", "-example.com", []string{`"-example.com"`, "'-'"}},
		{"trailing hyphen", "example-.com", []string{`"example-.com"`, "'-'"}},
		{"hyphen tld", "example.-com", []string{`"example.-com"`, "'-'"}},
		{"underscore", "my_site.example.com", []string{`"my_site.example.com"`, `"_"`}},
		{"space inside", "my site.com", []string{`"my site.com"`, `" "`}},
		{"slash", "example.com/path", []string{`"example.com/path"`}},
		{"colon port", "example.com:80", []string{`"example.com:80"`, `":"`}},
		{"wildcard", "*.example.com", []string{`"*.example.com"`, `"*"`}},
		{"unicode", "bücher.de", []string{`"bücher.de"`, `"ü"`}},
		{"unicode tld", "example.рф", []string{`"example.рф"`, `"р"`}},
		{"label 64", l64 + ".com", []string{l64[:40], "63"}},
		{"name 254", name254, []string{name254[:40], "253"}},
		{"name very long", strings.Repeat("a.", 200) + "com", []string{"a.a.a.a", "...", "253"}},
		{"ipv4", "192.168.1.1", []string{`"192.168.1.1"`, "numeric"}},
		{"ipv4 trailing dot", "10.0.0.1.", []string{`"10.0.0.1."`, "numeric"}},
		{"numeric tld", "example.123", []string{`"example.123"`, "numeric"}},
		{"numeric tld zero", "example.0", []string{`"example.0"`, "numeric"}},
		{"long numeric tld", "example.123456789012345678901234567890", []string{`"example.123456789012345678901234567890"`, "numeric"}},
		{"ipv6", "::1", []string{`"::1"`}},
		{"url", "http://example.com", []string{`"http://example.com"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeDomainName(tc.in)
			if err == nil {
				t.Fatalf("NormalizeDomainName(%q) = %q, want an error", tc.in, got)
			}
			if got != "" {
				t.Errorf("NormalizeDomainName(%q) returned %q with an error", tc.in, got)
			}
			checkErr(t, err, CodeInvalid, "domain", tc.want...)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
		})
	}
}

func TestParseOriginGood(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"203.0.113.10:80", "203.0.113.10:80"},
		{"8.8.8.8:53", "8.8.8.8:53"},
		{" 203.0.113.10:443 ", "203.0.113.10:443"},
		{"1.2.3.4:1", "1.2.3.4:1"},
		{"1.2.3.4:65535", "1.2.3.4:65535"},
		{"1.2.3.4:0080", "1.2.3.4:80"},
		{"10.0.0.1:8080", "10.0.0.1:8080"},
		{"10.255.255.255:80", "10.255.255.255:80"},
		{"172.16.0.1:80", "172.16.0.1:80"},
		{"172.31.255.254:80", "172.31.255.254:80"},
		{"192.168.1.20:3000", "192.168.1.20:3000"},
		{"127.0.0.1:8080", "127.0.0.1:8080"},
		{"127.1.2.3:80", "127.1.2.3:80"},
		{"1.0.0.0:80", "1.0.0.0:80"},
		{"169.253.255.255:80", "169.253.255.255:80"},
		{"223.255.255.255:80", "223.255.255.255:80"},
		{"255.255.255.254:80", "255.255.255.254:80"},
		{"[10.0.0.1]:80", "10.0.0.1:80"},
		{"[2001:db8::1]:443", "[2001:db8::1]:443"},
		{"[2001:DB8:0:0:0:0:0:1]:443", "[2001:db8::1]:443"},
		{"[::1]:8080", "[::1]:8080"},
		{"[fd00::10]:80", "[fd00::10]:80"},
		{"[fec0::1]:80", "[fec0::1]:80"},
		{"[::ffff:10.0.0.1]:80", "10.0.0.1:80"},
		{"[::ffff:203.0.113.5]:443", "203.0.113.5:443"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseOrigin(tc.in)
			if err != nil {
				t.Fatalf("ParseOrigin(%q) error: %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseOrigin(%q) = %q, want %q", tc.in, got, tc.want)
			}
			again, err := ParseOrigin(got)
			if err != nil || again != got {
				t.Errorf("ParseOrigin(%q) = %q, %v; want it unchanged", got, again, err)
			}
		})
	}
}

func TestParseOriginBad(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", []string{"empty"}},
		{"blank", "  ", []string{"empty"}},
		{"this network", "0.0.0.0:80", []string{`"0.0.0.0:80"`, "unspecified"}},
		{"this network 0/8", "0.1.2.3:80", []string{`"0.1.2.3:80"`, "0.0.0.0/8"}},
		{"this network top", "0.255.255.255:80", []string{"0.0.0.0/8"}},
		{"link-local v4", "169.254.1.1:80", []string{`"169.254.1.1:80"`, "link-local"}},
		{"link-local v4 metadata", "169.254.169.254:80", []string{"link-local"}},
		{"link-local v4 mapped", "[::ffff:169.254.0.1]:80", []string{"link-local"}},
		{"link-local v6", "[fe80::1]:80", []string{`"[fe80::1]:80"`, "link-local"}},
		{"link-local v6 top", "[febf:ffff::1]:80", []string{"link-local"}},
		{"multicast v4", "224.0.0.1:80", []string{`"224.0.0.1:80"`, "multicast"}},
		{"multicast v4 top", "239.255.255.255:80", []string{"multicast"}},
		{"multicast v6", "[ff02::1]:80", []string{`"[ff02::1]:80"`, "multicast"}},
		{"multicast v6 global", "[ff0e::1]:80", []string{"multicast"}},
		{"broadcast", "255.255.255.255:80", []string{`"255.255.255.255:80"`, "broadcast"}},
		{"unspecified v6", "[::]:80", []string{`"[::]:80"`, "unspecified"}},
		{"unspecified mapped", "[::ffff:0.0.0.0]:80", []string{"unspecified"}},
		{"host name", "example.com:80", []string{`"example.com:80"`, "not an IP address"}},
		{"localhost", "localhost:8080", []string{`"localhost:8080"`, "not an IP address"}},
		{"missing port", "10.0.0.1", []string{`"10.0.0.1"`, "IP:PORT"}},
		{"missing port v6", "[2001:db8::1]", []string{`"[2001:db8::1]"`, "IP:PORT"}},
		{"unbracketed v6", "2001:db8::1:80", []string{`"2001:db8::1:80"`, "IP:PORT"}},
		{"empty port", "10.0.0.1:", []string{`"10.0.0.1:"`, "port"}},
		{"port 0", "10.0.0.1:0", []string{`"10.0.0.1:0"`, "port"}},
		{"port 65536", "10.0.0.1:65536", []string{`"10.0.0.1:65536"`, "port"}},
		{"port huge", "10.0.0.1:99999999999999999999", []string{"port"}},
		{"port abc", "10.0.0.1:abc", []string{`"10.0.0.1:abc"`, "port"}},
		{"port negative", "10.0.0.1:-1", []string{`"10.0.0.1:-1"`, "port"}},
		{"port plus sign", "10.0.0.1:+80", []string{`"10.0.0.1:+80"`, "port"}},
		{"port with space", "10.0.0.1: 80", []string{"port"}},
		{"empty host", ":80", []string{`":80"`}},
		{"zone", "[fe80::1%eth0]:80", []string{`"[fe80::1%eth0]:80"`, "zone"}},
		{"zone global", "[2001:db8::1%eth0]:80", []string{"zone"}},
		{"ipv4 leading zero", "010.0.0.1:80", []string{"not an IP address"}},
		{"cidr", "10.0.0.0/8:80", []string{"not an IP address"}},
		{"url", "http://10.0.0.1:80", []string{`"http://10.0.0.1:80"`}},
		{"too long", strings.Repeat("1", 200) + ":80", []string{"..."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOrigin(tc.in)
			if err == nil {
				t.Fatalf("ParseOrigin(%q) = %q, want an error", tc.in, got)
			}
			if got != "" {
				t.Errorf("ParseOrigin(%q) returned %q with an error", tc.in, got)
			}
			checkErr(t, err, CodeInvalid, "origin", tc.want...)
		})
	}
}

func TestNormalizeOrigins(t *testing.T) {
	got, err := NormalizeOrigins([]string{" 10.0.0.1:80", "[::ffff:10.0.0.2]:80", "[2001:db8::1]:443"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.1:80", "10.0.0.2:80", "[2001:db8::1]:443"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", got, want)
	}

	many := make([]string, MaxOrigins)
	for i := range many {
		many[i] = fmt.Sprintf("10.0.0.%d:80", i+1)
	}
	if got, err := NormalizeOrigins(many); err != nil || len(got) != MaxOrigins {
		t.Errorf("%d origins: got %d, %v", MaxOrigins, len(got), err)
	}

	bad := []struct {
		name string
		in   []string
		want []string
	}{
		{"nil", nil, []string{"at least one"}},
		{"empty", []string{}, []string{"at least one"}},
		{"too many", append(many, "10.0.1.1:80"), []string{fmt.Sprint(MaxOrigins)}},
		{"duplicate", []string{"10.0.0.1:80", "10.0.0.1:80"}, []string{"10.0.0.1:80", "twice"}},
		{"duplicate after normalizing", []string{"10.0.0.1:80", "[::ffff:10.0.0.1]:80"}, []string{"10.0.0.1:80", "twice"}},
		{"duplicate v6 spelling", []string{"[2001:db8::1]:80", "[2001:DB8:0::1]:80"}, []string{"twice"}},
		{"one bad", []string{"10.0.0.1:80", "169.254.0.1:80"}, []string{"169.254.0.1:80"}},
		{"empty entry", []string{"10.0.0.1:80", ""}, []string{"empty"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeOrigins(tc.in)
			if got != nil {
				t.Errorf("got %q with error", got)
			}
			checkErr(t, err, CodeInvalid, "origin", tc.want...)
		})
	}
}

func TestNormalizeServerName(t *testing.T) {
	good := []struct{ in, want string }{
		{"web1", "web1"},
		{"  web 1  ", "web 1"},
		{"Web-Server_01.eu", "Web-Server_01.eu"},
		{"Frankfurt (primary)", "Frankfurt (primary)"},
		{"сервер", "сервер"},
		{"東京", "東京"},
		{strings.Repeat("x", MaxServerNameLen), strings.Repeat("x", MaxServerNameLen)},
		{strings.Repeat("é", MaxServerNameLen), strings.Repeat("é", MaxServerNameLen)},
	}
	for _, tc := range good {
		got, err := NormalizeServerName(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeServerName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	bad := []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"blank", " \t\n", "empty"},
		{"too long", strings.Repeat("x", MaxServerNameLen+1), "longer"},
		{"too long runes", strings.Repeat("é", MaxServerNameLen+1), "longer"},
		{"newline inside", "web\n1", "control"},
		{"tab inside", "web\t1", "control"},
		{"nul", "web\x001", "control"},
		{"escape", "web\x1b[31m", "control"},
		{"del", "web\x7f", "control"},
		{"zero width", "web\u200b1", "control"},
		{"bad utf8", "web\xff", "UTF-8"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeServerName(tc.in)
			if got != "" {
				t.Errorf("got %q with error", got)
			}
			checkErr(t, err, CodeInvalid, "name", tc.want)
		})
	}
}

func TestValidateMode(t *testing.T) {
	good := []struct{ in, want string }{
		{"", ModeHTTP},
		{"http", ModeHTTP},
		{"HTTP", ModeHTTP},
		{" http ", ModeHTTP},
		{"tcp", ModeTCP},
		{"TCP", ModeTCP},
	}
	for _, tc := range good {
		got, err := ValidateMode(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ValidateMode(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"https", "udp", "tls", "h2", "passthrough", "http tcp"} {
		got, err := ValidateMode(in)
		if got != "" {
			t.Errorf("ValidateMode(%q) returned %q with error", in, got)
		}
		checkErr(t, err, CodeInvalid, "mode", fmt.Sprintf("%q", in))
	}
}

func TestValidateDNS(t *testing.T) {
	good := []struct {
		name string
		in   DNS
		want DNS
	}{
		{"zero value", DNS{}, DNS{Provider: DNSBuiltin, TTL: DefaultTTL, FailoverTTL: DefaultFailoverTTL}},
		{"builtin", DNS{Provider: "builtin"}, DNS{Provider: DNSBuiltin, TTL: DefaultTTL, FailoverTTL: DefaultFailoverTTL}},
		{"cloudflare upper", DNS{Provider: "Cloudflare"}, DNS{Provider: DNSCloudflare, TTL: DefaultTTL, FailoverTTL: DefaultFailoverTTL}},
		{"none", DNS{Provider: "NONE"}, DNS{Provider: DNSNone, TTL: DefaultTTL, FailoverTTL: DefaultFailoverTTL}},
		{"ttls kept", DNS{Provider: DNSCloudflare, TTL: 120, FailoverTTL: 10}, DNS{Provider: DNSCloudflare, TTL: 120, FailoverTTL: 10}},
		{"ttl min", DNS{TTL: MinTTL, FailoverTTL: MinTTL}, DNS{Provider: DNSBuiltin, TTL: MinTTL, FailoverTTL: MinTTL}},
		{"ttl max", DNS{TTL: MaxTTL, FailoverTTL: MaxTTL}, DNS{Provider: DNSBuiltin, TTL: MaxTTL, FailoverTTL: MaxTTL}},
		{"only ttl", DNS{TTL: 60}, DNS{Provider: DNSBuiltin, TTL: 60, FailoverTTL: DefaultFailoverTTL}},
		{"only failover ttl", DNS{FailoverTTL: 5}, DNS{Provider: DNSBuiltin, TTL: DefaultTTL, FailoverTTL: 5}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ValidateDNS(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("ValidateDNS(%+v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
	bad := []struct {
		name  string
		in    DNS
		field string
		want  string
	}{
		{"provider", DNS{Provider: "route53"}, "dns", `"route53"`},
		{"provider spaced", DNS{Provider: "builtin "}, "dns", "builtin"},
		{"ttl negative", DNS{TTL: -1}, "ttl", "-1"},
		{"ttl too big", DNS{TTL: MaxTTL + 1}, "ttl", fmt.Sprint(MaxTTL + 1)},
		{"failover ttl negative", DNS{FailoverTTL: -5}, "failover_ttl", "-5"},
		{"failover ttl too big", DNS{FailoverTTL: 100000}, "failover_ttl", "100000"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ValidateDNS(tc.in)
			checkErr(t, err, CodeInvalid, tc.field, tc.want)
		})
	}
}

func TestParsePlan(t *testing.T) {
	good := []struct {
		in   string
		want Plan
	}{
		{"free", Plan{Name: PlanFree, Limit: 1}},
		{"pro", Plan{Name: PlanPro, Limit: 5}},
		{"enterprise", Plan{Name: PlanEnterprise, Limit: 20}},
		{" Enterprise ", Plan{Name: PlanEnterprise, Limit: 20}},
		{"FREE", Plan{Name: PlanFree, Limit: 1}},
		{"1", Plan{Name: PlanCustom, Limit: 1}},
		{"3", Plan{Name: PlanCustom, Limit: 3}},
		{"50", Plan{Name: PlanCustom, Limit: 50}},
		{"100000", Plan{Name: PlanCustom, Limit: 100000}},
	}
	for _, tc := range good {
		got, err := ParsePlan(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParsePlan(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if DefaultPlan != (Plan{Name: PlanEnterprise, Limit: PlanLimits[PlanEnterprise]}) {
		t.Errorf("DefaultPlan = %+v", DefaultPlan)
	}
	for _, in := range []string{"", "custom", "gold", "0", "-1", "100001", "1.5", "5 servers", "0x10"} {
		got, err := ParsePlan(in)
		if got != (Plan{}) {
			t.Errorf("ParsePlan(%q) returned %+v with error", in, got)
		}
		checkErr(t, err, CodeInvalid, "plan")
	}
}

func TestErrors(t *testing.T) {
	err := error(newErr(CodePlanLimit, "plan", "too many"))
	if err.Error() != "too many" {
		t.Errorf("Error() = %q", err.Error())
	}
	if !errors.Is(err, ErrPlanLimit) {
		t.Error("errors.Is(ErrPlanLimit) = false")
	}
	if errors.Is(err, ErrNotFound) {
		t.Error("errors.Is(ErrNotFound) = true")
	}
	// A full error is not a sentinel: only code-only targets match.
	if errors.Is(err, &Error{Code: CodePlanLimit, Message: "other"}) {
		t.Error("matched an error with a message")
	}
	wrapped := fmt.Errorf("apply: %w", err)
	if !errors.Is(wrapped, ErrPlanLimit) {
		t.Error("errors.Is through wrapping = false")
	}
	codes := []struct {
		err  error
		want string
	}{
		{err, CodePlanLimit},
		{wrapped, CodePlanLimit},
		{ErrDecommissioned, CodeDecommissioned},
		{ErrConflict, CodeConflict},
		{ErrInvalid, CodeInvalid},
		{errors.New("boom"), CodeInternal},
		{nil, CodeInternal},
	}
	for _, tc := range codes {
		if got := CodeOf(tc.err); got != tc.want {
			t.Errorf("CodeOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestTrunc(t *testing.T) {
	if got := trunc("short"); got != "short" {
		t.Errorf("trunc(short) = %q", got)
	}
	long := strings.Repeat("x", 100)
	if got := trunc(long); got != long[:80]+"..." {
		t.Errorf("trunc(long) = %q", got)
	}
}
