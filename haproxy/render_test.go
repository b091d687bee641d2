package haproxy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	parser "github.com/haproxytech/config-parser/v5"
	"github.com/haproxytech/config-parser/v5/options"
	"github.com/haproxytech/config-parser/v5/params"
	cpactions "github.com/haproxytech/config-parser/v5/parsers/actions"
	httpactions "github.com/haproxytech/config-parser/v5/parsers/http/actions"
	tcpactions "github.com/haproxytech/config-parser/v5/parsers/tcp/actions"
	tcptypes "github.com/haproxytech/config-parser/v5/parsers/tcp/types"
	"github.com/haproxytech/config-parser/v5/types"
)

// renderGoldenDir is Spec.Dir in the golden files. The same specs are rendered
// again with a temporary directory, where `haproxy -c` finds their maps.
const renderGoldenDir = "/var/lib/lumos/haproxy"

func renderLabel(c byte, n int) string { return strings.Repeat(string(c), n) }

// renderLongDomain is a 253-character name of 63-character labels.
var renderLongDomain = renderLabel('a', 63) + "." + renderLabel('b', 63) + "." + renderLabel('c', 63) + "." + renderLabel('d', 57) + ".com"

// renderGoldenSpecs are the golden cases by file name.
var renderGoldenSpecs = map[string]func(dir string) *Spec{
	// HTTP sites only and no TLS frontend.
	"http": func(dir string) *Spec {
		return &Spec{Dir: dir, ListenHTTP: "0.0.0.0:80", Sites: []Site{
			{Domain: "app.example.com", Mode: ModeHTTP, Origins: []string{"10.0.0.1:8080"}},
			{Domain: "blog.example.com", Mode: ModeHTTP, Origins: []string{"10.0.0.2:80", "10.0.0.3:80"}},
			{Domain: "example.com", Mode: ModeHTTP, Origins: []string{"192.168.10.5:80"}},
		}}
	},
	// TLS passthrough sites only, listening on IPv6.
	"tcp": func(dir string) *Spec {
		return &Spec{Dir: dir, ListenHTTP: "[::]:80", ListenTLS: "[::]:443", Sites: []Site{
			{Domain: "mail.example.org", Mode: ModeTCP, Origins: []string{"172.16.0.9:443"}},
			{Domain: "secure.example.com", Mode: ModeTCP, Origins: []string{"[2001:db8::20]:8443", "172.16.0.10:8443"}},
		}}
	},
	// Both kinds, several origins, IPv6 origins.
	"mixed": func(dir string) *Spec {
		return &Spec{Dir: dir, ListenHTTP: "0.0.0.0:80", ListenTLS: "0.0.0.0:443", Sites: []Site{
			{Domain: "api.example.com", Mode: ModeHTTP, Origins: []string{"10.0.0.1:8080", "10.0.0.2:8080", "[2001:db8::10]:8080"}},
			{Domain: "example.com", Mode: ModeHTTP, Origins: []string{"203.0.113.7:80"}},
			{Domain: "shop.example.net", Mode: ModeTCP, Origins: []string{"[2001:db8::20]:443", "192.168.1.20:443"}},
			{Domain: "vpn.example.net", Mode: ModeTCP, Origins: []string{"127.0.0.1:8443"}},
			{Domain: "www.example.com", Mode: ModeHTTP, Origins: []string{"[::1]:8080"}},
		}}
	},
	// Odd but valid names.
	"odd_names": func(dir string) *Spec {
		s := &Spec{Dir: dir, ListenHTTP: "127.0.0.1:8080", ListenTLS: "127.0.0.1:8443", Sites: []Site{
			{Domain: "123.example", Mode: ModeHTTP, Origins: []string{"127.0.0.1:9001"}},
			{Domain: "0-0.9", Mode: ModeHTTP, Origins: []string{"127.0.0.1:9002"}}, // digits only around a hyphen
			{Domain: "a--b---c.example", Mode: ModeHTTP, Origins: []string{"127.0.0.1:9003"}},
			{Domain: "xn--bcher-kva.example", Mode: ModeHTTP, Origins: []string{"127.0.0.1:9004"}},
			{Domain: "xn--80ak6aa92e.com", Mode: ModeTCP, Origins: []string{"127.0.0.1:9005"}},
			{Domain: renderLabel('x', 63) + ".example", Mode: ModeHTTP, Origins: []string{"127.0.0.1:9006"}},
			{Domain: "a.b.c.d.e.f.g.h.i.j.k.example.co.uk", Mode: ModeHTTP, Origins: []string{"127.0.0.1:9007"}},
			{Domain: renderLongDomain, Mode: ModeTCP, Origins: []string{"127.0.0.1:9008"}},
			{Domain: "x", Mode: ModeHTTP, Origins: []string{"127.0.0.1:9009"}},
			{Domain: "1.2.3.4.example", Mode: ModeHTTP, Origins: []string{"127.0.0.1:9010"}},
		}}
		sort.Slice(s.Sites, func(i, j int) bool { return s.Sites[i].Domain < s.Sites[j].Domain })
		return s
	},
	// No sites at all: still valid, answers every request with the
	// unknown-host status and closes every TLS connection.
	"empty": func(dir string) *Spec {
		return &Spec{Dir: dir, ListenHTTP: "127.0.0.1:8080", ListenTLS: "127.0.0.1:8443"}
	},
}

