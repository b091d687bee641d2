package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/goleak"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testAdminToken = "lma_test-admin-token-0123456789"

// t0 is the clock of the fake cluster and of the command line in tests.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// fakeBackend runs the real API handler over a real replicated state held
// in memory: every change is applied at once, as on a single-node leader.
type fakeBackend struct {
	mu      sync.Mutex
	st      *state.State
	idx     uint64
	members []mesh.Member
}

func (b *fakeBackend) NodeName() string { return "ctl-1" }

func (b *fakeBackend) View(fn func(st *state.State)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fn(b.st)
}

func (b *fakeBackend) Members() []mesh.Member {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]mesh.Member(nil), b.members...)
}

func (b *fakeBackend) Status() api.StatusResponse {
	b.mu.Lock()
	defer b.mu.Unlock()
	return api.StatusResponse{
		Node:         "ctl-1",
		Version:      "1.2.3",
		RaftState:    "Leader",
		Leader:       "ctl-1",
		LeaderAPI:    "http://10.0.0.1:7070",
		Term:         4,
		CommitIndex:  b.idx,
		AppliedIndex: b.idx,
		Nodes: []api.NodeInfo{
			{Name: "ctl-1", Addr: "10.0.0.1:7946", GossipState: "alive", Suffrage: "voter", Leader: true, Control: true, Applied: b.idx},
			{Name: "shield-1", Addr: "203.0.113.7:7946", GossipState: "alive", Suffrage: "nonvoter", Shield: true, Applied: b.idx},
		},
	}
}

func (b *fakeBackend) IsLeader() bool { return true }

func (b *fakeBackend) LeaderAPI() (string, error) { return "http://10.0.0.1:7070", nil }

func (b *fakeBackend) Apply(ctx context.Context, cmd *state.Command) (any, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.idx++
	return b.st.Apply(b.idx, cmd)
}

func (b *fakeBackend) Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	return nil, &state.Error{Code: state.CodeUnauthorized, Message: "joining is not part of these tests"}
}

func (b *fakeBackend) Now() time.Time { return t0 }

// apply commits a command directly, for setting up what the API cannot
// (a shield binding to its server record).
func (b *fakeBackend) apply(t *testing.T, payload any) {
	t.Helper()
	cmd, err := state.NewCommand(t0, payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
}

// harness runs the command line in-process against a test API server.
type harness struct {
	t    *testing.T
	b    *fakeBackend
	srv  *httptest.Server
	env  map[string]string
	tty  bool
	in   string
	mu   sync.Mutex
	reqs []string // "METHOD /path" of every request the API received
	auth []string // Authorization headers received
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, b: &fakeBackend{st: state.New()}}
	handler, err := api.NewHandler(h.b, api.ServerConfig{AdminTokenHash: state.HashToken(testAdminToken)})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.reqs = append(h.reqs, r.Method+" "+r.URL.Path)
		h.auth = append(h.auth, r.Header.Get("Authorization"))
		h.mu.Unlock()
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	h.env = map[string]string{envAddr: h.srv.URL, envAdminToken: testAdminToken}
	return h
}

// run executes lumos with args and returns the exit status and output.
func (h *harness) run(args ...string) (code int, stdout, stderr string) {
	h.t.Helper()
	var out, errb bytes.Buffer
	code = h.exec(context.Background(), strings.NewReader(h.in), &out, &errb, args...)
	return code, out.String(), errb.String()
}

// exec executes lumos with args, stdin and output writers of the caller.
func (h *harness) exec(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) int {
	c := newCLI(stdout, stderr, func(k string) string { return h.env[k] })
	c.now = func() time.Time { return t0 }
	c.loc = time.UTC
	c.isTerminal = func(io.Reader) bool { return h.tty }
	return execute(ctx, c.rootCmd(), args, stdin, stderr)
}

// promptWatcher collects stderr and calls onPrompt once the confirmation
// prompt has been written.
type promptWatcher struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	onPrompt func()
}

func (w *promptWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.onPrompt != nil && strings.Contains(w.buf.String(), "to continue: ") {
		w.onPrompt()
		w.onPrompt = nil
	}
	return len(p), nil
}

