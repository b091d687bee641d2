package haproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// mgrOrigin is an origin server answering every request with its name and
// status.
func mgrOrigin(t testing.TB, name string, status int) (addr string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(status)
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// mgrRender renders sites (domain -> origin, mode http) for dir and listen.
func mgrRender(t *testing.T, dir, listen string, sites map[string]string) *Rendered {
	t.Helper()
	return mgrRenderSpec(t, &Spec{Dir: dir, ListenHTTP: listen, Sites: mgrSites(sites)})
}

func mgrRenderSpec(t *testing.T, spec *Spec) *Rendered {
	t.Helper()
	r, err := Render(spec)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

func mgrSites(sites map[string]string) []Site {
	var out []Site
	for d, o := range sites {
		out = append(out, Site{Domain: d, Mode: ModeHTTP, Origins: []string{o}})
	}
	slices.SortFunc(out, func(a, b Site) int { return strings.Compare(a.Domain, b.Domain) })
	return out
}

// mgrEvents records a Manager's events.
type mgrEvents struct {
	mu     sync.Mutex
	events []Event
}

func (e *mgrEvents) add(ev Event) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

func (e *mgrEvents) types() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		out = append(out, ev.Type)
	}
	return out
}

func (e *mgrEvents) find(typ string) (Event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.events {
		if ev.Type == typ {
			return ev, true
		}
	}
	return Event{}, false
}

func (e *mgrEvents) wait(t *testing.T, typ string, timeout time.Duration) Event {
	t.Helper()
	var got Event
	eventually(t, timeout, func() error {
		ev, ok := e.find(typ)
		if !ok {
			return fmt.Errorf("no %s event yet (events: %v)", typ, e.types())
		}
		got = ev
		return nil
	})
	return got
}

// newTestManager returns a Manager on dir with tight timings. The test's
// cleanup closes it and kills any HAProxy still running for dir.
func newTestManager(t *testing.T, dir string, mod func(*Config)) (*Manager, *mgrEvents) {
	t.Helper()
	ev := &mgrEvents{}
	logs := &syncBuffer{}
	cfg := Config{
		Dir:           dir,
		Binary:        haproxyBinary(t),
		ReloadTimeout: 10 * time.Second,
		CheckInterval: 100 * time.Millisecond,
		StopTimeout:   5 * time.Second,
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnEvent:       ev.add,
	}
	if mod != nil {
		mod(&cfg)
	}
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("manager log:\n%s", logs.String())
			if b, err := os.ReadFile(filepath.Join(dir, logFile)); err == nil {
				t.Logf("haproxy log:\n%s", b)
			}
		}
	})
	return m, ev
}

// mgrKillDir kills the HAProxy process group running for dir, if any, and
// reaps its master when it is this process's child.
func mgrKillDir(t testing.TB, dir string) {
	t.Helper()
	pid := readPIDFile(filepath.Join(dir, PIDFile))
	if pid <= 0 {
		return
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !bytes.Contains(b, []byte(filepath.Join(dir, MasterSocket))) {
		return
	}
	p := &masterProc{pid: pid, pgid: masterGroup(pid)}
	p.signal(syscall.SIGKILL)
	if !p.waitExit(context.Background(), 5*time.Second) {
		t.Errorf("haproxy %d for %s still running after SIGKILL", pid, dir)
	}
}

// mgrDir returns a test directory for the Manager (short: Unix socket
// paths are limited) and kills HAProxy left running for it at the end.
func mgrDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { mgrKillDir(t, dir) })
	return dir
}

func mgrCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mgrClient is an HTTP client for the shield, keep-alive on or off.
func mgrClient(t *testing.T, keepAlive bool) *http.Client {
	tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// mgrGet sends GET / with host to the shield at addr.
func mgrGet(c *http.Client, addr, host string) (int, string, error) {
	req, err := http.NewRequest("GET", "http://"+addr+"/", nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// mgrExpect waits until host answers status and body through addr.
func mgrExpect(t *testing.T, addr, host string, status int, body string, timeout time.Duration) {
	t.Helper()
	c := mgrClient(t, false)
	eventually(t, timeout, func() error {
		st, b, err := mgrGet(c, addr, host)
		if err != nil {
			return err
		}
		if st != status || (body != "" && b != body) {
			return fmt.Errorf("%s: got %d %q, want %d %q", host, st, b, status, body)
		}
		return nil
	})
}

// mgrLoad sends steady requests to the shield and counts failures.
type mgrLoad struct {
	ok, fail atomic.Int64
	mu       sync.Mutex
	errs     []string
	stop     chan struct{}
	stopFn   func()
	wg       sync.WaitGroup
}

// startLoad runs one client with keep-alive and one without, each sending a
// request every 2 ms; a request fails unless it gets 200 and one of the
// bodies in ok.
func startLoad(t *testing.T, addr, host string, ok ...string) *mgrLoad {
	l := &mgrLoad{stop: make(chan struct{})}
	for _, ka := range []bool{true, false} {
		c := mgrClient(t, ka)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				st, body, err := mgrGet(c, addr, host)
				good := err == nil && st == 200
				if good && len(ok) > 0 {
					good = false
					for _, o := range ok {
						good = good || body == o
					}
				}
				if good {
					l.ok.Add(1)
					continue
				}
				l.fail.Add(1)
				l.mu.Lock()
				if len(l.errs) < 10 {
					l.errs = append(l.errs, fmt.Sprintf("keepalive=%t: %d %q %v", ka, st, body, err))
				}
				l.mu.Unlock()
			}
		}()
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(l.stop); l.wg.Wait() }) })
	l.stopFn = func() { once.Do(func() { close(l.stop); l.wg.Wait() }) }
	return l
}

func (l *mgrLoad) finish() (ok, fail int64, errs []string) {
	l.stopFn()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.fail.Load(), l.errs
}

// waitProgress waits until the load has n more successful requests.
func (l *mgrLoad) waitProgress(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	eventually(t, 10*time.Second, func() error {
		if got := l.ok.Load(); got < target {
			return fmt.Errorf("load: %d successful requests, want %d (failures %d)", got, target, l.fail.Load())
		}
		return nil
	})
}

func alive(pid int) bool {
	p := &masterProc{pid: pid}
	dead, _ := p.exited()
	return !dead
}

func TestManagerStartApplyReload(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	a := mgrOrigin(t, "A", 200)
	b := mgrOrigin(t, "B", 200)
	m, ev := newTestManager(t, dir, nil)
	ctx := mgrCtx(t)

	r1 := mgrRender(t, dir, listen, map[string]string{"a.example": a})
	if err := m.Start(ctx, r1); err != nil {
		t.Fatalf("start: %v", err)
	}
	h := m.Health()
	if !h.Running || !h.OK || h.ConfigHash != r1.Hash || h.WorkerPID == 0 || h.MasterPID == 0 {
		t.Fatalf("health after start: %+v", h)
	}
	ev.wait(t, EventStarted, 5*time.Second)
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
	mgrExpect(t, listen, "unknown.example", UnknownHostStatus, "", 5*time.Second)

	if fi, err := os.Stat(filepath.Join(dir, goodDir)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("last good directory: %v %v", fi, err)
	}

	r2 := mgrRender(t, dir, listen, map[string]string{"a.example": b})
	res, err := m.Apply(ctx, r2)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if !res.Reloaded || res.RuntimeOnly || res.Unchanged {
		t.Fatalf("apply result: %+v, want Reloaded", res)
	}
	t.Logf("apply with reload took %v", res.Took)
	h2 := m.Health()
	if h2.WorkerPID == h.WorkerPID || h2.WorkerPID == 0 {
		t.Fatalf("worker pid after reload: %d (before %d)", h2.WorkerPID, h.WorkerPID)
	}
	if h2.MasterPID != h.MasterPID || h2.ConfigHash != r2.Hash || !h2.OK {
		t.Fatalf("health after reload: %+v", h2)
	}
	mgrExpect(t, listen, "a.example", 200, "B", 5*time.Second)
	if e := ev.wait(t, EventReloaded, 5*time.Second); e.PID != h2.WorkerPID {
		t.Errorf("reloaded event pid %d, want %d", e.PID, h2.WorkerPID)
	}
	got, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil || !bytes.Equal(got, r2.Config) {
		t.Fatalf("config on disk is not the applied one (%v)", err)
	}
	good, err := os.ReadFile(filepath.Join(dir, goodDir, ConfigFile))
	if err != nil || !bytes.Equal(good, r2.Config) {
		t.Fatalf("last good config is not the applied one (%v)", err)
	}

	res, err = m.Apply(ctx, r2)
	if err != nil || !res.Unchanged {
		t.Fatalf("second apply: %+v %v, want Unchanged", res, err)
	}
	if m.Health().WorkerPID != h2.WorkerPID {
		t.Fatalf("unchanged apply changed the worker")
	}
}

