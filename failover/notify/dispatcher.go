package notify

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

// DefaultTypes are the event types delivered when DispatcherConfig.Types is
// empty.
var DefaultTypes = []string{
	state.EventServerDown,
	state.EventServerRecovered,
	state.EventServerError,
	state.EventFailoverTriggered,
	state.EventFailoverRecovered,
	state.EventFailoverHeld,
}

// Backoff defaults.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
)

// batchSize is how many events are read from the store at a time. A run of
// skipped events costs at most one cursor commit per batch.
const batchSize = 100

// Store is the dispatcher's view of the replicated state.
type Store interface {
	// Cursor returns the last event ID handled for target, if recorded.
	Cursor(target string) (eventID uint64, ok bool)
	// EventsAfter returns committed events with ID > after, oldest first,
	// at most limit.
	EventsAfter(after uint64, limit int) []state.Event
	// LastEventID is the newest committed event ID (0 if none).
	LastEventID() uint64
	// OldestEventID is the oldest retained event ID (events are trimmed);
	// 0 if none is retained.
	OldestEventID() uint64
	// Ack commits the cursor of target. It may fail, for instance when
	// leadership is lost.
	Ack(ctx context.Context, target string, eventID uint64) error
	// Watch is signalled (coalesced) whenever new events are committed;
	// the function releases the watch.
	Watch() (<-chan struct{}, func())
	Names
}

// DispatcherConfig configures a Dispatcher.
type DispatcherConfig struct {
	Targets []Target
	Store   Store
	// Types are the event types delivered; empty means DefaultTypes.
	Types []string
	// MinBackoff and MaxBackoff bound the wait between failed attempts;
	// 0 means DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	// OnResult, when set, is called after every delivery attempt (for
	// metrics). It must be quick and safe for concurrent use.
	OnResult func(target, kind string, ok bool)
}

// Dispatcher delivers committed events to targets and records per-target
// cursors in the replicated state. Run it on the leader only, under a
// context cancelled when leadership is lost.
type Dispatcher struct {
	targets    []Target
	store      Store
	types      map[string]bool
	minBackoff time.Duration
	maxBackoff time.Duration
	log        *slog.Logger
	onResult   func(target, kind string, ok bool)

	runMu   sync.Mutex
	running bool

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	closed bool
}

// NewDispatcher validates cfg and returns a Dispatcher.
func NewDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("dispatcher: no store: %w", ErrInvalidConfig)
	}
	seen := map[string]bool{}
	for i, t := range cfg.Targets {
		if t == nil {
			return nil, fmt.Errorf("dispatcher: target %d is nil: %w", i, ErrInvalidConfig)
		}
		if t.ID() == "" {
			return nil, fmt.Errorf("dispatcher: target %d has no id: %w", i, ErrInvalidConfig)
		}
		if seen[t.ID()] {
			return nil, fmt.Errorf("dispatcher: target %s configured twice: %w", t.ID(), ErrInvalidConfig)
		}
		seen[t.ID()] = true
	}
	types := cfg.Types
	if len(types) == 0 {
		types = DefaultTypes
	}
	typeSet := map[string]bool{}
	for _, t := range types {
		if t == "" {
			return nil, fmt.Errorf("dispatcher: empty event type: %w", ErrInvalidConfig)
		}
		typeSet[t] = true
	}
	minB, maxB := cfg.MinBackoff, cfg.MaxBackoff
	if minB == 0 {
		minB = DefaultMinBackoff
	}
	if maxB == 0 {
		maxB = max(DefaultMaxBackoff, minB)
	}
	if minB < 0 || maxB < minB {
		return nil, fmt.Errorf("dispatcher: backoff %s..%s: %w", minB, maxB, ErrInvalidConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{
		targets:    slices.Clone(cfg.Targets),
		store:      cfg.Store,
		types:      typeSet,
		minBackoff: minB,
		maxBackoff: maxB,
		log:        log,
		onResult:   cfg.OnResult,
	}, nil
}

// Run delivers events until ctx is done. It runs one goroutine per target
// and returns once all of them have stopped. A second Run while one is in
// progress returns at once.
func (d *Dispatcher) Run(ctx context.Context) {
	d.runMu.Lock()
	if d.running {
		d.runMu.Unlock()
		d.log.Error("notify dispatcher: run refused", "err", ErrRunning)
		return
	}
	d.running = true
	d.runMu.Unlock()
	defer func() {
		d.runMu.Lock()
		d.running = false
		d.runMu.Unlock()
	}()

	var wg sync.WaitGroup
	for _, t := range d.targets {
		wg.Go(func() { d.runTarget(ctx, t) })
	}
	wg.Wait()
	<-ctx.Done() // with no targets too, Run lasts as long as ctx
}

// Start runs the dispatcher in the background until Close or until ctx is
// done.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.done != nil {
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	d.cancel, d.done = cancel, done
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	return nil
}

