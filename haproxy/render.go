package haproxy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrBadSpec is wrapped by every error Render returns for a Spec it refuses;
// the message names the field or the site at fault.
var ErrBadSpec = errors.New("bad haproxy spec")

// Names Render gives to the sections it writes. Site backends are named by
// BackendName; their servers by ServerName.
const (
	// FrontendHTTP serves Spec.ListenHTTP and routes by Host header
	// through HostsMap.
	FrontendHTTP = "http"
	// FrontendTLS serves Spec.ListenTLS and routes TLS connections by SNI
	// through SNIMap, without decrypting them.
	FrontendTLS = "tls"
	// DefaultsName names the one defaults section.
	DefaultsName = "lumos"
	// BackendUnknownHost answers HTTP requests for a host no site has
	// (or with no Host header) with UnknownHostStatus and UnknownHostBody.
	BackendUnknownHost = "lumos_unknown_host"
	// BackendUnknownSNI closes TLS connections whose SNI no site has (or
	// which are not TLS at all).
	BackendUnknownSNI = "lumos_unknown_sni"
	// SiteBackendPrefix starts the name of every site backend, so a map
	// entry can never route to one of the backends above.
	SiteBackendPrefix = "site_"
	// SpareBackendPrefix starts the name of the spare backends: empty
	// backends, SpareBackends per mode, that the Manager fills through
	// the runtime API to serve a new site without a reload (see
	// SpareBackendName and Manager.Apply).
	SpareBackendPrefix = "lumos_spare_"
)

// SpareBackends is the number of spare backends Render writes per mode
// (tcp ones only with a TLS frontend). Each lets one new site of its mode
// be served without a reload; the next reload brings them all back empty.
const SpareBackends = 16

// SpareBackendName is the name of the i-th spare backend (from 0) of a mode:
// SpareBackendPrefix, the mode, '_' and i in two digits (so that names sort
// in order, as config-parser writes sections).
func SpareBackendName(mode string, i int) string {
	n := strconv.Itoa(i)
	if i < 10 {
		n = "0" + n
	}
	return SpareBackendPrefix + mode + "_" + n
}

// renderServerDefaults are the health-check settings of every server
// ("default-server" in the defaults section). A server added through the
// runtime API does not take default-server settings, so it is given them
// explicitly.
const renderServerDefaults = "inter 2s fall 3 rise 2"

// The answer of BackendUnknownHost.
const (
	UnknownHostStatus = 404
	UnknownHostBody   = "lumos: no site for this host\n"
)

// DefaultMaxConn is the global connection limit of the rendered
// configuration. Each established connection costs about 33 kB of buffers
// and two file descriptors, so this stays within the memory of a small VPS
// and, with the descriptor HAProxy reserves for each health-checked server,
// within a 20,000 descriptor limit up to about 4,000 origins.
const DefaultMaxConn = 8000

// Limits on a Spec.
const (
	// MaxDirLen keeps the sockets inside Spec.Dir within the 107 bytes of
	// a Unix socket path, including the ".PID.tmp" suffix HAProxy binds
	// to before renaming.
	MaxDirLen = 107 - len("/"+MasterSocket) - len(".4194304.tmp")
	// MaxDomainLen is the longest domain name DNS allows.
	MaxDomainLen = 253
)

// BackendName is the name of a site's backend: SiteBackendPrefix followed by
// the domain. HAProxy accepts letters, digits, '-', '_', '.' and ':' in
// names, so every valid domain gives a valid, unique and stable name.
func BackendName(domain string) string { return SiteBackendPrefix + domain }

// ServerName is the name of a site's i-th origin (from 0) inside its
// backend: "o1", "o2", ...
func ServerName(i int) string { return "o" + strconv.Itoa(i+1) }

// renderSite is a validated Site ready to be written.
type renderSite struct {
	domain  string
	backend string
	mode    string
	origins []string // canonical IP:PORT
}