func TestManagerSupervisorRestart(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	a := mgrOrigin(t, "A", 200)
	m, ev := newTestManager(t, dir, nil)
	ctx := mgrCtx(t)
	r := mgrRender(t, dir, listen, map[string]string{"a.example": a})
	if err := m.Start(ctx, r); err != nil {
		t.Fatal(err)
	}
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
	before := m.Health()

	t0 := time.Now()
	if err := syscall.Kill(-before.MasterPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	exited := ev.wait(t, EventExited, 10*time.Second)
	if exited.PID != before.MasterPID {
		t.Errorf("exited event pid %d, want %d", exited.PID, before.MasterPID)
	}
	restarted := ev.wait(t, EventRestarted, 15*time.Second)
	mgrExpect(t, listen, "a.example", 200, "A", 10*time.Second)
	t.Logf("killed -> restarted event %v -> serving %v", restarted.Time.Sub(t0), time.Since(t0))
	h := m.Health()
	if h.Restarts != 1 || !h.Running || !h.OK || h.MasterPID == before.MasterPID || h.MasterPID != restarted.PID || h.ConfigHash != r.Hash {
		t.Fatalf("health after restart: %+v (before %+v)", h, before)
	}
	if alive(before.MasterPID) {
		t.Fatalf("old master %d still alive", before.MasterPID)
	}
	// A dead worker takes its master down (HAProxy's exit-on-failure):
	// restarted too.
	h1 := h
	if err := syscall.Kill(h1.WorkerPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h = mgrWaitHealth(t, m, func(h Health) bool { return h.Restarts == 2 && h.OK })
	if h.MasterPID == h1.MasterPID {
		t.Fatalf("health after the worker died: %+v", h)
	}
	mgrExpect(t, listen, "a.example", 200, "A", 10*time.Second)

	// Applies work on the restarted HAProxy.
	b := mgrOrigin(t, "B", 200)
	if res, err := m.Apply(ctx, mgrRender(t, dir, listen, map[string]string{"a.example": b})); err != nil || !res.Reloaded {
		t.Fatalf("apply after restart: %+v %v", res, err)
	}
	mgrExpect(t, listen, "a.example", 200, "B", 5*time.Second)
}

func TestManagerAdopt(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	a := mgrOrigin(t, "A", 200)
	b := mgrOrigin(t, "B", 200)
	ctx := mgrCtx(t)
	r1 := mgrRender(t, dir, listen, map[string]string{"a.example": a})

	ma, eva := newTestManager(t, dir, func(c *Config) { c.KeepRunning = true })
	if err := ma.Start(ctx, r1); err != nil {
		t.Fatal(err)
	}
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
	ha := ma.Health()
	load := startLoad(t, listen, "a.example", "A", "B")
	load.waitProgress(t, 20)

	if err := ma.Close(ctx); err != nil {
		t.Fatalf("close A: %v", err)
	}
	if !alive(ha.MasterPID) {
		t.Fatalf("KeepRunning: HAProxy %d stopped with its Manager", ha.MasterPID)
	}
	if _, err := ma.Apply(ctx, r1); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after close: %v, want ErrClosed", err)
	}
	if _, ok := eva.find(EventExited); ok {
		t.Fatalf("A emitted exited: %v", eva.types())
	}
	load.waitProgress(t, 20)

	// B adopts the master A left and applies its initial rendering,
	// which differs from what A applied.
	r2 := mgrRender(t, dir, listen, map[string]string{"a.example": b})
	mb, evb := newTestManager(t, dir, nil)
	if err := mb.Start(ctx, r2); err != nil {
		t.Fatalf("start B: %v", err)
	}
	if e := evb.wait(t, EventAdopted, 5*time.Second); e.PID != ha.MasterPID {
		t.Fatalf("adopted pid %d, want %d", e.PID, ha.MasterPID)
	}
	if _, ok := evb.find(EventStarted); ok {
		t.Fatalf("B started a new HAProxy: %v", evb.types())
	}
	hb := mgrWaitHealth(t, mb, func(h Health) bool { return h.ConfigHash == r2.Hash })
	if hb.MasterPID != ha.MasterPID || !hb.OK {
		t.Fatalf("B health: %+v (A: %+v)", hb, ha)
	}
	mgrExpect(t, listen, "a.example", 200, "B", 5*time.Second)
	load.waitProgress(t, 20)
	ok, fail, errs := load.finish()
	t.Logf("adopt: %d requests, %d failed", ok+fail, fail)
	if fail != 0 {
		t.Fatalf("%d requests failed across Close and adoption: %v", fail, errs)
	}

	// B adopted, so B can stop it.
	if err := mb.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if alive(ha.MasterPID) {
		t.Fatalf("HAProxy %d still running after B closed without KeepRunning", ha.MasterPID)
	}
}

func mgrWaitHealth(t *testing.T, m *Manager, ok func(Health) bool) Health {
	t.Helper()
	var h Health
	eventually(t, 10*time.Second, func() error {
		h = m.Health()
		if !ok(h) {
			return fmt.Errorf("health: %+v", h)
		}
		return nil
	})
	return h
}

func TestManagerStartFallsBackToLastGood(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	a := mgrOrigin(t, "A", 200)
	ctx := mgrCtx(t)
	r1 := mgrRender(t, dir, listen, map[string]string{"a.example": a})

	m1, _ := newTestManager(t, dir, nil)
	if err := m1.Start(ctx, r1); err != nil {
		t.Fatal(err)
	}
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
	if err := m1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mgrExpect404OrDown(t, listen)

	bad := mgrBroken(t, mgrRender(t, dir, listen, map[string]string{"a.example": a, "b.example": a}))
	m2, ev2 := newTestManager(t, dir, nil)
	if err := m2.Start(ctx, bad); err != nil {
		t.Fatalf("start with a refused configuration and a last good one: %v", err)
	}
	h := m2.Health()
	if !h.Running || h.OK || h.ErrorType != ErrorTypeValidateFailed || !strings.HasPrefix(h.Error, ErrorTypeValidateFailed+": ") || h.ConfigHash != r1.Hash {
		t.Fatalf("health: %+v", h)
	}
	ev2.wait(t, EventValidateFailed, 5*time.Second)
	ev2.wait(t, EventStarted, 5*time.Second)
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
	// A good apply clears the error.
	if res, err := m2.Apply(ctx, r1); err != nil || !res.Unchanged {
		t.Fatalf("apply r1: %+v %v", res, err)
	}
	if h := m2.Health(); !h.OK || h.Error != "" {
		t.Fatalf("health after a good apply: %+v", h)
	}

	// Nothing to fall back on: Start fails and starts nothing.
	empty := mgrDir(t)
	m3, _ := newTestManager(t, empty, nil)
	err := m3.Start(ctx, mgrBroken(t, mgrRender(t, empty, freeAddr(t), map[string]string{"a.example": a})))
	if !errors.Is(err, ErrStart) || !errors.Is(err, ErrValidate) {
		t.Fatalf("start without a last good configuration: %v, want ErrStart and ErrValidate", err)
	}
	if h := m3.Health(); h.Running {
		t.Fatalf("health: %+v", h)
	}
	if _, err := m3.Apply(ctx, r1); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("apply on a Manager that did not start: %v", err)
	}
}

