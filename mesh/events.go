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

// pendingEvent is an EventDead held back until due.
type pendingEvent struct {
	ev  Event
	due time.Time
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
	m.queueLocked(Event{Type: typ, Member: mb, Time: now})
}

func (m *Mesh) queueLocked(ev Event) {
	if m.dispatchDone {
		return
	}
	m.seq++
	m.queue = append(m.queue, queuedEvent{seq: m.seq, ev: ev})
	m.signal()
}

// signal wakes the dispatcher without blocking.
func (m *Mesh) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// deferDeadLocked holds the EventDead for e during deadGrace: memberlist
// hands a departure over before a leave intent sent just ahead of it when
// the two race between goroutines, and a member that announced its leave
// must not be reported as failed. The caller holds m.mu.
func (m *Mesh) deferDeadLocked(e *memberEntry, now time.Time) {
	e.pendingDead = &pendingEvent{
		ev:  Event{Type: EventDead, Member: e.member, Time: now},
		due: now.Add(m.deadGrace),
	}
	m.pending++
	m.signal()
}

// releaseDeadLocked emits e's held EventDead now, if there is one.
func (m *Mesh) releaseDeadLocked(e *memberEntry) {
	if p := e.pendingDead; p != nil {
		m.dropDeadLocked(e)
		m.queueLocked(p.ev)
	}
}

// dropDeadLocked discards e's held EventDead, if there is one.
func (m *Mesh) dropDeadLocked(e *memberEntry) {
	if e.pendingDead != nil {
		e.pendingDead = nil
		m.pending--
	}
}

// releaseDueLocked emits the held EventDead events that are due at now and
// returns when the next one will be (zero if none is held).
func (m *Mesh) releaseDueLocked(now time.Time) time.Time {
	if m.pending == 0 {
		return time.Time{}
	}
	var next time.Time
	for _, e := range m.members {
		p := e.pendingDead
		if p == nil {
			continue
		}
		if !p.due.After(now) {
			m.releaseDeadLocked(e)
		} else if next.IsZero() || p.due.Before(next) {
			next = p.due
		}
	}
	return next
}

// dispatch is the one goroutine that hands queued events to subscribers and
// releases held EventDead events when their grace ends. On shutdown it
// releases what is held, delivers what is queued, then closes every
// subscriber.
func (m *Mesh) dispatch(ctx context.Context) {
	defer m.wg.Done()
	defer close(m.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-m.wake:
		case <-timer.C:
		case <-ctx.Done():
			m.mu.Lock()
			for _, e := range m.members {
				m.releaseDeadLocked(e)
			}
			events := m.takeLocked()
			m.dispatchDone = true
			m.mu.Unlock()
			m.deliverAll(events)
			m.closeSubscribers()
			return
		}
		m.mu.Lock()
		next := m.releaseDueLocked(time.Now())
		events := m.takeLocked()
		m.mu.Unlock()
		m.deliverAll(events)
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
	}
}

func (m *Mesh) takeLocked() []queuedEvent {
	events := m.queue
	m.queue = nil
	return events
}

func (m *Mesh) deliverAll(events []queuedEvent) {
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