// Render validates spec and renders the HAProxy configuration and map files
// for it. The result depends only on spec: the same spec always gives the
// same bytes and Hash.
//
// The configuration has, in this order (the order in which client-native's
// config-parser writes a configuration, so parsing and writing it back gives
// the same text):
//
//   - global: maxconn (DefaultMaxConn), pid file and stats socket in
//     Spec.Dir (the stats socket hands the listeners over on reload:
//     "expose-fd listeners"), hard-stop-after and mworker-max-reloads so old
//     workers do not pile up, logging of events (not of requests) to stdout,
//     "no strict-limits" so that a descriptor limit below HAProxy's
//     worst-case estimate gives a warning, not a refusal to start. No
//     "daemon" and no "master-worker": the supervisor starts HAProxy in the
//     foreground with "-W -S Spec.Dir/master.sock".
//   - defaults: timeouts, retries with redispatch, and health-check timing
//     for every server (default-server inter 2s fall 3 rise 2: an origin
//     that stops answering is out of service after about 6 s).
//   - frontend FrontendHTTP on Spec.ListenHTTP: adds X-Forwarded-For and
//     X-Forwarded-Proto, looks the Host header (lower-cased, without port)
//     up in HostsMap and uses the backend found there, else
//     BackendUnknownHost.
//   - frontend FrontendTLS on Spec.ListenTLS (only if set): waits up to 5 s
//     for a TLS ClientHello, looks its SNI (lower-cased) up in SNIMap and
//     passes the connection through to the backend found there, else
//     BackendUnknownSNI.
//   - SpareBackends spare backends of mode http, named
//     SpareBackendName("http", i), then (only with a TLS frontend) as many
//     of mode tcp: empty, round robin. No map entry names them until the
//     Manager serves a new site from one (Manager.Apply).
//   - backend BackendUnknownHost, backend BackendUnknownSNI.
//   - one backend per site, in Spec.Sites order, named BackendName(domain),
//     mode http or tcp, round robin over its origins, servers ServerName(i)
//     with "check".
//
// Health checks are plain TCP connects ("check" with no "option httpchk"):
// an origin may answer GET / with a redirect, an authentication challenge
// or a 404 for a request without its virtual host, and an HTTP check would
// take such healthy origins out of service. A dead origin fails the connect.
//
// HostsMap holds "domain backend" for every http site, SNIMap for every tcp
// site, in Spec.Sites order; both are always present (possibly empty), since
// the configuration names both files. Routing reads the maps, so a site can
// be removed from service through the runtime API by deleting its map
// entry; a new site is served from a spare backend filled through the
// runtime API while spare backends of its mode remain, otherwise its
// backend needs a reload.
//
// Base holds everything before the first site backend: global, defaults,
// frontends, the spare backends and the two default backends.
func Render(spec *Spec) (*Rendered, error) {
	if spec == nil {
		return nil, fmt.Errorf("%w: spec is nil", ErrBadSpec)
	}
	dir, httpBind, tlsBind, sites, err := renderValidate(spec)
	if err != nil {
		return nil, err
	}

	var b strings.Builder
	b.Grow(4096 + len(sites)*(160+len(dir)))
	renderWriteBase(&b, dir, httpBind, tlsBind)
	r := &Rendered{
		Maps:     make(map[string][]byte, 2),
		Backends: make(map[string]string, len(sites)+2+2*SpareBackends),
	}
	baseEnd := b.Len()
	defaults := renderWriteDefaultBackends(&b, tlsBind != "")
	ends := make([]int, len(sites))
	for i := range sites {
		renderWriteSiteBackend(&b, &sites[i])
		ends[i] = b.Len()
	}
	cfg := b.String()

	// Sections are substrings of cfg: no copies.
	start := baseEnd
	for _, d := range defaults {
		r.Backends[d.name] = cfg[start:d.end]
		start = d.end
	}
	r.Base = cfg[:start]
	for i := range sites {
		r.Backends[sites[i].backend] = cfg[start:ends[i]]
		start = ends[i]
	}
	r.Config = []byte(cfg)

	var hosts, sni strings.Builder
	for i := range sites {
		s := &sites[i]
		m := &hosts
		if s.mode == ModeTCP {
			m = &sni
		}
		m.WriteString(s.domain)
		m.WriteByte(' ')
		m.WriteString(s.backend)
		m.WriteByte('\n')
	}
	r.Maps[HostsMap] = []byte(hosts.String())
	r.Maps[SNIMap] = []byte(sni.String())

	h := sha256.New()
	for _, part := range []struct {
		name string
		data []byte
	}{{ConfigFile, r.Config}, {HostsMap, r.Maps[HostsMap]}, {SNIMap, r.Maps[SNIMap]}} {
		fmt.Fprintf(h, "%s %d\n", part.name, len(part.data))
		h.Write(part.data)
	}
	r.Hash = hex.EncodeToString(h.Sum(nil))
	return r, nil
}

