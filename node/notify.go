package node

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/lumos-mesh/lumos/failover/notify"
	"github.com/lumos-mesh/lumos/state"
)

// notifyStore gives the notification dispatcher the replicated event log
// and delivery cursors (notify.Store).
type notifyStore struct{ n *Node }

func (s notifyStore) Cursor(target string) (id uint64, ok bool) {
	s.n.store.View(func(st *state.State) { id, ok = st.NotifyCursors[target] })
	return id, ok
}

func (s notifyStore) EventsAfter(after uint64, limit int) []state.Event {
	var out []state.Event
	s.n.store.View(func(st *state.State) {
		i := sort.Search(len(st.Events), func(i int) bool { return st.Events[i].ID > after })
		end := len(st.Events)
		if limit > 0 && i+limit < end {
			end = i + limit
		}
		out = append(out, st.Events[i:end]...)
	})
	return out
}

func (s notifyStore) LastEventID() (id uint64) {
	s.n.store.View(func(st *state.State) { id = st.LastEventID() })
	return id
}

func (s notifyStore) OldestEventID() (id uint64) {
	s.n.store.View(func(st *state.State) {
		if len(st.Events) > 0 {
			id = st.Events[0].ID
		}
	})
	return id
}

func (s notifyStore) Ack(ctx context.Context, target string, eventID uint64) error {
	_, err := s.n.store.Apply(ctx, state.MustCommand(time.Now(), &state.NotifyAck{Target: target, EventID: eventID}))
	return err
}

func (s notifyStore) Watch() (<-chan struct{}, func()) {
	src, cancel := s.n.store.Watch()
	out := make(chan struct{}, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case _, ok := <-src:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	})
	var once sync.Once
	return out, func() {
		once.Do(func() {
			close(done)
			cancel()
			wg.Wait()
		})
	}
}

func (s notifyStore) ServerName(id string) (name string) {
	s.n.store.View(func(st *state.State) {
		if sv, ok := st.Servers[id]; ok {
			name = sv.Name
		}
	})
	return name
}

// notifier returns the leader-side notification work for the configured
// targets (nil when there are none).
func (n *Node) notifier() (func(ctx context.Context), error) {
	if len(n.cfg.Notify) == 0 {
		return nil, nil
	}
	d, err := notify.NewDispatcher(notify.DispatcherConfig{
		Targets: n.cfg.Notify,
		Store:   notifyStore{n},
		Logger:  n.log.With("subsystem", "notify"),
		OnResult: func(_, kind string, ok bool) {
			result := "delivered"
			if !ok {
				result = "failed"
			}
			n.failover.Metrics.Notifications.WithLabelValues(kind, result).Inc()
		},
	})
	if err != nil {
		return nil, err
	}
	return d.Run, nil
}
