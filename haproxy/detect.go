package haproxy

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	parser "github.com/haproxytech/config-parser/v5"
	"github.com/haproxytech/config-parser/v5/options"
	"github.com/haproxytech/config-parser/v5/params"
	"github.com/haproxytech/config-parser/v5/types"
)

// DetectedSite is a site found in an existing HAProxy configuration.
type DetectedSite struct {
	Domain   string   `json:"domain"`   // lower-case host / SNI name
	Mode     string   `json:"mode"`     // ModeHTTP or ModeTCP (SNI passthrough)
	Origins  []string `json:"origins"`  // IP:PORT of the backend's servers, in order
	Backend  string   `json:"backend"`  // backend (or listen) name in the original config
	Frontend string   `json:"frontend"` // frontend (or listen) name that routes the domain
	// Unresolved lists the backend's servers import cannot use as origins:
	// host names, unix sockets, addresses without a port that cannot be
	// derived from the frontend's bind, server templates — as written in the
	// configuration — and IP:PORT servers HAProxy talks TLS to, written
	// "IP:PORT (ssl)".
	Unresolved []string `json:"unresolved,omitempty"`
}

// detectParseMu serialises config-parser runs: the parser assigns a
// package-level variable while reading defaults sections.
var detectParseMu sync.Mutex

// DetectFile detects the sites of the HAProxy configuration at path. Map
// and pattern files given by a relative path are looked up next to the
// configuration file.
func DetectFile(path string) ([]DetectedSite, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("haproxy: read configuration: %w", err)
	}
	dir := filepath.Dir(path)
	return Detect(data, func(p string) ([]byte, error) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return os.ReadFile(p)
	})
}

// Detect finds the sites of an HAProxy configuration. readFile loads the
// map and pattern files the configuration references, by the path written
// in it (nil means os.ReadFile); a file that cannot be read is an error, as
// it is for HAProxy, and so is a line the configuration parser cannot read.
//
// A site is a domain HAProxy routes to a backend (or listen) section, found
// in frontend and listen sections:
//
//   - HTTP host routing (mode http): acl lines on the Host header —
//     hdr(host), req.hdr(host), req.fhdr(host), hdr_dom(host), hdr_beg(host),
//     with -i, -m str, -m dom, -m beg, several values per line, values read
//     from pattern files with -f, the converters lower, host_only,
//     field(1,:) and word(1,:), a ":port" suffix on values ignored — used by
//     use_backend rules, through named acls ("if host_a or host_b", "||")
//     or anonymous ones ("if { hdr(host) -i example.com }"). ssl_fc_sni on
//     a TLS-terminating http frontend counts as a host too.
//   - SNI passthrough (mode tcp): the same with req_ssl_sni / req.ssl_sni.
//   - Map routing: use_backend %[<host or SNI fetch>,lower,map(FILE,DEFAULT)]
//     and map_str / map_dom (and their _str forms); every key of the map
//     file whose value names an existing backend is a site. A log-format
//     backend name without a map (use_backend be_%[req.hdr(host),lower])
//     matches the existing backends whose names fit the pattern.
//   - Fallback: host acls a frontend or listen section defines but does not
//     use in any use_backend rule (typically "http-request deny unless
//     host_ok") are served by its default_backend, or by a listen section's
//     own servers.
//
// Rules are evaluated like HAProxy does: the first use_backend rule that
// matches a domain wins, an unconditional use_backend ends the list, and in
// an "and" of terms every positive term must be a host acl (negated terms
// are ignored: "if host_a !is_acme" is host_a). A domain redirected,
// denied or rejected outright by an http-request / tcp-request / redirect
// rule ("http-request redirect prefix https://example.com if www_host") is
// not a site of that section. When several sections route the same domain
// in the same mode, explicit rules beat fallbacks, then frontends beat
// listen sections, then names sort; sites are returned sorted by domain
// then mode.
//
// Not sites: default_backend alone (no host), hosts combined with a
// positive non-host term (path_beg, src, ...), patterns that are not names
// — hdr_end / hdr_sub / hdr_reg, -m end / sub / reg, wildcards, IP
// addresses, single-label names —, routing through variables
// (use_backend %[var(txn.x)]), "unless" conditions, http frontends routed
// by SNI fetches and tcp frontends routed by Host, and "log" mode sections.
// A use_backend naming a backend that does not exist is ignored.
//
// Server addresses: IPv4, IPv6 ("[::1]:80" or "::1:80", as HAProxy reads
// them: the port follows the last colon), with an optional ipv4@ / ipv6@ /
// tcp@ prefix. A server without a port (or with a +N / -N offset) takes
// the port of the frontend's bind when all its binds share one port;
// otherwise it is unresolved. Servers that HAProxy reaches over TLS (ssl,
// or default-server ssl without no-ssl) are reported as unresolved: an
// imported site would send them plain traffic.
func Detect(config []byte, readFile func(path string) ([]byte, error)) ([]DetectedSite, error) {
	if readFile == nil {
		readFile = os.ReadFile
	}
	text := strings.ReplaceAll(string(config), "\r\n", "\n")
	p, err := detectParse(text)
	if err != nil {
		return nil, err
	}
	d := &detector{p: p, readFile: readFile, files: map[string][]detectMapEntry{}, claims: map[detectKey]*detectClaim{}}
	return d.run()
}

