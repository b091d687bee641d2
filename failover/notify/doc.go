// Package notify delivers failover events to operators: webhooks (a signed
// JSON POST) and email (SMTP with STARTTLS required).
//
// The Raft leader runs a Dispatcher. For each configured Target it reads the
// committed event log in event-ID order, delivers the events whose type it
// is configured for, and records the last event ID handled for that target
// (its cursor) in the replicated state through Store.Ack. When leadership
// moves, the new leader's Dispatcher reads the same cursor and resumes where
// the old one stopped, so every event is delivered once per target.
//
// # Delivery guarantees
//
// Delivery is at least once at the edge: a leader that crashes (or loses
// leadership) after a target accepted an event but before the cursor was
// committed leaves the cursor one event behind, and the next leader delivers
// that event again. Every delivery therefore carries the event ID as an
// idempotency key — the X-Lumos-Event-Id header of a webhook, the
// X-Lumos-Event-Id header and the deterministic Message-ID of an email —
// and receivers that must not act twice should deduplicate on it.
//
// A failed delivery is retried, for the same event, with exponential backoff
// (MinBackoff doubling up to MaxBackoff, with jitter) until it succeeds or
// the Dispatcher stops; a failed event is never skipped. Each target has its
// own goroutine, so a slow or failing target delays neither the others nor
// failover itself, which never waits for notifications.
//
// A target seen for the first time starts at the newest event (it is not
// flooded with history). Events whose type is not configured are skipped,
// and the cursor moves past them in batched commits. Events trimmed from the
// replicated log before a target reached them are skipped with a warning.
//
// # Secrets
//
// Webhook secrets, SMTP passwords and the userinfo, path and query of
// webhook URLs (which often embed tokens) never appear in logs or errors:
// a webhook is named by its host and by a hash of its URL.
package notify
