package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

// hookRequest is what a test webhook receiver saw.
type hookRequest struct {
	header http.Header
	body   []byte
	id     uint64
}

// hookServer is a real HTTP receiver; respond picks the status for the
// n-th request (1-based).
type hookServer struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []hookRequest
	ok      []uint64 // event IDs answered 2xx, in order
	respond func(n int, r *http.Request) int
}

func newHookServer(t *testing.T, respond func(n int, r *http.Request) int) *hookServer {
	t.Helper()
	h := &hookServer{respond: respond}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		id, _ := strconv.ParseUint(r.Header.Get(HeaderEventID), 10, 64)
		h.mu.Lock()
		h.reqs = append(h.reqs, hookRequest{header: r.Header.Clone(), body: body, id: id})
		n := len(h.reqs)
		h.mu.Unlock()
		code := http.StatusNoContent
		if h.respond != nil {
			code = h.respond(n, r)
		}
		if code >= 200 && code < 300 {
			h.mu.Lock()
			h.ok = append(h.ok, id)
			h.mu.Unlock()
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, strings.Repeat("x", 64<<10)) // more than is drained
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reqs)
}

func (h *hookServer) delivered() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ok)
}

// testClient is an HTTP client whose idle connections are closed at the end
// of the test.
func testClient(t *testing.T) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func mustWebhook(t *testing.T, cfg WebhookConfig) Target {
	t.Helper()
	if cfg.Client == nil {
		cfg.Client = testClient(t)
	}
	w, err := NewWebhook(cfg)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	return w
}

type namesMap map[string]string

func (n namesMap) ServerName(id string) string { return n[id] }

func TestWebhookBodyHeadersAndSignature(t *testing.T) {
	srv := newHookServer(t, nil)
	secret := []byte("hook-secret-value")
	w := mustWebhook(t, WebhookConfig{URL: srv.URL + "/hooks/lumos?token=abc", Secret: secret})
	if w.Kind() != KindWebhook || !strings.HasPrefix(w.ID(), "webhook:") || len(w.ID()) != len("webhook:")+16 {
		t.Fatalf("kind %q id %q", w.Kind(), w.ID())
	}
	ev := state.Event{
		ID: 42, Time: time.Date(2025, 3, 1, 12, 30, 5, 123, time.FixedZone("x", 3600)),
		Type: "failover_triggered", Domain: "shop.example.com", ServerID: "s1",
		FromIP: "203.0.113.10", ToIP: "198.51.100.7", Reason: "server_down", Message: "moved",
	}
	if err := w.Deliver(context.Background(), ev, namesMap{"s1": "edge-1"}); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	for k, want := range map[string]string{
		"Content-Type":    "application/json",
		"User-Agent":      "lumos",
		HeaderEvent:       "failover_triggered",
		HeaderEventID:     "42",
		HeaderSignature:   Sign(secret, r.body),
		"X-Lumos-Missing": "",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if !Verify(secret, r.body, r.header.Get(HeaderSignature)) {
		t.Error("signature does not verify")
	}
	if Verify([]byte("other"), r.body, r.header.Get(HeaderSignature)) {
		t.Error("signature verifies under another secret")
	}
	if Verify(secret, append(r.body, ' '), r.header.Get(HeaderSignature)) {
		t.Error("signature verifies for another body")
	}
	var got map[string]any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("body: %v", err)
	}
	want := map[string]any{
		"id": float64(42), "type": "failover_triggered", "time": "2025-03-01T11:30:05Z",
		"domain": "shop.example.com", "server_id": "s1", "server_name": "edge-1",
		"from_ip": "203.0.113.10", "to_ip": "198.51.100.7", "reason": "server_down", "message": "moved",
	}
	if len(got) != len(want) {
		t.Errorf("body fields %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("body %s = %v, want %v", k, got[k], v)
		}
	}
}

func TestWebhookOmitsEmptyFieldsAndUnsigned(t *testing.T) {
	srv := newHookServer(t, nil)
	w := mustWebhook(t, WebhookConfig{URL: srv.URL})
	if err := w.Deliver(context.Background(), state.Event{ID: 7, Type: "server_down", ServerID: "s9"}, nil); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	r := srv.requests()[0]
	if h := r.header.Get(HeaderSignature); h != "" {
		t.Errorf("signature %q sent without a secret", h)
	}
	var got map[string]any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["id"] != float64(7) || got["type"] != "server_down" || got["server_id"] != "s9" {
		t.Errorf("body = %s", r.body)
	}
}

func TestSignVerify(t *testing.T) {
	secret, body := []byte("k"), []byte(`{"id":1}`)
	sig := Sign(secret, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("Sign = %q", sig)
	}
	for _, bad := range []string{"", "sha256=", "sha1=" + sig[7:], sig[:len(sig)-1], sig[:len(sig)-2] + "zz"} {
		if Verify(secret, body, bad) {
			t.Errorf("Verify(%q) = true", bad)
		}
	}
	if Verify(nil, body, Sign(nil, body)) {
		t.Error("Verify with an empty secret = true")
	}
	if !Verify(secret, body, " "+sig) {
		t.Error("Verify does not trim spaces")
	}
}

