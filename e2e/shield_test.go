package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// unknownHostBody is what a shield's HAProxy answers, with status 404, for
// a Host no domain of the shield has.
const unknownHostBody = "lumos: no site for this host\n"

// TestShieldTraffic puts an HTTP domain on two shields and a TLS
// passthrough domain on one, and sends real traffic through their HAProxy:
// the origins answer, unknown hosts and SNI names are refused, and the
// traffic shows in "server show" and in the shield's /metrics.
func TestShieldTraffic(t *testing.T) {
	c := startCluster(t, 2)
	const shopBody = "hello from the shop origin\n"
	shop := newOrigin(t, shopBody)
	c.MustLumos("domain", "add", "shop.example.com", "--origin", originAddr(shop))
	// Not assigned yet: no shield serves it.
	for _, s := range []string{"s1", "s2"} {
		if code, body, err := httpGet(c.ShieldHTTP(s), "shop.example.com"); err != nil || code != 404 || body != unknownHostBody {
			t.Errorf("%s before the assign: got %d %q (%v), want 404 %q", s, code, body, err, unknownHostBody)
		}
	}

	c.MustLumos("domain", "assign", "shop.example.com", "s1", "s2")
	assigned := time.Now()
	servedAfter := map[string]time.Duration{}
	pollEvery(t, 15*time.Second, 10*time.Millisecond, "s1 and s2 serve shop.example.com", func() error {
		var missing []string
		for _, s := range []string{"s1", "s2"} {
			if _, ok := servedAfter[s]; ok {
				continue
			}
			code, body, err := httpGet(c.ShieldHTTP(s), "shop.example.com")
			if err == nil && code == 200 && body == shopBody {
				servedAfter[s] = time.Since(assigned)
				continue
			}
			missing = append(missing, fmt.Sprintf("%s answers %d %q (%v)", s, code, body, err))
		}
		if len(missing) > 0 {
			return errors.New(strings.Join(missing, "; "))
		}
		return nil
	})
	t.Logf("after the assign returned: s1 served shop.example.com in %s, s2 in %s, both in %s",
		servedAfter["s1"].Round(time.Millisecond), servedAfter["s2"].Round(time.Millisecond),
		max(servedAfter["s1"], servedAfter["s2"]).Round(time.Millisecond))

	// Host matching ignores case and a port.
	host := "SHOP.Example.COM:" + strconv.Itoa(c.BasePort+3)
	if code, body, err := httpGet(c.ShieldHTTP("s2"), host); err != nil || code != 200 || body != shopBody {
		t.Errorf("s2 with Host %q: got %d %q (%v), want 200 %q", host, code, body, err, shopBody)
	}
	for _, h := range []string{"unknown.example.com", "example.com", "shop.example.com.evil.test"} {
		if code, body, err := httpGet(c.ShieldHTTP("s1"), h); err != nil || code != 404 || body != unknownHostBody {
			t.Errorf("s1 with Host %q: got %d %q (%v), want 404 %q", h, code, body, err, unknownHostBody)
		}
	}

	// TLS passthrough by SNI: the shield never terminates TLS, so the
	// client sees the origin's own certificate.
	const tlsBody = "hello over tls\n"
	var sniMu sync.Mutex
	var sniSeen []string
	secure := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			sniMu.Lock()
			sniSeen = append(sniSeen, r.TLS.ServerName)
			sniMu.Unlock()
		}
		io.WriteString(w, tlsBody)
	}))
	secure.StartTLS()
	t.Cleanup(secure.Close)
	c.MustLumos("domain", "add", "secure.example.com", "--origin", originAddr(secure), "--mode", "tcp")
	c.MustLumos("domain", "assign", "secure.example.com", "s1")
	assigned = time.Now()
	took := pollEvery(t, 15*time.Second, 10*time.Millisecond, "s1 passes secure.example.com through to its origin", func() error {
		body, err := tlsGet(c.ShieldTLS("s1"), "secure.example.com", secure.Certificate())
		if err != nil {
			return err
		}
		if body != tlsBody {
			return fmt.Errorf("body %q, want %q", body, tlsBody)
		}
		return nil
	})
	t.Logf("TLS passthrough through s1 worked %s after the assign returned", took.Round(time.Millisecond))
	sniMu.Lock()
	if len(sniSeen) == 0 || sniSeen[len(sniSeen)-1] != "secure.example.com" {
		t.Errorf("the origin saw SNI %q, want secure.example.com", sniSeen)
	}
	sniMu.Unlock()
	if _, err := tlsGet(c.ShieldTLS("s1"), "other.example.com", secure.Certificate()); err == nil {
		t.Errorf("s1 passed an unknown SNI name through")
	}
	if _, err := tlsGet(c.ShieldTLS("s2"), "secure.example.com", secure.Certificate()); err == nil {
		t.Errorf("s2 passes secure.example.com through, but it is assigned to s1 only")
	}

	// What the shields report.
	var s1 shieldJSON
	for _, s := range []string{"s1", "s2"} {
		var got shieldJSON
		eventually(t, 10*time.Second, s+" reports current, healthy, with a config hash", func() error {
			if _, err := c.tryJSON(&got, "server", "show", s); err != nil {
				return err
			}
			if got.Status != "online" || !got.Current || got.Health != "ok" || got.ErrorType != "" || got.ConfigHash == "" || got.ConfigIndex == 0 {
				return fmt.Errorf("status %q current %v health %q error_type %q config_hash %q config_index %d",
					got.Status, got.Current, got.Health, got.ErrorType, got.ConfigHash, got.ConfigIndex)
			}
			return nil
		})
		if s == "s1" {
			s1 = got
		}
	}

	// Traffic figures: HAProxy's stats are read every few seconds and
	// travel by gossip.
	var before uint64
	if s1.Traffic != nil {
		before = s1.Traffic.Requests
	}
	const sent = 25
	for i := 0; i < sent; i++ {
		if code, body, err := httpGet(c.ShieldHTTP("s1"), "shop.example.com"); err != nil || code != 200 || body != shopBody {
			t.Fatalf("request %d through s1: %d %q (%v)", i, code, body, err)
		}
	}
	sentAt := time.Now()
	var requests uint64
	took = eventually(t, 20*time.Second, "server show s1 counts the requests sent", func() error {
		var got shieldJSON
		if _, err := c.tryJSON(&got, "server", "show", "s1"); err != nil {
			return err
		}
		if got.Traffic == nil {
			return errors.New("no traffic figures")
		}
		requests = got.Traffic.Requests
		if requests < before+sent {
			return fmt.Errorf("traffic.requests %d, was %d before %d requests were sent", requests, before, sent)
		}
		return nil
	})
	t.Logf("server show s1: traffic.requests %d -> %d, %s after %d requests were sent", before, requests, took.Round(time.Millisecond), sent)

	var perDomain float64
	took = eventually(t, 20*time.Second, "s1's /metrics counts requests to shop.example.com", func() error {
		v, err := scrapeMetric(c.ShieldMetrics("s1"), `lumos_domain_http_requests_total{domain="shop.example.com"}`)
		if err != nil {
			return err
		}
		perDomain = v
		if v < sent {
			return fmt.Errorf("lumos_domain_http_requests_total{domain=\"shop.example.com\"} is %v, want at least %d", v, sent)
		}
		return nil
	})
	t.Logf("s1 /metrics: lumos_domain_http_requests_total{domain=\"shop.example.com\"} %v (%s after the requests)", perDomain, max(took, time.Since(sentAt)).Round(time.Millisecond))
	if v, err := scrapeMetric(c.ShieldMetrics("s1"), "lumos_haproxy_up"); err != nil || v != 1 {
		t.Errorf("s1 /metrics: lumos_haproxy_up %v (%v), want 1", v, err)
	}
}

