package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/failover/cloudflare/cftest"
)

// BenchmarkFailover measures DNS failover with real processes: 3 control
// nodes, shields s1 (primary) and s2, the default gossip and failover
// settings except a 3 s recovery hold (the default is 10 s; recovery figures
// are from the restarted primary's process start, so they include it) and
// flap damping off (the trials take the primary down 2×trials times in a few
// minutes, which damping would rightly hold down).
// Two domains on s1, s2: one on the built-in DNS (switched when every
// control node's DNS answers the new IP, polled every 10 ms), one on
// Cloudflare (the API test server; switched when the record holds the new
// IP). Each trial: kill -9 (or SIGTERM, a clean stop) of s1 → both
// switched; restart s1 → both switched back.
//
// Then the false-positive check: s3, primary of a third domain, is made
// slow for 30 s — SIGSTOP for 300 ms, SIGCONT for 200 ms, over and over, so
// every packet it gets waits up to 300 ms — and the failovers of that
// domain are counted (want 0).
//
// LUMOS_BENCH_TRIALS sets the trials per kind (default 20).
func BenchmarkFailover(b *testing.B) {
	trials := 20
	if v, err := strconv.Atoi(os.Getenv("LUMOS_BENCH_TRIALS")); err == nil && v > 0 {
		trials = v
	}
	cf := cftest.New("bench-token")
	b.Cleanup(cf.Close)
	cf.AddZone("bench.org")
	cf.AddRecord("bench.org", cftest.Record{Type: "A", Name: "www.bench.org", Content: "192.0.2.1", TTL: 300})
	tokenFile := filepath.Join(b.TempDir(), "cf.token")
	if err := os.WriteFile(tokenFile, []byte("bench-token"), 0o600); err != nil {
		b.Fatal(err)
	}
	c := startBenchCluster(b, 3, "CONTROL_ARGS=--recovery-hold 3s --flap-limit 0 --cloudflare-token-file "+tokenFile+" --cloudflare-api-url "+cf.URL())
	origin := benchOrigin(b, "failover-origin")
	c.MustLumos("domain", "add", "a.bench.test", "--origin", origin)
	c.MustLumos("domain", "assign", "a.bench.test", "s1", "s2")
	c.MustLumos("domain", "add", "www.bench.org", "--origin", origin, "--dns", "cloudflare")
	c.MustLumos("domain", "assign", "www.bench.org", "s1", "s2")
	c.MustLumos("domain", "add", "slow.bench.test", "--origin", origin)
	c.MustLumos("domain", "assign", "slow.bench.test", "s3", "s2")

	ip1, ip2 := shieldIP(1), shieldIP(2)
	// switched polls both domains every 10 ms from start and returns when
	// each showed ip.
	switched := func(start time.Time, ip string) (builtin, cloud time.Duration) {
		deadline := start.Add(60 * time.Second)
		for builtin == 0 || cloud == 0 {
			if time.Now().After(deadline) {
				b.Fatalf("DNS not switched to %s within 60 s (builtin %s, cloudflare %s)", ip, builtin, cloud)
			}
			if builtin == 0 {
				ok := true
				for i := 1; i <= controlNodes; i++ {
					if got, _, err := c.dnsA(i, "a.bench.test"); err != nil || got != ip {
						ok = false
						break
					}
				}
				if ok {
					builtin = time.Since(start)
				}
			}
			if cloud == 0 {
				if r, ok := cf.Record("bench.org", "www.bench.org"); ok && r.Content == ip {
					cloud = time.Since(start)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		return builtin, cloud
	}
	switched(time.Now(), ip1)

	type series struct{ builtin, cloud []time.Duration }
	var kill, stop, back series
	for i := 0; i < 2*trials; i++ {
		clean := i%2 == 1
		pid := c.PID("s1")
		sig := syscall.SIGKILL
		if clean {
			sig = syscall.SIGTERM
		}
		start := time.Now()
		if err := syscall.Kill(pid, sig); err != nil {
			b.Fatal(err)
		}
		bi, cl := switched(start, ip2)
		s := &kill
		if clean {
			s = &stop
		}
		s.builtin, s.cloud = append(s.builtin, bi), append(s.cloud, cl)
		c.WaitExit("s1", 20*time.Second)
		c.Restart("s1")
		bi, cl = switched(time.Now(), ip1)
		back.builtin, back.cloud = append(back.builtin, bi), append(back.cloud, cl)
	}
	report := func(what string, d []time.Duration) {
		slices.Sort(d)
		p50, p99 := benchPct(d, 50), benchPct(d, 99)
		b.Logf("%-44s n=%d  p50 %6.0f ms  p99 %6.0f ms  min %6.0f ms  max %6.0f ms", what, len(d), benchMS(p50), benchMS(p99), benchMS(d[0]), benchMS(d[len(d)-1]))
		b.ReportMetric(benchMS(p50), "p50-ms-"+what)
		b.ReportMetric(benchMS(p99), "p99-ms-"+what)
	}
	report("kill-builtin", kill.builtin)
	report("kill-cloudflare", kill.cloud)
	report("stop-builtin", stop.builtin)
	report("stop-cloudflare", stop.cloud)
	report("recovery-builtin", back.builtin)
	report("recovery-cloudflare", back.cloud)

	// A slow shield must not be failed over.
	before := c.domainEvents(b, "slow.bench.test", "failover_triggered")
	pid := c.PID("s3")
	end := time.Now().Add(30 * time.Second)
	for time.Now().Before(end) {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			b.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			b.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	falseFailovers := c.domainEvents(b, "slow.bench.test", "failover_triggered") - before
	b.Logf("slow shield (SIGSTOP 300 ms / SIGCONT 200 ms for 30 s): %d failovers", falseFailovers)
	b.ReportMetric(float64(falseFailovers), "slow-shield-failovers")
	if falseFailovers != 0 {
		b.Errorf("a slow but live shield was failed over %d times", falseFailovers)
	}
	fmt.Fprintln(os.Stderr) // keep the log block apart from the benchmark line
}
