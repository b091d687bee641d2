package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/lumos-mesh/lumos/failover/cloudflare/cftest"
	"github.com/lumos-mesh/lumos/failover/notify"
)

// hookReceiver is a webhook endpoint that checks signatures and counts
// deliveries per event.
type hookReceiver struct {
	srv    *httptest.Server
	secret []byte
	mu     sync.Mutex
	got    map[string]int // "type#id" → deliveries
	bad    int
}

func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	h := &hookReceiver{secret: []byte(secret), got: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if !notify.Verify(h.secret, body, r.Header.Get(notify.HeaderSignature)) {
			h.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.got[r.Header.Get(notify.HeaderEvent)+"#"+r.Header.Get(notify.HeaderEventID)]++
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// count returns how many distinct events of typ arrived, and fails on a
// duplicate delivery or a bad signature.
func (h *hookReceiver) count(t *testing.T, typ string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bad > 0 {
		t.Fatalf("%d webhook deliveries had a bad signature", h.bad)
	}
	n := 0
	for k, v := range h.got {
		if v != 1 {
			t.Fatalf("webhook event %s delivered %d times", k, v)
		}
		if strings.HasPrefix(k, typ+"#") {
			n++
		}
	}
	return n
}

// failoverArgs are the control-node flags of the failover tests: a short
// recovery hold, and a signed webhook.
func failoverArgs(t *testing.T, hook *hookReceiver, extra ...string) string {
	secret := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(secret, hook.secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return "CONTROL_ARGS=" + strings.Join(append([]string{"--recovery-hold", "2s", "--webhook", hook.srv.URL, "--webhook-secret-file", secret}, extra...), " ")
}

// dnsA asks a control node's built-in DNS for name's A record.
func (c *Cluster) dnsA(control int, name string) (string, uint32, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	cl := &dns.Client{Timeout: time.Second}
	r, _, err := cl.Exchange(m, net.JoinHostPort(controlIP(control), strconv.Itoa(c.BasePort+6)))
	if err != nil {
		return "", 0, err
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return "", 0, fmt.Errorf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok {
		return "", 0, fmt.Errorf("answer is %T", r.Answer[0])
	}
	return a.A.String(), a.Hdr.Ttl, nil
}

// waitDNS waits until every control node's built-in DNS answers ip (and
// ttl, when not 0) for name, and returns how long that took.
func (c *Cluster) waitDNS(t testing.TB, timeout time.Duration, name, ip string, ttl uint32, skip ...int) time.Duration {
	t.Helper()
	return pollEvery(t, timeout, 20*time.Millisecond, fmt.Sprintf("built-in DNS answers %s for %s", ip, name), func() error {
	next:
		for i := 1; i <= controlNodes; i++ {
			for _, s := range skip {
				if s == i {
					continue next
				}
			}
			got, gotTTL, err := c.dnsA(i, name)
			if err != nil {
				return fmt.Errorf("c%d: %w", i, err)
			}
			if got != ip || (ttl != 0 && gotTTL != ttl) {
				return fmt.Errorf("c%d answers %s ttl %d", i, got, gotTTL)
			}
		}
		return nil
	})
}

// leaderName is the current leader's node name.
func (c *Cluster) leaderName(t testing.TB) string {
	t.Helper()
	var name string
	eventually(t, 30*time.Second, "a leader", func() error {
		var st statusJSON
		if _, err := c.tryJSON(&st, "status"); err != nil {
			return err
		}
		if st.Leader == "" {
			return errors.New("no leader yet")
		}
		name = st.Leader
		return nil
	})
	return name
}

// domainEvents counts a domain's events of one type.
func (c *Cluster) domainEvents(t testing.TB, domain, typ string) int {
	t.Helper()
	out := c.MustLumos("events", "--domain", domain, "--output", "json")
	var evs []struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("events: %v\n%s", err, out)
	}
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// TestFailoverBuiltinDNS: kill -9 of the primary shield switches the
// built-in DNS on every control node to the first secondary, with events
// and a signed webhook; the restarted primary gets the domain back after
// the recovery hold; a hung (SIGSTOP) primary fails over too.
func TestFailoverBuiltinDNS(t *testing.T) {
	hook := newHookReceiver(t, "e2e-webhook-secret")
	c := startClusterEnv(t, 3, failoverArgs(t, hook))
	origin := newOrigin(t, "shop\n")
	c.MustLumos("domain", "add", "shop.test", "--origin", originAddr(origin))
	c.MustLumos("domain", "assign", "shop.test", "s1", "s2", "s3")
	c.waitDNS(t, 10*time.Second, "shop.test", shieldIP(1), 300)

	c.Kill("s1")
	took := c.waitDNS(t, 15*time.Second, "shop.test", shieldIP(2), 30)
	t.Logf("kill -9 of the primary → built-in DNS switched on all control nodes in %s", took.Round(time.Millisecond))
	if n := c.domainEvents(t, "shop.test", "failover_triggered"); n != 1 {
		t.Fatalf("%d failover_triggered events", n)
	}
	eventually(t, 10*time.Second, "webhook got the failover", func() error {
		if n := hook.count(t, "failover_triggered"); n != 1 {
			return fmt.Errorf("%d failover_triggered deliveries", n)
		}
		if n := hook.count(t, "server_down"); n != 1 {
			return fmt.Errorf("%d server_down deliveries", n)
		}
		return nil
	})
	// The dashboard on a control node shows it; it is read-only and needs
	// the token.
	ui := fmt.Sprintf("http://%s:%d/ui/domains/shop.test", controlIP(1), c.BasePort+2)
	for _, tc := range []struct {
		method, token string
		want          int
	}{{http.MethodGet, c.Token, 200}, {http.MethodGet, "", 401}, {http.MethodPost, c.Token, 405}} {
		req, _ := http.NewRequest(tc.method, ui, nil)
		if tc.token != "" {
			req.SetBasicAuth("admin", tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("%s %s: %d, want %d", tc.method, ui, resp.StatusCode, tc.want)
		}
		if tc.want == 200 && !strings.Contains(string(body), "Failed over") {
			t.Fatalf("dashboard domain page does not show the failover:\n%.2000s", body)
		}
	}
	show := c.MustLumos("server", "show", "s1", "--output", "json")
	if !strings.Contains(show, `"down": true`) {
		t.Fatalf("server show s1 does not say down:\n%s", show)
	}

	restarted := time.Now()
	c.Restart("s1")
	took = c.waitDNS(t, 30*time.Second, "shop.test", shieldIP(1), 300)
	if since := time.Since(restarted); since < 2*time.Second {
		t.Fatalf("recovered %s after the restart, before the 2s hold", since)
	}
	t.Logf("restart of the primary → DNS back in %s (recovery hold 2s)", took.Round(time.Millisecond))
	eventually(t, 10*time.Second, "webhook got the recovery", func() error {
		if n := hook.count(t, "failover_recovered"); n != 1 {
			return fmt.Errorf("%d failover_recovered deliveries", n)
		}
		return nil
	})

	// Hung, not dead: SIGSTOP the primary.
	pid := c.PID("s1")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	took = c.waitDNS(t, 15*time.Second, "shop.test", shieldIP(2), 30)
	t.Logf("SIGSTOP of the primary → DNS switched in %s", took.Round(time.Millisecond))
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	c.waitDNS(t, 30*time.Second, "shop.test", shieldIP(1), 300)
	if n := c.domainEvents(t, "shop.test", "failover_triggered"); n != 2 {
		t.Fatalf("%d failover_triggered events after two outages", n)
	}
}

// TestFailoverCloudflareLeaderChanges drives the Cloudflare provider
// (against the API test server) through leader changes: the leader killed
// together with the primary, so the new leader finishes the switch and the
// record is written once; then the leader hung with SIGSTOP while the
// active shield dies, so the majority fails over, and the old leader,
// resumed, writes nothing.
func TestFailoverCloudflareLeaderChanges(t *testing.T) {
	cf := cftest.New("cf-e2e-token")
	t.Cleanup(cf.Close)
	zone := cf.AddZone("example.org")
	cf.AddRecord("example.org", cftest.Record{Type: "A", Name: "www.example.org", Content: "192.0.2.1", TTL: 3600, Proxied: true})
	tokenFile := filepath.Join(t.TempDir(), "cf.token")
	if err := os.WriteFile(tokenFile, []byte("cf-e2e-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hook := newHookReceiver(t, "e2e-webhook-secret")
	c := startClusterEnv(t, 3, failoverArgs(t, hook, "--cloudflare-token-file", tokenFile, "--cloudflare-api-url", cf.URL()))
	origin := newOrigin(t, "www\n")
	c.MustLumos("domain", "add", "www.example.org", "--origin", originAddr(origin), "--dns", "cloudflare", "--ttl", "120", "--failover-ttl", "60")
	c.MustLumos("domain", "assign", "www.example.org", "s1", "s2", "s3")

	record := func(ip string, ttl int) func() error {
		return func() error {
			r, ok := cf.Record("example.org", "www.example.org")
			if !ok {
				return errors.New("no record")
			}
			if r.Content != ip || (!r.Proxied && r.TTL != ttl) {
				return fmt.Errorf("record is %s ttl %d", r.Content, r.TTL)
			}
			if !r.Proxied {
				return errors.New("the proxied flag was lost")
			}
			return nil
		}
	}
	patches := func() int {
		return cf.Count(http.MethodPatch, "/zones/"+zone+"/dns_records") + cf.Count(http.MethodPut, "/zones/"+zone+"/dns_records")
	}
	eventually(t, 15*time.Second, "initial record written", record(shieldIP(1), 120))
	if n := patches(); n != 1 {
		t.Fatalf("%d record writes for the initial sync", n)
	}

	// The leader dies in the middle of a failover: with the primary.
	leader := c.leaderName(t)
	c.Kill("s1")
	c.Kill(leader)
	start := time.Now()
	eventually(t, 30*time.Second, "failover finished by the new leader", record(shieldIP(2), 60))
	t.Logf("leader and primary killed → record switched in %s", time.Since(start).Round(time.Millisecond))
	eventually(t, 10*time.Second, "sync recorded", func() error {
		if out := c.MustLumos("domain", "show", "www.example.org"); !strings.Contains(out, "in sync") {
			return fmt.Errorf("not in sync yet:\n%s", out)
		}
		return nil
	})
	if n := patches(); n != 2 {
		t.Fatalf("%d record writes after the failover; want 2 (initial, failover)", n)
	}
	c.Restart(leader)
	newLeader := c.leaderName(t)

	// The leader hangs while the active shield dies.
	pid := c.PID(newLeader)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	c.Kill("s2")
	eventually(t, 30*time.Second, "the majority fails over to s3", record(shieldIP(3), 60))
	if n := patches(); n != 3 {
		t.Fatalf("%d record writes; want 3", n)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	// The old leader steps down; give it time to (wrongly) act, then check
	// nothing more was written.
	eventually(t, 30*time.Second, "the resumed node follows", func() error {
		if l := c.leaderName(t); l == newLeader {
			return fmt.Errorf("%s still leads", l)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // observation window: nothing must happen
	if n := patches(); n != 3 {
		t.Fatalf("%d record writes after the old leader resumed; want 3", n)
	}
	if err := record(shieldIP(3), 60)(); err != nil {
		t.Fatalf("record after the old leader resumed: %v", err)
	}
	if n := c.domainEvents(t, "www.example.org", "failover_triggered"); n != 2 {
		t.Fatalf("%d failover_triggered events; want 2", n)
	}
}