// TestShieldRestartKeepsServing kills a shield's lumos with SIGKILL: its
// HAProxy keeps serving through the outage and the restart, and the
// restarted shield adopts the same HAProxy master and keeps managing it.
func TestShieldRestartKeepsServing(t *testing.T) {
	c := startCluster(t, 1)
	// Two changes, one after the other, as over a shield's life: the
	// newest is in the shield's log only, not yet in a snapshot.
	sites := serveSites(t, c, "s1", "keep.example.com", "late.example.com")
	master := c.HAProxyPID("s1")
	if master <= 0 || !processAlive(master) {
		t.Fatalf("no live HAProxy master for s1 (pid file says %d)", master)
	}

	p := startProbe(c.ShieldHTTP("s1"), sites)
	defer p.stop()
	c.Kill("s1")
	killed := time.Now()
	if !processAlive(master) {
		t.Fatalf("HAProxy master %d died with the shield's lumos", master)
	}
	took := eventually(t, 20*time.Second, "the control plane sees s1 down", func() error {
		var s shieldJSON
		if _, err := c.tryJSON(&s, "server", "show", "s1"); err != nil {
			return err
		}
		if s.Status == "online" {
			return fmt.Errorf("s1 is %s (gossip %s)", s.Status, s.GossipState)
		}
		return nil
	})
	ok, failed := p.counts()
	t.Logf("s1 reported down %s after kill -9; HAProxy answered %d requests meanwhile, %d failed", took.Round(time.Millisecond), ok, len(failed))
	if ok == 0 {
		t.Errorf("no request went through s1's HAProxy while its lumos was down")
	}

	c.Restart("s1")
	restarted := time.Now()
	took = eventually(t, 30*time.Second, "s1 is online and current again", func() error {
		var s shieldJSON
		if _, err := c.tryJSON(&s, "server", "show", "s1"); err != nil {
			return err
		}
		if s.Status != "online" || !s.Current || s.Health != "ok" {
			return fmt.Errorf("s1: status %s current %v health %q", s.Status, s.Current, s.Health)
		}
		return nil
	})
	t.Logf("s1 online %s after its restart (outage of its lumos: %s)", took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	if got := c.HAProxyPID("s1"); got != master {
		t.Errorf("HAProxy master is pid %d after the restart, want the adopted %d", got, master)
	}
	if !processAlive(master) {
		t.Errorf("HAProxy master %d is gone after the restart", master)
	}
	if log := c.NodeLog("s1"); !strings.Contains(log[max(strings.LastIndex(log, "starting s1"), 0):], "adopted") {
		t.Errorf("s1's log does not say it adopted the running HAProxy")
	}

	// The adopted HAProxy is managed: a new domain is served by it.
	const body2 = "added after the restart\n"
	web2 := newOrigin(t, body2)
	c.MustLumos("domain", "add", "after.example.com", "--origin", originAddr(web2), "--server", "s1")
	took = pollEvery(t, 15*time.Second, 10*time.Millisecond, "the restarted s1 serves after.example.com", func() error {
		return expectServed(c.ShieldHTTP("s1"), "after.example.com", body2)
	})
	t.Logf("a domain added after the restart was served %s after the add returned", took.Round(time.Millisecond))
	if got := c.HAProxyPID("s1"); got != master {
		t.Errorf("HAProxy master is pid %d after a change, want %d (a reload keeps the master)", got, master)
	}

	p.stop()
	ok, failed = p.counts()
	t.Logf("probe of %d domains from the kill until %s after the restart: %d answered, %d failed",
		len(sites), time.Since(restarted).Round(time.Millisecond), ok, len(failed))
	if len(failed) > 0 {
		t.Errorf("%d of %d requests through s1 failed across the kill and the restart; first and last:\n%s\n%s",
			len(failed), ok+len(failed), failed[0], failed[len(failed)-1])
	}
}

// TestShieldCrashRestartWithoutControlPlane kills a shield's lumos with
// SIGKILL and restarts it while no control node runs: from its local copy
// of the state it keeps serving every domain it served before, and comes
// back online once the control plane returns.
func TestShieldCrashRestartWithoutControlPlane(t *testing.T) {
	c := startCluster(t, 1)
	// As in TestShieldRestartKeepsServing, the newest change is in the
	// shield's log only.
	sites := serveSites(t, c, "s1", "keep.example.com", "late.example.com")
	master := c.HAProxyPID("s1")

	c.Kill("s1")
	if r := c.script("stop", "c1", "c2", "c3"); r.Code != 0 {
		t.Fatalf("cluster.sh stop c1 c2 c3: %s", r)
	}
	c.Restart("s1")
	restarted := time.Now()
	if got := c.HAProxyPID("s1"); got != master {
		t.Errorf("HAProxy master is pid %d after the restart, want the adopted %d", got, master)
	}
	// Watch the shield for a while: it must serve throughout.
	p := startProbe(c.ShieldHTTP("s1"), sites)
	defer p.stop()
	const watch = 5 * time.Second
	eventually(t, watch+5*time.Second, "s1 has run for "+watch.String()+" since its restart", func() error {
		if !c.Running("s1") {
			t.Fatalf("s1 stopped with the control plane down:\n%s", c.NodeLog("s1"))
		}
		if time.Since(restarted) < watch {
			return errors.New("watching")
		}
		return nil
	})
	p.stop()
	ok, failed := p.counts()
	t.Logf("with the control plane down, the restarted s1 answered %d requests in %s, %d failed", ok, watch, len(failed))
	if len(failed) > 0 {
		log := c.NodeLog("s1")
		startLog := log[max(strings.LastIndex(log, "starting s1"), 0):]
		t.Errorf("%d of %d requests through the restarted s1 failed with no control plane; first and last:\n%s\n%s\ns1's log since the restart:\n%s",
			len(failed), ok+len(failed), failed[0], failed[len(failed)-1], startLog)
	}

	c.StartAll() // the control nodes; s1 runs already
	waitCurrent(t, c, 30*time.Second, "s1")
	for host, body := range sites {
		if err := expectServed(c.ShieldHTTP("s1"), host, body); err != nil {
			t.Errorf("with the control plane back: %v", err)
		}
	}
}

// serveSites adds the given domains one after the other, each with an
// origin of its own, assigns them to shield, and waits until the shield
// serves each and reports itself current. It returns host -> body.
func serveSites(t *testing.T, c *Cluster, shield string, domains ...string) map[string]string {
	t.Helper()
	sites := map[string]string{}
	for _, d := range domains {
		body := "origin of " + d + "\n"
		web := newOrigin(t, body)
		c.MustLumos("domain", "add", d, "--origin", originAddr(web), "--server", shield)
		eventually(t, 15*time.Second, shield+" serves "+d, func() error {
			return expectServed(c.ShieldHTTP(shield), d, body)
		})
		waitCurrent(t, c, 15*time.Second, shield)
		sites[d] = body
	}
	return sites
}

// TestDetectImportUninstall starts a shield on a machine that already runs
// HAProxy with two sites: lumos detects them, imports one as a domain and
// serves it; "lumos uninstall" refuses while lumos runs, and once lumos is
// stopped it stops lumos's HAProxy and puts the original config back byte
// for byte.
func TestDetectImportUninstall(t *testing.T) {
	requireE2E(t)
	const blogBody = "the blog, as before lumos\n"
	blog := newOrigin(t, blogBody)
	mail := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "mail\n")
	}))
	t.Cleanup(mail.Close)

	// An HAProxy config as a distribution installs it, with two sites added
	// by hand: HTTP routed by Host, and TLS passed through by SNI. Its odd
	// spacing and comments must survive byte for byte.
	original := fmt.Sprintf(`# HAProxy as the distribution installed it, with two sites added by hand.
global
	log /dev/log	local0
	log /dev/log	local1 notice
	stats timeout 30s
	maxconn 4096
	daemon

defaults
	log	global
	mode	http
	option	httplog
	option	dontlognull
        timeout connect 5000
        timeout client  50000
        timeout server  50000

frontend http-in
	bind 127.0.0.1:1
	option forwardfor

	acl host_blog hdr(host) -i blog.example.org
	use_backend blog if host_blog   

backend blog
	balance roundrobin
	server blog1 %s check

# TLS passthrough: HAProxy never sees the certificates, it routes on the
# SNI of the client hello.
frontend tls-in
	mode tcp
	bind 127.0.0.1:2
	option tcplog
	tcp-request inspect-delay 5s
	tcp-request content accept if { req_ssl_hello_type 1 }

	acl sni_mail req_ssl_sni -i mail.example.org
	use_backend mail_tls if sni_mail

backend mail_tls
	mode tcp
	server mail1 %s check
`, originAddr(blog), originAddr(mail))
	cfgPath := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(original), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfgPath, 0o640); err != nil { // whatever the umask
		t.Fatal(err)
	}
	wantSum := fileSHA256(t, cfgPath)

	c := startClusterEnv(t, 1, "HAPROXY_CONFIG="+cfgPath)

	// Both sites are detected, neither is managed.
	wantSites := map[string]siteJSON{
		"blog.example.org": {Domain: "blog.example.org", Mode: "http", Origins: []string{originAddr(blog)}, Backend: "blog"},
		"mail.example.org": {Domain: "mail.example.org", Mode: "tcp", Origins: []string{originAddr(mail)}, Backend: "mail_tls"},
	}
	checkSites := func(managed map[string]bool) {
		t.Helper()
		var sites []siteJSON
		c.JSON(&sites, "server", "sites", "s1")
		if len(sites) != len(wantSites) {
			t.Fatalf("server sites s1: %+v, want %d sites", sites, len(wantSites))
		}
		for _, s := range sites {
			w, ok := wantSites[s.Domain]
			if !ok {
				t.Errorf("server sites s1: unexpected site %+v", s)
				continue
			}
			w.Managed = managed[s.Domain]
			if s.Mode != w.Mode || !slices.Equal(s.Origins, w.Origins) || s.Backend != w.Backend || s.Managed != w.Managed {
				t.Errorf("server sites s1: got %+v, want %+v", s, w)
			}
		}
		table := c.MustLumos("server", "sites", "s1")
		for d := range wantSites {
			want := "no"
			if managed[d] {
				want = "yes"
			}
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(d) + `\s.*\s` + want + `\s*$`).MatchString(table) {
				t.Errorf("server sites s1 table does not list %s with MANAGED %s:\n%s", d, want, table)
			}
		}
	}
	checkSites(nil)
	var sv shieldJSON
	c.JSON(&sv, "server", "show", "s1")
	if sv.DetectedSites != 2 {
		t.Errorf("server show s1: detected_sites %d, want 2", sv.DetectedSites)
	}
	if code, body, err := httpGet(c.ShieldHTTP("s1"), "blog.example.org"); err != nil || code != 404 {
		t.Errorf("s1 before the import: blog.example.org answered %d %q (%v), want 404", code, body, err)
	}

	// Import the HTTP site: s1's HAProxy serves it.
	out := c.MustLumos("domain", "import", "s1", "blog.example.org")
	if !strings.Contains(out, "blog.example.org") {
		t.Errorf("domain import printed nothing about blog.example.org:\n%s", out)
	}
	took := pollEvery(t, 15*time.Second, 10*time.Millisecond, "s1 serves the imported blog.example.org", func() error {
		return expectServed(c.ShieldHTTP("s1"), "blog.example.org", blogBody)
	})
	t.Logf("the imported site was served %s after the import returned", took.Round(time.Millisecond))
	var d domainJSON
	c.JSON(&d, "domain", "show", "blog.example.org")
	if d.Mode != "http" || !slices.Equal(d.Origins, []string{originAddr(blog)}) || len(d.Servers) != 1 || d.Servers[0].Name != "s1" {
		t.Errorf("imported domain: mode %q origins %q servers %+v, want http, %s, s1", d.Mode, d.Origins, d.Servers, originAddr(blog))
	}
	checkSites(map[string]bool{"blog.example.org": true})
	if got := fileSHA256(t, cfgPath); got != wantSum {
		t.Errorf("the original HAProxy config changed while lumos ran")
	}

	// Uninstall refuses while the shield's lumos runs, and changes nothing.
	dataDir := c.DataDir("s1")
	master := c.HAProxyPID("s1")
	r := c.Lumos("uninstall", "--data-dir", dataDir, "--yes")
	if r.Code == 0 {
		t.Errorf("uninstall with s1's lumos running succeeded: %s", r)
	} else if err := checkErrorLine(r, "lumos is running"); err != nil {
		t.Errorf("uninstall with s1's lumos running: %v\n%s", err, r)
	}
	r = c.Lumos("uninstall", "--data-dir", dataDir)
	if r.Code == 0 {
		t.Errorf("uninstall without --yes succeeded: %s", r)
	} else if err := checkErrorLine(r, "--yes"); err != nil {
		t.Errorf("uninstall without --yes: %v\n%s", err, r)
	}
	if !c.Running("s1") || c.HAProxyPID("s1") != master || !processAlive(master) {
		t.Fatalf("a refused uninstall disturbed s1 or its HAProxy")
	}
	if err := expectServed(c.ShieldHTTP("s1"), "blog.example.org", blogBody); err != nil {
		t.Fatalf("after a refused uninstall: %v", err)
	}

	// The config on the machine was changed since the join (by hand or by
	// a package upgrade): uninstall must put back what was there before.
	if err := os.WriteFile(cfgPath, []byte("# replaced after lumos joined\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfgPath, 0o600); err != nil {
		t.Fatal(err)
	}

	// Stop lumos as a service manager would (SIGTERM): HAProxy keeps
	// serving until uninstall stops it.
	c.Term("s1")
	if !processAlive(master) {
		t.Fatalf("HAProxy master %d stopped with lumos; it should keep serving", master)
	}
	if err := expectServed(c.ShieldHTTP("s1"), "blog.example.org", blogBody); err != nil {
		t.Fatalf("with s1's lumos stopped: %v", err)
	}
	r = c.Lumos("uninstall", "--data-dir", dataDir, "--yes")
	if r.Code != 0 {
		t.Fatalf("uninstall: %s", r)
	}
	t.Logf("uninstall took %s:\n%s", r.Duration.Round(time.Millisecond), strings.TrimSpace(r.Stdout))
	if !strings.Contains(r.Stdout, "Stopped the HAProxy") || !strings.Contains(r.Stdout, "Restored "+cfgPath) {
		t.Errorf("uninstall did not report stopping HAProxy and restoring %s: %s", cfgPath, r)
	}
	if processAlive(master) {
		t.Errorf("HAProxy master %d still runs after uninstall", master)
	}
	eventually(t, 5*time.Second, "nothing listens on s1's HAProxy ports", func() error {
		for _, addr := range []string{c.ShieldHTTP("s1"), c.ShieldTLS("s1")} {
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
				return fmt.Errorf("%s accepts connections", addr)
			}
		}
		return nil
	})
	if got := fileSHA256(t, cfgPath); got != wantSum {
		b, _ := os.ReadFile(cfgPath)
		t.Errorf("restored config differs from the original (sha256 %s, want %s):\n%s", got, wantSum, b)
	}
	if fi, err := os.Stat(cfgPath); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("restored config: mode %v (%v), want -rw-r-----", fi.Mode().Perm(), err)
	}

	// Running it again does no harm.
	r = c.Lumos("uninstall", "--data-dir", dataDir, "--yes")
	if r.Code != 0 {
		t.Errorf("second uninstall: %s", r)
	} else if strings.Contains(r.Stdout, "Stopped the HAProxy") {
		t.Errorf("second uninstall says it stopped an HAProxy: %s", r)
	}
	if got := fileSHA256(t, cfgPath); got != wantSum {
		t.Errorf("second uninstall changed the restored config")
	}
}

