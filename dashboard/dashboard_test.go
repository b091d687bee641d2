package dashboard_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/dashboard"
	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// http.Client keep-alive connections close on their own.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

const (
	adminToken = "lma_admin_secret_token_0123456789"
	readToken  = "lmr_read_only_token_9876543210"
)

var (
	t0  = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now = t0.Add(3 * time.Hour)
)

// fakeSource is a Source over a hand-built state.
type fakeSource struct {
	mu      sync.Mutex
	st      *state.State
	members []mesh.Member
	status  api.StatusResponse
	now     time.Time
}

func (f *fakeSource) View(fn func(st *state.State)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.st)
}

func (f *fakeSource) Members() []mesh.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mesh.Member(nil), f.members...)
}

func (f *fakeSource) Status() api.StatusResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.status
	s.Nodes = append([]api.NodeInfo(nil), f.status.Nodes...)
	return s
}

func (f *fakeSource) Now() time.Time { return f.now }

// Names and values of the fixture.
const (
	evilName    = `<script>alert(1)</script>`
	evilMessage = `"><img src=x onerror=alert(2)> and <script>alert("evt")</script>`
	evilReason  = `<b>gossip</b> dead`
	fraID       = "srv-fra"
	amsID       = "srv-ams"
	evilID      = "srv-evil"
	oldID       = "srv-old"
)

func serverToken(id string) string { return "lms_" + id + "_secret_token_value" }