func TestNewWebhookValidation(t *testing.T) {
	for _, u := range []string{
		"", "example.com/hook", "ftp://example.com/hook", "http://", "https:///path?token=sekrit",
		"http://[::1", "mailto:ops@example.com",
	} {
		_, err := NewWebhook(WebhookConfig{URL: u})
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewWebhook(%q) = %v, want ErrInvalidConfig", u, err)
			continue
		}
		if strings.Contains(err.Error(), "sekrit") {
			t.Errorf("error leaks the URL: %v", err)
		}
	}
	if _, err := NewWebhook(WebhookConfig{URL: "https://example.com/x", Timeout: -time.Second}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("negative timeout: %v", err)
	}
	a, _ := NewWebhook(WebhookConfig{URL: "https://example.com/a"})
	b, _ := NewWebhook(WebhookConfig{URL: "https://example.com/b"})
	a2, _ := NewWebhook(WebhookConfig{URL: "https://example.com/a", Secret: []byte("s")})
	if a.ID() == b.ID() || a.ID() != a2.ID() {
		t.Errorf("ids a=%s b=%s a2=%s: want stable per URL", a.ID(), b.ID(), a2.ID())
	}
}

func TestWebhookErrorsHideURLSecrets(t *testing.T) {
	srv := newHookServer(t, func(int, *http.Request) int { return http.StatusBadGateway })
	secretURL := strings.Replace(srv.URL, "http://", "http://user:pa55word@", 1) + "/p/PATHSECRET?token=QUERYSECRET"
	w := mustWebhook(t, WebhookConfig{URL: secretURL, Secret: []byte("HMACSECRET")})
	err := w.Deliver(context.Background(), state.Event{ID: 1, Type: "server_down"}, nil)
	if !errors.Is(err, ErrStatus) || !strings.Contains(err.Error(), "502") {
		t.Fatalf("err = %v, want a 502 status error", err)
	}
	assertNoSecrets(t, err.Error(), "pa55word", "PATHSECRET", "QUERYSECRET", "HMACSECRET")

	// A network error: nothing listens on the port any more.
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	var logs logBuffer
	dead := mustWebhook(t, WebhookConfig{URL: "http://user:pa55word@" + addr + "/p/PATHSECRET?token=QUERYSECRET", Secret: []byte("HMACSECRET")})
	err = dead.Deliver(context.Background(), state.Event{ID: 1, Type: "server_down"}, nil)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("err = %v, want a network error naming the host", err)
	}
	assertNoSecrets(t, err.Error(), "pa55word", "PATHSECRET", "QUERYSECRET", "HMACSECRET")

	// Through the dispatcher: the warning names the host only.
	s := newFakeStore()
	s.setCursor(dead.ID(), 0)
	s.addTypes("server_down")
	cfg := fastConfig(s, dead)
	cfg.Logger = logs.logger()
	runDispatcher(t, mustDispatcher(t, cfg))
	eventually(t, 5*time.Second, "failure logged", func() bool {
		return strings.Contains(logs.String(), "delivery failed")
	})
	assertNoSecrets(t, logs.String(), "pa55word", "PATHSECRET", "QUERYSECRET", "HMACSECRET")
}

func assertNoSecrets(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			t.Errorf("%q leaks %q", s, sec)
		}
	}
}

func TestWebhookRedirectNotFollowed(t *testing.T) {
	target := newHookServer(t, nil)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	w, err := NewWebhook(WebhookConfig{URL: redirect.URL}) // default client
	if err != nil {
		t.Fatal(err)
	}
	err = w.Deliver(context.Background(), state.Event{ID: 1, Type: "server_down"}, nil)
	if !errors.Is(err, ErrStatus) {
		t.Fatalf("err = %v, want ErrStatus for a redirect", err)
	}
	if n := len(target.requests()); n != 0 {
		t.Fatalf("redirect followed: %d requests at its target", n)
	}
}

func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	w := mustWebhook(t, WebhookConfig{URL: srv.URL, Timeout: 100 * time.Millisecond})
	start := time.Now()
	err := w.Deliver(context.Background(), state.Event{ID: 1, Type: "server_down"}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("took %s with a 100ms timeout", el)
	}
}

