package raftstore

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestCommittedLogsReplayedAtOpen: a node that stops without a snapshot
// (as after a crash) has its committed entries back when Open returns,
// before any leader is elected — what a shield serves from when the
// control plane is unreachable.
func TestCommittedLogsReplayedAtOpen(t *testing.T) {
	cfg := testConfig("ctl-1", t.TempDir())
	s := open(t, cfg)
	addr := s.Addr()
	if err := s.Bootstrap(nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, s.IsLeader)
	// The bootstrap configuration entry is followed by a snapshot.
	waitFor(t, 5*time.Second, func() bool { return stat(s, "last_snapshot_index") >= 1 })

	var indexes []uint64
	for i := range 5 {
		apply(t, s, eventCmd(fmt.Sprintf("e%d", i)))
		indexes = append(indexes, s.fsm.Index())
	}
	s.noCloseSnapshot = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Reopen with an election timeout far beyond the test, so whatever
	// state shows up comes from the local replay, not from a leader.
	slow := *cfg
	slow.HeartbeatTimeout = time.Minute
	slow.ElectionTimeout = time.Minute
	slow.LeaderLeaseTimeout = 100 * time.Millisecond
	s = reopen(t, &slow, addr)
	defer closeStore(t, s)
	// Every entry the node applied counts as committed: all are back.
	want := indexes[len(indexes)-1]
	if !waitForCond(2*time.Second, func() bool { return s.fsm.Index() >= want }) {
		t.Fatalf("state index %d after open, want at least %d (entries %v)", s.fsm.Index(), want, indexes)
	}
	if s.IsLeader() || s.LastContact() != (time.Time{}) {
		t.Fatal("the node heard from a leader; the test proves nothing")
	}
	if n := stat(s, "fsm_restores"); n != 1 {
		t.Fatalf("restores %d, want 1 (the snapshot after bootstrap)", n)
	}
}
