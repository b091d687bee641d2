// Package dashboard is lumos's read-only web dashboard, served by control
// nodes next to the API.
//
// New returns an http.Handler that renders, on the server and with
// html/template, what the CLI shows: an overview of the cluster (Raft
// leader and control nodes, shields by status, failed-over domains, recent
// events), servers and domains with their details, and the event log. It
// reads a Source — the node's replicated state, its gossip view and its Raft
// status — and builds servers and domains with the API's own view builders
// (api.ServerView, api.DomainView, api.FillStatus), so both always agree.
//
// The dashboard changes nothing: it serves GET and HEAD only (anything else
// is 405) and has no forms. Every request needs the admin token or one of
// the read-only tokens, as a bearer token or as the password of HTTP Basic
// authentication; only their SHA-256 hashes are configured and compared, in
// constant time. Token hashes and secrets are never rendered.
//
// Pages carry a strict Content-Security-Policy: styles and the small script
// that refreshes the page every few seconds (paused while the tab is
// hidden) are embedded static files; no inline script, no CDN, no build
// step.
//
// Mount the handler without a method in the pattern, at both the prefix and
// the prefix with a trailing slash, so it answers every method itself:
//
//	h, err := dashboard.New(dashboard.Config{Source: n, AdminTokenHash: hash})
//	mux.Handle("/ui", h)
//	mux.Handle("/ui/", h)
package dashboard