// ok runs lumos and fails the test unless it exits 0.
func (h *harness) ok(args ...string) string {
	h.t.Helper()
	code, out, errs := h.run(args...)
	if code != 0 {
		h.t.Fatalf("lumos %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// requests returns the requests the API received and forgets them.
func (h *harness) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.reqs
	h.reqs = nil
	return r
}

// addServer adds a server through the command line and returns it.
func (h *harness) addServer(name string) api.AddServerResponse {
	h.t.Helper()
	var res api.AddServerResponse
	decode(h.t, h.ok("server", "add", name, "-o", "json"), &res)
	return res
}

// bind makes the server look like a joined, healthy shield.
func (h *harness) bind(id, node, ip string) {
	h.t.Helper()
	h.b.apply(h.t, &state.ServerBind{ID: id, NodeName: node, Addr: ip, RaftAddr: ip + ":7947"})
	h.b.mu.Lock()
	h.b.members = append(h.b.members, mesh.Member{
		Name: node, Addr: ip, Port: 7946, State: mesh.StateAlive,
		Meta: mesh.Meta{
			Shield: true, ServerID: id, Addr: ip, Health: "ok", Version: "1.2.3",
			AppliedIndex: 1 << 20, ConfigIndex: 1 << 20, Started: t0.Add(-(2*time.Hour + 5*time.Minute)).Unix(),
		},
		LastSeen: t0.Add(-3 * time.Second),
		Since:    t0.Add(-time.Hour),
	})
	h.b.mu.Unlock()
}

func decode(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, s)
	}
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

func TestServerListTableAndJSON(t *testing.T) {
	h := newHarness(t)
	a := h.addServer("edge fra 1")
	h.addServer("edge-ams-1")
	h.bind(a.Server.ID, "shield-1", "203.0.113.7")
	h.ok("domain", "add", "example.com", "--origin", "10.0.0.5:80", "--server", a.Server.ID)

	out := h.ok("server", "list")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows, got:\n%s", out)
	}
	for _, col := range []string{"ID", "NAME", "STATUS", "IP", "LAST SEEN", "UPTIME", "DOMAINS", "TOKEN", "CURRENT"} {
		mustContain(t, "header", lines[0], col)
	}
	// Both servers were made at the same instant, so the order is by ID.
	bound, unbound := lines[1], lines[2]
	if !strings.HasPrefix(bound, a.Server.ID) {
		bound, unbound = unbound, bound
	}
	mustContain(t, "bound server row", bound, a.Server.ID, "edge fra 1", "online", "203.0.113.7", "3s ago", "2h5m", a.Server.TokenPrefix+"...", "yes")
	mustContain(t, "unbound server row", unbound, "edge-ams-1", "offline", "never")
	if strings.Contains(out, a.Token) {
		t.Errorf("server list shows the full token:\n%s", out)
	}

	var servers []api.ServerInfo
	decode(t, h.ok("server", "list", "--output", "json"), &servers)
	if len(servers) != 2 {
		t.Fatalf("want 2 servers in JSON, got %+v", servers)
	}
	if servers[0].ID != a.Server.ID {
		servers[0], servers[1] = servers[1], servers[0]
	}
	if servers[0].Name != "edge fra 1" || servers[0].Status != api.StatusOnline ||
		len(servers[0].Domains) != 1 || servers[0].Domains[0] != "example.com" {
		t.Errorf("unexpected JSON servers: %+v", servers)
	}
	if servers[1].Domains == nil {
		t.Errorf("domains of a server with none should be [] in JSON")
	}

	show := h.ok("server", "show", "EDGE FRA 1")
	mustContain(t, "server show", show, "ID:", a.Server.ID, "Name:", "edge fra 1", "Node:", "shield-1",
		"Last seen:", "(3s ago)", "Uptime:", "2h5m", "Domains:", "  example.com", "(current)")
	if strings.Contains(show, a.Token) {
		t.Errorf("server show shows the full token:\n%s", show)
	}
	var one api.ServerInfo
	decode(t, h.ok("server", "show", a.Server.ID, "-o", "json"), &one)
	if one.ID != a.Server.ID || one.NodeName != "shield-1" {
		t.Errorf("unexpected JSON server: %+v", one)
	}
}

