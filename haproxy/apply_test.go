package haproxy

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestApplyZeroDowntime(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	a := mgrOrigin(t, "A", 200)
	b := mgrOrigin(t, "B", 200)
	m, _ := newTestManager(t, dir, nil)
	ctx := mgrCtx(t)
	if err := m.Start(ctx, mgrRender(t, dir, listen, map[string]string{"a.example": a})); err != nil {
		t.Fatal(err)
	}
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)

	load := startLoad(t, listen, "a.example", "A", "B")
	load.waitProgress(t, 20)
	const changes = 50
	var took []time.Duration
	workers := map[int]bool{m.Health().WorkerPID: true}
	start := time.Now()
	for i := 0; i < changes; i++ {
		origin := b
		if i%2 == 1 {
			origin = a
		}
		r := mgrRender(t, dir, listen, map[string]string{"a.example": origin})
		res, err := m.Apply(ctx, r)
		if err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		if !res.Reloaded {
			t.Fatalf("apply %d: %+v, want Reloaded", i, res)
		}
		took = append(took, res.Took)
		workers[m.Health().WorkerPID] = true
	}
	total := time.Since(start)
	load.waitProgress(t, 20)
	ok, fail, errs := load.finish()

	slices.Sort(took)
	t.Logf("%d reloads in %v: apply min %v, median %v, p90 %v, max %v", changes, total,
		took[0], took[len(took)/2], took[len(took)*9/10], took[len(took)-1])
	t.Logf("traffic during the reloads: %d requests, %d failed (keep-alive and not)", ok+fail, fail)
	if len(workers) != changes+1 {
		t.Errorf("%d distinct workers, want %d", len(workers), changes+1)
	}
	if fail != 0 {
		t.Fatalf("%d requests failed during %d reloads: %v", fail, changes, errs)
	}
	st, err := m.showProc(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the reloads: %d current worker(s), %d old worker(s) still finishing", len(st.Workers), len(st.OldWorkers))
}

func TestApplyMapOnly(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	a := mgrOrigin(t, "A", 200)
	b := mgrOrigin(t, "B", 200)
	c := mgrOrigin(t, "C", 200)
	m, ev := newTestManager(t, dir, nil)
	ctx := mgrCtx(t)
	both := map[string]string{"a.example": a, "b.example": b}
	r1 := mgrRender(t, dir, listen, both)
	if err := m.Start(ctx, r1); err != nil {
		t.Fatal(err)
	}
	mgrExpect(t, listen, "b.example", 200, "B", 5*time.Second)
	worker := m.Health().WorkerPID

	check := func(name string, r *Rendered, want ApplyResult) {
		t.Helper()
		res, err := m.Apply(ctx, r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Reloaded != want.Reloaded || res.RuntimeOnly != want.RuntimeOnly || res.Unchanged != want.Unchanged {
			t.Fatalf("%s: %+v, want %+v", name, res, want)
		}
		t.Logf("%s: %+v", name, res)
		h := m.Health()
		if h.ConfigHash != r.Hash || !h.OK {
			t.Fatalf("%s: health %+v", name, h)
		}
		for mp, data := range r.Maps {
			got, err := os.ReadFile(filepath.Join(dir, mp))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: %s on disk is %q (%v), want %q", name, mp, got, err, data)
			}
		}
	}

	// A removed map entry: b.example's backend stays, unreachable.
	r2 := mgrRender(t, dir, listen, map[string]string{"a.example": a})
	check("remove b", r2, ApplyResult{RuntimeOnly: true})
	if w := m.Health().WorkerPID; w != worker {
		t.Fatalf("worker changed from %d to %d without a reload", worker, w)
	}
	mgrExpect(t, listen, "b.example", UnknownHostStatus, "", 5*time.Second)
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
	ev.wait(t, EventRuntimeUpdated, 5*time.Second)
	cfg, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	if !bytes.Equal(cfg, r1.Config) {
		t.Fatal("a map-only apply rewrote the configuration")
	}

	// The entry comes back: its backend is still in the loaded
	// configuration, unchanged.
	check("add b back", mgrRender(t, dir, listen, both), ApplyResult{RuntimeOnly: true})
	mgrExpect(t, listen, "b.example", 200, "B", 5*time.Second)
	if w := m.Health().WorkerPID; w != worker {
		t.Fatalf("worker changed from %d to %d without a reload", worker, w)
	}

	// A new site is served from a spare backend: no reload either.
	r4 := mgrRender(t, dir, listen, map[string]string{"a.example": a, "b.example": b, "c.example": c})
	check("add c", r4, ApplyResult{RuntimeOnly: true})
	mgrExpect(t, listen, "c.example", 200, "C", 5*time.Second)
	if w := m.Health().WorkerPID; w != worker {
		t.Fatalf("worker changed from %d to %d without a reload", worker, w)
	}

	// More new sites than spare backends: reload.

	// Many entries at once (more than one runtime API payload), then
	// back to a few, without reloading.
	many := map[string]string{}
	for i := 0; i < 600; i++ {
		many["site-"+strings.Repeat("x", 20)+"-"+strconv.Itoa(i)+".example"] = c
	}
	rMany := mgrRender(t, dir, listen, many)
	check("600 sites", rMany, ApplyResult{Reloaded: true})
	worker = m.Health().WorkerPID
	few := map[string]string{}
	for i := 0; i < 600; i += 3 {
		few["site-"+strings.Repeat("x", 20)+"-"+strconv.Itoa(i)+".example"] = c
	}
	check("200 of the 600 sites", mgrRender(t, dir, listen, few), ApplyResult{RuntimeOnly: true})
	if w := m.Health().WorkerPID; w != worker {
		t.Fatalf("worker changed from %d to %d without a reload", worker, w)
	}
	mgrExpect(t, listen, "site-"+strings.Repeat("x", 20)+"-3.example", 200, "C", 5*time.Second)
	mgrExpect(t, listen, "site-"+strings.Repeat("x", 20)+"-4.example", UnknownHostStatus, "", 5*time.Second)
	check("600 sites again", rMany, ApplyResult{RuntimeOnly: true})
	mgrExpect(t, listen, "site-"+strings.Repeat("x", 20)+"-599.example", 200, "C", 5*time.Second)
	entries, err := m.runtimeMapCount(t, HostsMap)
	if err != nil || entries != 600 {
		t.Fatalf("hosts map in the worker: %d entries (%v), want 600", entries, err)
	}
}