// detectParse runs config-parser, which panics on some malformed lines
// (a truncated "http-request return"): that is an error here.
func detectParse(text string) (p parser.Parser, err error) {
	detectParseMu.Lock()
	defer detectParseMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("haproxy: parse configuration: the parser failed: %v", r)
		}
	}()
	p, err = parser.New(options.String(text), options.UseListenSectionParsers)
	if err != nil {
		return nil, fmt.Errorf("haproxy: parse configuration: %w", err)
	}
	return p, nil
}

type detectKey struct{ domain, mode string }

type detectClaim struct {
	sec     *detectSection
	backend string
}

// detectSection is a frontend or listen section as routing sees it.
type detectSection struct {
	typ      parser.Section
	name     string
	mode     string
	port     int  // the single port of its binds
	portOK   bool // false when binds have no port or several
	acls     map[string][]types.ACL
	aclNames []string // in order of definition
	rules    []types.UseBackend
	defBE    string
	servers  bool // a listen section with servers of its own
	blocked  map[string]bool
	catchAll string // backend of an unconditional use_backend
	reached  int    // rules evaluated before the catch-all, included
}

type detectMapEntry struct{ key, value string }

type detector struct {
	p        parser.Parser
	readFile func(string) ([]byte, error)
	files    map[string][]detectMapEntry
	claims   map[detectKey]*detectClaim
	order    []detectKey
	backends map[string]parser.Section // backend and listen sections by name
}

func (d *detector) run() ([]DetectedSite, error) {
	var secs []*detectSection
	for _, typ := range []parser.Section{parser.Frontends, parser.Listen} {
		names, _ := d.p.SectionsGet(typ)
		sort.Strings(names)
		for _, n := range names {
			s := d.section(typ, n)
			if s.mode != ModeHTTP && s.mode != ModeTCP {
				continue
			}
			secs = append(secs, s)
		}
	}
	for _, s := range secs {
		if err := d.blocking(s); err != nil {
			return nil, err
		}
	}
	for _, s := range secs {
		if err := d.route(s); err != nil {
			return nil, err
		}
	}
	for _, s := range secs {
		if err := d.fallback(s); err != nil {
			return nil, err
		}
	}
	sites := make([]DetectedSite, 0, len(d.order))
	for _, k := range d.order {
		c := d.claims[k]
		origins, unresolved := d.origins(c.sec, c.backend)
		sites = append(sites, DetectedSite{
			Domain:     k.domain,
			Mode:       k.mode,
			Origins:    origins,
			Backend:    c.backend,
			Frontend:   c.sec.name,
			Unresolved: unresolved,
		})
	}
	sort.Slice(sites, func(i, j int) bool {
		if sites[i].Domain != sites[j].Domain {
			return sites[i].Domain < sites[j].Domain
		}
		return sites[i].Mode < sites[j].Mode
	})
	return sites, nil
}

