// Package cloudflare is the Cloudflare DNS provider of the failover
// controller: Set points a domain's A record at the shield that should
// serve it, through the Cloudflare API v4 (github.com/cloudflare/cloudflare-go).
//
// # Calls
//
// The provider never polls. It caches, per domain, the zone ID and the A
// record (ID, content, TTL, proxied flag) it last read or wrote, so a Set
// that would change nothing returns changed=false without any API call.
// The first Set of a domain costs a zone lookup per candidate name (the
// domain, then its parent, down to two labels: a.b.example.com,
// b.example.com, example.com; misses are remembered for a minute), one
// record list and at most one write: a POST when the domain has no A
// record (created unproxied), else a PATCH of content and TTL that keeps
// the proxied flag (a proxied record's TTL is 1, automatic). When several
// A records share the name the first is managed and a warning is logged.
// A failed call drops the domain's cached record, so the next Set reads it
// again; Forget drops everything (on a leadership change, say).
//
// # Limits
//
// Cloudflare allows 1200 requests per 5 minutes per user and blocks every
// call for 5 minutes beyond that. Every API call therefore draws from the
// provider's own token bucket (default 1 call/s, burst 20: a quarter of the
// limit), and waiting for it respects the caller's context. cloudflare-go's
// built-in limiter (4 req/s) is switched off and its retry loop — which
// sleeps seconds on 429 and 5xx, ignores Retry-After and hides the status —
// is set to zero retries, so Set returns promptly and the caller retries
// with its own backoff. Each call runs under the caller's context with the
// Config.Timeout deadline.
//
// # Errors
//
// Failures are classified so the caller can pick a backoff: ErrAuth (401,
// 403), ErrRateLimited (429; RetryAfter gives the server's hint),
// ErrZoneNotFound, ErrUnavailable (5xx, network errors, timeouts) and
// ErrRejected (other 4xx). The API token is never logged and never appears
// in an error.
//
// Package cftest holds a test server speaking the same API.
package cloudflare