func TestWebhookRetriesAfterServerErrors(t *testing.T) {
	srv := newHookServer(t, func(n int, _ *http.Request) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	s := newFakeStore()
	w := mustWebhook(t, WebhookConfig{URL: srv.URL})
	s.setCursor(w.ID(), 0)
	s.addTypes("server_down", "failover_triggered", "server_recovered")
	var mu sync.Mutex
	var results []bool
	cfg := fastConfig(s, w)
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, time.Second
	cfg.OnResult = func(_, kind string, ok bool) {
		mu.Lock()
		results = append(results, ok)
		mu.Unlock()
	}
	runDispatcher(t, mustDispatcher(t, cfg))
	eventually(t, 5*time.Second, "cursor at 3", s.cursorIs(w.ID(), 3))

	reqs := srv.requests()
	var ids []uint64
	for _, r := range reqs {
		ids = append(ids, r.id)
	}
	if !slices.Equal(ids, []uint64{1, 1, 1, 1, 2, 3}) {
		t.Fatalf("requests for events %v, want event 1 retried after three 500s", ids)
	}
	if got := srv.delivered(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("delivered %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(results, []bool{false, false, false, true, true, true}) {
		t.Fatalf("OnResult = %v", results)
	}
}

func TestWebhookOrderingKeptUnderFailures(t *testing.T) {
	srv := newHookServer(t, func(n int, _ *http.Request) int {
		if n%3 == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusAccepted
	})
	s := newFakeStore()
	w := mustWebhook(t, WebhookConfig{URL: srv.URL, Secret: []byte("k")})
	s.setCursor(w.ID(), 0)
	runDispatcher(t, mustDispatcher(t, fastConfig(s, w)))

	var want []uint64
	for round := range 4 {
		ids := s.addTypes("server_down", "domain_added", "failover_triggered", "failover_recovered", "plan_changed")
		want = append(want, ids[0], ids[2], ids[3])
		if round%2 == 0 {
			eventually(t, 5*time.Second, "round delivered", s.cursorIs(w.ID(), ids[len(ids)-1]))
		}
	}
	eventually(t, 10*time.Second, "all delivered", s.cursorIs(w.ID(), 20))
	if got := srv.delivered(); !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v in order", got, want)
	}
	for _, r := range srv.requests() {
		if !Verify([]byte("k"), r.body, r.header.Get(HeaderSignature)) {
			t.Fatalf("event %d: bad signature", r.id)
		}
	}
}

func TestWebhookSlowAndFailingTargetsDoNotDelayHealthyOne(t *testing.T) {
	release := make(chan struct{})
	slowSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slowSrv.Close)
	t.Cleanup(func() { close(release) })
	failSrv := newHookServer(t, func(int, *http.Request) int { return http.StatusInternalServerError })
	okSrv := newHookServer(t, nil)

	slow := mustWebhook(t, WebhookConfig{URL: slowSrv.URL, Timeout: time.Minute})
	failing := mustWebhook(t, WebhookConfig{URL: failSrv.URL})
	healthy := mustWebhook(t, WebhookConfig{URL: okSrv.URL})
	s := newFakeStore()
	for _, tg := range []Target{slow, failing, healthy} {
		s.setCursor(tg.ID(), 0)
	}
	stop := runDispatcher(t, mustDispatcher(t, fastConfig(s, slow, failing, healthy)))

	start := time.Now()
	s.addTypes("server_down", "failover_triggered", "failover_held", "server_recovered", "failover_recovered")
	const bound = 2 * time.Second
	eventually(t, bound, "healthy target to receive all events", s.cursorIs(healthy.ID(), 5))
	t.Logf("healthy target received 5 events in %s", time.Since(start))
	if got := okSrv.delivered(); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("healthy delivered %v", got)
	}
	if c, _ := s.Cursor(slow.ID()); c != 0 {
		t.Fatalf("slow target cursor %d", c)
	}
	if c, _ := s.Cursor(failing.ID()); c != 0 {
		t.Fatalf("failing target cursor %d", c)
	}
	eventually(t, 5*time.Second, "failing target retried", func() bool { return len(failSrv.requests()) >= 3 })
	if c, _ := s.Cursor(failing.ID()); c != 0 {
		t.Fatalf("failing target cursor %d after failures", c)
	}
	// Stopping interrupts the hung request.
	stopStart := time.Now()
	stop()
	if el := time.Since(stopStart); el > 2*time.Second {
		t.Fatalf("stop took %s", el)
	}
}

func TestNewLeaderResumesWebhook(t *testing.T) {
	srv := newHookServer(t, nil)
	s := newFakeStore()
	url := srv.URL + "/hook"
	first := mustWebhook(t, WebhookConfig{URL: url})
	s.addTypes("server_added") // history before the target existed
	stop := runDispatcher(t, mustDispatcher(t, fastConfig(s, first)))
	eventually(t, 5*time.Second, "first cursor", s.cursorIs(first.ID(), 1))
	s.addTypes("server_down", "failover_triggered")
	eventually(t, 5*time.Second, "first leader delivered", s.cursorIs(first.ID(), 3))
	stop()

	s.addTypes("server_recovered", "failover_recovered")
	second := mustWebhook(t, WebhookConfig{URL: url})
	if second.ID() != first.ID() {
		t.Fatalf("target id changed: %s vs %s", first.ID(), second.ID())
	}
	runDispatcher(t, mustDispatcher(t, fastConfig(s, second)))
	eventually(t, 5*time.Second, "second leader delivered", s.cursorIs(second.ID(), 5))
	if got := srv.delivered(); !slices.Equal(got, []uint64{2, 3, 4, 5}) {
		t.Fatalf("delivered %v, want each event once: [2 3 4 5]", got)
	}
}