func renderGoldenPath(name, suffix string) string {
	return filepath.Join("testdata", "render", name+suffix+".golden")
}

func TestRenderGolden(t *testing.T) {
	names := make([]string, 0, len(renderGoldenSpecs))
	for name := range renderGoldenSpecs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		specFor := renderGoldenSpecs[name]
		t.Run(name, func(t *testing.T) {
			spec := specFor(renderGoldenDir)
			r, err := Render(spec)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			checkGolden(t, renderGoldenPath(name, ""), r.Config)
			checkGolden(t, renderGoldenPath(name, "."+HostsMap), r.Maps[HostsMap])
			checkGolden(t, renderGoldenPath(name, "."+SNIMap), r.Maps[SNIMap])
			renderCheckRendered(t, spec, r)

			// The golden file as client-native's parser sees it.
			golden, err := os.ReadFile(renderGoldenPath(name, ""))
			if err != nil {
				t.Fatal(err)
			}
			renderCheckParsedShape(t, spec, string(golden))

			// The same spec in a real directory passes `haproxy -c` with
			// its maps next to it.
			dir := t.TempDir()
			rd, err := Render(specFor(dir))
			if err != nil {
				t.Fatalf("Render in %s: %v", dir, err)
			}
			if want := strings.ReplaceAll(string(golden), renderGoldenDir, dir); string(rd.Config) != want {
				t.Errorf("rendering in %s is not the golden file with the directory replaced:\n%s", dir, rd.Config)
			}
			haproxyCheck(t, writeRendered(t, dir, rd))
		})
	}
}

// renderCheckRendered checks the documented relations between the fields of a
// rendering.
func renderCheckRendered(t *testing.T, spec *Spec, r *Rendered) {
	t.Helper()
	cfg := string(r.Config)

	// Backends: the two defaults, the spares, plus one per site, each a
	// section of Config; Config is Base followed by the site backends in
	// order.
	wantNames := renderBaseBackends(spec)
	inBase := len(wantNames)
	concat := r.Base
	for _, s := range spec.Sites {
		name := BackendName(s.Domain)
		wantNames = append(wantNames, name)
		concat += r.Backends[name]
	}
	if concat != cfg {
		t.Errorf("Config is not Base followed by the site backends in order")
	}
	if len(r.Backends) != len(wantNames) {
		t.Errorf("Backends has %d sections, want %d", len(r.Backends), len(wantNames))
	}
	for _, name := range wantNames {
		sec, ok := r.Backends[name]
		if !ok {
			t.Errorf("Backends lacks %s", name)
			continue
		}
		if !strings.HasPrefix(sec, "\nbackend "+name+"\n") || !strings.Contains(cfg, sec) {
			t.Errorf("Backends[%s] is not a backend section of Config: %q", name, sec)
		}
	}
	for _, name := range wantNames[:inBase] {
		if !strings.Contains(r.Base, r.Backends[name]) {
			t.Errorf("Base lacks the %s backend", name)
		}
	}
	for _, name := range wantNames[:inBase-2] {
		if want := "\nbackend " + name + "\n  mode " + strings.Split(strings.TrimPrefix(name, SpareBackendPrefix), "_")[0] + "\n  balance roundrobin\n"; r.Backends[name] != want {
			t.Errorf("spare backend %s = %q, want %q (empty, round robin)", name, r.Backends[name], want)
		}
	}
	if strings.Contains(r.Base, "\nbackend "+SiteBackendPrefix) {
		t.Errorf("Base holds a site backend")
	}

	// Maps: "domain backend" for each site, in the map of its mode.
	var hosts, sni []string
	for _, s := range spec.Sites {
		line := s.Domain + " " + BackendName(s.Domain) + "\n"
		if s.Mode == ModeTCP {
			sni = append(sni, line)
		} else {
			hosts = append(hosts, line)
		}
	}
	if got, want := string(r.Maps[HostsMap]), strings.Join(hosts, ""); got != want {
		t.Errorf("%s = %q, want %q", HostsMap, got, want)
	}
	if got, want := string(r.Maps[SNIMap]), strings.Join(sni, ""); got != want {
		t.Errorf("%s = %q, want %q", SNIMap, got, want)
	}
	if len(r.Maps) != 2 {
		t.Errorf("Maps has %d files, want %s and %s", len(r.Maps), HostsMap, SNIMap)
	}

	// Deterministic.
	again, err := Render(spec)
	if err != nil {
		t.Fatal(err)
	}
	if again.Hash != r.Hash || !bytes.Equal(again.Config, r.Config) {
		t.Errorf("two renderings of one spec differ")
	}
	if len(r.Hash) != 64 {
		t.Errorf("Hash %q is not a hex SHA-256", r.Hash)
	}
}

