package mesh

import (
	"context"
	"sync"
	"time"
)

type subscriber struct {
	ch   chan Event
	from uint64 // sequence number of the first event this subscriber gets
}

// queuedEvent is an Event waiting for the dispatcher, numbered in the order
// it was emitted.
type queuedEvent struct {
	seq uint64
	ev  Event
}

// Subscribe returns a channel receiving every Event emitted after Subscribe
// returns, in order, and a cancel func that unsubscribes and closes the
// channel (safe to call more than once). The channel holds Config.EventBuffer
// events; when it is full the oldest queued event is dropped for the newest
// (see Dropped). Close closes every subscriber channel. Subscribing to a
// closed Mesh returns a closed channel.
func (m *Mesh) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, m.eventBuffer)
	m.subMu.Lock()
	defer m.subMu.Unlock()
	if m.subsClosed {
		close(ch)
		return ch, func() {}
	}
	m.mu.Lock() // events emitted from here on are this subscriber's
	from := m.seq + 1
	m.mu.Unlock()
	id := m.nextSub
	m.nextSub++
	m.subs[id] = &subscriber{ch: ch, from: from}
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			m.subMu.Lock()
			defer m.subMu.Unlock()
			if s, ok := m.subs[id]; ok { // not already closed by Close
				delete(m.subs, id)
				close(s.ch)
			}
		})
	}
	return ch, cancel
}

// Dropped returns how many events were dropped, over all subscribers, because
// a subscriber's buffer was full.
func (m *Mesh) Dropped() uint64 {
	return m.dropped.Load()
}

// emitLocked queues an event for the dispatcher. The caller holds m.mu, so
// events are queued in the order the member table changed.
func (m *Mesh) emitLocked(typ EventType, mb Member, now time.Time) {
	if m.closed.Load() {
		return
	}
	m.seq++
	m.queue = append(m.queue, queuedEvent{seq: m.seq, ev: Event{Type: typ, Member: mb, Time: now}})
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// dispatch is the one goroutine that hands queued events to subscribers.
// On shutdown it delivers what is queued, then closes every subscriber.
func (m *Mesh) dispatch(ctx context.Context) {
	defer m.wg.Done()
	defer close(m.stopped)
	for {
		select {
		case <-m.wake:
			m.flush()
		case <-ctx.Done():
			m.flush()
			m.closeSubscribers()
			return
		}
	}
}

func (m *Mesh) flush() {
	m.mu.Lock()
	events := m.queue
	m.queue = nil
	m.mu.Unlock()
	if len(events) == 0 {
		return
	}
	m.subMu.Lock()
	defer m.subMu.Unlock()
	for _, qe := range events {
		for _, s := range m.subs {
			if qe.seq >= s.from {
				m.deliver(s, qe.ev)
			}
		}
	}
}

// deliver sends ev without blocking, dropping the subscriber's oldest queued
// event when its buffer is full. Only the dispatcher sends on s.ch, so once
// one event has been removed the send succeeds.
func (m *Mesh) deliver(s *subscriber, ev Event) {
	for {
		select {
		case s.ch <- ev:
			return
		default:
		}
		select {
		case <-s.ch:
			m.dropped.Add(1)
		default: // the subscriber drained it meanwhile: retry the send
		}
	}
}

func (m *Mesh) closeSubscribers() {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	m.subsClosed = true
	for id, s := range m.subs {
		delete(m.subs, id)
		close(s.ch)
	}
}