func renderBadSpec(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadSpec}, args...)...)
}

// renderValidate checks spec and returns what Render writes: the cleaned
// directory, the canonical listen addresses ("" for no TLS frontend) and the
// sites with their origins in canonical form.
func renderValidate(spec *Spec) (dir, httpBind, tlsBind string, sites []renderSite, err error) {
	dir, err = renderValidateDir(spec.Dir)
	if err != nil {
		return "", "", "", nil, err
	}
	httpAP, err := renderParseListen("ListenHTTP", spec.ListenHTTP)
	if err != nil {
		return "", "", "", nil, err
	}
	httpBind = httpAP.String()
	if spec.ListenTLS != "" {
		tlsAP, err := renderParseListen("ListenTLS", spec.ListenTLS)
		if err != nil {
			return "", "", "", nil, err
		}
		if tlsAP.Port() == httpAP.Port() && (tlsAP.Addr() == httpAP.Addr() ||
			tlsAP.Addr().IsUnspecified() || httpAP.Addr().IsUnspecified()) {
			return "", "", "", nil, renderBadSpec("spec.ListenTLS %q overlaps spec.ListenHTTP %q", spec.ListenTLS, spec.ListenHTTP)
		}
		tlsBind = tlsAP.String()
	}

	sites = make([]renderSite, len(spec.Sites))
	for i := range spec.Sites {
		in := &spec.Sites[i]
		if err := renderValidateDomain(in.Domain); err != nil {
			return "", "", "", nil, renderBadSpec("spec.Sites[%d]: %v", i, err)
		}
		if i > 0 {
			prev := spec.Sites[i-1].Domain
			if prev == in.Domain {
				return "", "", "", nil, renderBadSpec("site %s: duplicate domain (spec.Sites[%d] and [%d])", in.Domain, i-1, i)
			}
			if prev > in.Domain {
				return "", "", "", nil, renderBadSpec("spec.Sites is not sorted by domain: %s before %s", prev, in.Domain)
			}
		}
		s := &sites[i]
		s.domain = in.Domain
		s.backend = BackendName(in.Domain)
		switch in.Mode {
		case ModeHTTP:
		case ModeTCP:
			if tlsBind == "" {
				return "", "", "", nil, renderBadSpec("site %s: mode tcp needs spec.ListenTLS (TLS passthrough frontend)", in.Domain)
			}
		default:
			return "", "", "", nil, renderBadSpec("site %s: mode %q is not %q or %q", in.Domain, in.Mode, ModeHTTP, ModeTCP)
		}
		s.mode = in.Mode
		if len(in.Origins) == 0 {
			return "", "", "", nil, renderBadSpec("site %s: no origins", in.Domain)
		}
		s.origins = make([]string, len(in.Origins))
		for j, o := range in.Origins {
			ap, err := renderParseOrigin(o)
			if err != nil {
				return "", "", "", nil, renderBadSpec("site %s: origin %d %q: %v", in.Domain, j+1, o, err)
			}
			s.origins[j] = ap.String()
			for k := 0; k < j; k++ {
				if s.origins[k] == s.origins[j] {
					return "", "", "", nil, renderBadSpec("site %s: origin %d %q repeats origin %d", in.Domain, j+1, o, k+1)
				}
			}
		}
	}
	return dir, httpBind, tlsBind, sites, nil
}

// renderValidateDir checks Spec.Dir and returns it cleaned. The directory is
// written into the configuration unquoted and inside sample expressions
// ("map(DIR/hosts.map)"), so only plain path characters are accepted.
func renderValidateDir(d string) (string, error) {
	if d == "" {
		return "", renderBadSpec("spec.Dir is empty: want an absolute directory")
	}
	if !filepath.IsAbs(d) {
		return "", renderBadSpec("spec.Dir %q is not an absolute path", d)
	}
	for _, c := range []byte(d) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '/' || c == '.' || c == '_' || c == '-' || c == '+' || c == '=' || c == '@' || c == '~') {
			return "", renderBadSpec("spec.Dir %q contains %q: only letters, digits and / . _ - + = @ ~ are allowed", d, string(rune(c)))
		}
	}
	d = filepath.Clean(d)
	if d == "/" {
		return "", renderBadSpec("spec.Dir is the root directory: want a directory of its own")
	}
	if len(d) > MaxDirLen {
		return "", renderBadSpec("spec.Dir %q is longer than %d bytes: its sockets would not fit a Unix socket path", d, MaxDirLen)
	}
	return d, nil
}