// fixture builds a cluster with a healthy shield, one in error, one that
// is dead and held down, a decommissioned one, a failed-over domain, a
// domain with a confirmed Cloudflare record and free-text events.
func fixture(t testing.TB) *fakeSource {
	t.Helper()
	st := state.New()
	idx := uint64(0)
	apply := func(at time.Duration, payload any) {
		t.Helper()
		idx++
		if _, err := st.Apply(idx, state.MustCommand(t0.Add(at), payload)); err != nil {
			t.Fatalf("fixture command %d (%T): %v", idx, payload, err)
		}
	}
	for i, s := range []struct{ id, name string }{{fraID, "edge-fra"}, {amsID, "edge-ams"}, {evilID, evilName}, {oldID, "edge-old"}} {
		apply(time.Duration(i)*time.Minute, &state.ServerAdd{ID: s.id, Name: s.name, TokenHash: state.HashToken(serverToken(s.id)), TokenPrefix: "lms_" + s.id[:6]})
	}
	apply(10*time.Minute, &state.ServerBind{ID: fraID, NodeName: "node-fra", Addr: "203.0.113.10", RaftAddr: "203.0.113.10:7001",
		Sites: []state.Site{{Domain: "legacy.example.com", Mode: state.ModeHTTP, Origins: []string{"10.1.0.9:80"}, Frontend: "fe_main", Backend: "be_legacy"}}})
	apply(11*time.Minute, &state.ServerBind{ID: amsID, NodeName: "node-ams", Addr: "203.0.113.20", RaftAddr: "203.0.113.20:7001"})
	apply(12*time.Minute, &state.ServerBind{ID: evilID, NodeName: "node-evil", Addr: "203.0.113.30", RaftAddr: "203.0.113.30:7001"})
	apply(20*time.Minute, &state.DomainAdd{Name: "shop.example.com", Origins: []string{"10.0.0.5:8080", "10.0.0.6:8080"}, Mode: state.ModeHTTP, DNS: state.DNS{Provider: state.DNSBuiltin, TTL: 300, FailoverTTL: 30}, Servers: []string{evilID, fraID}})
	apply(21*time.Minute, &state.DomainAdd{Name: "blog.example.org", Origins: []string{"10.0.1.5:443"}, Mode: state.ModeTCP, DNS: state.DNS{Provider: state.DNSCloudflare, TTL: 120, FailoverTTL: 20}, Servers: []string{fraID, amsID}})
	apply(22*time.Minute, &state.DomainAdd{Name: "api.example.net", Origins: []string{"10.0.2.5:8080"}, Mode: state.ModeHTTP, DNS: state.DNS{Provider: state.DNSNone}, Servers: []string{amsID}})
	apply(25*time.Minute, &state.DomainDNSSynced{Name: "blog.example.org", Record: state.DNSRecord{Provider: state.DNSCloudflare, IP: "203.0.113.10", TTL: 120}})
	apply(60*time.Minute, &state.ServerHealth{ID: amsID, ErrorType: "haproxy_reload_failed", Error: "haproxy reload failed: [ALERT] cannot bind socket <0.0.0.0:80>"})
	apply(90*time.Minute, &state.ServerLiveness{ID: evilID, Down: true, Reason: evilReason})
	apply(91*time.Minute, &state.DomainFailover{Name: "shop.example.com", From: evilID, To: fraID, Status: state.FailoverFailedOver,
		Event: state.Event{Type: state.EventFailoverTriggered, ServerID: evilID, FromIP: "203.0.113.30", ToIP: "203.0.113.10", Reason: "server_down", Message: evilMessage}})
	apply(100*time.Minute, &state.ServerDecommission{ID: oldID})
	apply(120*time.Minute, &state.EventAdd{Event: state.Event{Type: state.EventServerError, Domain: "api.example.net", ServerID: amsID, Message: "apply failed on edge-ams"}})

	seen := now.Add(-2 * time.Second)
	members := []mesh.Member{
		{Name: "c1", Addr: "10.9.0.1", Port: 7946, State: mesh.StateAlive, LastSeen: seen, Meta: mesh.Meta{Control: true, Addr: "10.9.0.1", AppliedIndex: idx}},
		{Name: "c2", Addr: "10.9.0.2", Port: 7946, State: mesh.StateAlive, LastSeen: seen, Meta: mesh.Meta{Control: true, Addr: "10.9.0.2", AppliedIndex: idx}},
		{Name: "node-fra", Addr: "203.0.113.10", Port: 7946, State: mesh.StateAlive, LastSeen: seen, Meta: mesh.Meta{Shield: true, ServerID: fraID, Addr: "203.0.113.10",
			AppliedIndex: idx, ConfigIndex: idx, ConfigHash: "f00dfeedcafe0123456789", Health: "ok", Started: now.Add(-26 * time.Hour).Unix(), Version: "1.2.0",
			Traffic: &mesh.Traffic{RequestsPerSec: 42.5, Requests: 1234567, BytesIn: 5 << 20, BytesOut: 3 << 30, Connections: 17, Responses5xx: 3, At: now.Add(-4 * time.Second).Unix()}}},
		{Name: "node-ams", Addr: "203.0.113.20", Port: 7946, State: mesh.StateAlive, LastSeen: seen, Meta: mesh.Meta{Shield: true, ServerID: amsID, Addr: "203.0.113.20",
			AppliedIndex: idx, ConfigIndex: 2, Health: "error", ErrorType: "haproxy_reload_failed", HealthError: "reload failed", Started: now.Add(-2 * time.Hour).Unix()}},
		{Name: "node-evil", Addr: "203.0.113.30", Port: 7946, State: mesh.StateDead, LastSeen: now.Add(-95 * time.Minute), Meta: mesh.Meta{Shield: true, ServerID: evilID, Addr: "203.0.113.30"}},
	}
	status := api.StatusResponse{
		Node: "c1", Version: "1.2.0", RaftState: "leader", Leader: "c1", Term: 7, CommitIndex: idx, AppliedIndex: idx,
		Nodes: []api.NodeInfo{
			{Name: "c1", Addr: "10.9.0.1:7946", GossipState: "alive", Suffrage: "voter", Leader: true, Control: true, Applied: idx, LastSeen: &seen},
			{Name: "c2", Addr: "10.9.0.2:7946", GossipState: "alive", Suffrage: "voter", Control: true, Applied: idx, LastSeen: &seen},
			{Name: "c3", RaftAddr: "10.9.0.3:7000", GossipState: "unknown", Suffrage: "voter", Control: true},
			{Name: "node-fra", GossipState: "alive", Suffrage: "nonvoter", Shield: true, ServerID: fraID},
		},
	}
	return &fakeSource{st: st, members: members, status: status, now: now}
}

