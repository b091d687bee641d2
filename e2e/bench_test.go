package e2e

// Benchmarks with real lumos processes started by scripts/cluster.sh:
// how fast a CLI assignment reaches the HAProxy of every assigned shield,
// and what a shield with 10,000 domains costs. Run with
//
//	go test ./e2e/ -run '^$' -bench . -benchtime 1x -v
//
// Each iteration is one complete measurement; the figures are printed with
// ReportMetric and summarized with Logf.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/api"
)

// BenchmarkPropagation measures config propagation on a cluster of 3
// control nodes and 5 shields: for each of 20 domains, `lumos domain add`
// (not timed), then `lumos domain assign DOMAIN s1 s2 s3 s4 s5`; the clock
// starts when the assign command starts and stops, for each shield, at the
// first 200 from the origin through that shield's HAProxy for the domain's
// Host (each shield polled every 10 ms, a new connection each time). A
// trial's figure is the time until every shield answers.
func BenchmarkPropagation(b *testing.B) {
	const (
		shields = 5
		trials  = 20
		body    = "propagation-origin"
	)
	c := startBenchCluster(b, shields)
	origin := benchOrigin(b, body)
	names := make([]string, shields)
	addrs := make([]string, shields)
	for i := range names {
		names[i] = "s" + strconv.Itoa(i+1)
		addrs[i] = net.JoinHostPort(shieldIP(i+1), strconv.Itoa(c.BasePort+3))
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 250 * time.Millisecond}

	offsets := make([]int64, shields)
	for i, n := range names {
		offsets[i] = c.logSize(n)
	}
	var all, each, cli []time.Duration
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		for k := 0; k < trials; k++ {
			domain := fmt.Sprintf("d%d.propagation.test", it*trials+k)
			c.MustLumos("domain", "add", domain, "--origin", origin)
			// A short pause, as between two commands run in a row; the
			// shields take note of the add (nothing they serve changes).
			time.Sleep(100 * time.Millisecond)

			start := time.Now()
			assigned := make(chan Result, 1)
			go func() { assigned <- c.Lumos(append([]string{"domain", "assign", domain}, names...)...) }()
			got := make([]time.Duration, shields)
			var wg sync.WaitGroup
			for i, addr := range addrs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i] = benchPoll(client, addr, domain, body, start, 20*time.Second)
				}()
			}
			wg.Wait()
			r := <-assigned
			if r.Code != 0 {
				b.Fatalf("lumos %s", r)
			}
			for i, d := range got {
				if d < 0 {
					b.Fatalf("trial %d: %s does not serve %s 20 s after the assign\n%s", k, names[i], domain, c.tail(names[i]))
				}
			}
			all = append(all, slices.Max(got))
			each = append(each, got...)
			cli = append(cli, r.Duration)
		}
	}
	b.StopTimer()

	var applies benchApplies
	for i, n := range names {
		applies.add(c.applies(n, offsets[i]))
	}
	applies.sort()
	slices.Sort(all)
	slices.Sort(each)
	slices.Sort(cli)
	b.ReportMetric(benchMS(benchPct(all, 50)), "p50-ms")
	b.ReportMetric(benchMS(benchPct(all, 99)), "p99-ms")
	b.ReportMetric(benchMS(all[len(all)-1]), "max-ms")
	b.ReportMetric(benchMS(benchPct(each, 50)), "per-shield-p50-ms")
	b.ReportMetric(benchMS(benchPct(cli, 50)), "assign-cli-p50-ms")
	b.ReportMetric(benchMS(benchPct(applies.took, 50)), "shield-apply-p50-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d trials, %d shields: assign → HAProxy on every shield answering: p50 %.0f ms, p99 %.0f ms, max %.0f ms "+
		"(min %.0f ms); one shield: p50 %.0f ms, p99 %.0f ms; the assign command itself took p50 %.0f ms",
		len(all), shields, benchMS(benchPct(all, 50)), benchMS(benchPct(all, 99)), benchMS(all[len(all)-1]),
		benchMS(all[0]), benchMS(benchPct(each, 50)), benchMS(benchPct(each, 99)), benchMS(benchPct(cli, 50)))
	b.Logf("shields' own applies (%d, from their logs): %s", len(applies.took), applies)
}

