package dashboard_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/dashboard"
	"github.com/lumos-mesh/lumos/node"
	"github.com/lumos-mesh/lumos/state"
)

// The node is what the dashboard shows.
var _ dashboard.Source = (*node.Node)(nil)

// chromiumPath finds a Chromium binary: $LUMOS_CHROMIUM, else chromium (the
// Debian package) or chromium-browser on PATH.
func chromiumPath() string {
	if p := os.Getenv("LUMOS_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// needBrowser returns the Chromium binary, or skips the test when there is
// none, unless LUMOS_REQUIRE_BROWSER=1 makes that a failure.
func needBrowser(t *testing.T) string {
	t.Helper()
	p := chromiumPath()
	if p != "" {
		return p
	}
	if os.Getenv("LUMOS_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium binary found (LUMOS_REQUIRE_BROWSER=1): install Debian's chromium package (scripts/deps.sh test) or set LUMOS_CHROMIUM")
	}
	t.Skip("skipping the browser test: no chromium binary found (install Debian's chromium package, or set LUMOS_CHROMIUM); LUMOS_REQUIRE_BROWSER=1 makes this a failure")
	return ""
}

// artifactDir is where screenshots go: $LUMOS_ARTIFACTS if set, else a
// directory removed after the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("LUMOS_ARTIFACTS"); d != "" {
		d = filepath.Join(d, t.Name())
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// browser is a headless Chromium with one tab.
type browser struct {
	t       *testing.T
	ctx     context.Context // the tab; every action also gets its own timeout
	dataDir string
	shots   string

	mu       sync.Mutex
	problems []string // console errors, exceptions, CSP violations
}

func startBrowser(t *testing.T, exe, token string) *browser {
	t.Helper()
	b := &browser{t: t, dataDir: t.TempDir(), shots: artifactDir(t)}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(b.dataDir),
		chromedp.WindowSize(1280, 900),
	)
	// The whole browser session is bounded too, not only each action.
	life, cancelLife := context.WithTimeout(context.Background(), 4*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	b.ctx = tab
	consoleDone := make(chan struct{})
	t.Cleanup(func() {
		// Close Chromium gracefully, then make sure none of its processes
		// is left (every child carries the user data dir on its command
		// line).
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if err := chromedp.Cancel(tab); err != nil && ctx.Err() == nil {
			t.Logf("close chromium: %v", err)
		}
		cancel()
		cancelTab()
		cancelAlloc()
		cancelLife()
		<-consoleDone
		if left := waitNoProcesses(b.dataDir, 10*time.Second); len(left) > 0 {
			t.Errorf("chromium processes left after the test: %v", left)
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	// Start the browser (its first action must run on the tab's own
	// context: the browser lives as long as that context), then collect
	// what the pages write to the console.
	start := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Authorization": "Bearer " + token},
		})
		return err
	})
	if err := chromedp.Do(tab, start); err != nil {
		close(consoleDone)
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(tab)
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError || strings.Contains(m.Text, "Content Security Policy") {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// waitNoProcesses polls until no process runs with dir as its user data
// dir, and returns the PIDs still there after timeout.
func waitNoProcesses(dir string, timeout time.Duration) []int {
	var left []int
	node.Eventually(timeout, func() bool {
		left = processesUsing(dir)
		return len(left) == 0
	})
	return left
}

func processesUsing(dir string) []int {
	want := []byte("--user-data-dir=" + dir + "\x00")
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(append(cmd, 0), want) {
			out = append(out, pid)
		}
	}
	return out
}

const actionTimeout = 20 * time.Second

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

func run[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// open navigates to url and waits until the page is rendered.
func (b *browser) open(url string) {
	b.t.Helper()
	b.do("open "+url, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("main")))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return run(b, "text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

func (b *browser) eval(what, js string) string {
	b.t.Helper()
	return run(b, what, chromedp.Evaluate[string](js))
}

// waitText polls the text of sel until cond holds (bounded).
func (b *browser) waitText(sel string, timeout time.Duration, what string, cond func(string) bool) string {
	b.t.Helper()
	var last string
	if !node.Eventually(timeout, func() bool {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		last = s
		return err == nil && cond(s)
	}) {
		b.t.Fatalf("browser: timed out waiting for %s; %s reads:\n%s", what, sel, last)
	}
	return last
}

// screenshot saves a full-page PNG.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	b.save(name, run(b, "screenshot "+name, chromedp.FullScreenshot(100)))
}

// screenshotView saves a PNG of what the viewport shows.
func (b *browser) screenshotView(name string) {
	b.t.Helper()
	b.save(name, run(b, "screenshot "+name, chromedp.CaptureScreenshot()))
}

func (b *browser) save(name string, png []byte) {
	b.t.Helper()
	p := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}

// noOverflow checks that the page does not scroll sideways: wide tables
// scroll inside their own box.
func (b *browser) noOverflow(page string) {
	b.t.Helper()
	got := b.eval("overflow of "+page, `document.documentElement.scrollWidth + " " + window.innerWidth + " " + document.body.scrollWidth`)
	var doc, inner, body int
	if _, err := fmt.Sscan(got, &doc, &inner, &body); err != nil {
		b.t.Fatalf("overflow of %s: %q", page, got)
	}
	if doc > inner || body > inner {
		b.t.Errorf("%s overflows horizontally at %d px: document %d px, body %d px wide", page, inner, doc, body)
	}
}

func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("browser console: %s", p)
	}
	b.problems = nil
}

func contains(subs ...string) func(string) bool {
	return func(s string) bool {
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				return false
			}
		}
		return true
	}
}