// runtimeMapCount counts the entries of a map in the current worker.
func (m *Manager) runtimeMapCount(t *testing.T, name string) (int, error) {
	t.Helper()
	out, err := cliExchange(mgrCtx(t), m.p.statsSock, "show map "+filepath.Join(m.p.dir, name), 5*time.Second)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "0x") {
			n++
		}
	}
	return n, nil
}

func TestApplyValidateFailure(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	a := mgrOrigin(t, "A", 200)
	b := mgrOrigin(t, "B", 200)
	m, ev := newTestManager(t, dir, nil)
	ctx := mgrCtx(t)
	r1 := mgrRender(t, dir, listen, map[string]string{"a.example": a})
	if err := m.Start(ctx, r1); err != nil {
		t.Fatal(err)
	}
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
	before := m.Health()
	snap := mgrSnapshot(t, dir)

	bad := mgrBroken(t, mgrRender(t, dir, listen, map[string]string{"a.example": a, "b.example": b}))
	_, err := m.Apply(ctx, bad)
	if !errors.Is(err, ErrValidate) {
		t.Fatalf("apply refused config: %v, want ErrValidate", err)
	}
	t.Logf("validate error: %v", err)
	if !strings.Contains(err.Error(), "balance") || !strings.Contains(err.Error(), filepath.Join(dir, ConfigFile)) || strings.Contains(err.Error(), stagingDir) {
		t.Errorf("error does not quote HAProxy about the final file: %v", err)
	}
	if got := mgrSnapshot(t, dir); got != snap {
		t.Fatalf("files changed by a refused apply:\n%s\nwant\n%s", got, snap)
	}
	if _, err := os.Stat(filepath.Join(dir, stagingDir)); !os.IsNotExist(err) {
		t.Errorf("staging left behind: %v", err)
	}
	h := m.Health()
	if h.WorkerPID != before.WorkerPID || h.ConfigHash != r1.Hash || h.OK || !h.Running ||
		h.ErrorType != ErrorTypeValidateFailed || !strings.HasPrefix(h.Error, ErrorTypeValidateFailed+": ") {
		t.Fatalf("health after a refused apply: %+v", h)
	}
	ev.wait(t, EventValidateFailed, 5*time.Second)
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)

	// The same new site, valid: served from a spare backend.
	r2 := mgrRender(t, dir, listen, map[string]string{"a.example": a, "b.example": b})
	if res, err := m.Apply(ctx, r2); err != nil || !res.RuntimeOnly {
		t.Fatalf("good apply: %+v %v", res, err)
	}
	if h := m.Health(); !h.OK || h.Error != "" || h.ErrorType != "" {
		t.Fatalf("health after a good apply: %+v", h)
	}
	mgrExpect(t, listen, "b.example", 200, "B", 5*time.Second)
}

