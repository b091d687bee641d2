package raftstore

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/lumos-mesh/lumos/state"
)

// SnapshotVersion is the version of the snapshot encoding written by this
// build. Restore refuses newer versions, so an old node never half-reads a
// snapshot from a newer leader.
const SnapshotVersion = 1

// ApplyResult is the response of FSM.Apply for a command log entry: the
// value state.Apply returned, or its error. A log entry that does not decode
// yields a *state.Error with code state.CodeInvalid.
type ApplyResult struct {
	Value any
	Err   error
}

// FSM is the raft finite state machine: it applies committed commands to a
// state.State. Apply is deterministic (state.Apply is); readers see the
// state under a read lock through View.
type FSM struct {
	mu sync.RWMutex
	st *state.State

	watch    *broadcaster[uint64]
	applied  atomic.Bool   // a command was applied or a snapshot restored
	restores atomic.Uint64 // number of snapshot restores

	// confChanged is signalled (never blocking) when a configuration entry
	// is committed; the store snapshots soon after (see commitTracking).
	confChanged chan struct{}
}

var (
	_ raft.FSM                = (*FSM)(nil)
	_ raft.BatchingFSM        = (*FSM)(nil)
	_ raft.ConfigurationStore = (*FSM)(nil)
)

// NewFSM returns an FSM holding an empty state (state.New).
func NewFSM() *FSM {
	return &FSM{st: state.New(), watch: newBroadcaster[uint64](), confChanged: make(chan struct{}, 1)}
}

// Apply applies one committed log entry. Entries that are not commands
// (configuration changes) are ignored and answered with nil.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	f.mu.Lock()
	res, changed := f.applyLocked(l)
	idx := f.st.Index
	f.mu.Unlock()
	if changed {
		f.watch.publish(idx)
	}
	return res
}

// ApplyBatch applies a batch of committed entries under one lock and wakes
// watchers once.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	changed := false
	f.mu.Lock()
	conf := false
	for i, l := range logs {
		if l.Type == raft.LogConfiguration {
			conf = true
		}
		if l.Type != raft.LogCommand {
			continue
		}
		var c bool
		out[i], c = f.applyLocked(l)
		changed = changed || c
	}
	idx := f.st.Index
	f.mu.Unlock()
	if changed {
		f.watch.publish(idx)
	}
	if conf {
		f.signalConfChanged()
	}
	return out
}

func (f *FSM) applyLocked(l *raft.Log) (ApplyResult, bool) {
	cmd, err := state.DecodeCommand(l.Data)
	if err != nil {
		return ApplyResult{Err: &state.Error{Code: state.CodeInvalid, Field: "command", Message: err.Error()}}, false
	}
	v, err := f.st.Apply(l.Index, cmd)
	if err != nil {
		return ApplyResult{Err: err}, false
	}
	f.applied.Store(true)
	return ApplyResult{Value: v}, true
}

// Snapshot captures a deep copy of the state; the encoding happens in
// Persist, concurrently with further Applies.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	c := f.st.Clone()
	f.mu.RUnlock()
	return &fsmSnapshot{st: c}, nil
}

// snapshotFile is the encoding of a snapshot.
type snapshotFile struct {
	Version int          `json:"v"`
	State   *state.State `json:"state"`
}

// Restore replaces the state with the one in the snapshot. On error the
// current state is kept.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := decodeSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.st = st
	idx := st.Index
	f.mu.Unlock()
	f.applied.Store(true)
	f.restores.Add(1)
	f.watch.publish(idx)
	return nil
}

func decodeSnapshot(r io.Reader) (*state.State, error) {
	var sf snapshotFile
	if err := json.NewDecoder(bufio.NewReader(r)).Decode(&sf); err != nil {
		return nil, fmt.Errorf("restore snapshot: decode: %w", err)
	}
	if sf.Version < 1 || sf.Version > SnapshotVersion {
		return nil, fmt.Errorf("restore snapshot: version %d is not supported by this node (max %d)", sf.Version, SnapshotVersion)
	}
	st := sf.State
	if st == nil {
		return nil, fmt.Errorf("restore snapshot: no state")
	}
	if st.Servers == nil {
		st.Servers = map[string]*state.Server{}
	}
	if st.Domains == nil {
		st.Domains = map[string]*state.Domain{}
	}
	return st, nil
}

// View calls fn with the current state under the read lock. fn must not
// retain or modify st, and must not call back into the FSM's writers.
func (f *FSM) View(fn func(st *state.State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.st)
}

// Clone returns a deep copy of the current state.
func (f *FSM) Clone() *state.State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Clone()
}

// Index returns the log index of the last command applied to the state.
func (f *FSM) Index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Index
}

// Restores returns how many snapshots were restored into this FSM.
func (f *FSM) Restores() uint64 { return f.restores.Load() }

// Watch subscribes to state changes: the channel receives the new
// state.Index after every applied command batch or restore. Values are
// coalesced (buffer 1, latest wins) and sending never blocks Apply. cancel
// closes the channel and is idempotent.
func (f *FSM) Watch() (<-chan uint64, func()) { return f.watch.subscribe(false) }

type fsmSnapshot struct {
	st *state.State
}

// Persist encodes the captured state into the sink.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriter(sink)
	err := json.NewEncoder(w).Encode(snapshotFile{Version: SnapshotVersion, State: s.st})
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return nil
}

// Release is a no-op: the captured copy is garbage collected.
func (s *fsmSnapshot) Release() {}

// broadcaster fans values out to subscribers. Each subscriber has a
// one-slot channel: a new value replaces an unread one, so a publisher never
// blocks and a slow reader always ends up with the latest value.
type broadcaster[T any] struct {
	mu      sync.Mutex
	subs    map[chan T]struct{}
	last    T
	hasLast bool
	closed  bool
}

func newBroadcaster[T any]() *broadcaster[T] {
	return &broadcaster[T]{subs: map[chan T]struct{}{}}
}

// publish records v as the latest value and offers it to every subscriber.
func (b *broadcaster[T]) publish(v T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last, b.hasLast = v, true
	if b.closed {
		return
	}
	for ch := range b.subs {
		offer(ch, v)
	}
}

// offer puts v into the one-slot ch, replacing an unread value. The caller
// holds the broadcaster lock, so it is the only sender.
func offer[T any](ch chan T, v T) {
	select {
	case ch <- v:
		return
	default:
	}
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- v:
	default:
	}
}

// subscribe adds a subscriber. With replay, the latest published value (if
// any) is delivered at once. After close, the returned channel is closed.
func (b *broadcaster[T]) subscribe(replay bool) (<-chan T, func()) {
	ch := make(chan T, 1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	if replay && b.hasLast {
		ch <- b.last
	}
	b.subs[ch] = struct{}{}
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// close closes every subscriber channel; later subscribers get a closed
// channel. Unread values stay readable before the close is seen.
func (b *broadcaster[T]) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for ch := range b.subs {
		delete(b.subs, ch)
		close(ch)
	}
}

// latest returns the last published value.
func (b *broadcaster[T]) latest() (T, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last, b.hasLast
}

// StoreConfiguration implements raft.ConfigurationStore: raft calls it when
// a configuration entry is committed. The FSM only signals it.
func (f *FSM) StoreConfiguration(index uint64, c raft.Configuration) {
	f.signalConfChanged()
}

// signalConfChanged tells the store a configuration entry was committed
// (raft hands them to ApplyBatch, or to StoreConfiguration without batching).
func (f *FSM) signalConfChanged() {
	select {
	case f.confChanged <- struct{}{}:
	default:
	}
}
