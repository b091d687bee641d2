package mesh

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// This file holds the memberlist callbacks. memberlist calls the event
// delegate while holding its own node lock, so the callbacks only update the
// member table and queue events; they never block and never call back into
// memberlist.

// User message types carried by memberlist's gossip (first byte).
const (
	msgLeaveIntent byte = 1 // followed by the name of the node about to leave
)

// pushPullVersion is the first byte of the LocalState payload.
const pushPullVersion byte = 1

// pushPullState is exchanged in memberlist's periodic push/pull so that a
// node that missed a leave intent still learns that a departure was a leave.
type pushPullState struct {
	Left []string `json:"left,omitempty"` // recently departed members that left cleanly
}

// eventDelegate implements memberlist.EventDelegate.
type eventDelegate Mesh

func (d *eventDelegate) NotifyJoin(n *memberlist.Node)   { (*Mesh)(d).onJoin(n) }
func (d *eventDelegate) NotifyLeave(n *memberlist.Node)  { (*Mesh)(d).onDepart(n) }
func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) { (*Mesh)(d).onUpdate(n) }

func (m *Mesh) onJoin(n *memberlist.Node) {
	now := time.Now()
	meta := m.nodeMeta(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.members[n.Name]
	if e == nil {
		e = &memberEntry{}
		m.members[n.Name] = e
	}
	m.releaseDeadLocked(e) // a held EventDead comes before the rejoin
	e.leaving = false      // a new life: an old intent no longer applies
	e.member = Member{
		Name:     n.Name,
		Addr:     n.Addr.String(),
		Port:     int(n.Port),
		State:    StateAlive,
		Meta:     meta,
		LastSeen: now,
		Since:    now,
	}
	m.emitLocked(EventJoin, e.member, now)
}

func (m *Mesh) onUpdate(n *memberlist.Node) {
	now := time.Now()
	meta := m.nodeMeta(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.members[n.Name]
	if e == nil { // forgotten meanwhile: treat as a join
		e = &memberEntry{member: Member{Name: n.Name, State: StateAlive, Since: now}}
		m.members[n.Name] = e
	}
	e.member.Addr = n.Addr.String()
	e.member.Port = int(n.Port)
	e.member.Meta = meta
	e.member.LastSeen = now
	m.emitLocked(EventUpdate, e.member, now)
}

func (m *Mesh) onDepart(n *memberlist.Node) {
	now := time.Now()
	meta := m.nodeMeta(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.members[n.Name]
	if e == nil {
		e = &memberEntry{member: Member{Name: n.Name}}
		m.members[n.Name] = e
	}
	// memberlist v0.7.0 leaves Node.State at its zero value here (the state
	// lives in its private nodeState); the check keeps working should a
	// later version fill it in.
	state := StateDead
	if e.leaving || n.State == memberlist.StateLeft {
		state = StateLeft
	}
	e.member.Addr = n.Addr.String()
	e.member.Port = int(n.Port)
	e.member.Meta = meta
	e.member.State = state
	e.member.LastSeen = now
	e.member.Since = now
	if state == StateLeft {
		m.emitLocked(EventLeave, e.member, now)
	} else {
		m.deferDeadLocked(e, now)
	}
	m.logger.Debug("member departed", "member", n.Name, "state", state)
}

// nodeMeta decodes a node's gossiped metadata; undecodable metadata is
// logged and read as the zero Meta.
func (m *Mesh) nodeMeta(n *memberlist.Node) Meta {
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		m.logger.Warn("ignoring undecodable member metadata", "member", n.Name, "err", err)
	}
	return meta
}

// learnLeft records that the named member announced a clean leave. A member
// still alive is marked as leaving (its departure will be reported as
// EventLeave); a member whose EventDead is still held is reported with
// EventLeave instead; a member already reported dead within departWindow is
// reclassified as left with an EventLeave. It reports whether anything
// changed, which is when an intent is worth gossiping further.
func (m *Mesh) learnLeft(name string) bool {
	if name == "" || name == m.name {
		return false
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[name]
	if !ok {
		return false
	}
	switch e.member.State {
	case StateAlive, StateSuspect:
		if e.leaving {
			return false
		}
		e.leaving = true
		m.logger.Debug("member announced leave", "member", name)
		return true
	case StateDead:
		held := e.pendingDead != nil
		if !held && now.Sub(e.member.Since) > m.departWindow {
			return false
		}
		m.dropDeadLocked(e)
		e.leaving = true
		e.member.State = StateLeft
		m.emitLocked(EventLeave, e.member, now)
		if held {
			m.logger.Debug("member departed after announcing leave", "member", name)
		} else {
			m.logger.Debug("member reported dead had left", "member", name)
		}
		return true
	default:
		return false
	}
}

// delegate implements memberlist.Delegate.
type delegate Mesh

// NodeMeta returns the encoded local metadata. UpdateMeta and New only store
// encodings that fit MetaMaxSize, which is the limit memberlist passes.
func (d *delegate) NodeMeta(limit int) []byte {
	m := (*Mesh)(d)
	m.metaMu.RLock()
	b := m.metaBytes
	m.metaMu.RUnlock()
	if len(b) > limit {
		m.logger.Error("local metadata exceeds memberlist limit", "size", len(b), "limit", limit)
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg(b []byte) {
	m := (*Mesh)(d)
	if len(b) == 0 {
		return
	}
	switch b[0] {
	case msgLeaveIntent:
		name := string(b[1:])
		if m.learnLeft(name) {
			m.broadcasts.QueueBroadcast(newIntentBroadcast(name, nil))
		}
	default:
		m.logger.Debug("ignoring unknown gossip message", "type", b[0], "size", len(b))
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.broadcasts.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte {
	m := (*Mesh)(d)
	now := time.Now()
	var st pushPullState
	m.mu.Lock()
	for name, e := range m.members {
		if e.member.State == StateLeft && now.Sub(e.member.Since) <= m.departWindow {
			st.Left = append(st.Left, name)
		}
	}
	m.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		return nil
	}
	return append([]byte{pushPullVersion}, b...)
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	m := (*Mesh)(d)
	if len(buf) == 0 {
		return
	}
	if buf[0] != pushPullVersion {
		m.logger.Debug("ignoring push/pull state of unknown version", "version", buf[0])
		return
	}
	var st pushPullState
	if err := json.Unmarshal(buf[1:], &st); err != nil {
		m.logger.Warn("ignoring undecodable push/pull state", "err", err)
		return
	}
	for _, name := range st.Left {
		m.learnLeft(name)
	}
}

// intentBroadcast gossips that a node is about to leave.
type intentBroadcast struct {
	name string
	msg  []byte
	done chan struct{} // closed by Finished; may be nil
	once sync.Once
}

var _ memberlist.NamedBroadcast = (*intentBroadcast)(nil)

func newIntentBroadcast(name string, done chan struct{}) *intentBroadcast {
	msg := make([]byte, 0, 1+len(name))
	msg = append(msg, msgLeaveIntent)
	msg = append(msg, name...)
	return &intentBroadcast{name: name, msg: msg, done: done}
}

func (b *intentBroadcast) Name() string    { return "leave-intent:" + b.name }
func (b *intentBroadcast) Message() []byte { return b.msg }

func (b *intentBroadcast) Invalidates(other memberlist.Broadcast) bool {
	nb, ok := other.(memberlist.NamedBroadcast)
	return ok && nb.Name() == b.Name()
}

func (b *intentBroadcast) Finished() {
	b.once.Do(func() {
		if b.done != nil {
			close(b.done)
		}
	})
}