// mgrSnapshot describes the configuration and maps in dir.
func mgrSnapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, n := range []string{ConfigFile, HostsMap, SNIMap} {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(n + " " + sha256Hex(data) + "\n")
	}
	return b.String()
}

func TestApplyReloadFailureRollback(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	a := mgrOrigin(t, "A", 200)
	b := mgrOrigin(t, "B", 200)
	m, ev := newTestManager(t, dir, nil)
	ctx := mgrCtx(t)
	r1 := mgrRender(t, dir, listen, map[string]string{"a.example": a})
	if err := m.Start(ctx, r1); err != nil {
		t.Fatal(err)
	}
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
	load := startLoad(t, listen, "a.example", "A", "B")
	load.waitProgress(t, 20)
	snap := mgrSnapshot(t, dir)
	before := m.Health()
	proc0, err := m.showProc(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}

	expectFailed := func(what string, err error, reason string) {
		t.Helper()
		if !errors.Is(err, ErrReload) {
			t.Fatalf("%s: %v, want ErrReload", what, err)
		}
		t.Logf("%s: %v", what, err)
		if !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: error does not say why (%q): %v", what, reason, err)
		}
		h := m.Health()
		if !h.Running || h.OK || h.ErrorType != ErrorTypeReloadFailed || !strings.HasPrefix(h.Error, ErrorTypeReloadFailed+": ") || h.ConfigHash != r1.Hash {
			t.Fatalf("%s: health %+v", what, h)
		}
		if got := mgrSnapshot(t, dir); got != snap {
			t.Fatalf("%s: files not rolled back:\n%s\nwant\n%s", what, got, snap)
		}
		mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
		load.waitProgress(t, 20)
	}

	// A port another listener holds: `haproxy -c` passes, the reload
	// could not bind. Found before reloading: HAProxy is not touched.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	bad := mgrRenderSpec(t, &Spec{Dir: dir, ListenHTTP: listen, ListenTLS: held.Addr().String(),
		Sites: mgrSites(map[string]string{"a.example": b})})
	haproxyCheck(t, mgrWriteCopy(t, dir, bad))
	_, err = m.Apply(ctx, bad)
	expectFailed("held port", err, "address already in use")
	if proc, err := m.showProc(ctx, time.Second); err != nil || proc.Reloads != proc0.Reloads || m.Health().WorkerPID != before.WorkerPID {
		t.Fatalf("held port: HAProxy was reloaded: %+v %v", proc, err)
	}
	ev.wait(t, EventReloadFailed, 5*time.Second)

	// A pid file HAProxy cannot create: `haproxy -c` passes, the master
	// refuses the reload; the last good configuration is reloaded.
	good := mgrRender(t, dir, listen, map[string]string{"a.example": b})
	bad2 := *good
	bad2.Config = bytes.Replace(good.Config, []byte("pidfile "+filepath.Join(dir, PIDFile)),
		[]byte("pidfile "+filepath.Join(dir, "missing", PIDFile)), 1)
	bad2.Base = strings.Replace(good.Base, "pidfile "+filepath.Join(dir, PIDFile), "pidfile "+filepath.Join(dir, "missing", PIDFile), 1)
	bad2.Hash = ""
	if bytes.Equal(bad2.Config, good.Config) {
		t.Fatal("no pidfile line to break")
	}
	haproxyCheck(t, mgrWriteCopy(t, dir, &bad2))
	_, err = m.Apply(ctx, &bad2)
	expectFailed("pid file", err, "pidfile")
	proc, err := m.showProc(ctx, time.Second)
	if err != nil || proc.Failed != 0 || proc.Reloads != proc0.Reloads+2 || proc.current() != m.Health().WorkerPID || proc.current() == before.WorkerPID {
		t.Fatalf("after the rollback: show proc %+v %v (health %+v), want 2 more reloads, none failed, a new worker", proc, err, m.Health())
	}

	// A later good apply clears the error.
	if res, err := m.Apply(ctx, good); err != nil || !res.Reloaded {
		t.Fatalf("good apply: %+v %v", res, err)
	}
	if h := m.Health(); !h.OK || h.Error != "" || h.ConfigHash != good.Hash {
		t.Fatalf("health after a good apply: %+v", h)
	}
	mgrExpect(t, listen, "a.example", 200, "B", 5*time.Second)
	load.waitProgress(t, 20)
	ok, fail, errs := load.finish()
	t.Logf("traffic: %d requests, %d failed", ok+fail, fail)
	if fail != 0 {
		t.Fatalf("%d requests failed around failed reloads: %v", fail, errs)
	}
}