func TestServerAddPrintsTokenOnce(t *testing.T) {
	h := newHarness(t)
	out := h.ok("server", "add", "edge fra 1")
	mustContain(t, "server add output", out, `Server "edge fra 1" added`, "cannot be shown again")

	var servers []api.ServerInfo
	decode(t, h.ok("server", "list", "-o", "json"), &servers)
	if len(servers) != 1 {
		t.Fatalf("want 1 server, got %d", len(servers))
	}
	prefix := servers[0].TokenPrefix
	var token string
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, prefix) && len(f) > len(prefix) {
			token = f
			break
		}
	}
	if token == "" {
		t.Fatalf("no token starting with %q in:\n%s", prefix, out)
	}
	mustContain(t, "server add output", out, "lumos join --token "+token+" "+h.srv.URL)
	// The warning about loopback addresses: the test server listens on one.
	mustContain(t, "server add output", out, "loopback")

	for _, args := range [][]string{
		{"server", "list"}, {"server", "list", "-o", "json"},
		{"server", "show", "edge fra 1"}, {"server", "show", "edge fra 1", "-o", "json"},
		{"status"}, {"status", "-o", "json"}, {"events"}, {"events", "-o", "json"},
	} {
		if o := h.ok(args...); strings.Contains(o, token) {
			t.Errorf("lumos %s shows the token again:\n%s", strings.Join(args, " "), o)
		}
	}

	var res api.AddServerResponse
	decode(t, h.ok("server", "add", "edge-ams-1", "-o", "json"), &res)
	if res.Token == "" || res.Server.Name != "edge-ams-1" || !strings.HasPrefix(res.Token, res.Server.TokenPrefix) {
		t.Errorf("unexpected JSON add response: %+v", res)
	}
}

func TestBadOutput(t *testing.T) {
	h := newHarness(t)
	code, out, errs := h.run("status", "--output", "yaml")
	if code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	if out != "" {
		t.Errorf("unexpected stdout: %q", out)
	}
	want := "lumos: invalid --output \"yaml\": use table or json\nrun 'lumos status --help' for usage\n"
	if errs != want {
		t.Errorf("stderr:\n%q\nwant:\n%q", errs, want)
	}
	if r := h.requests(); len(r) != 0 {
		t.Errorf("a bad --output still made requests: %v", r)
	}
	// Upper case is accepted.
	h.ok("status", "-o", "JSON")
}

