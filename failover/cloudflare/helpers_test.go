package cloudflare

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lumos-mesh/lumos/failover/cloudflare/cftest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testToken is long and distinctive so a leak is easy to spot.
const testToken = "lumos-test-token-Zq8vN3xK5pR7tW2y"

// syncBuffer is a bytes.Buffer safe for concurrent writes by slog.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type env struct {
	srv  *cftest.Server
	p    *Provider
	logs *syncBuffer
}

// newEnv starts a test API and a provider with a generous budget; mod
// adjusts the provider's Config.
func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	srv := cftest.New(testToken)
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	cfg := Config{
		Token:   testToken,
		BaseURL: srv.URL(),
		Timeout: 5 * time.Second,
		Rate:    1000,
		Burst:   1000,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return &env{srv: srv, p: p, logs: logs}
}

func (e *env) set(t *testing.T, domain, ip string, ttl int) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	changed, err := e.p.Set(ctx, domain, ip, ttl)
	if err != nil {
		t.Fatalf("Set(%s, %s, %d): %v", domain, ip, ttl, err)
	}
	return changed
}

func (e *env) trySet(domain, ip string, ttl int) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.p.Set(ctx, domain, ip, ttl)
}

// zoneQueries returns the name filters of the zone lookups received, in
// order.
func zoneQueries(srv *cftest.Server) []string {
	var out []string
	for _, r := range srv.Requests() {
		if r.Method == "GET" && r.Path == cftest.APIPath+"/zones" {
			out = append(out, r.Query)
		}
	}
	return out
}

// requireRecord fails unless the zone's A record for name has content and ttl.
func requireRecord(t *testing.T, srv *cftest.Server, zone, name, content string, ttl int) cftest.Record {
	t.Helper()
	r, ok := srv.Record(zone, name)
	if !ok {
		t.Fatalf("no A record %s in zone %s", name, zone)
	}
	if r.Content != content || r.TTL != ttl {
		t.Fatalf("record %s = %s ttl %d, want %s ttl %d", name, r.Content, r.TTL, content, ttl)
	}
	return r
}