// get returns one attribute of a section, nil when absent.
func (d *detector) get(typ parser.Section, name, attr string) any {
	v, err := d.p.Get(typ, name, attr)
	if err != nil {
		return nil
	}
	return v
}

func (d *detector) section(typ parser.Section, name string) *detectSection {
	s := &detectSection{typ: typ, name: name, acls: map[string][]types.ACL{}, blocked: map[string]bool{}}
	s.mode = d.mode(typ, name)
	if acls, ok := d.get(typ, name, "acl").([]types.ACL); ok {
		for _, a := range acls {
			if _, seen := s.acls[a.Name]; !seen {
				s.aclNames = append(s.aclNames, a.Name)
			}
			s.acls[a.Name] = append(s.acls[a.Name], a)
		}
	}
	if rules, ok := d.get(typ, name, "use_backend").([]types.UseBackend); ok {
		s.rules = rules
	}
	if def, ok := d.get(typ, name, "default_backend").(*types.StringC); ok && def != nil {
		s.defBE = detectUnquote(def.Value)
	}
	if typ == parser.Listen {
		srv, _ := d.get(typ, name, "server").([]types.Server)
		tpl, _ := d.get(typ, name, "server-template").([]types.ServerTemplate)
		s.servers = len(srv)+len(tpl) > 0
	}
	binds, _ := d.get(typ, name, "bind").([]types.Bind)
	s.port, s.portOK = detectBindPort(binds)
	return s
}

// mode is the section's mode, from the section or the defaults it uses;
// HAProxy's default is tcp.
func (d *detector) mode(typ parser.Section, name string) string {
	if m, ok := d.get(typ, name, "mode").(*types.StringC); ok && m != nil {
		return m.Value
	}
	def, _ := d.p.SectionsDefaultsFromGet(typ, name)
	for i := 0; def != "" && i < 16; i++ {
		if m, ok := d.get(parser.Defaults, def, "mode").(*types.StringC); ok && m != nil {
			return m.Value
		}
		def, _ = d.p.SectionsDefaultsFromGet(parser.Defaults, def)
	}
	return ModeTCP
}

// claim records that s routes domain to backend, unless an earlier rule or
// section already did or the section turns the domain away.
func (d *detector) claim(s *detectSection, domain, backend string) {
	if s.blocked[domain] || !d.backendExists(backend) {
		return
	}
	k := detectKey{domain, s.mode}
	if _, ok := d.claims[k]; ok {
		return
	}
	d.claims[k] = &detectClaim{sec: s, backend: backend}
	d.order = append(d.order, k)
}

// backendExists tells whether name is a backend or listen section.
func (d *detector) backendExists(name string) bool {
	if d.backends == nil {
		d.backends = map[string]parser.Section{}
		for _, typ := range []parser.Section{parser.Listen, parser.Backends} {
			names, _ := d.p.SectionsGet(typ)
			for _, n := range names {
				d.backends[n] = typ
			}
		}
	}
	_, ok := d.backends[name]
	return ok && name != ""
}

// blocking finds the domains a section redirects, denies or rejects as a
// whole before any backend is chosen.
func (d *detector) blocking(s *detectSection) error {
	var rules []string
	for _, attr := range []string{"http-request", "tcp-request", "redirect"} {
		acts, _ := d.get(s.typ, s.name, attr).([]types.Action)
		for _, a := range acts {
			if a == nil {
				continue
			}
			r := a.String()
			if attr == "redirect" && !strings.HasPrefix(r, "redirect") {
				r = "redirect " + r
			}
			rules = append(rules, r)
		}
	}
	for _, r := range rules {
		toks := strings.Fields(r)
		i := slices.IndexFunc(toks, func(t string) bool { return t == "if" || t == "unless" })
		if i < 1 || toks[i] != "if" {
			continue
		}
		action := toks[0]
		if (action == "content" || action == "connection" || action == "session") && len(toks) > 1 {
			action = toks[1]
		}
		switch action {
		case "deny", "reject", "tarpit", "redirect", "return", "silent-drop":
		default:
			continue
		}
		for _, g := range detectParseCond("if", strings.Join(toks[i+1:], " ")) {
			hosts, ok, err := d.strictGroup(s, g)
			if err != nil {
				return err
			}
			if ok {
				for _, h := range hosts {
					s.blocked[h] = true
				}
			}
		}
	}
	return nil
}