func TestUsageErrors(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "add"}, "lumos: missing argument NAME\nrun 'lumos server add --help' for usage\n"},
		{[]string{"server", "add", "edge", "1"}, "lumos: too many arguments (2, want 1: NAME); quote a value that contains spaces\nrun 'lumos server add --help' for usage\n"},
		{[]string{"server", "rename", "edge-1"}, "lumos: missing argument NEW_NAME\n"},
		{[]string{"server", "show"}, "lumos: missing argument SERVER\n"},
		{[]string{"server", "decommission"}, "lumos: missing argument SERVER\n"},
		{[]string{"domain", "assign", "example.com"}, "lumos: missing argument SERVER\nrun 'lumos domain assign --help' for usage\n"},
		{[]string{"domain", "assign"}, "lumos: missing arguments DOMAIN SERVER\n"},
		{[]string{"domain", "add", "example.com"}, "lumos: missing --origin IP:PORT (at least one origin is required)\n"},
		{[]string{"domain", "add", "example.com", "--origin", "10.0.0.1:80", "--mode", "udp"}, "lumos: invalid --mode \"udp\": use http or tcp\n"},
		{[]string{"domain", "add", "example.com", "--origin", "10.0.0.1:80", "--dns", "route53"}, "lumos: invalid --dns \"route53\": use builtin, cloudflare or none\n"},
		{[]string{"domain", "show"}, "lumos: missing argument DOMAIN\n"},
		{[]string{"plan", "set"}, "lumos: missing argument PLAN\n"},
		{[]string{"status", "extra"}, "lumos: \"lumos status\" takes no arguments (got \"extra\")\n"},
		{[]string{"events", "--limit", "x"}, "lumos: invalid argument \"x\" for \"--limit\" flag"},
		{[]string{"server", "list", "--bogus"}, "lumos: unknown flag: --bogus\nrun 'lumos server list --help' for usage\n"},
		{[]string{"stauts"}, "lumos: unknown command \"stauts\" for \"lumos\" (did you mean \"status\"?)\nrun 'lumos --help' for usage\n"},
		{[]string{"server", "lst"}, "lumos: unknown command \"lst\" for \"lumos server\""},
		{[]string{"status", "--timeout", "0s"}, "lumos: invalid --timeout 0s: must be positive\n"},
	} {
		code, out, errs := h.run(tc.args...)
		name := strings.Join(tc.args, " ")
		if code != exitUsage {
			t.Errorf("lumos %s: exit %d, want %d (stderr %q)", name, code, exitUsage, errs)
		}
		if out != "" {
			t.Errorf("lumos %s: unexpected stdout %q", name, out)
		}
		if !strings.HasPrefix(errs, tc.want) {
			t.Errorf("lumos %s: stderr\n%q\nwant prefix\n%q", name, errs, tc.want)
		}
		if !strings.Contains(errs, "--help' for usage") {
			t.Errorf("lumos %s: no pointer to --help in %q", name, errs)
		}
		if strings.Count(errs, "\n") != 2 {
			t.Errorf("lumos %s: want exactly the reason and the hint, got %q", name, errs)
		}
	}
	if r := h.requests(); len(r) != 0 {
		t.Errorf("usage errors still made requests: %v", r)
	}
}

func TestGroupsWithoutSubcommandShowHelp(t *testing.T) {
	h := newHarness(t)
	for _, g := range []string{"server", "domain", "plan"} {
		out := h.ok(g)
		mustContain(t, "lumos "+g, out, "Usage:", "Available Commands:", "Examples:")
	}
	mustContain(t, "lumos", h.ok(), "LUMOS_ADMIN_TOKEN", "--addr")
}

func TestDecommissionConfirmation(t *testing.T) {
	h := newHarness(t)
	a := h.addServer("edge-fra-1")
	b := h.addServer("edge-ams-1")
	h.ok("domain", "add", "only-fra.example.com", "--origin", "10.0.0.5:80", "--server", "edge-fra-1")
	h.ok("domain", "add", "both.example.com", "--origin", "10.0.0.6:80", "--server", "edge-fra-1", "--server", "edge-ams-1")
	h.requests()

	// Not a terminal and no --yes: refused before anything is sent.
	code, out, errs := h.run("server", "decommission", "edge-fra-1")
	if code == 0 {
		t.Fatalf("decommission without --yes on a non-terminal succeeded: %s", out)
	}
	mustContain(t, "stderr", errs, "lumos: refusing to decommission server \"edge-fra-1\" without confirmation: pass --yes")
	if r := h.requests(); len(r) != 0 {
		t.Errorf("refused decommission still made requests: %v", r)
	}

	// A terminal, and the user declines.
	h.tty, h.in = true, "no\n"
	code, _, errs = h.run("server", "decommission", "edge-fra-1")
	if code != exitError {
		t.Errorf("declined decommission: exit %d, want %d", code, exitError)
	}
	mustContain(t, "stderr", errs, "Decommission server \"edge-fra-1\" ("+a.Server.ID+")? It will be removed from 2 domains", "lumos: decommission: aborted")
	for _, r := range h.requests() {
		if strings.HasSuffix(r, "/decommission") {
			t.Errorf("declined decommission was sent: %s", r)
		}
	}

	// A terminal, and the user agrees.
	h.in = "yes\n"
	code, out, errs = h.run("server", "decommission", "edge-fra-1")
	if code != 0 {
		t.Fatalf("confirmed decommission: exit %d: %s", code, errs)
	}
	mustContain(t, "stdout", out, "Server \"edge-fra-1\" ("+a.Server.ID+") decommissioned.", "Removed from 2 domains: both.example.com, only-fra.example.com")
	mustContain(t, "stderr", errs, "lumos: WARNING: domain only-fra.example.com has no server left")
	if strings.Contains(errs, "domain both.example.com has no server") {
		t.Errorf("warned about a domain that still has a server: %s", errs)
	}

	// --yes on a non-terminal, JSON output: the warning still goes to stderr.
	h.tty, h.in = false, ""
	code, out, errs = h.run("server", "decommission", b.Server.ID, "--yes", "-o", "json")
	if code != 0 {
		t.Fatalf("decommission --yes: exit %d: %s", code, errs)
	}
	var res api.DecommissionResponse
	decode(t, out, &res)
	if res.Server.Status != api.StatusDecommissioned || len(res.Orphaned) != 1 || res.Orphaned[0] != "both.example.com" {
		t.Errorf("unexpected decommission response: %+v", res)
	}
	mustContain(t, "stderr", errs, "domain both.example.com has no server left")
}