func mustText(t *testing.T, what, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s: missing %q in:\n%s", what, s, text)
		}
	}
}

// TestBrowser drives the dashboard of a real in-process cluster (one
// control node, two shields) with headless Chromium: a shield goes down
// and its domain fails over, and the overview, the domain page and the
// events page show it, at desktop and phone widths.
func TestBrowser(t *testing.T) {
	exe := needBrowser(t)
	c := node.NewTestCluster(t, node.TestClusterOptions{Controls: 1})
	c.AddShield("edge-fra")
	c.AddShield("edge-ams")
	leader := c.WaitLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := c.Client()
	defer cl.CloseIdleConnections()
	for _, d := range []api.AddDomainRequest{
		{Name: "shop.example.com", Origins: []string{"10.0.0.5:8080", "10.0.0.6:8080"}, Servers: []string{"edge-fra", "edge-ams"}},
		{Name: "blog.example.org", Origins: []string{"10.0.1.5:8080"}, Servers: []string{"edge-ams"}, DNS: state.DNS{Provider: state.DNSCloudflare}},
	} {
		if _, err := cl.AddDomain(ctx, &d); err != nil {
			t.Fatalf("add domain %s: %v", d.Name, err)
		}
	}
	ids := map[string]string{}
	addrs := map[string]string{}
	servers, err := cl.Servers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		ids[s.Name], addrs[s.Name] = s.ID, s.IP
	}
	// The failover controller's decisions, committed by hand.
	commit := func(payload any) {
		t.Helper()
		if _, err := leader.Apply(ctx, state.MustCommand(time.Now(), payload)); err != nil {
			t.Fatalf("commit %T: %v", payload, err)
		}
	}
	commit(&state.ServerLiveness{ID: ids["edge-fra"], Down: true, Reason: "gossip: node dead"})
	commit(&state.DomainFailover{Name: "shop.example.com", From: ids["edge-fra"], To: ids["edge-ams"], Status: state.FailoverFailedOver,
		Event: state.Event{Type: state.EventFailoverTriggered, ServerID: ids["edge-fra"], FromIP: addrs["edge-fra"], ToIP: addrs["edge-ams"], Reason: "server_down",
			Message: `shop.example.com failed over from "edge-fra" to "edge-ams"`}})

	h, err := dashboard.New(dashboard.Config{Source: leader, AdminTokenHash: state.HashToken(node.TestAdminToken), ClusterName: "test-cluster", Refresh: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ui", h)
	mux.Handle("/ui/", h)
	ts := httptest.NewServer(mux)
	defer ts.Close()

	b := startBrowser(t, exe, node.TestAdminToken)

	// Overview.
	b.open(ts.URL + "/ui")
	main := b.text("main")
	mustText(t, "overview", main, "edge-fra", "edge-ams", "shop.example.com", "failed over", "1 shield is held down", "c1", "this node")
	mustText(t, "header", b.text("header"), "leader c1", "test-cluster", "Domains")
	// The script runs under the CSP and reports the page as live.
	b.waitText("#live", 10*time.Second, "the live indicator", contains("live"))
	b.screenshot("overview-desktop")

	// The overview refreshes itself: a new domain shows up in the recent
	// events without a navigation.
	b.eval("mark the page", `window.lumosMark = "kept"; "ok"`)
	if _, err := cl.AddDomain(ctx, &api.AddDomainRequest{Name: "new.example.net", Origins: []string{"10.0.3.5:80"}, Servers: []string{"edge-ams"}}); err != nil {
		t.Fatal(err)
	}
	b.waitText("main", 15*time.Second, "the new domain on the refreshed overview", contains("new.example.net"))
	if got := b.eval("page mark", `String(window.lumosMark)`); got != "kept" {
		t.Errorf("the page was reloaded instead of refreshed in place (mark %q)", got)
	}

	// Domain page: failed over, edge-ams active, edge-fra the primary.
	b.open(ts.URL + "/ui/domains/shop.example.com")
	main = b.text("main")
	mustText(t, "domain page", main, "failed over", "edge-fra", "edge-ams", "primary", "backup", "10.0.0.5:8080", "builtin")
	active := b.text("tr.active-row")
	mustText(t, "active server row", active, "edge-ams", "active", "backup")
	if strings.Contains(active, "edge-fra") {
		t.Errorf("the primary is marked active: %q", active)
	}
	b.screenshot("domain-failed-over")

	// Server page of the shield held down.
	b.open(ts.URL + "/ui/servers/" + ids["edge-fra"])
	mustText(t, "server page", b.text("main"), "Held down by the failover controller", "gossip: node dead", "shop.example.com", "primary")
	b.screenshot("server-down")

	// Events: the failover is there; the domain filter keeps only that
	// domain's events.
	b.open(ts.URL + "/ui/events")
	events := b.text("table.events")
	mustText(t, "events", events, "failover triggered", `failed over from "edge-fra" to "edge-ams"`, "server down", "blog.example.org")
	b.screenshot("events")
	b.eval("choose a domain", `(function(){ var s = document.querySelector('select[data-nav="domain"]'); s.value = "blog.example.org"; s.dispatchEvent(new Event("change", {bubbles: true})); return "ok"; })()`)
	filtered := b.waitText("main", 10*time.Second, "the events of blog.example.org", contains("domain blog.example.org"))
	if loc := run(b, "location", chromedp.Location()); !strings.Contains(loc, "domain=blog.example.org") {
		t.Errorf("filter location %q", loc)
	}
	mustText(t, "filtered events", filtered, "domain blog.example.org added")
	if strings.Contains(b.text("table.events"), "failover triggered") || strings.Contains(b.text("table.events"), "shop.example.com") {
		t.Errorf("the domain filter shows other domains' events:\n%s", b.text("table.events"))
	}
	b.open(ts.URL + "/ui/events?domain=shop.example.com")
	mustText(t, "shop events", b.text("table.events"), "failover triggered", "domain shop.example.com added")
	if strings.Contains(b.text("table.events"), "blog.example.org") {
		t.Error("the shop.example.com filter shows blog.example.org events")
	}

	// Dark mode.
	b.do("dark mode", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}))
	b.open(ts.URL + "/ui/")
	b.screenshot("overview-dark")
	b.do("light mode", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}})
		return err
	}))

	// A phone: nothing scrolls sideways but the tables inside their box.
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	for _, p := range []struct{ name, path string }{
		{"overview-phone", "/ui/"},
		{"servers-phone", "/ui/servers"},
		{"server-phone", "/ui/servers/" + ids["edge-fra"]},
		{"domains-phone", "/ui/domains"},
		{"domain-phone", "/ui/domains/shop.example.com"},
		{"events-phone", "/ui/events"},
	} {
		b.open(ts.URL + p.path)
		b.noOverflow(p.path)
		if p.name == "overview-phone" || p.name == "domain-phone" || p.name == "events-phone" {
			b.screenshot(p.name)
			b.screenshotView(p.name + "-top")
		}
	}
	b.checkConsole()
}

