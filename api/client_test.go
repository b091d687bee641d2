package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

func TestNewClientValidates(t *testing.T) {
	for _, bad := range []string{"", "  ", "127.0.0.1:7480", "ftp://x", "http://", "http:///v1", "http://u:p@host", "http://host?x=1", "://x"} {
		if _, err := NewClient(bad, "t"); !errors.Is(err, ErrBadAddr) {
			t.Errorf("NewClient(%q): %v, want ErrBadAddr", bad, err)
		}
	}
	for _, good := range []string{"http://127.0.0.1:7480", "https://ctl.example.com", "http://[::1]:7480/", "http://host/prefix/"} {
		c, err := NewClient(good, "t")
		if err != nil {
			t.Errorf("NewClient(%q): %v", good, err)
			continue
		}
		if c.hc.Timeout != DefaultClientTimeout || strings.HasSuffix(c.BaseURL(), "/") {
			t.Errorf("client for %q: timeout %v base %q", good, c.hc.Timeout, c.BaseURL())
		}
	}
}

func TestClientConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	c := got(NewClient(addr, "t")).ok(t)
	_, err = c.Servers(context.Background())
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != state.CodeUnavailable || ae.StatusCode != 0 {
		t.Fatalf("refused: %#v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, addr) || !strings.Contains(msg, "--addr") || !strings.Contains(msg, "LUMOS_ADDR") || strings.Contains(msg, "\n") {
		t.Fatalf("message %q must name the address and suggest --addr/LUMOS_ADDR on one line", msg)
	}
	if errors.Unwrap(err) == nil {
		t.Fatal("the transport error must be wrapped")
	}
	if err := c.Health(context.Background()); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("health: %v", err)
	}
}

func TestClientTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := got(NewClient(srv.URL, "t")).ok(t)
	defer c.CloseIdleConnections()
	c.SetTimeout(100 * time.Millisecond)
	_, err := c.Status(context.Background())
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != state.CodeUnavailable || !strings.Contains(ae.Message, "did not answer") {
		t.Fatalf("timeout: %#v", err)
	}
	c.SetTimeout(0)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err = c.Status(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %#v", err)
	}
}

func TestClientNonAPIAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status":
			http.Error(w, "bad gateway\nupstream down", http.StatusBadGateway)
		case "/v1/plan":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>hello</html>"))
		case "/v1/health":
			_, _ = w.Write([]byte(`{"status":"starting","node":"n"}`))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	c := got(NewClient(srv.URL, "t")).ok(t)
	defer c.CloseIdleConnections()
	ctx := context.Background()

	_, err := c.Status(ctx)
	var ae *Error
	if !errors.As(err, &ae) || ae.StatusCode != 502 || ae.Code != state.CodeUnavailable || strings.Contains(ae.Message, "\n") {
		t.Fatalf("502: %#v", err)
	}
	_, err = c.Plan(ctx)
	if !errors.As(err, &ae) || ae.Code != state.CodeInternal {
		t.Fatalf("html: %#v", err)
	}
	if err := c.Health(ctx); err == nil || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("health not ok: %v", err)
	}
}

// TestClientPathPrefix: a base URL with a path (behind a reverse proxy) is
// kept in front of every route.
func TestClientPathPrefix(t *testing.T) {
	b := newFakeBackend("ctl-1")
	h, err := NewHandler(b, ServerConfig{AdminTokenHash: state.HashToken(testAdminToken)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/lumos/", http.StripPrefix("/lumos", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := got(NewClient(srv.URL+"/lumos/", testAdminToken)).ok(t)
	defer c.CloseIdleConnections()
	got(c.AddServer(context.Background(), "a/b")).ok(t)
	if sv := got(c.Server(context.Background(), "a/b")).ok(t); sv.Name != "a/b" {
		t.Fatalf("server %+v", sv)
	}
}
