package haproxy

// Benchmarks of the apply path with the real HAProxy: changes on a shield
// serving 100, 1,000 and 10,000 sites (render, validate, runtime API or
// reload, memory), and traffic through 50 back-to-back reloads. Run with
//
//	go test ./haproxy/ -run '^$' -bench 'Apply$|ReloadStorm' -benchtime 1x -v
//
// Each iteration is one complete measurement; the figures are printed with
// ReportMetric and summarized with Logf.

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkApply measures changes on a Manager serving N sites, each
// iteration:
//
//   - add: a new site is added (Render, then Apply: `haproxy -c` on Base
//     and the new section, the site's servers added to a spare backend and
//     its map entry through the runtime API, files written): no reload.
//   - change: that site's origin changes, so its backend changes (Render,
//     then Apply: `haproxy -c` on Base and the changed section, files in
//     place, reload confirmed by the new worker): the reload path.
//   - remove: the site is removed (map entries only, through the runtime
//     API).
//
// Sites have one or two origins on loopback ports nobody listens on (their
// health checks fail, as they may in production); the added site's origins
// are live servers, and a request through HAProxy checks each step.
// validate-ms is `haproxy -c` with its staging; runtime-ms the runtime API
// commands of the add; reload-ms the reload until the new worker answers,
// as the Manager logs them. total-ms is render + Apply of the add,
// reload-total-ms the same for the change.
//
// Memory: the Go heap the rendering holds (HeapAlloc after − before, the
// Rendered kept alive), the bytes Render allocates (TotalAlloc), and this
// process's VmRSS growth across render + apply of the add; HAProxy's own
// RSS (master and current worker) for reference.
//
// Measured on a 2-core machine at 10,000 sites: add 75-90 ms in all
// (render 5-10 ms, haproxy -c of Base and the new section 35-40 ms,
// runtime API 10-15 ms, the rest writing files and state); change with a
// reload 450-510 ms (haproxy -c 40 ms, reload 390-450 ms: the new master
// parses the whole configuration and builds Lua objects for every backend
// and server, whatever the change); remove 30-50 ms. Before spare backends
// and partial validation the add was a reload: 520-650 ms (haproxy -c of
// the whole file 150-180 ms, reload 350-460 ms).
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchApply(b, n) })
	}
}

