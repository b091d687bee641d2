// Package api is lumos's versioned HTTP/JSON API and its Go client.
//
// NewHandler serves the API of one control node on top of a Backend (the
// node: its replicated state, its gossip view and its raft instance). Every
// route lives under /v1 and needs the admin token as a bearer token, except
// GET /v1/health and POST /v1/join, where a shield's server token in the body
// is the credential (failed joins are rate-limited per client address).
//
// Reads are answered from the node's local copy of the replicated state.
// Writes are validated first — the command is built and dry-run on a clone of
// the state, so a bad request is answered with a stable error code and the
// field at fault and nothing is committed — and then committed through raft
// on the leader. A follower forwards writes unchanged to the leader, marking
// them with the X-Lumos-Forwarded header; a forwarded request that reaches a
// node which is not the leader either is refused with not_leader, so requests
// never loop.
//
// Errors are an ErrorBody carrying a stable code (invalid_argument,
// unauthorized, not_found, conflict, plan_limit, decommissioned, too_large,
// not_leader, unavailable, ...) mapped to an HTTP status.
//
// Client is what the lumos command line uses; its errors are *Error values
// carrying the same code, field and one-line message.
package api