func newHandler(t testing.TB, src dashboard.Source) http.Handler {
	t.Helper()
	h, err := dashboard.New(dashboard.Config{
		Source:          src,
		AdminTokenHash:  state.HashToken(adminToken),
		ReadTokenHashes: []string{state.HashToken(readToken)},
		ClusterName:     "prod-eu",
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type resp struct {
	code int
	hdr  http.Header
	body string
}

func do(t testing.TB, h http.Handler, method, target string, auth func(*http.Request)) resp {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	if auth != nil {
		auth(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return resp{code: w.Code, hdr: w.Result().Header, body: string(b)}
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func basic(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func get(t testing.TB, h http.Handler, target string) resp {
	t.Helper()
	return do(t, h, http.MethodGet, target, bearer(adminToken))
}

func mustContain(t *testing.T, what, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("%s: missing %q", what, s)
		}
	}
}

func mustNotContain(t *testing.T, what, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(body, s) {
			t.Errorf("%s: must not contain %q", what, s)
		}
	}
}

// pages lists every page of the fixture.
var pages = []string{
	"/ui/",
	"/ui/servers",
	"/ui/servers/" + fraID,
	"/ui/servers/" + amsID,
	"/ui/servers/" + evilID,
	"/ui/servers/" + oldID,
	"/ui/domains",
	"/ui/domains/shop.example.com",
	"/ui/domains/blog.example.org",
	"/ui/domains/api.example.net",
	"/ui/events",
	"/ui/events?domain=shop.example.com",
	"/ui/events?type=server_down",
	"/ui/events?server=" + fraID,
}

func TestOverview(t *testing.T) {
	h := newHandler(t, fixture(t))
	r := get(t, h, "/ui/")
	if r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	mustContain(t, "overview", r.body,
		"prod-eu", "leader <b>c1</b>", "term 7",
		"edge-fra", "edge-ams", "&lt;script&gt;alert(1)&lt;/script&gt;",
		`<span class="num">1</span><span class="lbl">online</span>`,
		`<span class="num">1</span><span class="lbl">offline</span>`,
		`<span class="num">1</span><span class="lbl">error</span>`,
		`<span class="num">1</span><span class="lbl">down</span>`,
		`<span class="num">1</span><span class="lbl">failed over</span>`,
		`<span class="num">2<small>/3</small></span>`,
		"shop.example.com", "failed over", "haproxy_reload_failed",
		"c2", "c3", "this node", "follower",
		"1 shield is held down", "1 domain is failed over",
		"apply failed on edge-ams", // the newest event
	)
	// The decommissioned server is not counted as a shield.
	mustContain(t, "overview", r.body, "3 shields ·")
	if got := r.hdr.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("content type %q", got)
	}
}

func TestServers(t *testing.T) {
	h := newHandler(t, fixture(t))
	r := get(t, h, "/ui/servers")
	mustContain(t, "servers", r.body, "edge-fra", "edge-ams", "edge-old", "203.0.113.10", "203.0.113.20",
		"1 d 2 h", // uptime of edge-fra
		"42.5", "haproxy_reload_failed", "down: &lt;b&gt;gossip&lt;/b&gt; dead", "decommissioned")
	// Live servers come first, the decommissioned one last.
	if strings.Index(r.body, "edge-old") < strings.Index(r.body, "edge-ams") {
		t.Error("the decommissioned server is listed before a live one")
	}

	fra := get(t, h, "/ui/servers/"+fraID)
	if fra.code != http.StatusOK {
		t.Fatalf("server page: %d", fra.code)
	}
	mustContain(t, "server edge-fra", fra.body,
		"edge-fra", fraID, "lms_srv-fr", "203.0.113.10", "203.0.113.10:7001", "node-fra", "1.2.0",
		"f00dfeedcafe", // config hash, shortened
		"current", "1,234,567", "5.0 MiB", "3.0 GiB", "17",
		"shop.example.com", "blog.example.org", "legacy.example.com", "not imported", "fe_main",
		`datetime="2026-03-01T12:00:00Z"`, `title="2026-03-01 12:00:00 UTC"`, "3 h ago", // created
		"1 d 2 h",
	)
	mustNotContain(t, "server edge-fra", fra.body, "f00dfeedcafe0123456789")

	evil := get(t, h, "/ui/servers/"+evilID)
	mustContain(t, "server down", evil.body, "Held down by the failover controller", "&lt;b&gt;gossip&lt;/b&gt; dead",
		`datetime="2026-03-01T13:30:00Z"`, "offline")
	ams := get(t, h, "/ui/servers/"+amsID)
	mustContain(t, "server in error", ams.body, "haproxy_reload_failed", "cannot bind socket &lt;0.0.0.0:80&gt;", "behind")
	old := get(t, h, "/ui/servers/"+oldID)
	mustContain(t, "decommissioned server", old.body, "Decommissioned", "decommissioned")

	// A server can be found by name too.
	if r := get(t, h, "/ui/servers/edge-ams"); r.code != http.StatusOK || !strings.Contains(r.body, amsID) {
		t.Errorf("by name: %d", r.code)
	}
	if r := get(t, h, "/ui/servers/nope"); r.code != http.StatusNotFound || !strings.Contains(r.body, "no server") {
		t.Errorf("unknown server: %d", r.code)
	}
}

func TestDomains(t *testing.T) {
	h := newHandler(t, fixture(t))
	r := get(t, h, "/ui/domains")
	mustContain(t, "domains", r.body, "shop.example.com", "blog.example.org", "api.example.net", "1 failed over", "cloudflare", "synced")

	shop := get(t, h, "/ui/domains/shop.example.com")
	if shop.code != http.StatusOK {
		t.Fatalf("domain page: %d", shop.code)
	}
	mustContain(t, "failed-over domain", shop.body,
		"failed over", "DNS points at <b>edge-fra</b> instead of the primary <b>&lt;script&gt;alert(1)&lt;/script&gt;</b>",
		"10.0.0.5:8080", "10.0.0.6:8080", "builtin",
		"A 203.0.113.10", "ttl 30", // the desired record: the backup's IP with the failover TTL
		"300 s", "30 s while failed over",
		"failover triggered",
	)
	// Servers in order, the primary and the active one marked.
	rows := regexp.MustCompile(`(?s)<tr( class="active-row")?>\s*<td class="num">(\d)</td>.*?</tr>`).FindAllStringSubmatch(shop.body, -1)
	if len(rows) != 2 {
		t.Fatalf("domain servers: %d rows", len(rows))
	}
	if rows[0][1] != "" || !strings.Contains(rows[0][0], evilID) || !strings.Contains(rows[0][0], "primary") || strings.Contains(rows[0][0], ">active<") {
		t.Errorf("first row is not the inactive primary: %s", rows[0][0])
	}
	if rows[1][1] == "" || !strings.Contains(rows[1][0], fraID) || !strings.Contains(rows[1][0], "backup") || !strings.Contains(rows[1][0], ">active<") {
		t.Errorf("second row is not the active backup: %s", rows[1][0])
	}

	shopPage := get(t, h, "/ui/domains/shop.example.com")
	mustContain(t, "builtin domain", shopPage.body, "served by the control nodes from the replicated state", `<span class="tag ok">yes</span>`)
	mustNotContain(t, "builtin domain", shopPage.body, "not yet confirmed", ">pending<")

	blog := get(t, h, "/ui/domains/blog.example.org")
	mustContain(t, "synced domain", blog.body, "cloudflare", "A 203.0.113.10", "ttl 120", `<span class="tag ok">yes</span>`, "tcp")
	mustNotContain(t, "synced domain", blog.body, "not yet confirmed")

	if r := get(t, h, "/ui/domains/missing.example.com"); r.code != http.StatusNotFound {
		t.Errorf("unknown domain: %d", r.code)
	}
}

func TestEvents(t *testing.T) {
	h := newHandler(t, fixture(t))
	all := get(t, h, "/ui/events")
	mustContain(t, "events", all.body, "server added", "server joined", "domain added", "failover triggered", "server down", "server decommissioned", "apply failed on edge-ams")
	// Newest first.
	if a, b := strings.Index(all.body, "apply failed on edge-ams"), strings.Index(all.body, `server &#34;edge-fra&#34; added`); a < 0 || b < 0 || a > b {
		t.Errorf("events are not newest first (%d, %d)", a, b)
	}

	shop := get(t, h, "/ui/events?domain=shop.example.com")
	mustContain(t, "domain filter", shop.body, "domain <b>shop.example.com</b>")
	mustContain(t, "domain filter", eventRows(shop.body), "failover triggered", "domain shop.example.com added")
	mustNotContain(t, "domain filter", eventRows(shop.body), "blog.example.org", "apply failed on edge-ams", "server added")

	down := get(t, h, "/ui/events?type=server_down")
	mustContain(t, "type filter", down.body, "1 event matching the filter")
	mustContain(t, "type filter", eventRows(down.body), "server down")
	mustNotContain(t, "type filter", eventRows(down.body), "failover triggered", "domain added")

	none := get(t, h, "/ui/events?domain=nothing.example.com")
	mustContain(t, "empty filter", none.body, "No events match this filter")

	limited := get(t, h, "/ui/events?limit=2")
	mustContain(t, "limit", limited.body, "newest 2 of")

	srv := get(t, h, "/ui/events?server="+amsID)
	mustContain(t, "server filter", srv.body, "server <b>edge-ams</b>", "apply failed on edge-ams")
	mustNotContain(t, "server filter", srv.body, "edge-fra&#34; added")
}

// eventRows is the body of the events table of a page.
func eventRows(body string) string {
	_, rest, ok := strings.Cut(body, `<table class="events">`)
	if !ok {
		return ""
	}
	rows, _, _ := strings.Cut(rest, "</table>")
	return rows
}

func TestEscaping(t *testing.T) {
	h := newHandler(t, fixture(t))
	for _, p := range pages {
		r := get(t, h, p)
		if r.code != http.StatusOK {
			t.Errorf("%s: %d", p, r.code)
			continue
		}
		mustNotContain(t, p, r.body, "<script>alert", "<img src=x", "<b>gossip</b>")
	}
	ev := get(t, h, "/ui/events")
	mustContain(t, "events", ev.body, "&lt;img src=x onerror=alert(2)&gt;", "&lt;script&gt;alert(&#34;evt&#34;)&lt;/script&gt;", "&lt;script&gt;alert(1)&lt;/script&gt;")
}

// Pages must work under the CSP: no inline script, no inline style or
// event handler attributes.
var inlineRe = regexp.MustCompile(`(?i)<script(\s[^>]*)?>[^<]|<script>|<[a-z][^>]*\s(style|on[a-z]+)=|javascript:`)

func TestSecurityHeadersAndNoInlineCode(t *testing.T) {
	h := newHandler(t, fixture(t))
	for _, p := range append(pages, "/ui/nope") {
		r := get(t, h, p)
		csp := r.hdr.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
			if got := r.hdr.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", p, k, got, v)
			}
		}
		if m := inlineRe.FindString(r.body); m != "" {
			t.Errorf("%s: inline code %q", p, m)
		}
		if !strings.Contains(r.body, `<script src="/ui/static/app.js?v=`) {
			t.Errorf("%s: no script tag", p)
		}
		if strings.Contains(r.body, "<form") {
			t.Errorf("%s: has a form", p)
		}
	}
}

func TestNoSecretsRendered(t *testing.T) {
	src := fixture(t)
	h := newHandler(t, src)
	secrets := []string{adminToken, readToken, state.HashToken(adminToken), state.HashToken(readToken)}
	src.View(func(st *state.State) {
		for _, sv := range st.Servers {
			secrets = append(secrets, sv.TokenHash, sv.TokenHash[:16], serverToken(sv.ID))
		}
	})
	for _, p := range append(pages, "/ui/nope", "/ui/static/app.js", "/ui/static/app.css") {
		r := get(t, h, p)
		low := strings.ToLower(r.body)
		for _, s := range secrets {
			if strings.Contains(low, strings.ToLower(s)) {
				t.Errorf("%s shows a secret or token hash (%s...)", p, s[:8])
			}
		}
		if strings.Contains(low, "token_hash") || strings.Contains(low, "tokenhash") {
			t.Errorf("%s mentions a token hash field", p)
		}
	}
	// The token prefix is fine and shown.
	r := get(t, h, "/ui/servers/"+fraID)
	mustContain(t, "server", r.body, "lms_srv-fr")
}

func TestAuth(t *testing.T) {
	h := newHandler(t, fixture(t))
	refused := map[string]func(*http.Request){
		"no credentials":     nil,
		"wrong bearer":       bearer("wrong-token"),
		"empty bearer":       bearer(""),
		"hash as bearer":     bearer(state.HashToken(adminToken)),
		"wrong basic":        basic("admin", "wrong-token"),
		"basic without pass": basic("", ""),
		"other scheme":       func(r *http.Request) { r.Header.Set("Authorization", "Token "+adminToken) },
	}
	for _, p := range []string{"/ui/", "/ui/servers", "/ui/static/app.js", "/ui/nope", "/ui"} {
		for name, auth := range refused {
			r := do(t, h, http.MethodGet, p, auth)
			if r.code != http.StatusUnauthorized {
				t.Errorf("%s %s: %d, want 401", p, name, r.code)
			}
			if got := r.hdr.Get("WWW-Authenticate"); got != `Basic realm="lumos"` {
				t.Errorf("%s %s: WWW-Authenticate %q", p, name, got)
			}
			if strings.Contains(r.body, "edge-fra") {
				t.Errorf("%s %s: shows data without credentials", p, name)
			}
		}
	}
	accepted := map[string]func(*http.Request){
		"admin bearer":       bearer(adminToken),
		"admin basic":        basic("anyone", adminToken),
		"admin as user name": basic(adminToken, ""),
		"read bearer":        bearer(readToken),
		"read basic":         basic("ops", readToken),
	}
	for name, auth := range accepted {
		r := do(t, h, http.MethodGet, "/ui/servers", auth)
		if r.code != http.StatusOK || !strings.Contains(r.body, "edge-fra") {
			t.Errorf("%s: %d", name, r.code)
		}
	}
	// The prefix without a slash redirects (after authentication).
	r := get(t, h, "/ui")
	if r.code != http.StatusFound || r.hdr.Get("Location") != "/ui/" {
		t.Errorf("/ui: %d to %q", r.code, r.hdr.Get("Location"))
	}
}

func TestOnlyGetAndHead(t *testing.T) {
	h := newHandler(t, fixture(t))
	ts := httptest.NewServer(h)
	defer ts.Close()
	ts.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	methods := []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace, "PROPFIND"}
	paths := append(append([]string{}, pages...), "/ui", "/ui/nope", "/ui/static/app.js", "/ui/static/app.css", "/ui/static/favicon.svg")
	for _, p := range paths {
		for _, m := range methods {
			for _, auth := range []func(*http.Request){nil, bearer(adminToken)} {
				req, _ := http.NewRequest(m, ts.URL+p, strings.NewReader("x=1"))
				if auth != nil {
					auth(req)
				}
				res, err := ts.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
					t.Errorf("%s %s (auth %t): %d Allow %q", m, p, auth != nil, res.StatusCode, res.Header.Get("Allow"))
				}
			}
		}
		req, _ := http.NewRequest(http.MethodHead, ts.URL+p, nil)
		bearer(adminToken)(req)
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		want := http.StatusOK
		switch p {
		case "/ui":
			want = http.StatusFound
		case "/ui/nope":
			want = http.StatusNotFound
		}
		if res.StatusCode != want || len(b) != 0 {
			t.Errorf("HEAD %s: %d with %d body bytes", p, res.StatusCode, len(b))
		}
	}
	ts.Client().CloseIdleConnections()
}

