package cloudflare

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Errors returned by this package; match them with errors.Is. The API
// classes (ErrAuth, ErrRateLimited, ErrZoneNotFound, ErrUnavailable,
// ErrRejected) tell the caller how to back off; an *APIError carries the
// details (HTTP status, Cloudflare error codes, Retry-After).
var (
	// ErrInvalidConfig reports a Config that New refuses.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrInvalidInput reports a domain, IP or TTL that Set refuses before
	// calling the API.
	ErrInvalidInput = errors.New("invalid input")
	// ErrAuth reports an API token that is wrong, expired or lacks a
	// permission (HTTP 401 or 403). Retrying will not help until the token
	// is fixed.
	ErrAuth = errors.New("authentication failed")
	// ErrRateLimited reports HTTP 429 from the API, or a request budget that
	// could not grant a call before the caller's deadline. Back off (see
	// RetryAfter); Cloudflare blocks every call of a user for five minutes
	// once its limit is exceeded.
	ErrRateLimited = errors.New("rate limited")
	// ErrZoneNotFound reports that no zone the token can see holds the
	// domain, or that the zone disappeared.
	ErrZoneNotFound = errors.New("zone not found")
	// ErrUnavailable reports a 5xx answer, a network error, a timeout or an
	// answer that could not be understood. Retry with backoff.
	ErrUnavailable = errors.New("api unavailable")
	// ErrRejected reports any other 4xx answer: the API refused the request
	// as invalid, so retrying it unchanged will not help.
	ErrRejected = errors.New("request rejected")
	// ErrClosed reports a call on a closed Provider.
	ErrClosed = errors.New("provider closed")
)

// errRecordGone marks a 404 on a record: it was deleted behind our back.
var errRecordGone = errors.New("record not found")

// APIError describes a failed API call. errors.Is matches its Kind.
type APIError struct {
	// Kind is the class: ErrAuth, ErrRateLimited, ErrZoneNotFound,
	// ErrUnavailable or ErrRejected.
	Kind error
	// Status is the HTTP status; 0 when no answer arrived.
	Status int
	// Codes are Cloudflare's error codes from the answer, if any.
	Codes []int
	// RetryAfter is the server's Retry-After hint; 0 when it sent none.
	RetryAfter time.Duration
	// detail is a short description with any secret removed.
	detail string
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if e.Status != 0 {
		fmt.Fprintf(&b, " (http %d", e.Status)
		if t := http.StatusText(e.Status); t != "" {
			b.WriteString(" " + strings.ToLower(t))
		}
		b.WriteString(")")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.detail != "" {
		b.WriteString(": " + e.detail)
	}
	return b.String()
}

// Unwrap returns Kind, so errors.Is(err, ErrRateLimited) and friends work.
func (e *APIError) Unwrap() error { return e.Kind }

// RetryAfter returns the Retry-After hint carried by err (an API answer of
// 429 or 503 usually has one) and whether there was one.
func RetryAfter(err error) (time.Duration, bool) {
	var e *APIError
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}