// mgrWriteCopy writes r, rendered for dir, into a directory of its own
// (map paths changed accordingly) for haproxyCheck.
func mgrWriteCopy(t *testing.T, dir string, r *Rendered) string {
	t.Helper()
	tmp := t.TempDir()
	cp := *r
	for name := range r.Maps {
		cp.Config = bytes.ReplaceAll(cp.Config, []byte(filepath.Join(dir, name)), []byte(filepath.Join(tmp, name)))
	}
	return writeRendered(t, tmp, &cp)
}

// mgrSpec renders sites (sorted here) for dir, HTTP on listen and TLS
// passthrough on tls ("" for none).
func mgrSpec(t *testing.T, dir, listen, tls string, sites ...Site) *Rendered {
	t.Helper()
	sites = slices.Clone(sites)
	slices.SortFunc(sites, func(a, b Site) int { return strings.Compare(a.Domain, b.Domain) })
	return mgrRenderSpec(t, &Spec{Dir: dir, ListenHTTP: listen, ListenTLS: tls, Sites: sites})
}

// mgrSiteStats waits until Stats reports backend and ok accepts it.
func mgrSiteStats(t *testing.T, m *Manager, backend string, timeout time.Duration, ok func(SiteStats) error) SiteStats {
	t.Helper()
	var got SiteStats
	eventually(t, timeout, func() error {
		stats, err := m.Stats(mgrCtx(t))
		if err != nil {
			return err
		}
		for _, s := range stats {
			if strings.HasPrefix(s.Backend, SpareBackendPrefix) {
				return fmt.Errorf("stats report spare backend %s", s.Backend)
			}
		}
		for _, s := range stats {
			if s.Backend == backend {
				got = s
				return ok(s)
			}
		}
		return fmt.Errorf("no stats for %s in %+v", backend, stats)
	})
	return got
}