// renderBaseBackends returns the backends Base holds for spec, in order:
// SpareBackends http spares and, with a TLS frontend, as many tcp ones, then
// the two defaults.
func renderBaseBackends(spec *Spec) []string {
	var names []string
	modes := []string{ModeHTTP}
	if spec.ListenTLS != "" {
		modes = append(modes, ModeTCP)
	}
	for _, mode := range modes {
		for i := 0; i < SpareBackends; i++ {
			names = append(names, SpareBackendName(mode, i))
		}
	}
	return append(names, BackendUnknownHost, BackendUnknownSNI)
}

// renderCheckParsedShape parses cfg with client-native's config-parser, checks
// that writing it back gives the same text (the rendering is in the
// parser's canonical form), and checks the sections, servers and routing it
// finds against spec.
func renderCheckParsedShape(t *testing.T, spec *Spec, cfg string) {
	t.Helper()
	p, err := parser.New(options.NoNamedDefaultsFrom, options.Reader(strings.NewReader(cfg)))
	if err != nil {
		t.Fatalf("config-parser: %v", err)
	}
	if got := p.String(); got != cfg {
		t.Errorf("config-parser does not write the configuration back as rendered:\n%s", got)
	}

	get := func(sec parser.Section, name, attr string) any {
		t.Helper()
		d, err := p.Get(sec, name, attr)
		if err != nil {
			t.Errorf("%s %s: %s: %v", sec, name, attr, err)
			return nil
		}
		return d
	}
	str := func(d any) string {
		switch v := d.(type) {
		case *types.StringC:
			return v.Value
		case *types.SimpleTimeout:
			return v.Value
		case *types.Int64C:
			return strconv.FormatInt(v.Value, 10)
		}
		return fmt.Sprintf("%v", d)
	}

	// Global and defaults.
	if sock, ok := get(parser.Global, parser.GlobalSectionName, "stats socket").([]types.Socket); !ok || len(sock) != 1 || sock[0].Path != spec.Dir+"/"+StatsSocket {
		t.Errorf("stats socket = %+v, want one at %s/%s", sock, spec.Dir, StatsSocket)
	}
	if got := str(get(parser.Global, parser.GlobalSectionName, "pidfile")); got != spec.Dir+"/"+PIDFile {
		t.Errorf("pidfile = %s", got)
	}
	if d, _ := p.Get(parser.Global, parser.GlobalSectionName, "daemon"); d != nil {
		t.Errorf("daemon is set: the supervisor runs HAProxy in the foreground")
	}
	for attr, want := range map[string]string{"mworker-max-reloads": "50", "hard-stop-after": "30s"} {
		if got := str(get(parser.Global, parser.GlobalSectionName, attr)); got != want {
			t.Errorf("global %s = %s, want %s", attr, got, want)
		}
	}
	if raw, ok := get(parser.Global, parser.GlobalSectionName, "").([]types.UnProcessed); !ok || len(raw) != 1 || raw[0].Value != "no strict-limits" {
		t.Errorf("global lines config-parser does not know = %+v, want only [no strict-limits]", raw)
	}
	// Every other line is one config-parser knows.
	for _, sec := range []parser.Section{parser.Defaults, parser.Frontends, parser.Backends} {
		names, _ := p.SectionsGet(sec)
		for _, name := range names {
			if raw, err := p.Get(sec, name, ""); err == nil {
				t.Errorf("%s %s: lines config-parser does not know: %+v", sec, name, raw)
			}
		}
	}
	defs, _ := p.SectionsGet(parser.Defaults)
	if len(defs) != 1 || defs[0] != DefaultsName {
		t.Fatalf("defaults sections = %v, want [%s]", defs, DefaultsName)
	}
	for attr, want := range map[string]string{"timeout connect": "5s", "timeout client": "60s", "timeout server": "60s", "timeout http-request": "10s", "retries": "2"} {
		if got := str(get(parser.Defaults, DefaultsName, attr)); got != want {
			t.Errorf("defaults %s = %s, want %s", attr, got, want)
		}
	}

	// Frontends.
	wantFE := []string{FrontendHTTP}
	if spec.ListenTLS != "" {
		wantFE = append(wantFE, FrontendTLS)
	}
	fes, _ := p.SectionsGet(parser.Frontends)
	sort.Strings(fes)
	if strings.Join(fes, " ") != strings.Join(wantFE, " ") {
		t.Errorf("frontends = %v, want %v", fes, wantFE)
	}
	checkFrontend := func(name, mode, listen, mapFile, def string) {
		t.Helper()
		if got := str(get(parser.Frontends, name, "mode")); got != mode {
			t.Errorf("frontend %s: mode %s, want %s", name, got, mode)
		}
		binds, _ := get(parser.Frontends, name, "bind").([]types.Bind)
		if len(binds) != 1 || binds[0].Path != listen {
			t.Errorf("frontend %s: bind %+v, want %s", name, binds, listen)
		}
		ub, _ := get(parser.Frontends, name, "use_backend").([]types.UseBackend)
		if len(ub) != 1 || !strings.Contains(ub[0].Name, "map("+spec.Dir+"/"+mapFile+","+def+")") {
			t.Errorf("frontend %s: use_backend %+v does not look %s up", name, ub, mapFile)
		}
		if got := str(get(parser.Frontends, name, "default_backend")); got != def {
			t.Errorf("frontend %s: default_backend %s, want %s", name, got, def)
		}
	}
	checkFrontend(FrontendHTTP, "http", spec.ListenHTTP, HostsMap, BackendUnknownHost)
	if spec.ListenTLS != "" {
		checkFrontend(FrontendTLS, "tcp", spec.ListenTLS, SNIMap, BackendUnknownSNI)
	}

	// Backends and their servers.
	bes, _ := p.SectionsGet(parser.Backends)
	sort.Strings(bes)
	wantBE := renderBaseBackends(spec)
	for _, s := range spec.Sites {
		wantBE = append(wantBE, BackendName(s.Domain))
	}
	sort.Strings(wantBE)
	if strings.Join(bes, " ") != strings.Join(wantBE, " ") {
		t.Errorf("backends = %v, want %v", bes, wantBE)
	}
	if rs, _ := get(parser.Backends, BackendUnknownHost, "http-request").([]types.Action); len(rs) != 1 ||
		!strings.HasPrefix(rs[0].String(), "return status "+strconv.Itoa(UnknownHostStatus)) {
		t.Errorf("backend %s: http-request %v, want a return of %d", BackendUnknownHost, rs, UnknownHostStatus)
	}
	if rs, _ := get(parser.Backends, BackendUnknownSNI, "tcp-request").([]types.TCPType); len(rs) != 1 || rs[0].String() != "content reject" {
		t.Errorf("backend %s: tcp-request %v, want content reject", BackendUnknownSNI, rs)
	}
	for _, s := range spec.Sites {
		be := BackendName(s.Domain)
		if got := str(get(parser.Backends, be, "mode")); got != s.Mode {
			t.Errorf("backend %s: mode %s, want %s", be, got, s.Mode)
		}
		if b, _ := get(parser.Backends, be, "balance").(*types.Balance); b == nil || b.Algorithm != "roundrobin" {
			t.Errorf("backend %s: balance %+v, want roundrobin", be, b)
		}
		servers, _ := get(parser.Backends, be, "server").([]types.Server)
		if len(servers) != len(s.Origins) {
			t.Errorf("backend %s: %d servers, want %d", be, len(servers), len(s.Origins))
			continue
		}
		for i, srv := range servers {
			var opts []string
			for _, o := range srv.Params {
				opts = append(opts, o.String())
			}
			if srv.Name != ServerName(i) || srv.Address != s.Origins[i] || strings.Join(opts, " ") != "check" {
				t.Errorf("backend %s: server %s %s %v, want %s %s [check]", be, srv.Name, srv.Address, opts, ServerName(i), s.Origins[i])
			}
		}
	}
}

