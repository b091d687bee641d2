package failover

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeCluster is a single-node stand-in for the node: commands are applied
// to an in-memory state, members are set by the test.
type fakeCluster struct {
	mu      sync.Mutex
	st      *state.State
	idx     uint64
	members map[string]mesh.Member
	subs    []chan mesh.Event
	watches []chan uint64
	applied []*state.Command
	failAll bool // Apply fails (lost leadership)
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{st: state.New(), members: map[string]mesh.Member{}}
}

func (f *fakeCluster) View(fn func(st *state.State)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.st)
}

func (f *fakeCluster) Members() []mesh.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]mesh.Member, 0, len(f.members))
	for _, m := range f.members {
		out = append(out, m)
	}
	return out
}

func (f *fakeCluster) Subscribe() (<-chan mesh.Event, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan mesh.Event, 64)
	f.subs = append(f.subs, ch)
	return ch, func() {}
}

func (f *fakeCluster) Watch() (<-chan uint64, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan uint64, 1)
	f.watches = append(f.watches, ch)
	return ch, func() {}
}

func (f *fakeCluster) Apply(_ context.Context, cmd *state.Command) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAll {
		return nil, context.Canceled
	}
	res, err := f.st.Apply(f.idx+1, cmd)
	if err != nil {
		return nil, err
	}
	f.idx++
	f.applied = append(f.applied, cmd)
	f.signalLocked()
	return res, nil
}

func (f *fakeCluster) signalLocked() {
	for _, ch := range f.watches {
		select {
		case ch <- f.idx:
		default:
		}
	}
}

// must applies a setup command.
func (f *fakeCluster) must(t *testing.T, payload any) any {
	t.Helper()
	res, err := f.Apply(context.Background(), state.MustCommand(time.Now(), payload))
	if err != nil {
		t.Fatalf("apply %T: %v", payload, err)
	}
	return res
}

// setMember changes a member and tells subscribers.
func (f *fakeCluster) setMember(name string, st mesh.State, meta mesh.Meta) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := mesh.Member{Name: name, State: st, Meta: meta, LastSeen: time.Now(), Since: time.Now()}
	f.members[name] = m
	for _, ch := range f.subs {
		select {
		case ch <- mesh.Event{Type: mesh.EventUpdate, Member: m, Time: time.Now()}:
		default:
		}
	}
}

func (f *fakeCluster) domain(name string) state.Domain {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.st.Domains[name].Clone()
}

func (f *fakeCluster) server(id string) state.Server {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.st.Servers[id].Clone()
}

func (f *fakeCluster) eventsOf(typ string) []state.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []state.Event
	for _, e := range f.st.Events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// shieldFixture makes servers p, s1, s2 bound to nodes n-p, n-s1, n-s2 at
// 10.0.0.1-3, alive and healthy, and a domain on them in that order.
func shieldFixture(t *testing.T, provider string) *fakeCluster {
	f := newFakeCluster()
	for i, id := range []string{"p", "s1", "s2"} {
		f.must(t, &state.ServerAdd{ID: id, Name: "name-" + id, TokenHash: state.HashToken("tok-" + id), TokenPrefix: "lmt_" + id})
		ip := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}[i]
		f.must(t, &state.ServerBind{ID: id, NodeName: "n-" + id, Addr: ip, RaftAddr: ip + ":7947"})
		f.setMember("n-"+id, mesh.StateAlive, mesh.Meta{Shield: true, ServerID: id, Addr: ip, Health: "ok"})
	}
	f.must(t, &state.DomainAdd{Name: "shop.example", Origins: []string{"10.1.0.1:80"}, DNS: state.DNS{Provider: provider}, Servers: []string{"p", "s1", "s2"}})
	return f
}

// runController starts Run and returns a stop func that waits for it.
func runController(t *testing.T, cfg *Config, c Cluster) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, c) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("controller did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

func testConfig() *Config {
	cfg := DefaultConfig()
	cfg.SweepInterval = 100 * time.Millisecond
	cfg.RecoveryHold = 300 * time.Millisecond
	cfg.StaleAfter = 0
	cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 100*time.Millisecond
	return cfg
}