// benchPoll sends GET / with Host host to addr every 10 ms until it
// answers 200 with body; it returns the time since start, or -1 after
// timeout.
func benchPoll(c *http.Client, addr, host, body string, start time.Time, timeout time.Duration) time.Duration {
	for time.Since(start) < timeout {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		if err != nil {
			return -1
		}
		req.Host = host
		resp, err := c.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(b) == body {
				return time.Since(start)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1
}

// BenchmarkShieldScale measures a real shield process (one shield, three
// control nodes) with 10,000 domains assigned to it. The fastest way to
// create them is the migration path: the shield joins with an original
// HAProxy config routing 10,000 hosts through a map (detected at its first
// join), and `lumos domain import s1 ...` turns them into domains assigned
// to it, 1,000 per command (10 commands). Figures:
//
//   - catchup-ms: from the last import's acknowledgment until the shield
//     reports serving a config rendered at or after that change (`lumos
//     server show s1 -o json`: config_index, polled by the CLI every
//     ~100 ms, so the figure is rounded up by up to one poll);
//   - rss-MB, rss-peak-MB: the lumos shield process's VmRSS and VmHWM at
//     10,000 domains (/proc/PID/status, PID from the cluster's pid file),
//     and before the import (rss-0-MB); rss-peak-steady-MB: its peak from
//     then on (VmHWM reset through /proc/PID/clear_refs), through the
//     changes below; HAProxy's (master and workers) for reference;
//   - one-more-serve-ms: at 10,000 domains, `lumos domain assign` of one
//     more domain (live origin) until the shield's HAProxy answers 200 for
//     it (polled every 10 ms), and one-more-current-ms until the shield
//     reports it;
//   - writes/s: 200 single `domain add --server s1` writes through the Go
//     client (16 concurrent writers, to the leader) on a state of 10,000
//     domains: the write rate the API sustains at that size.
//
// The imported domains' origin is a loopback port nobody listens on (its
// health checks fail).
func BenchmarkShieldScale(b *testing.B) {
	const (
		domains = 10000
		batch   = 1000
		writes  = 200
		writers = 16
		body    = "scale-origin"
	)
	original, hosts := benchOriginalConfig(b, domains)
	c := startBenchCluster(b, 1, "HAPROXY_CONFIG="+original)
	origin := benchOrigin(b, body)
	var sv api.ServerInfo
	if _, err := c.tryJSON(&sv, "server", "show", "s1"); err != nil {
		b.Fatal(err)
	}
	if sv.Sites != domains {
		b.Fatalf("s1 detected %d sites in its original HAProxy config, want %d", sv.Sites, domains)
	}
	pid := c.PID("s1")
	rss0 := benchProcKB(pid, "VmRSS:")
	shieldAddr := net.JoinHostPort(shieldIP(1), strconv.Itoa(c.BasePort+3))

	var importTook, catchup, oneServe, oneCurrent, writeTook time.Duration
	var rss, hwm, hpRSS, steadyHWM, rssEnd int64
	var oneApply, importApplies benchApplies
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		if it > 0 {
			b.Fatal("one iteration only: the detected sites can be imported once (run with -benchtime 1x)")
		}
		offImport := c.logSize("s1")
		start := time.Now()
		var each []string
		for i := 0; i < len(hosts); i += batch {
			r := c.Lumos(append([]string{"domain", "import", "s1", "--output", "json"}, hosts[i:min(i+batch, len(hosts))]...)...)
			if r.Code != 0 {
				b.Fatalf("lumos domain import: exited %d after %v: %s", r.Code, r.Duration, r.Stderr)
			}
			each = append(each, r.Duration.Round(time.Millisecond).String())
		}
		b.Logf("imports of %d sites: %s", batch, strings.Join(each, ", "))
		acked := time.Now()
		importTook += acked.Sub(start)
		var last domainJSON
		if _, err := c.tryJSON(&last, "domain", "show", hosts[len(hosts)-1]); err != nil {
			b.Fatal(err)
		}
		eventually(b, 3*time.Minute, "s1 serves a config rendered at the last import", func() error {
			var s api.ServerInfo
			if _, err := c.tryJSON(&s, "server", "show", "s1"); err != nil {
				return err
			}
			if s.ConfigIndex < last.Version || len(s.Domains) < domains {
				return fmt.Errorf("config_index %d (want %d), %d domains, error %q", s.ConfigIndex, last.Version, len(s.Domains), s.HealthError)
			}
			return nil
		})
		catchup += time.Since(acked)
		importApplies = c.applies("s1", offImport)
		rss = benchProcKB(pid, "VmRSS:")
		hwm = benchProcKB(pid, "VmHWM:")
		hpRSS = c.haproxyRSS("s1")
		// From here on, the peak of steady operation at this size.
		resetHWM := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)

		// One more at this size: assign → its HAProxy answers.
		domain := "one.scale.test"
		c.MustLumos("domain", "add", domain, "--origin", origin)
		time.Sleep(time.Second) // the shield renders the add (nothing to serve)
		tr := &http.Transport{DisableKeepAlives: true}
		hc := &http.Client{Transport: tr, Timeout: time.Second}
		off := c.logSize("s1")
		t0 := time.Now()
		assigned := make(chan Result, 1)
		go func() { assigned <- c.Lumos("domain", "assign", domain, "s1") }()
		served := benchPoll(hc, shieldAddr, domain, body, t0, time.Minute)
		tr.CloseIdleConnections()
		r := <-assigned
		if r.Code != 0 {
			b.Fatalf("lumos %s", r)
		}
		if served < 0 {
			b.Fatalf("s1 does not serve %s a minute after the assign\n%s", domain, c.tail("s1"))
		}
		var d domainJSON
		if _, err := c.tryJSON(&d, "domain", "show", domain); err != nil {
			b.Fatal(err)
		}
		eventually(b, time.Minute, "s1 reports the assignment served", func() error {
			var s api.ServerInfo
			if _, err := c.tryJSON(&s, "server", "show", "s1"); err != nil {
				return err
			}
			if s.ConfigIndex < d.Version {
				return fmt.Errorf("config_index %d, want %d", s.ConfigIndex, d.Version)
			}
			return nil
		})
		oneServe += served
		oneCurrent += time.Since(t0)
		oneApply = c.applies("s1", off)
		oneApply.sort()

		writeTook += benchWrites(b, c, writes, writers)
		if resetHWM == nil {
			steadyHWM = benchProcKB(pid, "VmHWM:")
		} else {
			b.Logf("cannot reset the peak RSS of s1: %v", resetHWM)
		}
		rssEnd = benchProcKB(pid, "VmRSS:")
	}
	b.StopTimer()

	per := func(d time.Duration) float64 { return benchMS(d) / float64(b.N) }
	mb := func(v int64) float64 { return float64(v) / (1 << 20) }
	rate := float64(writes) * float64(b.N) / writeTook.Seconds()
	b.ReportMetric(per(importTook), "import-ms")
	b.ReportMetric(per(catchup), "catchup-ms")
	b.ReportMetric(per(oneServe), "one-more-serve-ms")
	b.ReportMetric(per(oneCurrent), "one-more-current-ms")
	b.ReportMetric(mb(rss), "rss-MB")
	b.ReportMetric(mb(hwm), "rss-peak-MB")
	b.ReportMetric(mb(steadyHWM), "rss-peak-steady-MB")
	b.ReportMetric(mb(rss0), "rss-0-MB")
	b.ReportMetric(mb(hpRSS), "haproxy-rss-MB")
	b.ReportMetric(rate, "writes/s")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d domains imported in %d commands in %.0f ms; last import acknowledged → s1 serving them: %.0f ms",
		domains, (domains+batch-1)/batch, per(importTook), per(catchup))
	if n := len(importApplies.took); n > 0 {
		b.Logf("s1 applied %d configs during the import, the last in %.0f ms", n, benchMS(importApplies.took[n-1]))
	}
	b.Logf("at %d domains: one more `domain assign` → s1's HAProxy answers for it: %.0f ms (reported current: %.0f ms)",
		domains, per(oneServe), per(oneCurrent))
	b.Logf("s1's own apply of that change (from its log): %s", oneApply)
	b.Logf("lumos shield process: VmRSS %.1f MB at %d domains (%.1f MB before, peak %.1f MB); its HAProxy (master + workers) %.1f MB",
		mb(rss), domains, mb(rss0), mb(hwm), mb(hpRSS))
	b.Logf("at %d domains: %d `domain add` writes by %d concurrent API clients: %.0f writes/s", domains, writes, writers, rate)
	b.Logf("lumos shield process after the import: peak VmRSS %.1f MB during the one more assign and the %d writes, VmRSS %.1f MB at the end",
		mb(steadyHWM), writes, mb(rssEnd))
}

