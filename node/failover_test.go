package node

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/failover/notify"
	"github.com/miekg/dns"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/failover"
	"github.com/lumos-mesh/lumos/state"
)

// TestFailoverInCluster: a killed primary shield is failed over by the
// leader, the new leader after a leader crash keeps the decision, and the
// restarted primary gets its domain back after the recovery hold.
func TestFailoverInCluster(t *testing.T) {
	fc := failover.DefaultConfig()
	fc.RecoveryHold = 500 * time.Millisecond
	fc.SweepInterval = 200 * time.Millisecond
	var (
		hookMu   sync.Mutex
		received = map[string]int{} // event type → deliveries
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !notify.Verify([]byte("s3cret"), body, r.Header.Get(notify.HeaderSignature)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		hookMu.Lock()
		received[r.Header.Get(notify.HeaderEvent)+"#"+r.Header.Get(notify.HeaderEventID)]++
		hookMu.Unlock()
	}))
	defer hook.Close()
	target, err := notify.NewWebhook(notify.WebhookConfig{URL: hook.URL, Secret: []byte("s3cret")})
	if err != nil {
		t.Fatal(err)
	}
	c := NewTestCluster(t, TestClusterOptions{Tune: func(cfg *Config) {
		cfg.Failover = fc
		cfg.DNSListen = "127.0.0.1:0"
		cfg.Notify = []notify.Target{target}
	}})
	ttl := func() uint32 {
		m := new(dns.Msg)
		m.SetQuestion("shop.example.", dns.TypeA)
		r, err := dns.Exchange(m, c.Leader().DNSAddr())
		if err != nil || len(r.Answer) != 1 {
			return 0
		}
		return r.Answer[0].Header().Ttl
	}
	p := c.AddShield("p")
	c.AddShield("s")
	ctx := ctxT(t)
	if _, err := c.Client().AddDomain(ctx, &api.AddDomainRequest{Name: "shop.example", Origins: []string{"10.1.0.1:80"}, Servers: []string{"p", "s"}}); err != nil {
		t.Fatal(err)
	}
	domain := func() *state.Domain {
		var d *state.Domain
		c.Leader().View(func(st *state.State) {
			if x, ok := st.Domains["shop.example"]; ok {
				d = x.Clone()
			}
		})
		return d
	}
	pid := p.ServerID()
	c.Kill("p")
	c.WaitFor(10*time.Second, func() bool { d := domain(); return d != nil && d.FailoverStatus == state.FailoverFailedOver }, "failover after the primary was killed")
	if d := domain(); d.ActiveServer == pid {
		t.Fatalf("active server is still the dead primary: %+v", d)
	}
	c.WaitFor(5*time.Second, func() bool { return ttl() == state.DefaultFailoverTTL }, "built-in DNS answers with the failover TTL")

	// The leader crashes: the new one keeps the decision and repeats nothing.
	old := c.Leader()
	c.Kill(old.Name())
	c.WaitLeader(10 * time.Second)
	c.Restart("p")
	c.WaitFor(15*time.Second, func() bool {
		d := domain()
		return d != nil && d.FailoverStatus == state.FailoverActive && d.ActiveServer == pid
	}, "recovery after the primary came back")
	var triggered, recovered, down int
	c.Leader().View(func(st *state.State) {
		for _, e := range st.Events {
			switch e.Type {
			case state.EventFailoverTriggered:
				triggered++
			case state.EventFailoverRecovered:
				recovered++
			case state.EventServerDown:
				down++
			}
		}
	})
	if triggered != 1 || recovered != 1 || down != 1 {
		c.Leader().View(func(st *state.State) {
			for _, e := range st.Events {
				t.Logf("%+v", e)
			}
		})
		t.Fatalf("events: %d failover_triggered, %d failover_recovered, %d server_down; want 1 each", triggered, recovered, down)
	}
	c.WaitFor(5*time.Second, func() bool { return ttl() == state.DefaultTTL }, "built-in DNS answers with the normal TTL again")
	c.WaitFor(10*time.Second, func() bool {
		hookMu.Lock()
		defer hookMu.Unlock()
		var triggered, recovered int
		for k, n := range received {
			if n != 1 {
				t.Fatalf("event %s delivered %d times", k, n)
			}
			switch strings.SplitN(k, "#", 2)[0] {
			case state.EventFailoverTriggered:
				triggered++
			case state.EventFailoverRecovered:
				recovered++
			}
		}
		return triggered == 1 && recovered == 1
	}, "webhook got the failover and the recovery once each")
	c.Restart(old.Name())
	c.WaitConverged(15 * time.Second)
}