func benchApply(b *testing.B, n int) {
	dir := b.TempDir()
	b.Cleanup(func() { mgrKillDir(b, dir) })
	listen := freeAddr(b)
	live := mgrOrigin(b, "bench-origin", http.StatusOK)
	live2 := mgrOrigin(b, "bench-origin-2", http.StatusOK)
	ctx := context.Background()

	sites := benchSites(n)
	initial, err := Render(&Spec{Dir: dir, ListenHTTP: listen, Sites: sites})
	if err != nil {
		b.Fatal(err)
	}
	split := &benchSplit{}
	m, err := NewManager(Config{Dir: dir, Binary: haproxyBinary(b), StopTimeout: 5 * time.Second, Logger: slog.New(split)})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if err := m.Start(ctx, initial); err != nil {
		b.Fatalf("start with %d sites: %v\n%s", n, err, benchHAProxyLog(dir))
	}
	startTook := time.Since(t0)
	if w := benchLimitWarnings(dir); w != "" {
		b.Logf("%d sites, descriptor limit %s: HAProxy warns: %s", n, benchNoFile(), w)
	}
	b.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := m.Close(cctx); err != nil {
			b.Errorf("close: %v", err)
		}
	})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	initial = nil

	var render, apply, total, validate, runtimeTook time.Duration
	var chRender, chTotal, chValidate, chReload time.Duration
	var mapOnly, mapOnlyTotal time.Duration
	var heapMB, allocMB, rssGrowMB float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		added := Site{Domain: fmt.Sprintf("added-%d.bench.example", i), Mode: ModeHTTP, Origins: []string{live}}
		// "added-..." sorts before "site...".
		withAdded := append([]Site{added}, sites...)

		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rssBefore := benchVmRSS(os.Getpid())

		start := time.Now()
		r, err := Render(&Spec{Dir: dir, ListenHTTP: listen, Sites: withAdded})
		if err != nil {
			b.Fatal(err)
		}
		tr := time.Since(start)
		// What the rendering holds once its garbage is collected.
		runtime.GC()
		runtime.ReadMemStats(&after)
		start = time.Now()
		res, err := m.Apply(ctx, r)
		tt := tr + time.Since(start)
		if err != nil {
			b.Fatalf("apply %d+1 sites: %v\n%s", n, err, benchHAProxyLog(dir))
		}
		if !res.RuntimeOnly {
			b.Fatalf("apply %d+1 sites: %+v, want the new site served without a reload", n, res)
		}
		rssAfter := benchVmRSS(os.Getpid())
		sp := split.last()
		validate += sp.validate
		runtimeTook += sp.runtime
		heapMB += float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
		allocMB += float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20)
		rssGrowMB += float64(rssAfter-rssBefore) / (1 << 20)
		render += tr
		apply += res.Took
		total += tt
		runtime.KeepAlive(r)
		benchExpect(b, client, listen, added.Domain, http.StatusOK, "bench-origin")

		// Change its origin: another backend, a reload.
		withAdded[0].Origins = []string{live2}
		start = time.Now()
		r, err = Render(&Spec{Dir: dir, ListenHTTP: listen, Sites: withAdded})
		if err != nil {
			b.Fatal(err)
		}
		chRender += time.Since(start)
		res, err = m.Apply(ctx, r)
		chTotal += time.Since(start)
		if err != nil {
			b.Fatalf("change a site of %d+1: %v\n%s", n, err, benchHAProxyLog(dir))
		}
		if !res.Reloaded {
			b.Fatalf("change a site of %d+1: %+v, want a reload", n, res)
		}
		sp = split.last()
		chValidate += sp.validate
		chReload += sp.reload
		benchExpect(b, client, listen, added.Domain, http.StatusOK, "bench-origin-2")

		// Remove it again: map entries only.
		start = time.Now()
		r, err = Render(&Spec{Dir: dir, ListenHTTP: listen, Sites: sites})
		if err != nil {
			b.Fatal(err)
		}
		res, err = m.Apply(ctx, r)
		mt := time.Since(start)
		if err != nil {
			b.Fatalf("apply %d sites (one removed): %v", n, err)
		}
		if !res.RuntimeOnly {
			b.Fatalf("apply %d sites (one removed): %+v, want map entries only", n, res)
		}
		mapOnly += res.Took
		mapOnlyTotal += mt
		benchExpect(b, client, listen, added.Domain, UnknownHostStatus, "")
	}
	b.StopTimer()

	per := func(d time.Duration) float64 { return float64(d) / float64(b.N) / float64(time.Millisecond) }
	N := float64(b.N)
	h := m.Health()
	haproxyRSS := benchVmRSS(h.MasterPID) + benchVmRSS(h.WorkerPID)
	b.ReportMetric(per(render), "render-ms")
	b.ReportMetric(per(validate), "validate-ms")
	b.ReportMetric(per(runtimeTook), "runtime-ms")
	b.ReportMetric(per(apply), "apply-ms")
	b.ReportMetric(per(total), "total-ms")
	b.ReportMetric(per(chValidate), "reload-validate-ms")
	b.ReportMetric(per(chReload), "reload-ms")
	b.ReportMetric(per(chTotal), "reload-total-ms")
	b.ReportMetric(per(mapOnly), "map-only-ms")
	b.ReportMetric(heapMB/N, "render-heap-MB")
	b.ReportMetric(allocMB/N, "render-alloc-MB")
	b.ReportMetric(rssGrowMB/N, "rss-growth-MB")
	b.ReportMetric(float64(benchVmRSS(os.Getpid()))/(1<<20), "go-rss-MB")
	b.ReportMetric(float64(haproxyRSS)/(1<<20), "haproxy-rss-MB")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d sites (+1 added): start %v; add one site (no reload): render %.1f ms + apply %.1f ms = %.1f ms "+
		"(of which haproxy -c and staging %.1f ms, runtime API %.1f ms)", n, startTook.Round(time.Millisecond),
		per(render), per(apply), per(total), per(validate), per(runtimeTook))
	b.Logf("%d sites: change a site (reload): render %.1f ms + apply %.1f ms = %.1f ms "+
		"(of which haproxy -c and staging %.1f ms, reload until the new worker answers %.1f ms); "+
		"remove it (map only): apply %.1f ms, with render %.1f ms", n, per(chRender), per(chTotal-chRender), per(chTotal),
		per(chValidate), per(chReload), per(mapOnly), per(mapOnlyTotal))
	b.Logf("%d sites: render holds %.2f MB of heap, allocates %.2f MB; test process VmRSS grew %.2f MB over render+apply, is %.1f MB; "+
		"HAProxy master+worker RSS %.1f MB", n, heapMB/N, allocMB/N, rssGrowMB/N,
		float64(benchVmRSS(os.Getpid()))/(1<<20), float64(haproxyRSS)/(1<<20))
}

// benchSplit is a slog handler that keeps the durations the Manager logs
// with its last apply that changed HAProxy: "haproxy reloaded" (validate,
// reload) or "haproxy serves new sites from spare backends" (validate,
// runtime).
type benchSplit struct {
	mu  sync.Mutex
	cur benchSplitTimes
}

