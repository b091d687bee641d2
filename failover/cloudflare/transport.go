package cloudflare

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// maxErrorBody bounds how much of a 429 or 5xx body is kept.
const maxErrorBody = 64 << 10

// observation is what the transport saw of one provider call: cloudflare-go
// turns 429 and 5xx answers into plain errors without the status, so the
// provider classifies failures from this instead.
type observation struct {
	mu         sync.Mutex
	requests   int
	status     int
	retryAfter time.Duration
}

type observationKey struct{}

func withObservation(ctx context.Context, o *observation) context.Context {
	return context.WithValue(ctx, observationKey{}, o)
}

func (o *observation) result() (status int, retryAfter time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.status, o.retryAfter
}

// transport records statuses into the call's observation, charges the
// request budget for any request of a call beyond the first (the provider
// charges the first before it starts the call's deadline), and buffers
// 429/5xx bodies so the connection is released even though cloudflare-go
// never closes them on that path.
type transport struct {
	base   http.RoundTripper
	budget func(ctx context.Context) error
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	obs, _ := req.Context().Value(observationKey{}).(*observation)
	if obs != nil {
		obs.mu.Lock()
		obs.requests++
		extra := obs.requests > 1
		obs.mu.Unlock()
		if extra {
			if err := t.budget(req.Context()); err != nil {
				if req.Body != nil {
					_ = req.Body.Close()
				}
				return nil, err
			}
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if obs != nil {
		ra := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		obs.mu.Lock()
		obs.status, obs.retryAfter = resp.StatusCode, ra
		obs.mu.Unlock()
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	return resp, nil
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}
