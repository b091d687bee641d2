package api

import (
	"net/netip"
	"sync"
	"time"
)

// Join rate limiting: each client may fail joinBurst times in a row, then
// once every joinRefill. An attempt takes a token and a successful one gives
// it back, so only failures drain the bucket and a shield with a good token
// is never slowed down.
const (
	joinBurst     = 10
	joinRefill    = 6 * time.Second
	joinMaxKeys   = 10000
	overflowKey   = "overflow"
	prunePeriod   = time.Minute
	ipv6KeyPrefix = 64
)

// failLimiter is a token bucket per client that only failures drain.
type failLimiter struct {
	burst float64
	every time.Duration

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastPrune time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newFailLimiter(burst int, every time.Duration) *failLimiter {
	return &failLimiter{burst: float64(burst), every: every, buckets: map[string]*bucket{}}
}

// limitKey reduces a client address to the key it is limited by: the
// address itself for IPv4, its /64 for IPv6 (a host usually owns a whole
// /64).
func limitKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, err := a.Prefix(ipv6KeyPrefix)
		if err == nil {
			return p.String()
		}
	}
	return a.String()
}

// refill brings b up to date at now.
func (l *failLimiter) refill(b *bucket, now time.Time) {
	if el := now.Sub(b.at); el > 0 {
		b.tokens += float64(el) / float64(l.every)
		if b.tokens > l.burst {
			b.tokens = l.burst
		}
		b.at = now
	}
}

// get returns the bucket of key, creating it full. Call with l.mu held.
func (l *failLimiter) get(key string, now time.Time) *bucket {
	if b, ok := l.buckets[key]; ok {
		l.refill(b, now)
		return b
	}
	if now.Sub(l.lastPrune) >= prunePeriod || len(l.buckets) >= joinMaxKeys {
		l.prune(now)
	}
	if len(l.buckets) >= joinMaxKeys {
		// Too many clients are failing at once: they share one bucket.
		key = overflowKey
		if b, ok := l.buckets[key]; ok {
			l.refill(b, now)
			return b
		}
	}
	b := &bucket{tokens: l.burst, at: now}
	l.buckets[key] = b
	return b
}

// prune forgets buckets that have refilled completely. Call with l.mu held.
func (l *failLimiter) prune(now time.Time) {
	l.lastPrune = now
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// take spends a token of client ip for one attempt. When none is left it
// reports false and how long until one is.
func (l *failLimiter) take(ip string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(limitKey(ip), now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(l.every))
}

// refund gives back the token of an attempt that succeeded (or failed for a
// reason that is not the client's).
func (l *failLimiter) refund(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(limitKey(ip), now)
	b.tokens++
	if b.tokens > l.burst {
		b.tokens = l.burst
	}
}