// strictGroup returns the hosts of an "and" group made only of positive
// host terms.
func (d *detector) strictGroup(s *detectSection, g []detectTerm) ([]string, bool, error) {
	if len(g) == 0 {
		return nil, false, nil
	}
	var sets [][]string
	for _, t := range g {
		if t.neg {
			return nil, false, nil
		}
		class, hosts, err := d.term(s, t)
		if err != nil || class != termHosts {
			return nil, false, err
		}
		sets = append(sets, hosts)
	}
	return detectIntersect(sets), true, nil
}

// route applies the section's use_backend rules in order.
func (d *detector) route(s *detectSection) error {
	for i, r := range s.rules {
		s.reached = i + 1
		name := detectUnquote(r.Name)
		if strings.Contains(name, "%[") {
			if r.Cond != "" {
				ok, err := d.dynamicCondOK(s, r.Cond, r.CondTest)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
			}
			routes, def, err := d.dynamic(s, name)
			if err != nil {
				return err
			}
			for _, rt := range routes {
				d.claim(s, rt.key, rt.value)
			}
			if r.Cond == "" && def != "" {
				s.catchAll = def
				return nil
			}
			continue
		}
		if r.Cond == "" {
			s.catchAll = name
			return nil
		}
		for _, g := range detectParseCond(r.Cond, r.CondTest) {
			hosts, err := d.group(s, g)
			if err != nil {
				return err
			}
			for _, h := range hosts {
				d.claim(s, h, name)
			}
		}
	}
	return nil
}

// group returns the hosts an "and" group of a use_backend condition
// selects: every positive term must be a host acl (presence tests such as
// "-m found" are neutral); negated terms are ignored.
func (d *detector) group(s *detectSection, g []detectTerm) ([]string, error) {
	var sets [][]string
	for _, t := range g {
		if t.neg {
			continue
		}
		class, hosts, err := d.term(s, t)
		if err != nil {
			return nil, err
		}
		switch class {
		case termHosts:
			sets = append(sets, hosts)
		case termPresence, termNeutral:
		default:
			return nil, nil
		}
	}
	if len(sets) == 0 {
		return nil, nil
	}
	return detectIntersect(sets), nil
}

