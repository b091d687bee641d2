package haproxy

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

	// A new site needs its backend: reload.
	r4 := mgrRender(t, dir, listen, map[string]string{"a.example": a, "b.example": b, "c.example": c})
	check("add c", r4, ApplyResult{Reloaded: true})
	mgrExpect(t, listen, "c.example", 200, "C", 5*time.Second)
	worker = m.Health().WorkerPID

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

	r2 := mgrRender(t, dir, listen, map[string]string{"a.example": a, "b.example": b})
	if res, err := m.Apply(ctx, r2); err != nil || !res.Reloaded {
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
