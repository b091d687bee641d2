package failover

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

func TestFailoverAndRecoveryBuiltin(t *testing.T) {
	f := shieldFixture(t, state.DNSBuiltin)
	m := NewMetrics(nil)
	cfg := testConfig()
	cfg.Metrics = m
	runController(t, cfg, f)

	// Healthy mesh: nothing happens.
	time.Sleep(3 * cfg.SweepInterval) // let a few sweeps run; nothing must change
	if d := f.domain("shop.example"); d.FailoverStatus != state.FailoverActive || d.ActiveServer != "p" {
		t.Fatalf("healthy mesh changed the domain: %+v", d)
	}

	f.setMember("n-p", mesh.StateDead, mesh.Meta{Shield: true, ServerID: "p", Health: "ok"})
	eventually(t, 5*time.Second, "failover to s1", func() bool {
		d := f.domain("shop.example")
		return d.FailoverStatus == state.FailoverFailedOver && d.ActiveServer == "s1"
	})
	if sv := f.server("p"); !sv.Down || sv.DownReason == "" {
		t.Fatalf("primary not recorded down: %+v", sv)
	}
	evs := f.eventsOf(state.EventFailoverTriggered)
	if len(evs) != 1 || evs[0].FromIP != "10.0.0.1" || evs[0].ToIP != "10.0.0.2" || evs[0].Reason != ReasonPrimaryDown || evs[0].Domain != "shop.example" {
		t.Fatalf("failover events = %+v", evs)
	}
	if n := len(f.eventsOf(state.EventServerDown)); n != 1 {
		t.Fatalf("%d server_down events", n)
	}

	// The primary comes back: recovery only after the hold.
	back := time.Now()
	f.setMember("n-p", mesh.StateAlive, mesh.Meta{Shield: true, ServerID: "p", Health: "ok"})
	eventually(t, 5*time.Second, "recovery to p", func() bool {
		d := f.domain("shop.example")
		return d.FailoverStatus == state.FailoverActive && d.ActiveServer == "p"
	})
	if took := time.Since(back); took < cfg.RecoveryHold {
		t.Fatalf("recovered after %s, before the %s hold", took, cfg.RecoveryHold)
	}
	if n := len(f.eventsOf(state.EventFailoverRecovered)); n != 1 {
		t.Fatalf("%d recovery events", n)
	}
	if n := len(f.eventsOf(state.EventServerRecovered)); n != 1 {
		t.Fatalf("%d server_recovered events", n)
	}
	if got := counterValue(t, m.Failovers); got != 1 {
		t.Fatalf("failovers counter = %v", got)
	}
	if got := counterValue(t, m.Recoveries); got != 1 {
		t.Fatalf("recoveries counter = %v", got)
	}
}

func TestHAProxyErrorAndBothDown(t *testing.T) {
	f := shieldFixture(t, state.DNSBuiltin)
	runController(t, testConfig(), f)

	f.setMember("n-s1", mesh.StateAlive, mesh.Meta{Shield: true, ServerID: "s1", Health: "error", ErrorType: "haproxy_reload_failed"})
	eventually(t, 5*time.Second, "s1 down", func() bool { return f.server("s1").Down })
	if d := f.domain("shop.example"); d.ActiveServer != "p" {
		t.Fatalf("secondary down with the primary healthy moved the domain: %+v", d)
	}
	if r := f.server("s1").DownReason; r != "HAProxy unhealthy: haproxy_reload_failed" {
		t.Fatalf("reason = %q", r)
	}
	// Primary dies: s1 is down too, so s2 is the first healthy secondary.
	f.setMember("n-p", mesh.StateLeft, mesh.Meta{})
	eventually(t, 5*time.Second, "failover to s2", func() bool { return f.domain("shop.example").ActiveServer == "s2" })
	// s2 dies as well: everything is down, last known good stays.
	f.setMember("n-s2", mesh.StateDead, mesh.Meta{})
	eventually(t, 5*time.Second, "s2 down", func() bool { return f.server("s2").Down })
	time.Sleep(300 * time.Millisecond) // sweeps run; the domain must not move
	if d := f.domain("shop.example"); d.ActiveServer != "s2" || d.FailoverStatus != state.FailoverFailedOver {
		t.Fatalf("all down changed the domain: %+v", d)
	}
	// s1 heals first: the active secondary is down, so on to s1.
	f.setMember("n-s1", mesh.StateAlive, mesh.Meta{Shield: true, ServerID: "s1", Health: "ok"})
	eventually(t, 5*time.Second, "move to s1", func() bool { return f.domain("shop.example").ActiveServer == "s1" })
}

