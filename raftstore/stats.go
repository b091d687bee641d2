package raftstore

import (
	"strings"
	"time"
)

// Raft states as RaftStats.State names them.
const (
	StateLeader    = "leader"
	StateFollower  = "follower"
	StateCandidate = "candidate"
	StateShutdown  = "shutdown"
)

// RaftStates lists every value RaftStats.State can take, for metrics that
// export one series per state.
var RaftStates = []string{StateLeader, StateFollower, StateCandidate, StateShutdown}

// RaftStats is a read-only, point-in-time view of this node's Raft figures
// (for metrics and dashboards). Each figure is read on its own, so two
// figures may come from slightly different moments.
type RaftStats struct {
	// State is one of StateLeader, StateFollower, StateCandidate,
	// StateShutdown.
	State string
	// Term is the current term.
	Term uint64
	// LastIndex is the index of the last entry in the log or snapshot.
	LastIndex uint64
	// CommitIndex is the highest index known to be committed.
	CommitIndex uint64
	// AppliedIndex is the last index handed to the FSM (see
	// Store.AppliedIndex).
	AppliedIndex uint64
	// FSMIndex is the state's Index: the last command applied to it.
	FSMIndex uint64
	// LastContact is when this node last heard from the leader (zero if
	// never; see Store.LastContact).
	LastContact time.Time
	// LeaderID and LeaderAddr name the leader this node knows ("" if none).
	LeaderID   string
	LeaderAddr string
}

// Term returns the current Raft term.
func (s *Store) Term() uint64 { return s.raft.CurrentTerm() }

// CommitIndex returns the highest log index known to be committed.
func (s *Store) CommitIndex() uint64 { return s.raft.CommitIndex() }

// LastIndex returns the index of the last entry in the log or the last
// snapshot.
func (s *Store) LastIndex() uint64 { return s.raft.LastIndex() }

// StateName returns the node's Raft state in lower case: one of
// StateLeader, StateFollower, StateCandidate, StateShutdown.
func (s *Store) StateName() string { return strings.ToLower(s.raft.State().String()) }

// RaftStats returns the node's Raft figures. It never blocks on Raft's main
// loop, so it is cheap enough for every metrics scrape.
func (s *Store) RaftStats() RaftStats {
	addr, id := s.Leader()
	return RaftStats{
		State:        s.StateName(),
		Term:         s.Term(),
		LastIndex:    s.LastIndex(),
		CommitIndex:  s.CommitIndex(),
		AppliedIndex: s.AppliedIndex(),
		FSMIndex:     s.fsm.Index(),
		LastContact:  s.LastContact(),
		LeaderID:     id,
		LeaderAddr:   addr,
	}
}