// dynamicCondOK tells whether a condition on a log-format use_backend only
// tests the host (typically "if { req.hdr(host),lower,map(F) -m found }").
func (d *detector) dynamicCondOK(s *detectSection, cond, test string) (bool, error) {
	if cond == "unless" {
		return true, nil
	}
	for _, g := range detectParseCond(cond, test) {
		ok := true
		for _, t := range g {
			if t.neg {
				continue
			}
			class, _, err := d.term(s, t)
			if err != nil {
				return false, err
			}
			if class == termOther {
				ok = false
				break
			}
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// dynamic resolves a log-format backend name into (domain, backend) routes
// and the backend chosen for unknown hosts ("" if none).
func (d *detector) dynamic(s *detectSection, name string) ([]detectMapEntry, string, error) {
	i := strings.Index(name, "%[")
	j := strings.LastIndexByte(name, ']')
	if i < 0 || j < i || strings.Contains(name[i+2:j], "%[") || strings.Contains(name[j+1:], "%[") {
		return nil, "", nil
	}
	prefix, expr, suffix := name[:i], name[i+2:j], name[j+1:]
	parts := detectSplitTop(expr, ',')
	kind, _ := detectFetch(parts[0])
	if !detectKindFits(kind, s.mode) {
		return nil, "", nil
	}
	convs := parts[1:]
	var mapConv string
	if n := len(convs); n > 0 && strings.HasPrefix(strings.ToLower(strings.TrimSpace(convs[n-1])), "map") {
		mapConv = strings.TrimSpace(convs[n-1])
		convs = convs[:n-1]
	}
	for _, c := range convs {
		if !detectConverterOK(c) {
			return nil, "", nil
		}
	}
	var routes []detectMapEntry
	if mapConv == "" {
		d.backendExists("")
		names := make([]string, 0, len(d.backends))
		for n := range d.backends {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, be := range names {
			if len(be) <= len(prefix)+len(suffix) || !strings.HasPrefix(be, prefix) || !strings.HasSuffix(be, suffix) {
				continue
			}
			mid := be[len(prefix) : len(be)-len(suffix)]
			if dom, ok := detectDomain(mid); ok && dom == mid {
				routes = append(routes, detectMapEntry{key: dom, value: be})
			}
		}
		return routes, "", nil
	}
	open := strings.IndexByte(mapConv, '(')
	if open < 0 || !strings.HasSuffix(mapConv, ")") {
		return nil, "", nil
	}
	switch strings.ToLower(mapConv[:open]) {
	case "map", "map_str", "map_str_str", "map_dom", "map_dom_str":
	default:
		return nil, "", nil // patterns (beg, end, sub, reg, ip, ...) are not names
	}
	args := detectSplitTop(mapConv[open+1:len(mapConv)-1], ',')
	file := detectUnquote(strings.TrimSpace(args[0]))
	if file == "" {
		return nil, "", nil
	}
	entries, err := d.mapFile(file)
	if err != nil {
		return nil, "", err
	}
	for _, e := range entries {
		dom, ok := detectDomain(e.key)
		if !ok || e.value == "" {
			continue
		}
		routes = append(routes, detectMapEntry{key: dom, value: prefix + e.value + suffix})
	}
	def := ""
	if len(args) > 1 {
		if v := detectUnquote(strings.TrimSpace(args[1])); v != "" && d.backendExists(prefix+v+suffix) {
			def = prefix + v + suffix
		}
	}
	return routes, def, nil
}

// fallback gives the host acls a section defines but does not route with
// use_backend to the backend that serves everything else.
func (d *detector) fallback(s *detectSection) error {
	target := s.catchAll
	if target == "" {
		target = s.defBE
	}
	if target == "" && s.typ == parser.Listen && s.servers {
		target = s.name
	}
	if target == "" {
		return nil
	}
	used := map[string]bool{}
	for _, r := range s.rules[:s.reached] {
		for _, g := range detectParseCond(r.Cond, r.CondTest) {
			for _, t := range g {
				if t.name != "" {
					used[t.name] = true
				}
			}
		}
	}
	for _, n := range s.aclNames {
		if used[n] {
			continue
		}
		class, hosts, err := d.term(s, detectTerm{name: n})
		if err != nil {
			return err
		}
		if class != termHosts {
			continue
		}
		for _, h := range hosts {
			d.claim(s, h, target)
		}
	}
	return nil
}

// origins lists the usable servers of a backend (or listen section) as
// IP:PORT and the others as written; s is the section routing to it.
func (d *detector) origins(s *detectSection, backend string) (origins, unresolved []string) {
	origins = []string{}
	d.backendExists(backend)
	typ, ok := d.backends[backend]
	if !ok {
		return origins, nil
	}
	defSSL := false
	if def, _ := d.p.SectionsDefaultsFromGet(typ, backend); def != "" {
		defSSL = detectSSL(defSSL, d.defaultServerParams(parser.Defaults, def))
	}
	defSSL = detectSSL(defSSL, d.defaultServerParams(typ, backend))
	servers, _ := d.get(typ, backend, "server").([]types.Server)
	for _, srv := range servers {
		addr := detectUnquote(srv.Address)
		o, ok := detectOrigin(addr, s.port, s.portOK)
		switch {
		case !ok:
			unresolved = append(unresolved, addr)
		case detectSSL(defSSL, srv.Params):
			unresolved = append(unresolved, o+" (ssl)")
		case !slices.Contains(origins, o):
			origins = append(origins, o)
		}
	}
	tpls, _ := d.get(typ, backend, "server-template").([]types.ServerTemplate)
	for _, t := range tpls {
		a := t.Fqdn
		if t.Port > 0 {
			a += ":" + strconv.FormatInt(t.Port, 10)
		}
		unresolved = append(unresolved, a)
	}
	return origins, unresolved
}

func (d *detector) defaultServerParams(typ parser.Section, name string) []params.ServerOption {
	var out []params.ServerOption
	switch v := d.get(typ, name, "default-server").(type) {
	case []types.DefaultServer:
		for _, ds := range v {
			out = append(out, ds.Params...)
		}
	case *types.DefaultServer:
		if v != nil {
			out = v.Params
		}
	}
	return out
}

// detectSSL applies ssl / no-ssl server options to the inherited setting.
func detectSSL(ssl bool, opts []params.ServerOption) bool {
	for _, o := range opts {
		if w, ok := o.(*params.ServerOptionWord); ok {
			switch w.Name {
			case "ssl":
				ssl = true
			case "no-ssl":
				ssl = false
			}
		}
	}
	return ssl
}

// mapFile reads a map or pattern file: "key [value]" per line, '#'
// comments.
func (d *detector) mapFile(path string) ([]detectMapEntry, error) {
	if e, ok := d.files[path]; ok {
		return e, nil
	}
	data, err := d.readFile(path)
	if err != nil {
		return nil, fmt.Errorf("haproxy: read map file %s: %w", path, err)
	}
	var entries []detectMapEntry
	for _, line := range strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		key, value := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			key, value = line[:i], strings.TrimSpace(line[i+1:])
		}
		entries = append(entries, detectMapEntry{key: key, value: value})
	}
	d.files[path] = entries
	return entries, nil
}

// Term classes of a condition.
const (
	termOther    = iota // anything else: path, source, method, ...
	termHosts           // matches a known set of host names
	termPresence        // tests the host or SNI without naming hosts (-m found, map lookups)
	termNeutral         // always true
)

// detectTerm is one term of a condition: a named acl or an anonymous one.
type detectTerm struct {
	neg    bool
	name   string
	inline []string
}

// detectParseCond splits a condition into "or" groups of "and" terms. An
// "unless" condition is the negation of all its terms.
func detectParseCond(cond, test string) [][]detectTerm {
	if cond == "" {
		return nil
	}
	toks := strings.Fields(test)
	groups := [][]detectTerm{{}}
	neg := false
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t == "or" || t == "||":
			groups = append(groups, []detectTerm{})
			neg = false
			continue
		case t == "!":
			neg = !neg
			continue
		case strings.HasPrefix(t, "!"):
			neg = !neg
			t = t[1:]
		}
		term := detectTerm{neg: neg}
		neg = false
		if t == "{" {
			j := i + 1
			for j < len(toks) && toks[j] != "}" {
				j++
			}
			term.inline = toks[i+1 : j]
			i = j
		} else {
			term.name = t
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], term)
	}
	if cond == "unless" {
		var all []detectTerm
		for _, g := range groups {
			for _, t := range g {
				t.neg = !t.neg
				all = append(all, t)
			}
		}
		return [][]detectTerm{all}
	}
	return groups
}