func TestRenderNormalizesAddresses(t *testing.T) {
	r, err := Render(&Spec{Dir: "/srv/lumos/../lumos/haproxy/", ListenHTTP: "[::ffff:127.0.0.1]:80", Sites: []Site{
		{Domain: "example.com", Mode: ModeHTTP, Origins: []string{"[2001:DB8:0:0::1]:08080", "[::ffff:10.1.2.3]:80"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(r.Config)
	for _, want := range []string{
		"\n  bind 127.0.0.1:80\n",
		"\n  server o1 [2001:db8::1]:8080 check\n",
		"\n  server o2 10.1.2.3:80 check\n",
		"map(/srv/lumos/haproxy/hosts.map,",
		"\n  pidfile /srv/lumos/haproxy/haproxy.pid\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}

func TestRenderHashAndBase(t *testing.T) {
	spec := renderGoldenSpecs["mixed"](renderGoldenDir)
	r1, err := Render(spec)
	if err != nil {
		t.Fatal(err)
	}

	// Another origin for one site: same Base, that backend differs, the
	// others do not, another Hash.
	spec.Sites[1].Origins = append(spec.Sites[1].Origins, "203.0.113.8:80")
	r2, err := Render(spec)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Base != r2.Base {
		t.Errorf("Base changed with a site's origins")
	}
	if r1.Hash == r2.Hash {
		t.Errorf("Hash did not change with the config")
	}
	for name, sec := range r1.Backends {
		changed := sec != r2.Backends[name]
		if changed != (name == BackendName(spec.Sites[1].Domain)) {
			t.Errorf("backend %s changed: %v", name, changed)
		}
	}

	// The same sites behind another address: Base changes, backends do not.
	spec.ListenHTTP = "0.0.0.0:8080"
	r3, err := Render(spec)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Base == r2.Base {
		t.Errorf("Base did not change with ListenHTTP")
	}
	for name, sec := range r2.Backends {
		if r3.Backends[name] != sec {
			t.Errorf("backend %s changed with ListenHTTP", name)
		}
	}

	// A site switching mode changes both maps and its backend.
	spec.Sites[0].Mode = ModeTCP
	r4, err := Render(spec)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(r4.Maps[HostsMap], r3.Maps[HostsMap]) || bytes.Equal(r4.Maps[SNIMap], r3.Maps[SNIMap]) {
		t.Errorf("maps did not follow a mode change")
	}
}

func TestRenderBadSpecs(t *testing.T) {
	ok := func() *Spec {
		return &Spec{Dir: "/var/lib/lumos/haproxy", ListenHTTP: "0.0.0.0:80", ListenTLS: "0.0.0.0:443", Sites: []Site{
			{Domain: "a.example", Mode: ModeHTTP, Origins: []string{"10.0.0.1:80"}},
			{Domain: "b.example", Mode: ModeTCP, Origins: []string{"10.0.0.2:443"}},
		}}
	}
	if _, err := Render(ok()); err != nil {
		t.Fatalf("the base spec of this table is refused: %v", err)
	}
	cases := []struct {
		name   string
		change func(s *Spec)
		want   string
	}{
		{"no dir", func(s *Spec) { s.Dir = "" }, "spec.Dir is empty"},
		{"relative dir", func(s *Spec) { s.Dir = "var/lib/lumos" }, `spec.Dir "var/lib/lumos" is not an absolute path`},
		{"dir with space", func(s *Spec) { s.Dir = "/var/lib/my lumos" }, `spec.Dir "/var/lib/my lumos" contains " "`},
		{"dir with quote", func(s *Spec) { s.Dir = `/var/lib/"x` }, `contains "\""`},
		{"dir with comma", func(s *Spec) { s.Dir = "/var/lib/a,b" }, `contains ","`},
		{"dir with dollar", func(s *Spec) { s.Dir = "/var/lib/$HOME" }, `contains "$"`},
		{"root dir", func(s *Spec) { s.Dir = "/" }, "spec.Dir is the root directory"},
		{"dir too long", func(s *Spec) { s.Dir = "/" + renderLabel('d', MaxDirLen) }, "Unix socket path"},
		{"no listen http", func(s *Spec) { s.ListenHTTP = "" }, "spec.ListenHTTP is empty: want IP:PORT"},
		{"listen http no port", func(s *Spec) { s.ListenHTTP = "0.0.0.0" }, `spec.ListenHTTP "0.0.0.0": want IP:PORT (missing port)`},
		{"listen http name", func(s *Spec) { s.ListenHTTP = "localhost:80" }, `spec.ListenHTTP "localhost:80": want IP:PORT or [IPv6]:PORT with an IP address`},
		{"listen http port 0", func(s *Spec) { s.ListenHTTP = "0.0.0.0:0" }, `spec.ListenHTTP "0.0.0.0:0": port 0`},
		{"listen http port too big", func(s *Spec) { s.ListenHTTP = "0.0.0.0:65536" }, `spec.ListenHTTP "0.0.0.0:65536"`},
		{"listen http v6 no brackets", func(s *Spec) { s.ListenHTTP = "::1:80" }, `spec.ListenHTTP "::1:80"`},
		{"listen tls bad", func(s *Spec) { s.ListenTLS = ":443" }, `spec.ListenTLS ":443"`},
		{"listen tls same", func(s *Spec) { s.ListenTLS = "0.0.0.0:80" }, `spec.ListenTLS "0.0.0.0:80" overlaps spec.ListenHTTP "0.0.0.0:80"`},
		{"listen tls overlaps any", func(s *Spec) { s.ListenTLS = "127.0.0.1:80" }, "overlaps spec.ListenHTTP"},
		{"tcp site without tls", func(s *Spec) { s.ListenTLS = "" }, "site b.example: mode tcp needs spec.ListenTLS"},
		{"empty domain", func(s *Spec) { s.Sites[0].Domain = "" }, "spec.Sites[0]: empty domain"},
		{"upper case domain", func(s *Spec) { s.Sites[0].Domain = "A.example" }, `spec.Sites[0]: domain "A.example" contains "A"`},
		{"domain with space", func(s *Spec) { s.Sites[0].Domain = "a example" }, `contains " "`},
		{"domain with underscore", func(s *Spec) { s.Sites[0].Domain = "a_b.example" }, `contains "_"`},
		{"wildcard domain", func(s *Spec) { s.Sites[0].Domain = "*.example" }, `contains "*"`},
		{"trailing dot", func(s *Spec) { s.Sites[0].Domain = "a.example." }, `domain "a.example." has an empty label`},
		{"empty label", func(s *Spec) { s.Sites[0].Domain = "a..example" }, "has an empty label"},
		{"leading hyphen", func(s *Spec) { s.Sites[0].Domain = "-a.example" }, "starting or ending with '-'"},
		{"trailing hyphen", func(s *Spec) { s.Sites[0].Domain = "a-.example" }, "starting or ending with '-'"},
		{"label too long", func(s *Spec) { s.Sites[0].Domain = renderLabel('a', 64) + ".example" }, "label longer than 63"},
		{"domain too long", func(s *Spec) { s.Sites[0].Domain = "a" + renderLongDomain }, "longer than 253"},
		{"not sorted", func(s *Spec) { s.Sites[0], s.Sites[1] = s.Sites[1], s.Sites[0] }, "spec.Sites is not sorted by domain: b.example before a.example"},
		{"duplicate", func(s *Spec) { s.Sites[1].Domain = "a.example" }, "site a.example: duplicate domain (spec.Sites[0] and [1])"},
		{"no mode", func(s *Spec) { s.Sites[0].Mode = "" }, `site a.example: mode "" is not "http" or "tcp"`},
		{"bad mode", func(s *Spec) { s.Sites[0].Mode = "HTTP" }, `site a.example: mode "HTTP" is not`},
		{"no origins", func(s *Spec) { s.Sites[0].Origins = nil }, "site a.example: no origins"},
		{"origin no port", func(s *Spec) { s.Sites[0].Origins = []string{"10.0.0.1"} }, `site a.example: origin 1 "10.0.0.1": want IP:PORT (missing port)`},
		{"origin name", func(s *Spec) { s.Sites[0].Origins = []string{"10.0.0.1:80", "origin.example:80"} }, `site a.example: origin 2 "origin.example:80": want IP:PORT or [IPv6]:PORT`},
		{"origin port 0", func(s *Spec) { s.Sites[0].Origins = []string{"10.0.0.1:0"} }, "port 0"},
		{"origin v6 no brackets", func(s *Spec) { s.Sites[0].Origins = []string{"2001:db8::1:80"} }, `origin 1 "2001:db8::1:80"`},
		{"origin zone", func(s *Spec) { s.Sites[0].Origins = []string{"[fe80::1%eth0]:80"} }, "zoned IPv6"},
		{"origin unspecified", func(s *Spec) { s.Sites[0].Origins = []string{"0.0.0.0:80"} }, "unspecified address"},
		{"origin v6 unspecified", func(s *Spec) { s.Sites[0].Origins = []string{"[::]:80"} }, "unspecified address"},
		{"origin multicast", func(s *Spec) { s.Sites[0].Origins = []string{"224.0.0.1:80"} }, "multicast address"},
		{"origin broadcast", func(s *Spec) { s.Sites[0].Origins = []string{"255.255.255.255:80"} }, "broadcast address"},
		{"origin with space", func(s *Spec) { s.Sites[0].Origins = []string{"10.0.0.1:80 backup"} }, `origin 1 "10.0.0.1:80 backup"`},
		{"origin repeated", func(s *Spec) { s.Sites[0].Origins = []string{"10.0.0.1:80", "10.0.0.1:080"} }, `origin 2 "10.0.0.1:080" repeats origin 1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := ok()
			c.change(s)
			r, err := Render(s)
			if err == nil {
				t.Fatalf("Render accepted the spec:\n%s", r.Config)
			}
			if !errors.Is(err, ErrBadSpec) {
				t.Errorf("error %q does not wrap ErrBadSpec", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
	if _, err := Render(nil); !errors.Is(err, ErrBadSpec) {
		t.Errorf("Render(nil) = %v, want ErrBadSpec", err)
	}
}

// TestRenderConfigParserBuildIsIdentical checks that building the same
// configuration through config-parser's API gives the same bytes as
// Render, so the benchmark compares like with like.
func TestRenderConfigParserBuildIsIdentical(t *testing.T) {
	specs := map[string]*Spec{"200 sites": renderManySites(renderGoldenDir, 200)}
	for name, f := range renderGoldenSpecs {
		specs[name] = f(renderGoldenDir)
	}
	for name, spec := range specs {
		r, err := Render(spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		built, err := renderWithConfigParser(spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if built != string(r.Config) {
			t.Errorf("%s: config-parser builds another text:\n%s", name, built)
		}
	}
}

// renderManySites returns a spec with n sites: one in five TLS passthrough, two
// origins each.
func renderManySites(dir string, n int) *Spec {
	s := &Spec{Dir: dir, ListenHTTP: "0.0.0.0:80", ListenTLS: "0.0.0.0:443", Sites: make([]Site, n)}
	for i := range s.Sites {
		mode := ModeHTTP
		if i%5 == 4 {
			mode = ModeTCP
		}
		s.Sites[i] = Site{
			Domain: fmt.Sprintf("site%06d.example.com", i),
			Mode:   mode,
			Origins: []string{
				fmt.Sprintf("10.%d.%d.1:8080", i/256%256, i%256),
				fmt.Sprintf("10.%d.%d.2:8080", i/256%256, i%256),
			},
		}
	}
	return s
}

// renderWithConfigParser renders spec through client-native's config-parser
// API (parser.New, Set, Insert, String) instead of writing text. It is the
// alternative BenchmarkRender measures Render against.
func renderWithConfigParser(spec *Spec) (string, error) {
	dir, httpBind, tlsBind, sites, err := renderValidate(spec)
	if err != nil {
		return "", err
	}
	p, err := parser.New(options.NoNamedDefaultsFrom)
	if err != nil {
		return "", err
	}
	var first error
	do := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	const g = parser.GlobalSectionName
	for _, line := range strings.Split(strings.TrimSuffix(renderHeader, "\n"), "\n") {
		do(p.Insert(parser.Comments, parser.CommentsSectionName, "#", types.Comments{Value: strings.TrimPrefix(line, "# ")}))
	}
	do(p.Set(parser.Global, g, "maxconn", types.Int64C{Value: DefaultMaxConn}))
	do(p.Set(parser.Global, g, "pidfile", types.StringC{Value: dir + "/" + PIDFile}))
	do(p.Insert(parser.Global, g, "stats socket", types.Socket{Path: dir + "/" + StatsSocket, Params: []params.BindOption{
		&params.BindOptionValue{Name: "mode", Value: "600"},
		&params.BindOptionValue{Name: "level", Value: "admin"},
		&params.BindOptionValue{Name: "expose-fd", Value: "listeners"},
	}}))
	do(p.Set(parser.Global, g, "hard-stop-after", types.StringC{Value: "30s"}))
	do(p.Insert(parser.Global, g, "log", types.Log{Address: "stdout", Format: "raw", Facility: "local0", Level: "notice"}))
	do(p.Set(parser.Global, g, "spread-checks", types.Int64C{Value: 5}))
	do(p.Set(parser.Global, g, "mworker-max-reloads", types.Int64C{Value: 50}))
	// config-parser has no type for "no strict-limits": it keeps the line
	// as is, last in the section.
	do(p.Insert(parser.Global, g, "", types.UnProcessed{Value: "no strict-limits"}))

	do(p.SectionsCreate(parser.Defaults, DefaultsName))
	do(p.Insert(parser.Defaults, DefaultsName, "log", types.Log{Global: true}))
	do(p.Set(parser.Defaults, DefaultsName, "option redispatch", types.OptionRedispatch{}))
	for _, to := range [][2]string{{"http-request", "10s"}, {"connect", "5s"}, {"client", "60s"}, {"server", "60s"}, {"tunnel", "1h"}} {
		do(p.Set(parser.Defaults, DefaultsName, "timeout "+to[0], types.SimpleTimeout{Value: to[1]}))
	}
	do(p.Set(parser.Defaults, DefaultsName, "retries", types.Int64C{Value: 2}))
	do(p.Set(parser.Defaults, DefaultsName, "default-server", types.DefaultServer{Params: []params.ServerOption{
		&params.ServerOptionValue{Name: "inter", Value: "2s"},
		&params.ServerOptionValue{Name: "fall", Value: "3"},
		&params.ServerOptionValue{Name: "rise", Value: "2"},
	}}))

	do(p.SectionsCreate(parser.Frontends, FrontendHTTP))
	do(p.Set(parser.Frontends, FrontendHTTP, "mode", types.StringC{Value: "http"}))
	do(p.Insert(parser.Frontends, FrontendHTTP, "bind", types.Bind{Path: httpBind}))
	do(p.Set(parser.Frontends, FrontendHTTP, "option forwardfor", types.OptionForwardFor{}))
	do(p.Insert(parser.Frontends, FrontendHTTP, "http-request", &httpactions.SetHeader{Name: "X-Forwarded-Proto", Fmt: "http"}))
	do(p.Insert(parser.Frontends, FrontendHTTP, "use_backend", types.UseBackend{Name: "%[req.hdr(host),lower,word(1,:),map(" + dir + "/" + HostsMap + "," + BackendUnknownHost + ")]"}))
	do(p.Set(parser.Frontends, FrontendHTTP, "default_backend", types.StringC{Value: BackendUnknownHost}))
	if tlsBind != "" {
		do(p.SectionsCreate(parser.Frontends, FrontendTLS))
		do(p.Set(parser.Frontends, FrontendTLS, "mode", types.StringC{Value: "tcp"}))
		do(p.Insert(parser.Frontends, FrontendTLS, "bind", types.Bind{Path: tlsBind}))
		do(p.Insert(parser.Frontends, FrontendTLS, "tcp-request", &tcptypes.InspectDelay{Timeout: "5s"}))
		do(p.Insert(parser.Frontends, FrontendTLS, "tcp-request", &tcptypes.Content{Action: &tcpactions.Accept{Cond: "if", CondTest: "{ req_ssl_hello_type 1 }"}}))
		do(p.Insert(parser.Frontends, FrontendTLS, "use_backend", types.UseBackend{Name: "%[req.ssl_sni,lower,map(" + dir + "/" + SNIMap + "," + BackendUnknownSNI + ")]"}))
		do(p.Set(parser.Frontends, FrontendTLS, "default_backend", types.StringC{Value: BackendUnknownSNI}))
	}

	status := int64(UnknownHostStatus)
	for _, name := range renderBaseBackends(spec) {
		mode, _, ok := parseSpareName(name)
		if !ok {
			continue
		}
		do(p.SectionsCreate(parser.Backends, name))
		do(p.Set(parser.Backends, name, "mode", types.StringC{Value: mode}))
		do(p.Set(parser.Backends, name, "balance", types.Balance{Algorithm: "roundrobin"}))
	}
	do(p.SectionsCreate(parser.Backends, BackendUnknownHost))
	do(p.Set(parser.Backends, BackendUnknownHost, "mode", types.StringC{Value: "http"}))
	do(p.Insert(parser.Backends, BackendUnknownHost, "http-request", &httpactions.Return{Status: &status, ContentType: "text/plain", ContentFormat: "string", Content: renderQuote(UnknownHostBody)}))
	do(p.SectionsCreate(parser.Backends, BackendUnknownSNI))
	do(p.Set(parser.Backends, BackendUnknownSNI, "mode", types.StringC{Value: "tcp"}))
	do(p.Insert(parser.Backends, BackendUnknownSNI, "tcp-request", &tcptypes.Content{Action: &cpactions.Reject{}}))

	check := []params.ServerOption{&params.ServerOptionWord{Name: "check"}}
	for i := range sites {
		s := &sites[i]
		do(p.SectionsCreate(parser.Backends, s.backend))
		do(p.Set(parser.Backends, s.backend, "mode", types.StringC{Value: s.mode}))
		do(p.Set(parser.Backends, s.backend, "balance", types.Balance{Algorithm: "roundrobin"}))
		for j, o := range s.origins {
			do(p.Insert(parser.Backends, s.backend, "server", types.Server{Name: ServerName(j), Address: o, Params: check}))
		}
	}
	if first != nil {
		return "", first
	}
	return p.String(), nil
}

// BenchmarkRender measures rendering 10,000 sites (one in five TLS
// passthrough, two origins each) with Render's text building and with
// config-parser's API, and `haproxy -c` on the result.
func BenchmarkRender(b *testing.B) {
	const n = 10000
	spec := renderManySites(renderGoldenDir, n)
	b.Run("text-10000", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		for i := 0; i < b.N; i++ {
			r, err := Render(spec)
			if err != nil {
				b.Fatal(err)
			}
			size = len(r.Config)
		}
		b.ReportMetric(float64(size), "config-bytes")
	})
	b.Run("config-parser-10000", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := renderWithConfigParser(spec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("haproxy-c-10000", func(b *testing.B) {
		dir := b.TempDir()
		r, err := Render(renderManySites(dir, n))
		if err != nil {
			b.Fatal(err)
		}
		cfg := writeRendered(b, dir, r)
		bin := haproxyBinary(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
				b.Fatalf("haproxy -c: %v\n%s", err, out)
			}
		}
	})
}