// TestDecommissionStopsHAProxy decommissions a shield that serves a domain
// with another: its HAProxy stops, its lumos exits, the other shield keeps
// serving.
func TestDecommissionStopsHAProxy(t *testing.T) {
	c := startCluster(t, 2)
	const body = "served by both\n"
	web := newOrigin(t, body)
	c.MustLumos("domain", "add", "both.example.com", "--origin", originAddr(web), "--server", "s1", "--server", "s2")
	eventually(t, 15*time.Second, "s1 and s2 serve both.example.com", func() error {
		for _, s := range []string{"s1", "s2"} {
			if err := expectServed(c.ShieldHTTP(s), "both.example.com", body); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	master := c.HAProxyPID("s2")
	if master <= 0 || !processAlive(master) {
		t.Fatalf("no live HAProxy master for s2 (pid file says %d)", master)
	}

	c.MustLumos("server", "decommission", "s2", "--yes")
	decommissioned := time.Now()
	took := pollEvery(t, 20*time.Second, 10*time.Millisecond, "s2's HAProxy stops answering", func() error {
		for _, addr := range []string{c.ShieldHTTP("s2"), c.ShieldTLS("s2")} {
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
				return fmt.Errorf("%s accepts connections", addr)
			}
		}
		return nil
	})
	t.Logf("s2's HAProxy stopped listening %s after the decommission returned", took.Round(time.Millisecond))
	eventually(t, 15*time.Second, "s2's HAProxy master exits", func() error {
		if processAlive(master) {
			return fmt.Errorf("pid %d still runs", master)
		}
		return nil
	})
	c.WaitExit("s2", 20*time.Second)
	t.Logf("s2's HAProxy master and lumos exited %s after the decommission returned", time.Since(decommissioned).Round(time.Millisecond))
	if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(strings.TrimSuffix(c.ShieldMetrics("s2"), "/metrics"), "http://"), time.Second); err == nil {
		conn.Close()
		t.Errorf("s2's /metrics still accepts connections after its lumos exited")
	}
	if err := expectServed(c.ShieldHTTP("s1"), "both.example.com", body); err != nil {
		t.Errorf("s1 after s2 was decommissioned: %v", err)
	}
	var s2 shieldJSON
	c.JSON(&s2, "server", "show", "s2")
	if s2.Status != "decommissioned" {
		t.Errorf("s2 is %s, want decommissioned", s2.Status)
	}
}

// ---- helpers ----

// shieldJSON is "server show" of a shield (the fields these tests use).
type shieldJSON struct {
	Name          string `json:"name"`
	Status        string `json:"status"`
	GossipState   string `json:"gossip_state"`
	Current       bool   `json:"current"`
	Health        string `json:"health"`
	ErrorType     string `json:"error_type"`
	ConfigHash    string `json:"config_hash"`
	ConfigIndex   uint64 `json:"config_index"`
	Restarts      int    `json:"haproxy_restarts"`
	DetectedSites int    `json:"detected_sites"`
	Traffic       *struct {
		Requests uint64 `json:"requests"`
	} `json:"traffic"`
}

// siteJSON is one site of "server sites".
type siteJSON struct {
	Domain  string   `json:"domain"`
	Mode    string   `json:"mode"`
	Origins []string `json:"origins"`
	Backend string   `json:"backend"`
	Managed bool     `json:"managed"`
}

// newOrigin starts an HTTP origin on 127.0.0.1 that answers body.
func newOrigin(t *testing.T, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// originAddr is an origin's IP:PORT.
func originAddr(srv *httptest.Server) string { return srv.Listener.Addr().String() }

// httpGet sends GET / with the given Host to a shield's HTTP listener, on
// a connection of its own.
func httpGet(addr, host string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// expectServed checks that addr answers 200 with body for host.
func expectServed(addr, host, body string) error {
	code, got, err := httpGet(addr, host)
	if err != nil {
		return err
	}
	if code != 200 || got != body {
		return fmt.Errorf("%s for %s answered %d %q, want 200 %q", addr, host, code, got, body)
	}
	return nil
}

// tlsGet opens a TLS connection to addr with SNI serverName, checks that
// the peer presents cert, and returns the body of GET / sent over it.
func tlsGet(addr, serverName string, cert *x509.Certificate) (string, error) {
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 2 * time.Second},
		Config:    &tls.Config{ServerName: serverName, InsecureSkipVerify: true},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	peer := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(peer) == 0 || !peer[0].Equal(cert) {
		return "", errors.New("the peer did not present the origin's certificate")
	}
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", serverName); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), nil
}

// scrapeMetric fetches a Prometheus text page and returns the value of the
// series written exactly as series (name and labels).
func scrapeMetric(url, series string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		return strconv.ParseFloat(strings.TrimSpace(v), 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s has no series %s", url, series)
}

// fileSHA256 is the hex SHA-256 of a file's content.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// pollEvery is eventually with a chosen poll interval, for measuring how
// soon something happens.
func pollEvery(t testing.TB, timeout, interval time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %s: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}

// probe sends a request for each of its sites (host -> body) in turn to
// addr, one every 20 ms, until stopped, and counts the answers.
type probe struct {
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu     sync.Mutex
	ok     int
	failed []string
}

func startProbe(addr string, sites map[string]string) *probe {
	p := &probe{done: make(chan struct{})}
	hosts := make([]string, 0, len(sites))
	for h := range sites {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			host := hosts[i%len(hosts)]
			err := expectServed(addr, host, sites[host])
			p.mu.Lock()
			if err == nil {
				p.ok++
			} else {
				p.failed = append(p.failed, time.Now().Format("15:04:05.000")+" "+err.Error())
			}
			p.mu.Unlock()
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *probe) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}

func (p *probe) counts() (int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok, slices.Clone(p.failed)
}