// renderParseListen parses a listen address: IP:PORT or [IPv6]:PORT, any address
// including the unspecified one, port 1-65535.
func renderParseListen(field, s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, renderBadSpec("spec.%s is empty: want IP:PORT", field)
	}
	ap, err := renderParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, renderBadSpec("spec.%s %q: %v", field, s, err)
	}
	return ap, nil
}

// renderParseOrigin parses an origin address like renderParseListen, and refuses the
// addresses no origin can have.
func renderParseOrigin(s string) (netip.AddrPort, error) {
	ap, err := renderParseAddrPort(s)
	if err != nil {
		return ap, err
	}
	a := ap.Addr()
	switch {
	case a.IsUnspecified():
		return ap, errors.New("unspecified address")
	case a.IsMulticast():
		return ap, errors.New("multicast address")
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return ap, errors.New("broadcast address")
	}
	return ap, nil
}

func renderParseAddrPort(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		if !strings.Contains(s, ":") {
			return ap, errors.New("want IP:PORT (missing port)")
		}
		return ap, errors.New("want IP:PORT or [IPv6]:PORT with an IP address, not a name")
	}
	if ap.Addr().Zone() != "" {
		return ap, errors.New("zoned IPv6 addresses are not accepted")
	}
	if ap.Port() == 0 {
		return ap, errors.New("port 0: want 1-65535")
	}
	// Both are written without brackets for IPv4 and with them for IPv6.
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// renderValidateDomain checks a normalized domain name: lower-case LDH labels of
// 1-63 characters, not starting or ending with '-', at most 253 in all, no
// trailing dot. The name becomes a map key and part of a backend name, so
// nothing else may pass.
func renderValidateDomain(d string) error {
	if d == "" {
		return errors.New("empty domain")
	}
	if len(d) > MaxDomainLen {
		return fmt.Errorf("domain %q... is longer than %d characters", d[:40], MaxDomainLen)
	}
	label := 0
	for i := 0; i <= len(d); i++ {
		if i == len(d) || d[i] == '.' {
			switch {
			case label == 0:
				return fmt.Errorf("domain %q has an empty label", d)
			case label > 63:
				return fmt.Errorf("domain %q has a label longer than 63 characters", d)
			case d[i-label] == '-' || d[i-1] == '-':
				return fmt.Errorf("domain %q has a label starting or ending with '-'", d)
			}
			label = 0
			continue
		}
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("domain %q contains %q: want lower-case letters, digits, '-' and '.'", d, string(rune(c)))
		}
		label++
	}
	return nil
}

// The text below follows client-native's config-parser layout: a blank line
// before each section, two-space indentation, and inside a section the
// order in which the parser writes keywords.

const renderHeader = `# HAProxy configuration rendered by lumos for the domains assigned to this
# shield. Do not edit: lumos rewrites this file and its map files.
`