func TestApplyNewSitesFromSpareBackends(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	a := mgrOrigin(t, "A", 200)
	b := mgrOrigin(t, "B", 200)
	c := mgrOrigin(t, "C", 200)
	dead := freeAddr(t) // nothing listens there
	m, ev := newTestManager(t, dir, nil)
	ctx := mgrCtx(t)
	siteA := Site{Domain: "a.example", Mode: ModeHTTP, Origins: []string{a}}
	r1 := mgrSpec(t, dir, listen, "", siteA)
	if err := m.Start(ctx, r1); err != nil {
		t.Fatal(err)
	}
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
	worker := m.Health().WorkerPID
	load := startLoad(t, listen, "a.example", "A")
	load.waitProgress(t, 20)

	// A new site, one live and one dead origin: served from a spare
	// backend without a reload.
	siteB := Site{Domain: "b.example", Mode: ModeHTTP, Origins: []string{b, dead}}
	r2 := mgrSpec(t, dir, listen, "", siteA, siteB)
	res, err := m.Apply(ctx, r2)
	if err != nil || !res.RuntimeOnly {
		t.Fatalf("add b: %+v %v, want RuntimeOnly", res, err)
	}
	t.Logf("add b: %v", res.Took)
	if h := m.Health(); h.WorkerPID != worker || h.ConfigHash != r2.Hash || !h.OK {
		t.Fatalf("health after add b: %+v (worker before %d)", h, worker)
	}
	ev.wait(t, EventRuntimeUpdated, 5*time.Second)
	mgrExpect(t, listen, "b.example", 200, "B", 5*time.Second)
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)

	// On disk: the configuration in place plus b's own section (what a
	// restart serves), HAProxy accepts it; the maps as rendered; the
	// same in last-good.
	cfg, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil || string(cfg) != string(r1.Config)+r2.Backends[BackendName("b.example")] {
		t.Fatalf("configuration on disk after add b (%v):\n%s", err, cfg)
	}
	haproxyCheck(t, filepath.Join(dir, ConfigFile))
	for name, data := range r2.Maps {
		for _, d := range []string{dir, filepath.Join(dir, goodDir)} {
			if got, err := os.ReadFile(filepath.Join(d, name)); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s in %s: %q (%v), want %q", name, d, got, err, data)
			}
		}
	}
	if good, err := os.ReadFile(filepath.Join(dir, goodDir, ConfigFile)); err != nil || !bytes.Equal(good, cfg) {
		t.Fatalf("last good configuration is not the one in place (%v)", err)
	}

	// Stats name b's backend, not the spare; the dead origin is health
	// checked and goes down, the live one is checked and up.
	st := mgrSiteStats(t, m, BackendName("b.example"), 20*time.Second, func(s SiteStats) error {
		if s.ServersTotal != 2 || s.ServersUp != 1 {
			return fmt.Errorf("b: %d of %d servers up, want 1 of 2", s.ServersUp, s.ServersTotal)
		}
		return nil
	})
	t.Logf("b: %+v", st)
	m.mu.Lock()
	spareB := m.serving.Spares[BackendName("b.example")]
	m.mu.Unlock()
	eventually(t, 20*time.Second, func() error {
		got := mgrServerStatus(t, m, spareB)
		if got["o1"] != "UP L4OK" || got["o2"] != "DOWN L4CON" {
			return fmt.Errorf("servers of %s: %v, want o1 UP L4OK, o2 DOWN L4CON", spareB, got)
		}
		return nil
	})

	// Removed, then back: map entries only, from the same spare backend.
	check := func(name string, r *Rendered) {
		t.Helper()
		res, err := m.Apply(ctx, r)
		if err != nil || !res.RuntimeOnly {
			t.Fatalf("%s: %+v %v, want RuntimeOnly", name, res, err)
		}
		if h := m.Health(); h.WorkerPID != worker || h.ConfigHash != r.Hash {
			t.Fatalf("%s: health %+v", name, h)
		}
	}
	check("remove b", r1)
	mgrExpect(t, listen, "b.example", UnknownHostStatus, "", 5*time.Second)
	check("add b back", r2)
	mgrExpect(t, listen, "b.example", 200, "B", 5*time.Second)

	// A new site whose backend HAProxy refuses: nothing changes.
	broken := mgrSpec(t, dir, listen, "", siteA, siteB, Site{Domain: "x.example", Mode: ModeHTTP, Origins: []string{c}})
	bad := *broken
	bad.Backends = maps.Clone(broken.Backends)
	text := broken.Backends[BackendName("x.example")]
	bad.Backends[BackendName("x.example")] = strings.Replace(text, c, "256.1.1.1:80", 1)
	bad.Config = []byte(strings.Replace(string(broken.Config), text, bad.Backends[BackendName("x.example")], 1))
	bad.Hash = ""
	snap := mgrSnapshot(t, dir)
	_, err = m.Apply(ctx, &bad)
	if !errors.Is(err, ErrValidate) {
		t.Fatalf("apply a refused new site: %v, want ErrValidate", err)
	}
	// Only Base and the new section were checked, yet HAProxy quotes
	// the line of the whole file.
	line := 1 + strings.Count(string(bad.Config[:strings.Index(string(bad.Config), "256.1.1.1:80")]), "\n")
	if want := fmt.Sprintf("[%s:%d]", filepath.Join(dir, ConfigFile), line); !strings.Contains(err.Error(), want) {
		t.Errorf("error does not quote %s: %v", want, err)
	}
	if got := mgrSnapshot(t, dir); got != snap {
		t.Fatalf("files changed by a refused apply:\n%s\nwant\n%s", got, snap)
	}
	if h := m.Health(); h.WorkerPID != worker || h.ConfigHash != r2.Hash || h.ErrorType != ErrorTypeValidateFailed {
		t.Fatalf("health after a refused new site: %+v", h)
	}

	// Another new site takes another spare backend.
	siteC := Site{Domain: "c.example", Mode: ModeHTTP, Origins: []string{c}}
	r3 := mgrSpec(t, dir, listen, "", siteA, siteB, siteC)
	check("add c", r3)
	mgrExpect(t, listen, "c.example", 200, "C", 5*time.Second)
	mgrExpect(t, listen, "b.example", 200, "B", 5*time.Second)
	m.mu.Lock()
	spares := maps.Clone(m.serving.Spares)
	m.mu.Unlock()
	if len(spares) != 2 || spares[BackendName("b.example")] == spares[BackendName("c.example")] {
		t.Fatalf("spare backends in use: %v, want one each for b and c", spares)
	}
	if h := m.Health(); !h.OK {
		t.Fatalf("a good apply does not clear the error: %+v", h)
	}

	// b's origins change: its backend changes, a reload; every site is
	// then served from its own backend.
	siteB.Origins = []string{c}
	r4 := mgrSpec(t, dir, listen, "", siteA, siteB, siteC)
	res, err = m.Apply(ctx, r4)
	if err != nil || !res.Reloaded {
		t.Fatalf("change b: %+v %v, want Reloaded", res, err)
	}
	mgrExpect(t, listen, "b.example", 200, "C", 5*time.Second)
	mgrExpect(t, listen, "c.example", 200, "C", 5*time.Second)
	m.mu.Lock()
	spares = m.serving.Spares
	m.mu.Unlock()
	if len(spares) != 0 {
		t.Fatalf("spare backends in use after a reload: %v", spares)
	}
	if cfg, err := os.ReadFile(filepath.Join(dir, ConfigFile)); err != nil || !bytes.Equal(cfg, r4.Config) {
		t.Fatalf("configuration on disk after the reload is not the rendering (%v)", err)
	}
	mgrSiteStats(t, m, BackendName("c.example"), 5*time.Second, func(s SiteStats) error {
		if s.ServersTotal != 1 {
			return fmt.Errorf("c: %d servers", s.ServersTotal)
		}
		return nil
	})

	// More new sites than spare backends: a reload.
	sites := []Site{siteA, siteB, siteC}
	for i := 0; i <= SpareBackends; i++ {
		sites = append(sites, Site{Domain: fmt.Sprintf("n%02d.example", i), Mode: ModeHTTP, Origins: []string{a}})
	}
	res, err = m.Apply(ctx, mgrSpec(t, dir, listen, "", sites...))
	if err != nil || !res.Reloaded {
		t.Fatalf("add %d sites: %+v %v, want Reloaded", SpareBackends+1, res, err)
	}
	mgrExpect(t, listen, "n00.example", 200, "A", 5*time.Second)

	load.waitProgress(t, 20)
	ok, fail, errs := load.finish()
	t.Logf("traffic: %d requests, %d failed", ok+fail, fail)
	if fail != 0 {
		t.Fatalf("%d requests to a.example failed: %v", fail, errs)
	}
}