func TestConfirmationInterrupted(t *testing.T) {
	h := newHarness(t)
	h.ok("domain", "add", "example.com", "--origin", "10.0.0.5:80")
	h.tty = true
	// stdin is a terminal nobody types into; the user presses Ctrl-C.
	stdin, never := io.Pipe()
	defer never.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errw := &promptWatcher{onPrompt: cancel}
	var out bytes.Buffer
	code := h.exec(ctx, stdin, &out, errw, "domain", "remove", "example.com")
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	mustContain(t, "stderr", errw.buf.String(), "Remove domain example.com?", "lumos: remove domain: interrupted")
	h.tty = false
	if out := h.ok("domain", "list"); !strings.Contains(out, "example.com") {
		t.Errorf("the domain was removed after an interrupted confirmation:\n%s", out)
	}

	// Confirmed on a terminal.
	h.tty, h.in = true, "yes\n"
	mustContain(t, "stdout", h.ok("domain", "remove", "example.com"), "Domain example.com removed.")
}

func TestAPIErrorIsOneLineAndNonZero(t *testing.T) {
	h := newHarness(t)
	code, out, errs := h.run("domain", "add", "example.com", "--origin", "0.0.0.0:80")
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	if out != "" {
		t.Errorf("unexpected stdout %q", out)
	}
	// The message comes from the cluster's validation, unchanged.
	var want string
	if _, err := state.ParseOrigin("0.0.0.0:80"); err != nil {
		want = "lumos: " + err.Error() + "\n"
	}
	if want == "" || errs != want {
		t.Errorf("stderr %q, want %q", errs, want)
	}
	mustContain(t, "stderr", errs, "not routable")

	code, _, errs = h.run("server", "show", "nope")
	if code != exitError || errs != "lumos: server \"nope\" not found\n" {
		t.Errorf("server show nope: exit %d, stderr %q", code, errs)
	}
}

func TestAdminToken(t *testing.T) {
	h := newHarness(t)
	h.ok("status")
	h.mu.Lock()
	got := h.auth[len(h.auth)-1]
	h.mu.Unlock()
	if !strings.Contains(got, testAdminToken) {
		t.Errorf("Authorization header %q does not carry the admin token", got)
	}

	delete(h.env, envAdminToken)
	code, _, errs := h.run("status")
	if code != exitError {
		t.Errorf("status without a token: exit %d", code)
	}
	mustContain(t, "stderr", errs, "set LUMOS_ADMIN_TOKEN")
	if strings.Count(errs, "\n") != 1 {
		t.Errorf("want one line, got %q", errs)
	}
}