func TestStaticFiles(t *testing.T) {
	h := newHandler(t, fixture(t))
	page := get(t, h, "/ui/")
	v := regexp.MustCompile(`/ui/static/app\.js\?v=([0-9a-f]+)`).FindStringSubmatch(page.body)
	if v == nil {
		t.Fatal("no versioned script URL")
	}
	for file, ctype := range map[string]string{"app.js": "javascript", "app.css": "text/css", "favicon.svg": "image/svg+xml"} {
		r := get(t, h, "/ui/static/"+file+"?v="+v[1])
		if r.code != http.StatusOK || !strings.Contains(r.hdr.Get("Content-Type"), ctype) || len(r.body) == 0 {
			t.Errorf("%s: %d %q", file, r.code, r.hdr.Get("Content-Type"))
		}
		if !strings.Contains(r.hdr.Get("Cache-Control"), "max-age") {
			t.Errorf("%s: versioned file not cacheable: %q", file, r.hdr.Get("Cache-Control"))
		}
		if r.hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", file)
		}
	}
	if r := get(t, h, "/ui/static/nope.js"); r.code != http.StatusNotFound {
		t.Errorf("unknown static file: %d", r.code)
	}
	if r := get(t, h, "/ui/static/../templates/layout.html"); r.code != http.StatusNotFound {
		t.Errorf("template through static: %d", r.code)
	}
}