func TestFlapDamping(t *testing.T) {
	f := shieldFixture(t, state.DNSBuiltin)
	cfg := testConfig()
	cfg.FlapLimit, cfg.FlapWindow, cfg.FlapHold = 2, time.Minute, 2*time.Second
	cfg.RecoveryHold = 50 * time.Millisecond
	runController(t, cfg, f)
	flap := func(i int) {
		f.setMember("n-p", mesh.StateDead, mesh.Meta{})
		eventually(t, 5*time.Second, "failed over", func() bool { return f.domain("shop.example").ActiveServer == "s1" })
		f.setMember("n-p", mesh.StateAlive, mesh.Meta{Shield: true, ServerID: "p", Health: "ok"})
		if i < 2 {
			eventually(t, 5*time.Second, "recovered", func() bool { return f.domain("shop.example").ActiveServer == "p" })
		}
	}
	for i := range 3 {
		flap(i)
	}
	eventually(t, 5*time.Second, "failover_held event", func() bool { return len(f.eventsOf(state.EventFailoverHeld)) == 1 })
	// Held down: the short recovery hold is not enough any more.
	time.Sleep(500 * time.Millisecond)
	if d := f.domain("shop.example"); d.ActiveServer != "s1" {
		t.Fatalf("a flapping primary got the domain back: %+v", d)
	}
	eventually(t, 10*time.Second, "recovery after the flap hold", func() bool { return f.domain("shop.example").ActiveServer == "p" })
}

func TestStaleHeartbeat(t *testing.T) {
	f := shieldFixture(t, state.DNSBuiltin)
	cfg := testConfig()
	cfg.StaleAfter = 300 * time.Millisecond
	f.setMember("n-p", mesh.StateAlive, mesh.Meta{Shield: true, ServerID: "p", Health: "ok", Heartbeat: 1})
	start := time.Now()
	runController(t, cfg, f)
	eventually(t, 5*time.Second, "stale primary failed over", func() bool { return f.domain("shop.example").ActiveServer == "s1" })
	if took := time.Since(start); took < cfg.StaleAfter {
		t.Fatalf("failed over after %s, before the staleness bound", took)
	}
	if r := f.server("p").DownReason; r == "" || r[:len("not heard from")] != "not heard from" {
		t.Fatalf("reason = %q", r)
	}
	// The heartbeat moves again: recovered after the hold.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for hb := uint64(2); ; hb++ {
			f.setMember("n-p", mesh.StateAlive, mesh.Meta{Shield: true, ServerID: "p", Health: "ok", Heartbeat: hb})
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	eventually(t, 5*time.Second, "recovered", func() bool { return f.domain("shop.example").ActiveServer == "p" })
}

func TestNewLeaderStartsFromReplicatedVerdicts(t *testing.T) {
	f := shieldFixture(t, state.DNSBuiltin)
	// An old leader recorded the primary down and failed over, then died.
	f.must(t, &state.ServerLiveness{ID: "p", Down: true, Reason: "gossip: node failed"})
	f.must(t, &state.DomainFailover{Name: "shop.example", From: "p", To: "s1", Status: state.FailoverFailedOver, Event: state.Event{Type: state.EventFailoverTriggered}})
	cfg := testConfig()
	cfg.RecoveryHold = 400 * time.Millisecond
	start := time.Now()
	runController(t, cfg, f)
	// The primary is alive now, but a new leader still applies the hold.
	eventually(t, 5*time.Second, "recovery", func() bool { return f.domain("shop.example").ActiveServer == "p" })
	if took := time.Since(start); took < cfg.RecoveryHold {
		t.Fatalf("new leader recovered after %s, skipping the hold", took)
	}
	if n := len(f.eventsOf(state.EventServerDown)); n != 1 {
		t.Fatalf("server_down recorded %d times", n)
	}
}

func TestDomainsWithoutDNSOrServersAreLeftAlone(t *testing.T) {
	f := shieldFixture(t, state.DNSNone)
	f.must(t, &state.DomainAdd{Name: "single.example", Origins: []string{"10.1.0.1:80"}, Servers: []string{"p"}})
	runController(t, testConfig(), f)
	f.setMember("n-p", mesh.StateDead, mesh.Meta{})
	eventually(t, 5*time.Second, "p down", func() bool { return f.server("p").Down })
	time.Sleep(300 * time.Millisecond)
	if d := f.domain("shop.example"); d.ActiveServer != "p" {
		t.Fatalf("domain without a DNS provider failed over: %+v", d)
	}
	if d := f.domain("single.example"); d.ActiveServer != "p" {
		t.Fatalf("single-server domain changed: %+v", d)
	}
}

// fakeProvider records writes and can fail.
type fakeProvider struct {
	mu     sync.Mutex
	writes []string // "domain ip ttl"
	fail   int      // fail this many calls
	calls  int
}