func TestAddrFromEnvAndFlag(t *testing.T) {
	h := newHarness(t)
	env := func(k string) string {
		switch k {
		case envAddr:
			return h.srv.URL
		case envAdminToken:
			return testAdminToken
		}
		return ""
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"plan", "show"}, strings.NewReader(""), &out, &errb, env); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	mustContain(t, "stdout", out.String(), "Plan enterprise: 0 of 20 servers in use, 20 left")
	if r := h.requests(); len(r) != 1 || r[0] != "GET /v1/plan" {
		t.Errorf("requests %v", r)
	}

	// Without a scheme, http:// is assumed.
	h.env[envAddr] = strings.TrimPrefix(h.srv.URL, "http://")
	h.ok("plan", "show")

	// --addr wins over LUMOS_ADDR.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	h.env[envAddr] = deadURL
	h.ok("plan", "show", "--addr", h.srv.URL)

	// Nothing listening: a one-line reason naming the address.
	code, _, errs := h.run("plan", "show")
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	mustContain(t, "stderr", errs, "lumos: cannot connect to the lumos API at "+deadURL)
	if strings.Count(errs, "\n") != 1 {
		t.Errorf("want one line, got %q", errs)
	}

	// The default when neither is set.
	c := newCLI(io.Discard, io.Discard, func(string) string { return "" })
	root := c.rootCmd()
	if err := c.resolveGlobals(root); err != nil {
		t.Fatal(err)
	}
	if c.addr != defaultAddr {
		t.Errorf("default addr %q, want %q", c.addr, defaultAddr)
	}
}

func TestStatus(t *testing.T) {
	h := newHarness(t)
	a := h.addServer("edge-fra-1")
	h.addServer("edge-ams-1")
	h.bind(a.Server.ID, "shield-1", "203.0.113.7")
	h.ok("domain", "add", "example.com", "--origin", "10.0.0.5:80")

	out := h.ok("status")
	mustContain(t, "status", out,
		"Node:", "ctl-1 (version 1.2.3)",
		"Leader:", "ctl-1 (http://10.0.0.1:7070)",
		"Raft:", "Leader, term 4",
		"Servers:", "2 total: 1 online, 1 offline, 0 error, 0 decommissioned",
		"Domains:", "1 domain, none failed over",
		"Plan:", "enterprise: 2 of 20 servers in use, 18 left",
		"NAME", "ROLE", "GOSSIP", "SUFFRAGE", "LEADER", "APPLIED",
		"control", "voter", "shield", "nonvoter")
	var leaderRow string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "ctl-1 ") {
			leaderRow = l
		}
	}
	mustContain(t, "leader row", leaderRow, "*")

	var st api.StatusResponse
	decode(t, h.ok("status", "-o", "json"), &st)
	if st.Leader != "ctl-1" || len(st.Nodes) != 2 || st.Domains != 1 || st.Servers[api.StatusOnline] != 1 {
		t.Errorf("unexpected JSON status: %+v", st)
	}
}

func TestDomainCommands(t *testing.T) {
	h := newHarness(t)
	a := h.addServer("edge-fra-1")
	h.addServer("edge-ams-1")
	h.bind(a.Server.ID, "shield-1", "203.0.113.7")

	out := h.ok("domain", "add", "example.com", "--origin", "10.0.0.5:80", "--origin", "10.0.0.6:80", "--mode", "tcp", "--ttl", "120")
	mustContain(t, "domain add", out, "Domain example.com added (tcp, origins 10.0.0.5:80, 10.0.0.6:80)", "lumos domain assign example.com")

	out = h.ok("domain", "assign", "example.com", "edge-ams-1", "edge-fra-1")
	mustContain(t, "domain assign", out, "1. edge-ams-1 (primary, offline", "2. edge-fra-1 (secondary, online)")

	var d api.DomainInfo
	decode(t, h.ok("domain", "assign", "example.com", "edge-fra-1", "edge-ams-1", "-o", "json"), &d)
	if len(d.Servers) != 2 || d.Servers[0].Name != "edge-fra-1" || !d.Servers[0].Primary {
		t.Errorf("unexpected JSON domain after assign: %+v", d)
	}

	out = h.ok("domain", "list")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and a row:\n%s", out)
	}
	for _, col := range []string{"NAME", "MODE", "ORIGINS", "SERVERS", "STATUS", "ACTIVE"} {
		mustContain(t, "header", lines[0], col)
	}
	mustContain(t, "row", lines[1], "example.com", "tcp", "10.0.0.5:80,10.0.0.6:80", "edge-fra-1*,edge-ams-1", "active")

	var list []api.DomainInfo
	decode(t, h.ok("domain", "list", "-o", "json"), &list)
	if len(list) != 1 || list[0].DNS.TTL != 120 || list[0].Mode != "tcp" {
		t.Errorf("unexpected JSON domains: %+v", list)
	}

	show := h.ok("domain", "show", "example.com")
	mustContain(t, "domain show", show, "Name:", "example.com", "Mode:", "tcp", "DNS:", "builtin, ttl 120s, failover ttl 30s",
		"Failover:", "active", "edge-fra-1", a.Server.ID, "primary", "secondary", "203.0.113.7")

	code, _, errs := h.run("domain", "remove", "example.com")
	if code == 0 || !strings.Contains(errs, "pass --yes") {
		t.Errorf("remove without --yes: exit %d, stderr %q", code, errs)
	}
	mustContain(t, "domain remove", h.ok("domain", "remove", "example.com", "--yes"), "Domain example.com removed.")
	if out := h.ok("domain", "list"); !strings.HasPrefix(out, "No domains.") {
		t.Errorf("domain list after remove:\n%s", out)
	}
	if out := h.ok("domain", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("empty JSON list is %q, want []", out)
	}
}