// TestApplySpareBackendsRestartAndAdopt checks that sites served from spare
// backends survive a restart of HAProxy (from their own sections on disk)
// and a new Manager adopting the running HAProxy.
func TestApplySpareBackendsRestartAndAdopt(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	tls := freeAddr(t)
	a := mgrOrigin(t, "A", 200)
	b := mgrOrigin(t, "B", 200)
	c := mgrOrigin(t, "C", 200)
	ctx := mgrCtx(t)
	siteA := Site{Domain: "a.example", Mode: ModeHTTP, Origins: []string{a}}
	siteB := Site{Domain: "b.example", Mode: ModeHTTP, Origins: []string{b}}
	siteT := Site{Domain: "t.example", Mode: ModeTCP, Origins: []string{c}}
	r1 := mgrSpec(t, dir, listen, tls, siteA)
	r2 := mgrSpec(t, dir, listen, tls, siteA, siteB, siteT)

	// Manager 1 serves b and t from spare backends, then leaves HAProxy
	// running.
	m1, _ := newTestManager(t, dir, func(c *Config) { c.KeepRunning = true })
	if err := m1.Start(ctx, r1); err != nil {
		t.Fatal(err)
	}
	if res, err := m1.Apply(ctx, r2); err != nil || !res.RuntimeOnly {
		t.Fatalf("add b and t: %+v %v", res, err)
	}
	m1.mu.Lock()
	spares := maps.Clone(m1.serving.Spares)
	m1.mu.Unlock()
	if !strings.HasPrefix(spares[BackendName("b.example")], SpareBackendPrefix+ModeHTTP) ||
		!strings.HasPrefix(spares[BackendName("t.example")], SpareBackendPrefix+ModeTCP) {
		t.Fatalf("spare backends in use: %v, want an http one for b and a tcp one for t", spares)
	}
	mgrExpect(t, listen, "b.example", 200, "B", 5*time.Second)
	h1 := m1.Health()
	if err := m1.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Manager 2 adopts it: same worker, b still served from its spare
	// backend, reported under its own name.
	m2, _ := newTestManager(t, dir, nil)
	if err := m2.Start(ctx, r2); err != nil {
		t.Fatal(err)
	}
	if h := m2.Health(); h.MasterPID != h1.MasterPID || h.WorkerPID != h1.WorkerPID || h.ConfigHash != r2.Hash || !h.OK {
		t.Fatalf("health after adoption: %+v (before %+v)", h, h1)
	}
	mgrSiteStats(t, m2, BackendName("b.example"), 5*time.Second, func(s SiteStats) error {
		if s.ServersTotal != 1 {
			return fmt.Errorf("b: %d servers", s.ServersTotal)
		}
		return nil
	})
	// b removed, then c added: map entries, and the next free spare
	// backend (not b's, which still holds b's servers).
	if res, err := m2.Apply(ctx, mgrSpec(t, dir, listen, tls, siteA, siteT)); err != nil || !res.RuntimeOnly {
		t.Fatalf("remove b after adoption: %+v %v", res, err)
	}
	mgrExpect(t, listen, "b.example", UnknownHostStatus, "", 5*time.Second)
	siteC := Site{Domain: "c.example", Mode: ModeHTTP, Origins: []string{c}}
	r3 := mgrSpec(t, dir, listen, tls, siteA, siteC, siteT)
	if res, err := m2.Apply(ctx, r3); err != nil || !res.RuntimeOnly {
		t.Fatalf("add c after adoption: %+v %v", res, err)
	}
	mgrExpect(t, listen, "c.example", 200, "C", 5*time.Second)
	mgrExpect(t, listen, "b.example", UnknownHostStatus, "", 5*time.Second)
	m2.mu.Lock()
	spares = maps.Clone(m2.serving.Spares)
	m2.mu.Unlock()
	if sp := spares[BackendName("c.example")]; sp == "" || sp == spares[BackendName("b.example")] {
		t.Fatalf("spare backends in use: %v", spares)
	}

	// HAProxy dies: the supervisor starts it again from the files on
	// disk, where every site has its own backend.
	before := m2.Health()
	if err := syscall.Kill(-before.MasterPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h := mgrWaitHealth(t, m2, func(h Health) bool { return h.Restarts == 1 && h.OK })
	if h.ConfigHash != r3.Hash {
		t.Fatalf("health after restart: %+v", h)
	}
	mgrExpect(t, listen, "c.example", 200, "C", 10*time.Second)
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
	mgrExpect(t, listen, "b.example", UnknownHostStatus, "", 5*time.Second)
	m2.mu.Lock()
	spares = m2.serving.Spares
	m2.mu.Unlock()
	if len(spares) != 0 {
		t.Fatalf("spare backends in use after a restart: %v", spares)
	}
	// And a new site is served from a spare backend again.
	r4 := mgrSpec(t, dir, listen, tls, siteA, siteB, siteC, siteT)
	if res, err := m2.Apply(ctx, r4); err != nil || !res.RuntimeOnly {
		t.Fatalf("add b after the restart: %+v %v", res, err)
	}
	mgrExpect(t, listen, "b.example", 200, "B", 5*time.Second)
}

// mgrServerStatus returns "STATUS CHECK_STATUS" of every server of backend
// from the worker's `show stat`.
func mgrServerStatus(t *testing.T, m *Manager, backend string) map[string]string {
	t.Helper()
	out, err := cliExchange(mgrCtx(t), m.p.statsSock, "show stat -1 4 -1", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimPrefix(strings.TrimSpace(out), "# "), "\n")
	col := map[string]int{}
	for i, h := range strings.Split(lines[0], ",") {
		col[h] = i
	}
	got := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) > col["check_status"] && f[col["pxname"]] == backend {
			got[f[col["svname"]]] = f[col["status"]] + " " + f[col["check_status"]]
		}
	}
	return got
}