// benchOriginalConfig writes an HAProxy config routing n hosts through a
// map to one backend, as a shield may find on its machine, and returns its
// path and the hosts. Names are short: the detected sites travel in the
// join request, whose body is limited to 1 MiB.
func benchOriginalConfig(b *testing.B, n int) (string, []string) {
	dir := b.TempDir()
	hosts := make([]string, n)
	var m strings.Builder
	for i := range hosts {
		hosts[i] = fmt.Sprintf("d%04d.io", i)
		m.WriteString(hosts[i] + " b\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.map"), []byte(m.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg := `global
  log stdout format raw local0

defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s

frontend f
  bind 127.0.0.1:8080
  use_backend %[req.hdr(host),lower,map(hosts.map,fallback)]
  default_backend fallback

backend fallback
  http-request return status 404

backend b
  server o1 127.0.0.1:9
`
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	return path, hosts
}

// benchWrites sends n `domain add` writes assigned to s1 through the Go
// client, from writers goroutines each with a client of its own (a shared
// api.Client keeps two idle connections, and would open one per request),
// to the leader. It returns how long they took.
func benchWrites(b *testing.B, c *Cluster, n, writers int) time.Duration {
	leader := c.leaderAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		cl, err := api.NewClient(leader, c.Token)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.CloseIdleConnections()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				_, err := cl.AddDomain(ctx, &api.AddDomainRequest{
					Name:    fmt.Sprintf("w%04d.scale.test", i),
					Origins: []string{fmt.Sprintf("127.0.%d.%d:9", i/250, i%250+1)},
					Servers: []string{"s1"},
				})
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("domain add: %v", firstErr)
	}
	return time.Since(start)
}

// ---- a cluster.sh cluster for benchmarks ----

// startBenchCluster starts a cluster.sh cluster (3 control nodes and the
// given number of shields) for a benchmark; env holds extra settings for
// cluster.sh (HAPROXY_CONFIG=...).
func startBenchCluster(b *testing.B, shields int, env ...string) *Cluster {
	b.Helper()
	return startClusterEnv(b, shields, env...)
}

// leaderAddr returns the API address of the leader.
func (c *Cluster) leaderAddr() string {
	c.t.Helper()
	name := c.leaderName(c.t)
	i, err := strconv.Atoi(strings.TrimPrefix(name, "c"))
	if err != nil || i < 1 || i > controlNodes {
		c.t.Fatalf("leader %q is not a control node", name)
	}
	return fmt.Sprintf("http://%s:%d", controlIP(i), c.BasePort+2)
}

// haproxyRSS returns the VmRSS, in bytes, of a shield's HAProxy master and
// of every process it started.
func (c *Cluster) haproxyRSS(name string) int64 {
	b, err := os.ReadFile(filepath.Join(c.Dir, name, "haproxy", "haproxy.pid"))
	if err != nil {
		return 0
	}
	master, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return 0
	}
	total := benchProcKB(master, "VmRSS:")
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state ppid ...
		if len(f) > 1 && f[1] == strconv.Itoa(master) {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				total += benchProcKB(pid, "VmRSS:")
			}
		}
	}
	return total
}