// mgrExpect404OrDown checks that nothing serves on listen any more.
func mgrExpect404OrDown(t *testing.T, listen string) {
	t.Helper()
	c := mgrClient(t, false)
	eventually(t, 5*time.Second, func() error {
		if _, _, err := mgrGet(c, listen, "a.example"); err == nil {
			return errors.New("still served")
		}
		return nil
	})
}

// mgrBroken returns r with a site backend HAProxy refuses at `haproxy -c`.
func mgrBroken(t *testing.T, r *Rendered) *Rendered {
	t.Helper()
	out := *r
	out.Backends = make(map[string]string, len(r.Backends))
	for name, text := range r.Backends {
		out.Backends[name] = text
	}
	for name, text := range r.Backends {
		if strings.HasPrefix(name, SiteBackendPrefix) {
			broken := strings.Replace(text, "balance roundrobin", "balance no-such-algorithm", 1)
			if broken == text {
				t.Fatalf("no balance line in backend %s:\n%s", name, text)
			}
			out.Backends[name] = broken
			out.Config = []byte(strings.Replace(string(r.Config), text, broken, 1))
			out.Hash = ""
			return &out
		}
	}
	t.Fatal("no site backend to break")
	return nil
}

func TestManagerStopAndClose(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	a := mgrOrigin(t, "A", 200)
	ctx := mgrCtx(t)
	r := mgrRender(t, dir, listen, map[string]string{"a.example": a})
	m, ev := newTestManager(t, dir, nil)
	if err := m.Stop(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stop before start: %v", err)
	}
	if err := m.Start(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, r); err == nil {
		t.Fatal("second start succeeded")
	}
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
	h := m.Health()
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if alive(h.MasterPID) || alive(h.WorkerPID) {
		t.Fatalf("haproxy still running after Stop")
	}
	if h := m.Health(); h.Running || h.OK {
		t.Fatalf("health after stop: %+v", h)
	}
	ev.wait(t, EventExited, 5*time.Second)
	if _, err := m.Apply(ctx, r); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("apply after stop: %v", err)
	}
	if _, err := m.Stats(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stats after stop: %v", err)
	}
	// The supervisor does not bring a stopped HAProxy back.
	if _, ok := ev.find(EventRestarted); ok {
		t.Fatal("restarted after Stop")
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := m.Apply(ctx, r); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after close: %v", err)
	}
	if err := m.Start(ctx, r); !errors.Is(err, ErrClosed) {
		t.Fatalf("start after close: %v", err)
	}
}