// TestBrowserLayout renders the hand-built fixture (long names, errors,
// traffic, a decommissioned shield, hostile text) in the browser, so every
// page is checked for horizontal overflow at phone width and for console
// errors.
func TestBrowserLayout(t *testing.T) {
	exe := needBrowser(t)
	h := newHandler(t, fixture(t))
	mux := http.NewServeMux()
	mux.Handle("/ui/", h)
	ts := httptest.NewServer(mux)
	defer ts.Close()
	b := startBrowser(t, exe, adminToken)
	for _, width := range []int64{1280, 390} {
		if width != 1280 {
			b.do("phone viewport", chromedp.EmulateViewport(width, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
		}
		for _, p := range pages {
			b.open(ts.URL + p)
			b.noOverflow(fmt.Sprintf("%s at %d px", p, width))
			// The hostile server name stays text.
			if got := b.eval("injected nodes", `String(document.querySelectorAll("main script, main img").length)`); got != "0" {
				t.Errorf("%s: %s injected elements", p, got)
			}
		}
		name := "fixture-desktop"
		if width != 1280 {
			name = "fixture-phone"
		}
		for _, p := range []struct{ name, path string }{
			{"overview", "/ui/"}, {"server", "/ui/servers/" + fraID}, {"servers", "/ui/servers"}, {"domain", "/ui/domains/shop.example.com"}, {"events", "/ui/events?domain=shop.example.com"},
		} {
			b.open(ts.URL + p.path)
			b.screenshot(name + "-" + p.name)
			if width != 1280 {
				b.screenshotView(name + "-" + p.name + "-top")
			}
		}
	}
	b.checkConsole()
}