func TestEventsAndPlan(t *testing.T) {
	h := newHarness(t)
	a := h.addServer("edge-fra-1")
	h.ok("domain", "add", "example.com", "--origin", "10.0.0.5:80", "--server", "edge-fra-1")
	h.ok("domain", "add", "example.org", "--origin", "10.0.0.6:80")
	h.b.apply(t, &state.EventAdd{Event: state.Event{
		Type: state.EventFailoverTriggered, Domain: "example.com", ServerID: a.Server.ID,
		FromIP: "203.0.113.7", ToIP: "198.51.100.9", Reason: "primary down", Message: "failed over to edge-ams-1",
	}})

	out := h.ok("events")
	for _, col := range []string{"TIME", "TYPE", "DOMAIN", "SERVER", "FROM->TO", "MESSAGE"} {
		mustContain(t, "events header", out, col)
	}
	mustContain(t, "events", out, "2025-06-01 12:00:00", "failover_triggered", "edge-fra-1",
		"203.0.113.7->198.51.100.9", "failed over to edge-ams-1 (primary down)", "server_added", "domain_added")

	var events []state.Event
	decode(t, h.ok("events", "--domain", "example.com", "--limit", "1", "-o", "json"), &events)
	if len(events) != 1 || events[0].Type != state.EventFailoverTriggered {
		t.Errorf("unexpected JSON events: %+v", events)
	}
	out = h.ok("events", "--domain", "example.org")
	if strings.Contains(out, "example.com") {
		t.Errorf("--domain example.org shows other domains:\n%s", out)
	}

	out = h.ok("plan", "set", "pro")
	mustContain(t, "plan set", out, "Plan set to pro: 1 of 5 servers in use, 4 left")
	var p api.PlanInfo
	decode(t, h.ok("plan", "show", "-o", "json"), &p)
	if p.Name != "pro" || p.Limit != 5 || p.Used != 1 {
		t.Errorf("unexpected JSON plan: %+v", p)
	}
	code, _, errs := h.run("plan", "set", "gold")
	if code != exitError {
		t.Errorf("plan set gold: exit %d", code)
	}
	mustContain(t, "stderr", errs, "lumos: plan \"gold\" is not free, pro, enterprise or a number")
}

func TestRename(t *testing.T) {
	h := newHarness(t)
	a := h.addServer("edge-fra-1")
	out := h.ok("server", "rename", "edge-fra-1", "edge fra 1")
	mustContain(t, "rename", out, "Server "+a.Server.ID+" renamed to \"edge fra 1\".")
	var s api.ServerInfo
	decode(t, h.ok("server", "show", a.Server.ID, "-o", "json"), &s)
	if s.Name != "edge fra 1" {
		t.Errorf("name after rename: %q", s.Name)
	}
}

