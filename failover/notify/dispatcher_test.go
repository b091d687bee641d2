package notify

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

var errDown = errors.New("destination down")

func TestNewDispatcherValidation(t *testing.T) {
	s := newFakeStore()
	a := &recTarget{id: "test:a"}
	cases := []struct {
		name string
		cfg  DispatcherConfig
	}{
		{"no store", DispatcherConfig{Targets: []Target{a}}},
		{"nil target", DispatcherConfig{Store: s, Targets: []Target{a, nil}}},
		{"empty id", DispatcherConfig{Store: s, Targets: []Target{&recTarget{}}}},
		{"duplicate id", DispatcherConfig{Store: s, Targets: []Target{a, &recTarget{id: "test:a"}}}},
		{"empty type", DispatcherConfig{Store: s, Targets: []Target{a}, Types: []string{"server_down", ""}}},
		{"min above max", DispatcherConfig{Store: s, Targets: []Target{a}, MinBackoff: time.Second, MaxBackoff: time.Millisecond}},
		{"negative min", DispatcherConfig{Store: s, Targets: []Target{a}, MinBackoff: -time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewDispatcher(c.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
	d, err := NewDispatcher(DispatcherConfig{Store: s, Targets: []Target{a}})
	if err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if d.minBackoff != DefaultMinBackoff || d.maxBackoff != DefaultMaxBackoff {
		t.Errorf("backoff defaults = %s..%s", d.minBackoff, d.maxBackoff)
	}
	for _, typ := range DefaultTypes {
		if !d.types[typ] {
			t.Errorf("default types miss %s", typ)
		}
	}
	if d.types[state.EventDomainAdded] {
		t.Errorf("default types include %s", state.EventDomainAdded)
	}
}

func TestNewTargetStartsAtLatestEvent(t *testing.T) {
	s := newFakeStore()
	s.addTypes("server_down", "failover_triggered", "server_recovered", "failover_recovered", "server_down")
	tg := &recTarget{id: "test:new"}
	runDispatcher(t, mustDispatcher(t, fastConfig(s, tg)))

	eventually(t, 5*time.Second, "initial cursor", s.cursorIs(tg.id, 5))
	if acks := s.ackLog(tg.id); !slices.Equal(acks, []uint64{5}) {
		t.Fatalf("acks = %v, want the newest event acked first: [5]", acks)
	}
	s.addTypes("failover_triggered")
	eventually(t, 5*time.Second, "cursor at 6", s.cursorIs(tg.id, 6))
	if got := tg.delivered(); !slices.Equal(got, []uint64{6}) {
		t.Fatalf("delivered %v, want only [6]: history must not be replayed", got)
	}
}

func TestNewTargetOnEmptyLog(t *testing.T) {
	s := newFakeStore()
	tg := &recTarget{id: "test:empty"}
	runDispatcher(t, mustDispatcher(t, fastConfig(s, tg)))
	eventually(t, 5*time.Second, "cursor 0 recorded", s.cursorIs(tg.id, 0))
	s.addTypes("server_down", "server_recovered")
	eventually(t, 5*time.Second, "cursor at 2", s.cursorIs(tg.id, 2))
	if got := tg.delivered(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("delivered %v, want [1 2]", got)
	}
}

func TestAckAdvancesPerDelivery(t *testing.T) {
	s := newFakeStore()
	tg := &recTarget{id: "test:ack"}
	s.setCursor(tg.id, 0)
	s.addTypes("server_down", "failover_triggered", "failover_held")
	runDispatcher(t, mustDispatcher(t, fastConfig(s, tg)))
	eventually(t, 5*time.Second, "cursor at 3", s.cursorIs(tg.id, 3))
	if got := tg.delivered(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("delivered %v", got)
	}
	if acks := s.ackLog(tg.id); !slices.Equal(acks, []uint64{1, 2, 3}) {
		t.Fatalf("acks = %v, want one per delivery [1 2 3]", acks)
	}
}

func TestNewLeaderResumesFromCursor(t *testing.T) {
	s := newFakeStore()
	s.setCursor("test:resume", 0)
	s.addTypes("server_down", "failover_triggered", "server_recovered")

	first := &recTarget{id: "test:resume"}
	stop := runDispatcher(t, mustDispatcher(t, fastConfig(s, first)))
	eventually(t, 5*time.Second, "first leader done", s.cursorIs(first.id, 3))
	stop() // leadership lost

	s.addTypes("failover_recovered", "server_error")
	second := &recTarget{id: "test:resume"} // the same target on the new leader
	runDispatcher(t, mustDispatcher(t, fastConfig(s, second)))
	eventually(t, 5*time.Second, "second leader done", s.cursorIs(second.id, 5))

	if got := first.delivered(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("first leader delivered %v", got)
	}
	if got := second.delivered(); !slices.Equal(got, []uint64{4, 5}) {
		t.Errorf("second leader delivered %v, want [4 5] without repeats", got)
	}
}

func TestSkippedTypesAdvanceCursorInBatches(t *testing.T) {
	s := newFakeStore()
	tg := &recTarget{id: "test:skip"}
	s.setCursor(tg.id, 0)
	// 1 unwanted, 2..51 unwanted, 52 wanted.
	types := []string{"server_added"}
	for range 50 {
		types = append(types, "domain_added")
	}
	types = append(types, "server_down")
	s.addTypes(types...)
	runDispatcher(t, mustDispatcher(t, fastConfig(s, tg)))
	eventually(t, 5*time.Second, "cursor at 52", s.cursorIs(tg.id, 52))
	if got := tg.delivered(); !slices.Equal(got, []uint64{52}) {
		t.Fatalf("delivered %v, want [52]", got)
	}
	if acks := s.ackLog(tg.id); !slices.Equal(acks, []uint64{52}) {
		t.Fatalf("acks = %v, want the skipped run committed with the delivery: [52]", acks)
	}

	// A long run of skips with no delivery after it: committed once per
	// batch, not once per event.
	var run []string
	for range 250 {
		run = append(run, "plan_changed")
	}
	s.addTypes(run...)
	eventually(t, 5*time.Second, "cursor at 302", s.cursorIs(tg.id, 302))
	acks := s.ackLog(tg.id)
	if n := len(acks) - 1; n > 3 {
		t.Fatalf("%d commits for 250 skipped events (%v), want at most 3", n, acks)
	}
	if got := tg.delivered(); !slices.Equal(got, []uint64{52}) {
		t.Fatalf("delivered %v, want [52]", got)
	}
}

func TestCustomTypes(t *testing.T) {
	s := newFakeStore()
	tg := &recTarget{id: "test:types"}
	s.setCursor(tg.id, 0)
	s.addTypes("server_down", "domain_added", "failover_triggered")
	cfg := fastConfig(s, tg)
	cfg.Types = []string{"domain_added"}
	runDispatcher(t, mustDispatcher(t, cfg))
	eventually(t, 5*time.Second, "cursor at 3", s.cursorIs(tg.id, 3))
	if got := tg.delivered(); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("delivered %v, want [2]", got)
	}
}

func TestTrimmedEventsSkippedWithWarning(t *testing.T) {
	s := newFakeStore()
	tg := &recTarget{id: "test:trim"}
	types := make([]string, 12)
	for i := range types {
		types[i] = "server_down"
	}
	s.addTypes(types...)
	s.setCursor(tg.id, 2)
	s.trim(10) // events 3..9 are gone
	var logs logBuffer
	cfg := fastConfig(s, tg)
	cfg.Logger = logs.logger()
	runDispatcher(t, mustDispatcher(t, cfg))
	eventually(t, 5*time.Second, "cursor at 12", s.cursorIs(tg.id, 12))
	if got := tg.delivered(); !slices.Equal(got, []uint64{10, 11, 12}) {
		t.Fatalf("delivered %v, want [10 11 12]", got)
	}
	out := logs.String()
	var warn string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `"level":"WARN"`) && strings.Contains(l, "trimmed") {
			warn = l
		}
	}
	if warn == "" || !strings.Contains(warn, `"skipped":7`) || !strings.Contains(warn, `"target":"test:trim"`) {
		t.Fatalf("no warning with 7 skipped events in log:\n%s", out)
	}
}

func TestFailedEventRetriedNeverSkipped(t *testing.T) {
	s := newFakeStore()
	tg := &recTarget{id: "test:fail"}
	s.setCursor(tg.id, 0)
	tg.setFail(func(ev state.Event, _ int) error {
		if ev.ID == 2 {
			return errDown
		}
		return nil
	})
	var mu sync.Mutex
	results := map[bool]int{}
	cfg := fastConfig(s, tg)
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 4*time.Millisecond
	cfg.OnResult = func(target, kind string, ok bool) {
		if target != tg.id || kind != "test" {
			t.Errorf("OnResult(%q, %q)", target, kind)
		}
		mu.Lock()
		results[ok]++
		mu.Unlock()
	}
	s.addTypes("server_down", "failover_triggered", "server_recovered")
	runDispatcher(t, mustDispatcher(t, cfg))

	eventually(t, 5*time.Second, "10 attempts at event 2", func() bool {
		return len(tg.attempted()) >= 11
	})
	if got := tg.delivered(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("delivered %v while event 2 fails, want [1]", got)
	}
	for _, id := range tg.attempted()[1:] {
		if id != 2 {
			t.Fatalf("attempts %v: something other than event 2 was tried", tg.attempted())
		}
	}
	if c, _ := s.Cursor(tg.id); c != 1 {
		t.Fatalf("cursor = %d, want 1 while event 2 fails", c)
	}

	tg.setFail(nil)
	eventually(t, 5*time.Second, "cursor at 3", s.cursorIs(tg.id, 3))
	if got := tg.delivered(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("delivered %v, want [1 2 3]", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if results[true] != 3 || results[false] < 10 {
		t.Fatalf("OnResult counts = %v", results)
	}
}

func TestAckFailureRetriedWithoutRedelivery(t *testing.T) {
	s := newFakeStore()
	tg := &recTarget{id: "test:ackfail"}
	s.setCursor(tg.id, 0)
	s.mu.Lock()
	s.failAcks = 3
	s.mu.Unlock()
	s.addTypes("server_down", "server_recovered")
	runDispatcher(t, mustDispatcher(t, fastConfig(s, tg)))
	eventually(t, 5*time.Second, "cursor at 2", s.cursorIs(tg.id, 2))
	if got := tg.attempted(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("attempts %v, want each event once although acks failed", got)
	}
}

func TestRunStopsPromptlyDuringBackoff(t *testing.T) {
	s := newFakeStore()
	tg := &recTarget{id: "test:stop"}
	tg.setFail(func(state.Event, int) error { return errDown })
	s.setCursor(tg.id, 0)
	s.addTypes("server_down")
	d := mustDispatcher(t, DispatcherConfig{Store: s, Targets: []Target{tg}, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	eventually(t, 5*time.Second, "first attempt", func() bool { return len(tg.attempted()) == 1 })
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of cancellation while backing off")
	}
	t.Logf("stopped %s after cancellation", time.Since(start))
}

func TestSlowTargetDoesNotDelayOthers(t *testing.T) {
	s := newFakeStore()
	stuck := &recTarget{id: "test:stuck"}
	block := make(chan struct{})
	defer close(block)
	slow := blockingTarget{recTarget: stuck, block: block}
	failing := &recTarget{id: "test:failing"}
	failing.setFail(func(state.Event, int) error { return errDown })
	healthy := &recTarget{id: "test:healthy"}
	for _, id := range []string{stuck.id, failing.id, healthy.id} {
		s.setCursor(id, 0)
	}
	runDispatcher(t, mustDispatcher(t, fastConfig(s, slow, failing, healthy)))
	start := time.Now()
	s.addTypes("server_down", "failover_triggered", "failover_held")
	eventually(t, 2*time.Second, "healthy target served", s.cursorIs(healthy.id, 3))
	t.Logf("healthy target served in %s", time.Since(start))
	if got := healthy.delivered(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("healthy delivered %v", got)
	}
	if c, _ := s.Cursor(failing.id); c != 0 {
		t.Fatalf("failing target cursor = %d", c)
	}
}

// blockingTarget blocks every delivery until block is closed or ctx is done.
type blockingTarget struct {
	*recTarget
	block chan struct{}
}

func (b blockingTarget) Deliver(ctx context.Context, ev state.Event, n Names) error {
	select {
	case <-b.block:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.recTarget.Deliver(ctx, ev, n)
}

func TestStartClose(t *testing.T) {
	s := newFakeStore()
	tg := &recTarget{id: "test:startclose"}
	d := mustDispatcher(t, fastConfig(s, tg))
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := d.Start(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Start: %v, want ErrRunning", err)
	}
	eventually(t, 5*time.Second, "cursor recorded", s.cursorIs(tg.id, 0))
	s.addTypes("server_down")
	eventually(t, 5*time.Second, "event delivered", s.cursorIs(tg.id, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := d.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestConcurrentRunRefused(t *testing.T) {
	s := newFakeStore()
	tg := &recTarget{id: "test:twice"}
	s.setCursor(tg.id, 0)
	d := mustDispatcher(t, fastConfig(s, tg))
	runDispatcher(t, d)
	eventually(t, 5*time.Second, "first run started", func() bool {
		d.runMu.Lock()
		defer d.runMu.Unlock()
		return d.running
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(context.Background()) // must return at once
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("second concurrent Run did not return")
	}
	s.addTypes("server_down")
	eventually(t, 5*time.Second, "event delivered", s.cursorIs(tg.id, 1))
	if got := tg.attempted(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("attempts %v, want one", got)
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	var b backoff
	lo, hi := 100*time.Millisecond, 800*time.Millisecond
	bases := []time.Duration{100, 200, 400, 800, 800, 800}
	for i, base := range bases {
		base *= time.Millisecond
		w := b.next(lo, hi)
		if w > base || w < base*3/4 {
			t.Fatalf("wait %d = %s, want within [%s, %s]", i, w, base*3/4, base)
		}
	}
}