func renderWriteBase(b *strings.Builder, dir, httpBind, tlsBind string) {
	b.WriteString(renderHeader)
	b.WriteString("\nglobal\n")
	b.WriteString("  maxconn " + strconv.Itoa(DefaultMaxConn) + "\n")
	b.WriteString("  pidfile " + dir + "/" + PIDFile + "\n")
	b.WriteString("  stats socket " + dir + "/" + StatsSocket + " mode 600 level admin expose-fd listeners\n")
	b.WriteString("  hard-stop-after 30s\n")
	// Events (proxies started, servers up and down, alerts) go to the
	// supervisor through stdout; per-request logs (level info) do not.
	b.WriteString("  log stdout format raw local0 notice\n")
	b.WriteString("  spread-checks 5\n")
	b.WriteString("  mworker-max-reloads 50\n")
	// HAProxy reserves two descriptors per connection and one per
	// health-checked server, and by default refuses to start when it
	// cannot raise its descriptor limit that far: 10,000 sites of two
	// origins would need 36,000. Run with a warning instead; checks are
	// spread over time and hold a handful of descriptors at once.
	b.WriteString("  no strict-limits\n")

	// Named, as HAProxy recommends; every proxy takes its settings from
	// the one defaults section above it, so no "from" is needed.
	b.WriteString("\ndefaults " + DefaultsName + "\n")
	b.WriteString("  log global\n")
	b.WriteString("  option redispatch\n")
	b.WriteString("  timeout http-request 10s\n")
	b.WriteString("  timeout connect 5s\n")
	b.WriteString("  timeout client 60s\n")
	b.WriteString("  timeout server 60s\n")
	// WebSocket and other upgraded HTTP connections, and TLS passthrough
	// once both sides are connected, may stay idle longer.
	b.WriteString("  timeout tunnel 1h\n")
	b.WriteString("  retries 2\n")
	b.WriteString("  default-server " + renderServerDefaults + "\n")

	b.WriteString("\nfrontend " + FrontendHTTP + "\n")
	b.WriteString("  mode http\n")
	b.WriteString("  bind " + httpBind + "\n")
	b.WriteString("  option forwardfor\n")
	b.WriteString("  http-request set-header X-Forwarded-Proto http\n")
	b.WriteString("  use_backend %[req.hdr(host),lower,word(1,:),map(" + dir + "/" + HostsMap + "," + BackendUnknownHost + ")]\n")
	b.WriteString("  default_backend " + BackendUnknownHost + "\n")

	if tlsBind != "" {
		b.WriteString("\nfrontend " + FrontendTLS + "\n")
		b.WriteString("  mode tcp\n")
		b.WriteString("  bind " + tlsBind + "\n")
		b.WriteString("  tcp-request inspect-delay 5s\n")
		b.WriteString("  tcp-request content accept if { req_ssl_hello_type 1 }\n")
		b.WriteString("  use_backend %[req.ssl_sni,lower,map(" + dir + "/" + SNIMap + "," + BackendUnknownSNI + ")]\n")
		b.WriteString("  default_backend " + BackendUnknownSNI + "\n")
	}
}

type renderSectionEnd struct {
	name string
	end  int
}

// renderWriteDefaultBackends writes the spare backends (tcp ones only with a
// TLS frontend), then the backends of unknown hosts and SNIs, and returns
// where each ends. They are always present, so the frontends and the apply
// side can count on them.
func renderWriteDefaultBackends(b *strings.Builder, tls bool) []renderSectionEnd {
	ends := make([]renderSectionEnd, 0, 2+2*SpareBackends)
	modes := []string{ModeHTTP}
	if tls {
		modes = append(modes, ModeTCP)
	}
	for _, mode := range modes {
		for i := 0; i < SpareBackends; i++ {
			name := SpareBackendName(mode, i)
			b.WriteString("\nbackend " + name + "\n")
			b.WriteString("  mode " + mode + "\n")
			b.WriteString("  balance roundrobin\n")
			ends = append(ends, renderSectionEnd{name, b.Len()})
		}
	}
	b.WriteString("\nbackend " + BackendUnknownHost + "\n")
	b.WriteString("  mode http\n")
	b.WriteString("  http-request return status " + strconv.Itoa(UnknownHostStatus) +
		" content-type text/plain string " + renderQuote(UnknownHostBody) + "\n")
	ends = append(ends, renderSectionEnd{BackendUnknownHost, b.Len()})
	b.WriteString("\nbackend " + BackendUnknownSNI + "\n")
	b.WriteString("  mode tcp\n")
	b.WriteString("  tcp-request content reject\n")
	ends = append(ends, renderSectionEnd{BackendUnknownSNI, b.Len()})
	return ends
}

func renderWriteSiteBackend(b *strings.Builder, s *renderSite) {
	b.WriteString("\nbackend ")
	b.WriteString(s.backend)
	b.WriteString("\n  mode ")
	b.WriteString(s.mode)
	b.WriteString("\n  balance roundrobin\n")
	for i, o := range s.origins {
		b.WriteString("  server ")
		b.WriteString(ServerName(i))
		b.WriteByte(' ')
		b.WriteString(o)
		b.WriteString(" check\n")
	}
}

// renderQuote writes s as an HAProxy double-quoted word.
func renderQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\n':
			b.WriteString(`\n`)
		case '"', '\\', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