// Close stops a dispatcher started with Start and waits for its goroutines,
// or until ctx is done. It is safe to call more than once.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close dispatcher: %w", ctx.Err())
	}
}

// runTarget is one target's loop: it reads events after the cursor, delivers
// them in order and commits the cursor.
func (d *Dispatcher) runTarget(ctx context.Context, t Target) {
	id := t.ID()
	log := d.log.With("target", id, "kind", t.Kind())
	wake, release := d.store.Watch()
	defer release()

	acked, ok := d.store.Cursor(id)
	if !ok {
		// A new target starts at the newest event, not at the history.
		start := d.store.LastEventID()
		if !d.ack(ctx, log, id, start) {
			return
		}
		acked = start
		log.Info("notification target starts at the newest event", "event", start)
	}
	cursor := acked
	for ctx.Err() == nil {
		if oldest := d.store.OldestEventID(); oldest > 0 && cursor+1 < oldest {
			log.Warn("events trimmed before delivery: skipped", "skipped", oldest-1-cursor, "from", cursor+1, "to", oldest-1)
			cursor = oldest - 1
		}
		evs := d.store.EventsAfter(cursor, batchSize)
		for _, ev := range evs {
			if ev.ID <= cursor {
				continue
			}
			if ev.ID > cursor+1 {
				// Trimmed between the two reads above.
				log.Warn("events trimmed before delivery: skipped", "skipped", ev.ID-cursor-1, "from", cursor+1, "to", ev.ID-1)
			}
			if !d.types[ev.Type] {
				// Committed with the next delivery or after the batch.
				cursor = ev.ID
				continue
			}
			if !d.deliver(ctx, log, t, ev) {
				return
			}
			cursor = ev.ID
			if !d.ack(ctx, log, id, cursor) {
				return
			}
			acked = cursor
		}
		if acked < cursor {
			if !d.ack(ctx, log, id, cursor) {
				return
			}
			acked = cursor
		}
		if len(evs) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
		case <-wake:
		}
	}
}

// deliver sends ev to t until it succeeds; false means ctx is done.
func (d *Dispatcher) deliver(ctx context.Context, log *slog.Logger, t Target, ev state.Event) bool {
	var b backoff
	for attempt := 1; ; attempt++ {
		err := t.Deliver(ctx, ev, d.store)
		if d.onResult != nil {
			d.onResult(t.ID(), t.Kind(), err == nil)
		}
		if err == nil {
			log.Debug("notification delivered", "event", ev.ID, "type", ev.Type, "attempt", attempt)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait := b.next(d.minBackoff, d.maxBackoff)
		log.Warn("notification delivery failed: retrying", "event", ev.ID, "type", ev.Type, "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// ack commits the cursor of target until it succeeds or the replicated
// cursor is found at or past eventID; false means ctx is done.
func (d *Dispatcher) ack(ctx context.Context, log *slog.Logger, target string, eventID uint64) bool {
	var b backoff
	for {
		err := d.store.Ack(ctx, target, eventID)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		// An ack that did commit but answered with an error (or a
		// cursor already moved past) needs no retry.
		if cur, ok := d.store.Cursor(target); ok && cur >= eventID {
			return true
		}
		wait := b.next(d.minBackoff, d.maxBackoff)
		log.Warn("notification cursor commit failed: retrying", "event", eventID, "retry_in", wait.Round(time.Millisecond), "err", err)
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// backoff yields exponentially growing waits with jitter.
type backoff struct{ cur time.Duration }

// next returns the next wait: the base doubles from lo up to hi, and the
// wait is drawn uniformly from [3/4 base, base].
func (b *backoff) next(lo, hi time.Duration) time.Duration {
	switch {
	case b.cur == 0:
		b.cur = lo
	case b.cur < hi:
		b.cur = min(b.cur*2, hi)
	}
	if b.cur <= 0 {
		return 0
	}
	quarter := int64(b.cur / 4)
	if quarter <= 0 {
		return b.cur
	}
	return b.cur - time.Duration(rand.Int64N(quarter+1))
}

// sleep waits for d or until ctx is done; false means ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