func (p *fakeProvider) Name() string { return state.DNSCloudflare }

func (p *fakeProvider) Set(_ context.Context, domain, ip string, ttl int) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.fail > 0 {
		p.fail--
		return false, errors.New("provider unavailable")
	}
	p.writes = append(p.writes, domain+" "+ip+" "+itoa(ttl))
	return true, nil
}

func (p *fakeProvider) snapshot() (writes []string, calls int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.writes...), p.calls
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestExternalProviderReconcile(t *testing.T) {
	f := shieldFixture(t, state.DNSCloudflare)
	p := &fakeProvider{fail: 2}
	cfg := testConfig()
	cfg.Providers = map[string]Provider{state.DNSCloudflare: p}
	cfg.Metrics = NewMetrics(nil)
	stop := runController(t, cfg, f)

	// The initial record is written after two failures (backoff), once.
	eventually(t, 5*time.Second, "initial sync", func() bool {
		d := f.domain("shop.example")
		return d.DNSSynced != nil && d.DNSSynced.IP == "10.0.0.1" && d.DNSSynced.TTL == state.DefaultTTL
	})
	if w, calls := p.snapshot(); len(w) != 1 || w[0] != "shop.example 10.0.0.1 300" || calls != 3 {
		t.Fatalf("writes %v after %d calls", w, calls)
	}
	f.setMember("n-p", mesh.StateDead, mesh.Meta{})
	eventually(t, 5*time.Second, "failover synced", func() bool {
		d := f.domain("shop.example")
		return d.DNSSynced != nil && d.DNSSynced.IP == "10.0.0.2" && d.DNSSynced.TTL == state.DefaultFailoverTTL
	})
	if got := histogramCount(t, cfg.Metrics.Duration); got != 1 {
		t.Fatalf("failover duration observed %d times", got)
	}
	stop()

	// A new leader with everything in sync writes nothing.
	p2 := &fakeProvider{}
	cfg2 := testConfig()
	cfg2.Providers = map[string]Provider{state.DNSCloudflare: p2}
	runController(t, cfg2, f)
	time.Sleep(300 * time.Millisecond)
	if _, calls := p2.snapshot(); calls != 0 {
		t.Fatalf("new leader called the provider %d times with everything in sync", calls)
	}
}

func TestLeaderDiesBeforeSyncRecorded(t *testing.T) {
	f := shieldFixture(t, state.DNSCloudflare)
	// An old leader committed the failover but never recorded the DNS sync.
	f.must(t, &state.DomainDNSSynced{Name: "shop.example", Record: state.DNSRecord{Provider: state.DNSCloudflare, IP: "10.0.0.1", TTL: 300}})
	f.must(t, &state.ServerLiveness{ID: "p", Down: true, Reason: "gossip: node failed"})
	f.must(t, &state.DomainFailover{Name: "shop.example", From: "p", To: "s1", Status: state.FailoverFailedOver, Event: state.Event{Type: state.EventFailoverTriggered}})
	f.setMember("n-p", mesh.StateDead, mesh.Meta{})
	p := &fakeProvider{}
	cfg := testConfig()
	cfg.Providers = map[string]Provider{state.DNSCloudflare: p}
	runController(t, cfg, f)
	eventually(t, 5*time.Second, "new leader finishes the switch", func() bool {
		d := f.domain("shop.example")
		return d.DNSSynced.IP == "10.0.0.2"
	})
	if w, _ := p.snapshot(); len(w) != 1 || w[0] != "shop.example 10.0.0.2 30" {
		t.Fatalf("writes = %v", w)
	}
	if n := len(f.eventsOf(state.EventFailoverTriggered)); n != 1 {
		t.Fatalf("the failover was decided %d times", n)
	}
}

func TestUnconfiguredProviderBacksOff(t *testing.T) {
	f := shieldFixture(t, state.DNSCloudflare)
	cfg := testConfig()
	cfg.Providers = map[string]Provider{"other": &fakeProvider{}}
	cfg.Metrics = NewMetrics(nil)
	runController(t, cfg, f)
	eventually(t, 5*time.Second, "unconfigured counted", func() bool {
		return counterValue(t, cfg.Metrics.DNSUpdates.WithLabelValues(state.DNSCloudflare, "unconfigured")) >= 2
	})
	if d := f.domain("shop.example"); d.DNSSynced != nil {
		t.Fatalf("synced without a provider: %+v", d.DNSSynced)
	}
}

func TestRunStopsPromptly(t *testing.T) {
	f := shieldFixture(t, state.DNSBuiltin)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = Run(ctx, testConfig(), f); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err := Run(context.Background(), &Config{SweepInterval: time.Millisecond}, f); !errors.Is(err, ErrConfig) {
		t.Fatalf("bad config: %v", err)
	}
}
