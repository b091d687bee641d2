package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeStore is an in-memory Store that follows the rules of the replicated
// state: contiguous event IDs, trimming from the front, cursors that never
// move back and acks only of existing events.
type fakeStore struct {
	mu       sync.Mutex
	events   []state.Event
	next     uint64
	cursors  map[string]uint64
	acks     map[string][]uint64
	failAcks int // the next failAcks acks fail
	names    map[string]string
	watchers map[int]chan struct{}
	nextW    int
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		next:     1,
		cursors:  map[string]uint64{},
		acks:     map[string][]uint64{},
		names:    map[string]string{},
		watchers: map[int]chan struct{}{},
	}
}

// add commits events, stamping IDs and times, and signals watchers.
func (s *fakeStore) add(evs ...state.Event) (ids []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range evs {
		e.ID = s.next
		s.next++
		if e.Time.IsZero() {
			e.Time = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(e.ID) * time.Second)
		}
		s.events = append(s.events, e)
		ids = append(ids, e.ID)
	}
	for _, w := range s.watchers {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	return ids
}

// addTypes commits one event of each type.
func (s *fakeStore) addTypes(types ...string) []uint64 {
	evs := make([]state.Event, len(types))
	for i, typ := range types {
		evs[i] = state.Event{Type: typ, Domain: "shop.example.com", Message: "event " + typ}
	}
	return s.add(evs...)
}

// trim drops every event older than oldest.
func (s *fakeStore) trim(oldest uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = slices.DeleteFunc(s.events, func(e state.Event) bool { return e.ID < oldest })
}

func (s *fakeStore) setCursor(target string, id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursors[target] = id
}

func (s *fakeStore) ackLog(target string) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acks[target])
}

func (s *fakeStore) cursorIs(target string, want uint64) func() bool {
	return func() bool {
		got, ok := s.Cursor(target)
		return ok && got == want
	}
}

func (s *fakeStore) Cursor(target string) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cursors[target]
	return c, ok
}

func (s *fakeStore) EventsAfter(after uint64, limit int) []state.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []state.Event
	for _, e := range s.events {
		if e.ID > after {
			out = append(out, e)
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

func (s *fakeStore) LastEventID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next - 1
}

func (s *fakeStore) OldestEventID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events) == 0 {
		return 0
	}
	return s.events[0].ID
}

var errNotLeader = errors.New("not the leader")

func (s *fakeStore) Ack(ctx context.Context, target string, id uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAcks > 0 {
		s.failAcks--
		return errNotLeader
	}
	if id >= s.next {
		return fmt.Errorf("event %d does not exist yet", id)
	}
	if cur, ok := s.cursors[target]; ok && id < cur {
		return fmt.Errorf("target %s is already past event %d", target, id)
	}
	s.cursors[target] = id
	s.acks[target] = append(s.acks[target], id)
	return nil
}

func (s *fakeStore) Watch() (<-chan struct{}, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{}, 1)
	n := s.nextW
	s.nextW++
	s.watchers[n] = ch
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.watchers, n)
	}
}

func (s *fakeStore) ServerName(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names[id]
}

// recTarget records deliveries; fail, when set, decides per attempt.
type recTarget struct {
	id string

	mu       sync.Mutex
	attempts []uint64
	got      []uint64
	fail     func(ev state.Event, attempt int) error
}

func (r *recTarget) ID() string   { return r.id }
func (r *recTarget) Kind() string { return "test" }

func (r *recTarget) Deliver(_ context.Context, ev state.Event, _ Names) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, ev.ID)
	if r.fail != nil {
		if err := r.fail(ev, len(r.attempts)); err != nil {
			return err
		}
	}
	r.got = append(r.got, ev.ID)
	return nil
}

func (r *recTarget) delivered() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *recTarget) attempted() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.attempts)
}

func (r *recTarget) setFail(f func(ev state.Event, attempt int) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = f
}

// logBuffer collects JSON log lines safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// runDispatcher starts d.Run and returns a stop function that cancels it
// and waits for it to return.
func runDispatcher(t testing.TB, d *Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Errorf("dispatcher did not stop within 5s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// fastConfig is a dispatcher config with short backoffs.
func fastConfig(s Store, targets ...Target) DispatcherConfig {
	return DispatcherConfig{Targets: targets, Store: s, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}
}

func mustDispatcher(t testing.TB, cfg DispatcherConfig) *Dispatcher {
	t.Helper()
	d, err := NewDispatcher(cfg)
	if err != nil {
		t.Fatalf("NewDispatcher: %v", err)
	}
	return d
}