// term classifies a condition term in section s.
func (d *detector) term(s *detectSection, t detectTerm) (int, []string, error) {
	var lines []types.ACL
	switch {
	case t.name != "":
		lines = s.acls[t.name]
		if len(lines) == 0 {
			if t.name == "TRUE" {
				return termNeutral, nil, nil
			}
			return termOther, nil, nil
		}
	case len(t.inline) > 0:
		lines = []types.ACL{{Criterion: t.inline[0], Value: strings.Join(t.inline[1:], " ")}}
	default:
		return termOther, nil, nil
	}
	var hosts []string
	related := true
	for _, l := range lines {
		h, rel, err := d.aclHosts(s, l)
		if err != nil {
			return termOther, nil, err
		}
		for _, x := range h {
			if !slices.Contains(hosts, x) {
				hosts = append(hosts, x)
			}
		}
		related = related && rel
	}
	switch {
	case len(hosts) > 0:
		return termHosts, hosts, nil
	case related:
		return termPresence, nil, nil
	}
	return termOther, nil, nil
}

// Kinds of fetches.
const (
	fetchOther    = iota
	fetchHost     // Host header
	fetchSNI      // client hello SNI, before TLS (passthrough)
	fetchFrontSNI // SNI of a connection HAProxy terminates
)

// detectFetch reads a sample fetch such as hdr_dom(host) or req.ssl_sni:
// its kind and the match method its name implies.
func detectFetch(f string) (kind int, method string) {
	f = strings.ToLower(strings.TrimSpace(f))
	name, args := f, ""
	if i := strings.IndexByte(f, '('); i >= 0 && strings.HasSuffix(f, ")") {
		name, args = f[:i], f[i+1:len(f)-1]
	}
	switch name {
	case "req_ssl_sni", "req.ssl_sni":
		return fetchSNI, "str"
	case "ssl_fc_sni":
		return fetchFrontSNI, "str"
	case "ssl_fc_sni_end":
		return fetchFrontSNI, "end"
	case "ssl_fc_sni_reg":
		return fetchFrontSNI, "reg"
	}
	for _, base := range []string{"req.fhdr", "req.hdr", "fhdr", "hdr"} {
		rest, ok := strings.CutPrefix(name, base)
		if !ok {
			continue
		}
		hdr, _, _ := strings.Cut(args, ",")
		if strings.TrimSpace(detectUnquote(hdr)) != "host" {
			return fetchOther, ""
		}
		switch rest {
		case "":
			return fetchHost, "str"
		case "_beg", "_dom", "_end", "_reg", "_sub", "_dir", "_len", "_cnt", "_val", "_ip":
			return fetchHost, rest[1:]
		}
		return fetchOther, ""
	}
	return fetchOther, ""
}

