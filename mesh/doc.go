// Package mesh is the gossip layer of lumos: every control node and every
// shield runs one Mesh, which uses hashicorp/memberlist (SWIM with Lifeguard)
// to learn which nodes are alive and to spread a small metadata record per
// node (Meta: roles, addresses, raft applied index, HAProxy config hash and
// health).
//
// # Lifecycle
//
// New validates the Config, binds the gossip port (TCP and UDP) and starts
// one internal goroutine that hands events to subscribers. Join contacts
// existing members. Leave broadcasts a graceful departure; Close shuts the
// memberlist down without leaving (peers then detect the node as dead),
// stops the internal goroutine and closes every subscriber channel. Close is
// safe to call twice.
//
// # Member table and events
//
// The Mesh keeps its own table of every member it has seen, including ones
// that died or left, until ForgetMember drops them. The local node is part of
// the table. Subscribe returns a channel that receives every Event in order:
// EventJoin, EventUpdate (metadata changed), EventDead (failure detected) and
// EventLeave (graceful leave). Events about the local node are delivered too
// (for example an EventUpdate after UpdateMeta).
//
// A subscriber that does not keep up never blocks gossip: when its buffer
// (Config.EventBuffer) is full, the OLDEST queued event is dropped to make
// room for the newest one, and Dropped counts every such drop. A subscriber
// that sees drops should resynchronise from Members.
//
// # Dead versus left
//
// memberlist does not report whether a departed node failed or left: the
// Node handed to the event delegate carries no usable state. Leave therefore
// first gossips a leave intent for the local node and only then calls
// memberlist's Leave; a member that departs after announcing its intent is
// reported with EventLeave and StateLeft, any other departure with EventDead
// and StateDead.
//
// memberlist counts a message as sent when it hands it to the transport, so
// the two messages can still arrive in either order. Leave pauses two gossip
// intervals after the intent and again after memberlist's leave message (so
// that it goes out before the caller's Close), and a receiver holds an
// EventDead for three gossip intervals: an intent arriving meanwhile turns
// it into an EventLeave. During that grace Members already shows the member
// dead. Intents are re-gossiped by every receiver, and the names of recently
// departed members travel in memberlist's push/pull state, so a node that
// learns of the intent only after the grace emits EventLeave for a member it
// already reported dead. Consumers should treat the latest event for a
// member as authoritative.
//
// memberlist does not expose suspicion either; Member.State is therefore
// StateAlive, StateDead or StateLeft, and StateSuspect is reserved.
//
// # Security
//
// Gossip is encrypted and authenticated with a 32-byte AES-256-GCM key
// (Config.SecretKey); plaintext is only accepted with Config.AllowPlaintext.
// Keys rotate with InstallKey on every node, then UseKey on every node, then
// RemoveKey of the old key on every node; the Mesh changes only its own
// keyring, the caller orchestrates the rotation across nodes.
//
// # Timing profiles
//
// Config.Profile picks memberlist timings: "lan" (default; probe 500 ms,
// probe timeout 250 ms, gossip 100 ms), "wan" (memberlist's WAN defaults,
// for shields spread over the internet) and "local" (probe 200 ms, probe
// timeout 100 ms, gossip 50 ms; for tests and development on one machine).
// The probe timeout must stay above the real round-trip time between nodes.
package mesh
