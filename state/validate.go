package state

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on inputs.
const (
	MaxServerNameLen    = 64
	MaxOrigins          = 32
	MaxServersPerDomain = 16
	MinTTL              = 1
	MaxTTL              = 86400
)

// NormalizeDomainName lower-cases a domain name, strips one trailing dot and
// validates it: LDH labels of 1–63 characters, at most 253 in all, at least
// two labels, no label starting or ending with '-', and a top-level label
// that is not all digits. Punycode (xn--) labels are accepted as written.
func NormalizeDomainName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.TrimSuffix(n, ".")
	if n == "" {
		return "", invalid("domain", "domain name is empty")
	}
	if len(n) > 253 {
		return "", invalid("domain", "domain name %q is longer than 253 characters", trunc(name))
	}
	labels := strings.Split(n, ".")
	if len(labels) < 2 {
		return "", invalid("domain", "domain name %q needs at least two labels (like example.com)", name)
	}
	for _, l := range labels {
		if l == "" {
			return "", invalid("domain", "domain name %q has an empty label", name)
		}
		if len(l) > 63 {
			return "", invalid("domain", "domain name %q has a label longer than 63 characters", trunc(name))
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", invalid("domain", "domain name %q has a label starting or ending with '-'", name)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				// Name the whole character, not the first byte of a
				// multi-byte one.
				r, _ := utf8.DecodeRuneInString(l[i:])
				return "", invalid("domain", "domain name %q contains %q: only letters, digits, '-' and '.' are allowed", trunc(name), string(r))
			}
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "", invalid("domain", "domain name %q ends in a numeric label (is it an IP address?)", name)
	}
	return n, nil
}

// allDigits reports whether s is non-empty and made only of ASCII digits.
// (strconv.Atoi is not enough: it fails on numbers that overflow an int.)
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseOrigin validates an origin "IP:PORT" ("[IPv6]:PORT" for IPv6) and
// returns it normalized. Public and private addresses are allowed;
// non-routable ones are refused: 0.0.0.0/8, 169.254.0.0/16, fe80::/10,
// multicast, the broadcast address and the unspecified address.
func ParseOrigin(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", invalid("origin", "origin is empty: want IP:PORT")
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return "", invalid("origin", "origin %q is not IP:PORT", trunc(s))
	}
	// Digits only: strconv.Atoi alone would accept a sign ("+80").
	port, err := strconv.Atoi(portStr)
	if !allDigits(portStr) || err != nil || port < 1 || port > 65535 {
		return "", invalid("origin", "origin %q has a bad port: want 1-65535", trunc(s))
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return "", invalid("origin", "origin %q: %q is not an IP address (host names are not accepted)", trunc(s), trunc(host))
	}
	if addr.Zone() != "" {
		return "", invalid("origin", "origin %q: zoned IPv6 addresses are not accepted", trunc(s))
	}
	addr = addr.Unmap()
	if reason := forbiddenReason(addr); reason != "" {
		return "", invalid("origin", "origin %q is not routable (%s)", s, reason)
	}
	return netip.AddrPortFrom(addr, uint16(port)).String(), nil
}

var forbidden = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "0.0.0.0/8, this network"},
	{netip.MustParsePrefix("169.254.0.0/16"), "169.254.0.0/16, link-local"},
	{netip.MustParsePrefix("fe80::/10"), "fe80::/10, link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "224.0.0.0/4, multicast"},
	{netip.MustParsePrefix("ff00::/8"), "ff00::/8, multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
}

func forbiddenReason(a netip.Addr) string {
	if a.IsUnspecified() {
		return "unspecified address"
	}
	for _, f := range forbidden {
		if f.prefix.Contains(a) {
			return f.reason
		}
	}
	return ""
}

// NormalizeServerName trims a server name and checks it: 1–64 printable
// characters.
func NormalizeServerName(name string) (string, error) {
	n := strings.TrimSpace(name)
	if n == "" {
		return "", invalid("name", "server name is empty")
	}
	if !utf8.ValidString(n) {
		return "", invalid("name", "server name is not valid UTF-8")
	}
	if utf8.RuneCountInString(n) > MaxServerNameLen {
		return "", invalid("name", "server name is longer than %d characters", MaxServerNameLen)
	}
	for _, r := range n {
		if !unicode.IsPrint(r) {
			return "", invalid("name", "server name contains a control or non-printable character")
		}
	}
	return n, nil
}

// ValidateMode checks a domain mode; "" means http.
func ValidateMode(m string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(m)) {
	case "", ModeHTTP:
		return ModeHTTP, nil
	case ModeTCP:
		return ModeTCP, nil
	}
	return "", invalid("mode", "mode %q is not http or tcp", trunc(m))
}

// ValidateDNS fills defaults into DNS settings and checks them.
func ValidateDNS(d DNS) (DNS, error) {
	switch strings.ToLower(d.Provider) {
	case "":
		d.Provider = DNSBuiltin
	case DNSNone, DNSBuiltin, DNSCloudflare:
		d.Provider = strings.ToLower(d.Provider)
	default:
		return d, invalid("dns", "dns provider %q is not builtin, cloudflare or none", trunc(d.Provider))
	}
	if d.TTL == 0 {
		d.TTL = DefaultTTL
	}
	if d.FailoverTTL == 0 {
		d.FailoverTTL = DefaultFailoverTTL
	}
	if d.TTL < MinTTL || d.TTL > MaxTTL {
		return d, invalid("ttl", "ttl %d is out of range %d-%d seconds", d.TTL, MinTTL, MaxTTL)
	}
	if d.FailoverTTL < MinTTL || d.FailoverTTL > MaxTTL {
		return d, invalid("failover_ttl", "failover ttl %d is out of range %d-%d seconds", d.FailoverTTL, MinTTL, MaxTTL)
	}
	return d, nil
}

// ParsePlan turns "free", "pro", "enterprise" or a positive number into a
// Plan.
func ParsePlan(s string) (Plan, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if lim, ok := PlanLimits[s]; ok {
		return Plan{Name: s, Limit: lim}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100000 {
		return Plan{}, invalid("plan", "plan %q is not free, pro, enterprise or a number from 1 to 100000", trunc(s))
	}
	return Plan{Name: PlanCustom, Limit: n}, nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
