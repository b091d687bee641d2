// Package failover is the leader-run failover controller: it turns gossip
// health into per-server verdicts (down at once, up only after a recovery
// hold, damped when flapping), decides per domain which shield is active
// (Decide, a pure function of the domain and the verdicts), commits each
// decision to the replicated log before any DNS is touched, and reconciles
// external DNS providers (Cloudflare) with the replicated desired record.
// The built-in DNS server (package builtindns) answers from the replicated
// state directly, so a committed decision is what it serves.
//
// Everything runs under the leader's context: a new leader starts from the
// replicated verdicts, decisions and DNS sync records, so it finishes what
// an old one began and repeats nothing that was committed.
//
// Subpackages: cloudflare (the Cloudflare provider and its API test
// server), builtindns (the authoritative DNS server), notify (webhook and
// email notifications with replicated delivery cursors).
package failover