func detectKindFits(kind int, mode string) bool {
	switch mode {
	case ModeHTTP:
		return kind == fetchHost || kind == fetchFrontSNI
	case ModeTCP:
		return kind == fetchSNI
	}
	return false
}

// detectConverterOK accepts the converters that keep a host a host.
func detectConverterOK(c string) bool {
	switch strings.ReplaceAll(strings.ToLower(c), " ", "") {
	case "lower", "host_only", "field(1,:)", "word(1,:)":
		return true
	}
	return false
}

// aclHosts reads one acl line: the host names it matches, and whether it
// is about the host at all (for presence tests).
func (d *detector) aclHosts(s *detectSection, a types.ACL) ([]string, bool, error) {
	parts := detectSplitTop(a.Criterion, ',')
	kind, method := detectFetch(parts[0])
	if !detectKindFits(kind, s.mode) {
		return nil, false, nil
	}
	mapped := false
	for i, c := range parts[1:] {
		if i == len(parts)-2 && strings.HasPrefix(strings.ToLower(strings.TrimSpace(c)), "map") {
			mapped = true
			continue
		}
		if !detectConverterOK(c) {
			return nil, false, nil
		}
	}
	toks := strings.Fields(a.Value)
	var values, files []string
	i := 0
flags:
	for i < len(toks) {
		switch toks[i] {
		case "--":
			i++
			break flags
		case "-i", "-n", "-M":
			i++
		case "-m", "-f", "-u":
			if i+1 >= len(toks) {
				return nil, false, nil
			}
			switch toks[i] {
			case "-m":
				method = toks[i+1]
			case "-f":
				files = append(files, detectUnquote(toks[i+1]))
			}
			i += 2
		default:
			break flags
		}
	}
	if mapped {
		// Values compare with the map's output, not with host names.
		return nil, method == "found", nil
	}
	switch method {
	case "str", "dom", "beg":
	case "found":
		return nil, true, nil
	default:
		return nil, false, nil
	}
	for _, v := range toks[i:] {
		values = append(values, detectUnquote(v))
	}
	for _, f := range files {
		entries, err := d.mapFile(f)
		if err != nil {
			return nil, false, err
		}
		for _, e := range entries {
			values = append(values, e.key)
		}
	}
	var hosts []string
	for _, v := range values {
		if h, ok := detectDomain(v); ok && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts, true, nil
}

// detectDomain normalises an acl or map value into a domain name: lower
// case, no ":port", no trailing dot, at least two labels, no IP address,
// no wildcard or pattern characters.
func detectDomain(v string) (string, bool) {
	v = strings.ToLower(strings.TrimSpace(v))
	if i := strings.LastIndexByte(v, ':'); i >= 0 {
		if _, err := strconv.ParseUint(v[i+1:], 10, 16); err != nil {
			return "", false
		}
		v = v[:i]
	}
	v = strings.TrimSuffix(v, ".")
	if len(v) == 0 || len(v) > 253 {
		return "", false
	}
	if _, err := netip.ParseAddr(v); err == nil {
		return "", false
	}
	labels := strings.Split(v, ".")
	if len(labels) < 2 {
		return "", false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", false
			}
		}
	}
	return v, true
}