func TestConfig(t *testing.T) {
	src := fixture(t)
	good := state.HashToken(adminToken)
	for name, cfg := range map[string]dashboard.Config{
		"no source":     {AdminTokenHash: good},
		"no admin hash": {Source: src},
		"short hash":    {Source: src, AdminTokenHash: "abcd"},
		"bad read hash": {Source: src, AdminTokenHash: good, ReadTokenHashes: []string{"xyz"}},
		"root prefix":   {Source: src, AdminTokenHash: good, Prefix: "/"},
		"rel prefix":    {Source: src, AdminTokenHash: good, Prefix: "ui"},
		"dirty prefix":  {Source: src, AdminTokenHash: good, Prefix: "/a/../ui"},
		"neg refresh":   {Source: src, AdminTokenHash: good, Refresh: -time.Second},
	} {
		if _, err := dashboard.New(cfg); !errors.Is(err, dashboard.ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Another prefix, an upper-case hash, a trailing slash.
	h, err := dashboard.New(dashboard.Config{Source: src, AdminTokenHash: strings.ToUpper(good), Prefix: "/ops/dash/", Refresh: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := get(t, h, "/ops/dash/domains")
	if r.code != http.StatusOK || !strings.Contains(r.body, `href="/ops/dash/domains/shop.example.com"`) || !strings.Contains(r.body, `data-refresh="2000"`) {
		t.Errorf("custom prefix: %d", r.code)
	}
	if r := get(t, h, "/ui/"); r.code != http.StatusNotFound {
		t.Errorf("outside the prefix: %d", r.code)
	}
}

func TestEmptyClusterAndNoLeader(t *testing.T) {
	src := &fakeSource{st: state.New(), now: now, status: api.StatusResponse{Node: "c1", RaftState: "candidate", Term: 3}}
	h := newHandler(t, src)
	for _, p := range []string{"/ui/", "/ui/servers", "/ui/domains", "/ui/events"} {
		r := get(t, h, p)
		if r.code != http.StatusOK {
			t.Fatalf("%s: %d", p, r.code)
		}
		mustContain(t, p, r.body, "no leader")
	}
	mustContain(t, "overview", get(t, h, "/ui/").body, "No Raft leader is known", "No shields yet")
	mustContain(t, "servers", get(t, h, "/ui/servers").body, "No servers yet")
	mustContain(t, "domains", get(t, h, "/ui/domains").body, "No domains yet")
	mustContain(t, "events", get(t, h, "/ui/events").body, "No events")
}

// TestAPISnapshot checks the exported view builders on the fixture: the
// statuses the dashboard shows are the API's.
func TestAPISnapshot(t *testing.T) {
	src := fixture(t)
	status, servers, domains := api.Snapshot(src)
	want := map[string]string{fraID: api.StatusOnline, amsID: api.StatusError, evilID: api.StatusOffline, oldID: api.StatusDecommissioned}
	if len(servers) != len(want) {
		t.Fatalf("%d servers", len(servers))
	}
	for _, s := range servers {
		if s.Status != want[s.ID] {
			t.Errorf("%s: status %s, want %s", s.ID, s.Status, want[s.ID])
		}
	}
	if status.Servers[api.StatusOnline] != 1 || status.Servers[api.StatusError] != 1 || status.Servers[api.StatusOffline] != 1 || status.Domains != 3 || status.FailedOver != 1 || status.Node != "c1" {
		t.Errorf("status %+v", status)
	}
	if len(domains) != 3 || domains[0].Name != "api.example.net" || domains[2].Name != "shop.example.com" {
		t.Fatalf("domains %+v", domains)
	}
	shop := domains[2]
	if shop.FailoverStatus != state.FailoverFailedOver || shop.ActiveServer != fraID || !shop.Servers[0].Primary || !shop.Servers[1].Active || shop.Servers[0].Status != api.StatusOffline {
		t.Errorf("shop %+v", shop)
	}
	mi := api.IndexMembers(src.Members())
	src.View(func(st *state.State) {
		if got := api.ServerStatus(mi, st.Servers[amsID]); got != api.StatusError {
			t.Errorf("ServerStatus(ams) = %s", got)
		}
		if m, ok := mi.Member(st.Servers[fraID]); !ok || m.Name != "node-fra" {
			t.Errorf("Member(fra) = %v, %t", m.Name, ok)
		}
		if _, ok := mi.Member(st.Servers[oldID]); ok {
			t.Error("a never-bound server has a member")
		}
		// A member announcing another server's ID is not that server's node.
		other := api.IndexMembers([]mesh.Member{{Name: "node-fra", State: mesh.StateAlive, Meta: mesh.Meta{ServerID: "someone-else"}}})
		if got := api.ServerStatus(other, st.Servers[fraID]); got != api.StatusOffline {
			t.Errorf("impostor member: %s", got)
		}
	})
}
