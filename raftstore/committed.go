package raftstore

import (
	"errors"
	"sync"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// keyCommitIndex is where the last known commit index is kept in the
// stable store.
var keyCommitIndex = []byte("lumos_commit_index")

// commitTracking makes the log store a raft.CommitTrackingLogStore, so that
// with Config.RestoreCommittedLogs a restarted node replays the entries it
// knows were committed before NewRaft returns. Without it a node's state is
// empty (or at its last snapshot) until a leader contacts it — and a shield
// must keep its full copy when the control plane is unreachable.
//
// Raft stages the commit index just before it stores new entries; the value
// is written to the stable store right after those entries are. It is
// always an index that was committed, so replaying up to it is safe even if
// a crash loses the write (the node then replays a little less).
//
// raft v1.8.0 does not rebuild its membership from configuration entries it
// replays this way (it scans for them only after the replayed range), so
// GetCommitIndex stops short of the first configuration entry after the
// snapshot: that entry and everything after it are then handled the usual
// way, once a leader confirms the commit index.
type commitTracking struct {
	raft.LogStore
	stable *raftboltdb.BoltStore
	// floor is the index of the snapshot raft restores at open.
	floor uint64

	mu     sync.Mutex
	staged uint64
	saved  uint64
}

var _ raft.CommitTrackingLogStore = (*commitTracking)(nil)

func newCommitTracking(logs raft.LogStore, stable *raftboltdb.BoltStore) *commitTracking {
	return &commitTracking{LogStore: logs, stable: stable}
}

// StageCommitIndex implements raft.CommitTrackingLogStore.
func (c *commitTracking) StageCommitIndex(idx uint64) error {
	c.mu.Lock()
	if idx > c.staged {
		c.staged = idx
	}
	c.mu.Unlock()
	return nil
}

// GetCommitIndex implements raft.CommitTrackingLogStore.
func (c *commitTracking) GetCommitIndex() (uint64, error) {
	v, err := c.stable.GetUint64(keyCommitIndex)
	if errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	last, err := c.LastIndex()
	if err != nil {
		return 0, err
	}
	v = min(v, last)
	first, err := c.FirstIndex()
	if err != nil {
		return 0, err
	}
	for i := max(c.floor+1, first); i <= v; i++ {
		var l raft.Log
		if err := c.GetLog(i, &l); err != nil {
			return i - 1, nil
		}
		if l.Type == raft.LogConfiguration {
			return i - 1, nil
		}
	}
	return v, nil
}

// StoreLog implements raft.LogStore.
func (c *commitTracking) StoreLog(l *raft.Log) error {
	if err := c.LogStore.StoreLog(l); err != nil {
		return err
	}
	return c.persist()
}

// StoreLogs implements raft.LogStore.
func (c *commitTracking) StoreLogs(logs []*raft.Log) error {
	if err := c.LogStore.StoreLogs(logs); err != nil {
		return err
	}
	return c.persist()
}

// noteApplied records that the FSM applied idx, which is therefore
// committed. Raft stages a commit index only when new entries arrive, so
// without this the last entries before a quiet period would not count as
// committed at the next open.
func (c *commitTracking) noteApplied(idx uint64) error {
	if err := c.StageCommitIndex(idx); err != nil {
		return err
	}
	return c.persist()
}

func (c *commitTracking) persist() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.staged <= c.saved {
		return nil
	}
	if err := c.stable.SetUint64(keyCommitIndex, c.staged); err != nil {
		return err
	}
	c.saved = c.staged
	return nil
}