func TestApplyMapDiff(t *testing.T) {
	e := func(kv ...string) [][2]string {
		var out [][2]string
		for i := 0; i < len(kv); i += 2 {
			out = append(out, [2]string{kv[i], kv[i+1]})
		}
		return out
	}
	edits, ok := mapDiff(e("a", "1", "b", "2", "c", "3"), e("b", "2", "c", "4", "d", "5"))
	want := []mapEdit{{op: "del", key: "a"}, {op: "set", key: "c", value: "4"}, {op: "add", key: "d", value: "5"}}
	if !ok || !slices.Equal(edits, want) {
		t.Fatalf("mapDiff = %v %v, want %v", edits, ok, want)
	}
	if cmds := editMapCommands("#2", edits); strings.Join(cmds, ";") != "del map #2 a;set map #2 c 4;add map #2 d 5" {
		t.Errorf("commands: %q", cmds)
	}
	for name, c := range map[string][2][][2]string{
		"repeated key":     {e("a", "1", "a", "2"), e("a", "1")},
		"space in a value": {e("a", "1"), e("a", "x y")},
		"semicolon":        {e("a", "1"), e("a;b", "1")},
	} {
		if _, ok := mapDiff(c[0], c[1]); ok {
			t.Errorf("%s: mapDiff accepted it", name)
		}
	}
}

func TestApplyPhysicalMaps(t *testing.T) {
	maps := map[string][]byte{
		HostsMap: []byte("a.example site_a.example\nb.example site_b.example\n# c.example site_b.example\n"),
		SNIMap:   []byte("t.example site_t.example\n"),
	}
	got := physicalMaps(maps, map[string]string{"site_b.example": "lumos_spare_http_03"})
	if want := "a.example site_a.example\nb.example lumos_spare_http_03\n# c.example site_b.example\n"; string(got[HostsMap]) != want {
		t.Errorf("%s = %q, want %q", HostsMap, got[HostsMap], want)
	}
	if !bytes.Equal(got[SNIMap], maps[SNIMap]) {
		t.Errorf("%s changed: %q", SNIMap, got[SNIMap])
	}
	if !bytes.Equal(maps[HostsMap], []byte("a.example site_a.example\nb.example site_b.example\n# c.example site_b.example\n")) {
		t.Errorf("physicalMaps changed its input")
	}
}

