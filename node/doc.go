// Package node wires lumos's roles into one process: the gossip mesh, the
// Raft store, the HTTP API on control nodes, and the shield role. A control
// node is a Raft voter that serves the API and, while it is the leader, runs
// leader-only work (adding control nodes as voters, removing decommissioned
// shields after their grace period, and the hook where the failover
// controller runs). A shield is a Raft non-voter admitted by the leader once
// its server token checks out; it keeps a full copy of the state on disk.
// One process may be both (lumos dev).
package node