// detectBindPort returns the port shared by all TCP binds of a section.
func detectBindPort(binds []types.Bind) (int, bool) {
	port := 0
	for _, b := range binds {
		for _, a := range strings.Split(detectUnquote(b.Path), ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			if at := strings.IndexByte(a, '@'); at >= 0 {
				switch a[:at] {
				case "ipv4", "ipv6", "tcp", "tcp4", "tcp6":
					a = a[at+1:]
				default:
					continue // unix sockets, file descriptors, ...
				}
			}
			if strings.HasPrefix(a, "/") {
				continue
			}
			i := strings.LastIndexByte(a, ':')
			if i < 0 {
				return 0, false
			}
			p, err := strconv.Atoi(a[i+1:])
			if err != nil || p < 1 || p > 65535 || (port != 0 && p != port) {
				return 0, false // a range, a variable, or several ports
			}
			port = p
		}
	}
	return port, port != 0
}

// detectOrigin reads a server address as HAProxy does and returns it as
// IP:PORT; port is the frontend's bind port for addresses without one.
func detectOrigin(addr string, port int, portOK bool) (string, bool) {
	if at := strings.IndexByte(addr, '@'); at >= 0 {
		switch addr[:at] {
		case "ipv4", "ipv6", "tcp", "tcp4", "tcp6":
			addr = addr[at+1:]
		default:
			return "", false
		}
	}
	var host, ps string
	if strings.HasPrefix(addr, "[") {
		end := strings.IndexByte(addr, ']')
		if end < 0 {
			return "", false
		}
		host, ps = addr[1:end], addr[end+1:]
		if ps != "" {
			if ps[0] != ':' {
				return "", false
			}
			ps = ps[1:]
		}
	} else if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		host, ps = addr[:i], addr[i+1:]
	} else {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return "", false
	}
	ip = ip.Unmap()
	p := 0
	switch {
	case ps == "":
		if !portOK {
			return "", false
		}
		p = port
	case ps[0] == '+' || ps[0] == '-':
		off, err := strconv.Atoi(ps[1:])
		if err != nil || !portOK {
			return "", false
		}
		if ps[0] == '-' {
			off = -off
		}
		p = port + off
	default:
		n, err := strconv.Atoi(ps)
		if err != nil || ps[0] < '0' || ps[0] > '9' {
			return "", false
		}
		p = n
	}
	if p < 1 || p > 65535 {
		return "", false
	}
	return netip.AddrPortFrom(ip, uint16(p)).String(), true
}

// detectSplitTop splits s at sep outside parentheses.
func detectSplitTop(s string, sep byte) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			if depth > 0 {
				depth--
			}
		case sep:
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func detectUnquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// detectIntersect keeps the names present in every set, in the order of
// the first.
func detectIntersect(sets [][]string) []string {
	var out []string
	for _, x := range sets[0] {
		in := true
		for _, s := range sets[1:] {
			if !slices.Contains(s, x) {
				in = false
				break
			}
		}
		if in {
			out = append(out, x)
		}
	}
	return out
}