func TestKeygen(t *testing.T) {
	h := newHarness(t)
	code, out, errs := h.run("keygen")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, err := mesh.ParseKey(out); err != nil {
		t.Errorf("keygen output %q is not a key: %v", out, err)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("keygen should print only the key on stdout, got %q", out)
	}
	mustContain(t, "stderr", errs, "--gossip-key-file")
	_, out2, _ := h.run("keygen")
	if out2 == out {
		t.Errorf("two keys are equal")
	}
	if r := h.requests(); len(r) != 0 {
		t.Errorf("keygen made requests: %v", r)
	}
}

// TestHelp checks that every command has a short description, an example,
// and validated arguments.
func TestHelp(t *testing.T) {
	c := newCLI(io.Discard, io.Discard, nil)
	root := c.rootCmd()
	for _, cmd := range allCommands(root) {
		if cmd.Hidden || cmd.Name() == "help" || cmd.Name() == "completion" || (cmd.HasParent() && cmd.Parent().Name() == "completion") {
			continue
		}
		if cmd.Short == "" {
			t.Errorf("%s has no short description", cmd.CommandPath())
		}
		if cmd.Example == "" {
			t.Errorf("%s has no example", cmd.CommandPath())
		}
	}
	h := newHarness(t)
	out := h.ok("server", "add", "--help")
	mustContain(t, "server add --help", out, "cannot", "Examples:", `lumos server add "edge fra 1"`)
}

func allCommands(cmd *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{cmd}
	for _, sub := range cmd.Commands() {
		out = append(out, allCommands(sub)...)
	}
	return out
}

func TestConfirmTarget(t *testing.T) {
	h := newHarness(t)
	a := h.addServer("edge-fra-1")
	h.ok("domain", "add", "example.com", "--origin", "10.0.0.5:80")
	h.ok("domain", "add", "example.org", "--origin", "10.0.0.6:80")
	h.requests()

	// A bad address is reported before the missing confirmation.
	addr := h.env[envAddr]
	h.env[envAddr] = "ftp://" + strings.TrimPrefix(addr, "http://")
	code, _, errs := h.run("domain", "remove", "example.com")
	if code != exitUsage || !strings.HasPrefix(errs, "lumos: bad API address: ") {
		t.Errorf("bad address without --yes: exit %d, stderr %q", code, errs)
	}
	h.env[envAddr] = addr

	// With --yes nothing is looked up: the name goes as given.
	h.ok("domain", "remove", "example.com", "--yes")
	if r := h.requests(); len(r) != 1 || r[0] != "DELETE /v1/domains/example.com" {
		t.Errorf("remove --yes made requests %v", r)
	}

	// Confirmed on a terminal: the action is sent for the object shown.
	h.tty, h.in = true, "y\n"
	h.ok("domain", "remove", "EXAMPLE.org")
	if r := h.requests(); len(r) != 2 || r[0] != "GET /v1/domains/EXAMPLE.org" || r[1] != "DELETE /v1/domains/example.org" {
		t.Errorf("confirmed remove made requests %v", r)
	}
	h.in = "yes\n"
	h.ok("server", "decommission", "edge-fra-1")
	if r := h.requests(); len(r) != 2 || r[1] != "POST /v1/servers/"+a.Server.ID+"/decommission" {
		t.Errorf("confirmed decommission made requests %v", r)
	}

	// A failed lookup is the API's error; no answer is not a yes.
	h.in = ""
	code, _, errs = h.run("domain", "remove", "missing.example.com")
	if code != exitError || errs != "lumos: domain missing.example.com not found\n" {
		t.Errorf("remove of a missing domain: exit %d, stderr %q", code, errs)
	}
	h.ok("domain", "add", "example.net", "--origin", "10.0.0.7:80")
	h.requests()
	code, _, errs = h.run("domain", "remove", "example.net")
	if code != exitError || !strings.HasSuffix(errs, "lumos: remove domain: aborted (no answer)\n") {
		t.Errorf("remove with no answer: exit %d, stderr %q", code, errs)
	}
	if r := h.requests(); len(r) != 1 || r[0] != "GET /v1/domains/example.net" {
		t.Errorf("unanswered remove made requests %v", r)
	}
}
