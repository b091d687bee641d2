// Package raftstore replicates lumos's state with Raft.
//
// A Store is one raft node: hashicorp/raft with raft-boltdb (DataDir/raft/
// raft.db) for the log and stable store, a file snapshot store
// (DataDir/raft/snapshots, three retained) and a TCP transport, or any
// raft.StreamLayer such as an encrypted one. Control nodes are voters;
// shields are non-voters that hold a full local copy of the state and are
// dialed by the leader, so their raft port must be reachable.
//
// The FSM wraps state.State: every committed command is decoded with
// state.DecodeCommand and applied with state.Apply at its log index, under a
// write lock. Apply is deterministic (times and IDs are stamped into the
// command by the proposer) and validates everything, so a bad command
// changes nothing and its *state.Error goes back to the proposer of
// Store.Apply unchanged. Snapshots are a deep copy taken under the read
// lock and encoded as versioned JSON while raft goes on applying.
//
// Reads are local: View runs a function under the read lock, Snapshot
// returns a copy, Watch announces every new state index. A follower's or
// shield's view may lag the leader; use Barrier on the leader when a read
// must include everything committed before it.
//
// Leadership: IsLeader and State tell the present; LeadershipChanges gives
// each subscriber the current value and every change of this node's
// leadership without ever blocking raft. Leader-only work should run under
// a context cancelled when false arrives, and still treat ErrNotLeader from
// Apply as the final word.
//
// Open does not bootstrap. A new cluster is started by calling Bootstrap on
// one node (with itself alone, or with the full initial configuration);
// other nodes are added by the leader with AddVoter or AddNonvoter.
// HasState tells whether a node is already part of a cluster.
package raftstore