// logSize returns the size of a node's log.
func (c *Cluster) logSize(name string) int64 {
	fi, err := os.Stat(filepath.Join(c.Dir, name+".log"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// benchApplies are a shield's HAProxy applies as its log tells them.
type benchApplies struct {
	took     []time.Duration // "HAProxy config applied": render excluded, lock wait, validate and reload included
	validate []time.Duration // "haproxy reloaded": haproxy -c and staging
	reload   []time.Duration // "haproxy reloaded": reload until the new worker answers
}

func (a *benchApplies) add(o benchApplies) {
	a.took = append(a.took, o.took...)
	a.validate = append(a.validate, o.validate...)
	a.reload = append(a.reload, o.reload...)
}

func (a *benchApplies) sort() {
	slices.Sort(a.took)
	slices.Sort(a.validate)
	slices.Sort(a.reload)
}

func (a benchApplies) String() string {
	f := func(d []time.Duration) string {
		if len(d) == 0 {
			return "none"
		}
		return fmt.Sprintf("p50 %.0f ms, max %.0f ms", benchMS(benchPct(d, 50)), benchMS(d[len(d)-1]))
	}
	return fmt.Sprintf("apply %s (haproxy -c %s; reload %s)", f(a.took), f(a.validate), f(a.reload))
}

// applies reads the applies a shield logged from offset on.
func (c *Cluster) applies(name string, offset int64) benchApplies {
	var a benchApplies
	data, err := os.ReadFile(filepath.Join(c.Dir, name+".log"))
	if err != nil || int64(len(data)) < offset {
		return a
	}
	field := func(line, key string) time.Duration {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, key+"="); ok {
				d, _ := time.ParseDuration(v)
				return d
			}
		}
		return 0
	}
	for _, line := range strings.Split(string(data[offset:]), "\n") {
		switch {
		case strings.Contains(line, `msg="HAProxy config applied"`):
			a.took = append(a.took, field(line, "took"))
		case strings.Contains(line, `msg="haproxy reloaded"`):
			a.validate = append(a.validate, field(line, "validate"))
			a.reload = append(a.reload, field(line, "reload"))
		}
	}
	return a
}

// tail returns the end of a node's log.
func (c *Cluster) tail(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, name+".log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return strings.Join(lines, "\n")
}

// benchOrigin starts an origin answering 200 with body on 127.0.0.1 and
// returns its IP:PORT.
func benchOrigin(tb testing.TB, body string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	tb.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// benchProcKB reads a "kB" field of /proc/PID/status, in bytes.
func benchProcKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// benchPct returns the p-th percentile (nearest rank) of sorted.
func benchPct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func benchMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