type benchSplitTimes struct {
	validate, reload, runtime time.Duration
}

func (h *benchSplit) Enabled(context.Context, slog.Level) bool { return true }
func (h *benchSplit) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *benchSplit) WithGroup(string) slog.Handler            { return h }
func (h *benchSplit) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "haproxy reloaded" && r.Message != "haproxy serves new sites from spare backends" {
		return nil
	}
	var t benchSplitTimes
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "validate":
			t.validate = a.Value.Duration()
		case "reload":
			t.reload = a.Value.Duration()
		case "runtime":
			t.runtime = a.Value.Duration()
		}
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cur = t
	return nil
}

func (h *benchSplit) last() benchSplitTimes {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

// benchSites returns n sites, sorted, each with one origin (and every
// other one a second) on a loopback address where nothing listens.
func benchSites(n int) []Site {
	out := make([]Site, n)
	for i := range out {
		ip := fmt.Sprintf("127.%d.%d.%d", 100+i/62500, i/250%250, i%250+1)
		origins := []string{ip + ":9"}
		if i%2 == 0 {
			origins = append(origins, ip+":19")
		}
		out[i] = Site{Domain: fmt.Sprintf("site%05d.bench.example", i), Mode: ModeHTTP, Origins: origins}
	}
	return out
}

// benchExpect waits (up to 5 s) until host answers status (and body, unless
// "") through HAProxy.
func benchExpect(b *testing.B, c *http.Client, addr, host string, status int, body string) {
	b.Helper()
	eventually(b, 5*time.Second, func() error {
		st, got, err := mgrGet(c, addr, host)
		if err != nil {
			return err
		}
		if st != status || (body != "" && got != body) {
			return fmt.Errorf("%s: %d %q, want %d %q", host, st, got, status, body)
		}
		return nil
	})
}

// benchVmRSS returns a process's resident set size in bytes (0 if unknown).
func benchVmRSS(pid int) int64 {
	return benchProcStatus(pid, "VmRSS:")
}

// benchProcStatus reads a "kB" field of /proc/PID/status, in bytes.
func benchProcStatus(pid int, field string) int64 {
	if pid <= 0 {
		return 0
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// benchLimitWarnings returns HAProxy's warnings about its descriptor or
// connection limits from its log in dir, joined by "; ".
func benchLimitWarnings(dir string) string {
	data, _ := os.ReadFile(dir + "/" + logFile)
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "WARNING") && (strings.Contains(l, "file descriptor") || strings.Contains(l, "maxconn") || strings.Contains(l, "FD limit") || strings.Contains(l, "ulimit")) {
			if i := strings.Index(l, ") : "); i >= 0 {
				l = l[i+4:]
			}
			if !slices.Contains(out, l) {
				out = append(out, strings.TrimSpace(l))
			}
		}
	}
	return strings.Join(out, "; ")
}

// benchNoFile returns this process's descriptor limit as "soft/hard".
func benchNoFile() string {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%d/%d", rl.Cur, rl.Max)
}

// benchHAProxyLog returns the end of HAProxy's log in dir.
func benchHAProxyLog(dir string) string {
	data, _ := os.ReadFile(dir + "/" + logFile)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// BenchmarkReloadStorm sends steady HTTP traffic (keep-alive and
// connection-per-request clients) through a Manager's HAProxy to live
// origins while 50 configuration changes are applied back to back: every
// other one adds a site (served from a spare backend without a reload
// while spare backends remain, else a reload), the others change the
// origins of a site under load (each needs a new backend, hence a
// reload). A request fails unless it gets 200 from an origin.
func BenchmarkReloadStorm(b *testing.B) {
	const (
		changes   = 50
		loadSites = 10
		clients   = 6 // half keep-alive
		pace      = time.Millisecond
		body      = "storm-origin"
	)
	dir := b.TempDir()
	b.Cleanup(func() { mgrKillDir(b, dir) })
	listen := freeAddr(b)
	oa := mgrOrigin(b, body, http.StatusOK)
	ob := mgrOrigin(b, body, http.StatusOK)
	ctx := context.Background()

	spec := func(k int) *Spec {
		s := &Spec{Dir: dir, ListenHTTP: listen}
		for i := 0; i < loadSites; i++ {
			origins := []string{oa, ob}
			if i == 0 && (k/2)%2 == 1 {
				origins = []string{ob}
			}
			s.Sites = append(s.Sites, Site{Domain: fmt.Sprintf("load%02d.bench.example", i), Mode: ModeHTTP, Origins: origins})
		}
		for j := 0; j < (k+1)/2; j++ {
			s.Sites = append(s.Sites, Site{Domain: fmt.Sprintf("storm%02d.bench.example", j), Mode: ModeHTTP, Origins: []string{oa}})
		}
		return s
	}
	m, err := NewManager(Config{Dir: dir, Binary: haproxyBinary(b), StopTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	r0, err := Render(spec(0))
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(ctx, r0); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := m.Close(cctx); err != nil {
			b.Errorf("close: %v", err)
		}
	})

	var failed, total int64
	var took, runtimeTook []time.Duration
	var storm time.Duration
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		load := benchStartLoad(listen, loadSites, clients, pace, body)
		load.waitOK(b, 200)
		start := time.Now()
		for k := 1; k <= changes; k++ {
			r, err := Render(spec(it*changes + k))
			if err != nil {
				b.Fatal(err)
			}
			res, err := m.Apply(ctx, r)
			if err != nil {
				load.stop()
				b.Fatalf("change %d: %v\n%s", k, err, benchHAProxyLog(dir))
			}
			switch {
			case res.Reloaded:
				took = append(took, res.Took)
			case res.RuntimeOnly && k%2 == 1:
				runtimeTook = append(runtimeTook, res.Took)
			default:
				load.stop()
				b.Fatalf("change %d: %+v, want a reload (or, adding a site, the runtime API)", k, res)
			}
		}
		storm += time.Since(start)
		load.waitOK(b, 200)
		load.stop()
		failed += load.fail.Load()
		total += load.ok.Load() + load.fail.Load()
		for _, e := range load.errs {
			b.Logf("failed request: %s", e)
		}
	}
	b.StopTimer()

	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(failed), "failed-requests")
	b.ReportMetric(float64(total), "requests-total")
	b.ReportMetric(ms(benchPercentile(took, 50)), "reload-p50-ms")
	b.ReportMetric(ms(benchPercentile(took, 99)), "reload-p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "reload-max-ms")
	b.ReportMetric(float64(total)/storm.Seconds(), "req/s")
	b.ReportMetric(0, "ns/op")
	slices.Sort(runtimeTook)
	b.ReportMetric(float64(len(runtimeTook)), "runtime-applies")
	b.Logf("%d reloads and %d runtime applies in %v under load (%d clients, half keep-alive): %d requests, %d failed; "+
		"reload apply p50 %.1f ms, p99 %.1f ms, max %.1f ms; runtime apply p50 %.1f ms", len(took), len(runtimeTook),
		storm.Round(time.Millisecond), clients, total, failed, ms(benchPercentile(took, 50)), ms(benchPercentile(took, 99)),
		ms(took[len(took)-1]), ms(benchPercentile(runtimeTook, 50)))
}

// benchPercentile returns the p-th percentile (nearest rank) of sorted.
func benchPercentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// benchLoad is steady traffic through HAProxy.
type benchLoad struct {
	ok, fail atomic.Int64
	errs     []string // the first failures, after stop
	mu       sync.Mutex
	done     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
}

// benchStartLoad starts clients goroutines, half with keep-alive, each
// sending one GET every pace (or as fast as answers come) with the Host of
// one of the sites load00..; a request succeeds with 200 and body.
func benchStartLoad(addr string, sites, clients int, pace time.Duration, body string) *benchLoad {
	l := &benchLoad{done: make(chan struct{})}
	for i := 0; i < clients; i++ {
		keepAlive := i%2 == 0
		tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 1}
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer tr.CloseIdleConnections()
			tick := time.NewTicker(pace)
			defer tick.Stop()
			for n := i; ; n += clients {
				select {
				case <-l.done:
					return
				case <-tick.C:
				}
				host := fmt.Sprintf("load%02d.bench.example", n%sites)
				st, got, err := mgrGet(c, addr, host)
				if err == nil && st == http.StatusOK && got == body {
					l.ok.Add(1)
					continue
				}
				l.fail.Add(1)
				l.mu.Lock()
				if len(l.errs) < 10 {
					l.errs = append(l.errs, fmt.Sprintf("%s keep-alive=%t: %d %q %v", host, keepAlive, st, got, err))
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// waitOK waits until n more requests succeeded.
func (l *benchLoad) waitOK(b *testing.B, n int64) {
	b.Helper()
	target := l.ok.Load() + n
	eventually(b, 10*time.Second, func() error {
		if got := l.ok.Load(); got < target {
			return fmt.Errorf("load: %d successful requests, want %d (%d failed)", got, target, l.fail.Load())
		}
		return nil
	})
}

func (l *benchLoad) stop() {
	l.once.Do(func() {
		close(l.done)
		l.wg.Wait()
	})
}