func TestApplyParseShowMap(t *testing.T) {
	out := "# id (file) description\n2 (/d/hosts.map) pattern loaded from file '/d/hosts.map' used by map at file '/d/haproxy.cfg' line 28. curr_ver=0 next_ver=0 entry_cnt=3\n5 (/d/sni.map) pattern loaded\n\n"
	got, err := parseShowMap(out)
	if want := []loadedMap{{"2", "/d/hosts.map"}, {"5", "/d/sni.map"}}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("parseShowMap = %v %v, want %v", got, err, want)
	}
	if _, err := parseShowMap("Unknown command\n"); err == nil {
		t.Errorf("parseShowMap accepted an error answer")
	}
}

// TestApplyValidationConfig checks what `haproxy -c` is given: the whole
// configuration, or Base and the sections HAProxy has not loaded with every
// other line left empty.
func TestApplyValidationConfig(t *testing.T) {
	dir := "/var/lib/lumos/haproxy"
	sites := []Site{
		{Domain: "a.example", Mode: ModeHTTP, Origins: []string{"10.0.0.1:80"}},
		{Domain: "b.example", Mode: ModeHTTP, Origins: []string{"10.0.0.2:80", "10.0.0.3:80"}},
	}
	r1 := mgrRenderSpec(t, &Spec{Dir: dir, ListenHTTP: "0.0.0.0:80", Sites: sites})
	b1, err := newBundle(r1)
	if err != nil {
		t.Fatal(err)
	}
	sites = append(sites, Site{Domain: "c.example", Mode: ModeHTTP, Origins: []string{"10.0.0.4:80"}})
	r2 := mgrRenderSpec(t, &Spec{Dir: dir, ListenHTTP: "0.0.0.0:80", Sites: sites})
	b2, err := newBundle(r2)
	if err != nil {
		t.Fatal(err)
	}
	if len(b2.sections) != 3 || strings.Join(b2.state.Sites, " ") != "site_a.example site_b.example site_c.example" {
		t.Fatalf("sections %v, sites %v", b2.sections, b2.state.Sites)
	}
	cfg, n := b2.validationConfig(b1.state)
	want := r2.Base + strings.Repeat("\n", strings.Count(r2.Backends["site_a.example"]+r2.Backends["site_b.example"], "\n")) + r2.Backends["site_c.example"]
	if n != 1 || string(cfg) != want {
		t.Errorf("validation of c's addition: %d sections:\n%s", n, cfg)
	}
	if strings.Count(string(cfg), "\n") != strings.Count(string(r2.Config), "\n") {
		t.Errorf("validation config has other line numbers")
	}
	// Nothing known, or another Base: all of it.
	if cfg, _ := b2.validationConfig(servingState{}); !bytes.Equal(cfg, r2.Config) {
		t.Errorf("validation without a serving state is not the whole configuration")
	}
	r3 := mgrRenderSpec(t, &Spec{Dir: dir, ListenHTTP: "0.0.0.0:8080", Sites: sites})
	b3, _ := newBundle(r3)
	if cfg, _ := b3.validationConfig(b1.state); !bytes.Equal(cfg, r3.Config) {
		t.Errorf("validation with another Base is not the whole configuration")
	}
	// A rendering changed by hand: not laid out as Render writes it.
	for name, change := range map[string]func(r *Rendered){
		"extra section": func(r *Rendered) { r.Config = append(r.Config, "\nbackend x\n  mode http\n"...) },
		"unknown keyword": func(r *Rendered) {
			r.Config = bytes.Replace(r.Config, []byte("  balance roundrobin\n  server o1 10.0.0.4:80"), []byte("  balance roundrobin\n  option httpchk\n  server o1 10.0.0.4:80"), 1)
		},
		"text not in Config": func(r *Rendered) { r.Backends["site_a.example"] += "  # changed\n" },
	} {
		cp := *r2
		cp.Config = slices.Clone(r2.Config)
		cp.Backends = maps.Clone(r2.Backends)
		change(&cp)
		b, err := newBundle(&cp)
		if err != nil {
			t.Fatal(err)
		}
		if b.sections != nil {
			t.Errorf("%s: sections found", name)
		}
		if cfg, _ := b.validationConfig(b1.state); !bytes.Equal(cfg, cp.Config) {
			t.Errorf("%s: not validated whole", name)
		}
	}
}