func TestProcessParseShowProc(t *testing.T) {
	out := `#<PID>          <type>          <reloads>       <uptime>        <version>
31708           master          2 [failed: 1]   0d00h10m17s     2.6.12-1+deb12u4
# workers
10891           worker          1               0d00h00m06s     2.6.12-1+deb12u4
# old workers
10001           worker          3               0d00h00m46s     2.6.12-1+deb12u4
# programs
`
	st, err := parseShowProc(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.MasterPID != 31708 || st.Reloads != 2 || st.Failed != 1 ||
		len(st.Workers) != 1 || st.Workers[0] != (procWorker{10891, 1}) ||
		len(st.OldWorkers) != 1 || st.OldWorkers[0].PID != 10001 || st.current() != 10891 {
		t.Fatalf("parsed %+v", st)
	}
	next, _ := parseShowProc(strings.Replace(strings.Replace(out, "10891           worker          1", "20000           worker          0", 1), "[failed: 1]", "[failed: 0]", 1))
	if w := next.newWorker(st); w != 20000 {
		t.Fatalf("new worker %d", w)
	}
	if w := st.newWorker(st); w != 0 {
		t.Fatalf("new worker of the same status: %d", w)
	}
	if _, err := parseShowProc("Unknown command\n"); err == nil {
		t.Fatal("no error for garbage")
	}
}

func TestManagerAdoptAfterInterruptedApply(t *testing.T) {
	dir := mgrDir(t)
	listen := freeAddr(t)
	a := mgrOrigin(t, "A", 200)
	b := mgrOrigin(t, "B", 200)
	ctx := mgrCtx(t)
	r1 := mgrRender(t, dir, listen, map[string]string{"a.example": a})
	ma, _ := newTestManager(t, dir, func(c *Config) { c.KeepRunning = true })
	if err := ma.Start(ctx, r1); err != nil {
		t.Fatal(err)
	}
	master := ma.Health().MasterPID
	if err := ma.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// An apply that wrote its files and went no further.
	r2 := mgrRender(t, dir, listen, map[string]string{"a.example": b, "b.example": b})
	writeRendered(t, dir, r2)

	mb, evb := newTestManager(t, dir, nil)
	if err := mb.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if e := evb.wait(t, EventAdopted, 5*time.Second); e.PID != master {
		t.Fatalf("adopted %d, want %d", e.PID, master)
	}
	if h := mb.Health(); h.ConfigHash != "" || !h.OK {
		t.Fatalf("health: %+v, want an unknown configuration", h)
	}
	mgrExpect(t, listen, "a.example", 200, "A", 5*time.Second)
	// What HAProxy serves is unknown: even r1 is reloaded.
	res, err := mb.Apply(ctx, r1)
	if err != nil || !res.Reloaded {
		t.Fatalf("apply r1: %+v %v, want Reloaded", res, err)
	}
	if res, err := mb.Apply(ctx, r1); err != nil || !res.Unchanged {
		t.Fatalf("apply r1 again: %+v %v, want Unchanged", res, err)
	}
	if got := mgrSnapshot(t, dir); !strings.Contains(got, sha256Hex(r1.Config)) {
		t.Fatal("configuration in place is not r1")
	}
}
