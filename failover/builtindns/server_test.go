package builtindns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memSource is a Source backed by a map, safe for concurrent use. It
// records every name it is asked for.
type memSource struct {
	mu    sync.RWMutex
	zones map[string]Zone
	asked []string
}

func newMemSource(zones ...Zone) *memSource {
	s := &memSource{zones: make(map[string]Zone)}
	for _, z := range zones {
		s.zones[z.Name] = z
	}
	return s
}

func (s *memSource) Zone(name string) (Zone, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, name)
	z, ok := s.zones[name]
	return z, ok
}

func (s *memSource) set(z Zone) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones[z.Name] = z
}

func (s *memSource) askedNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asked...)
}

func (s *memSource) resetAsked() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = nil
}

// startServer starts a Server on a free loopback port and closes it when
// the test ends.
func startServer(t testing.TB, src Source) *Server {
	t.Helper()
	srv, err := New(Config{Addr: "127.0.0.1:0", Source: src})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

// exchange sends m to addr over network ("udp" or "tcp") and returns the
// reply.
func exchange(t testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("exchange %s %s: %v", network, m.Question[0].String(), err)
	}
	if r.Id != m.Id {
		t.Fatalf("reply id %d, want %d", r.Id, m.Id)
	}
	return r
}

// ask queries name/qtype over network without EDNS0.
func ask(t testing.TB, network, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return exchange(t, network, addr, m)
}

// eventually retries cond until it returns nil or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	src := newMemSource()
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ipv4 with port", Config{Addr: "127.0.0.1:5353", Source: src}, true},
		{"ipv6 with port", Config{Addr: "[::1]:0", Source: src}, true},
		{"all interfaces", Config{Addr: ":53", Source: src}, true},
		{"default config", func() Config { c := DefaultConfig(); c.Source = src; return c }(), true},
		{"no source", Config{Addr: "127.0.0.1:0"}, false},
		{"no addr", Config{Source: src}, false},
		{"no port", Config{Addr: "127.0.0.1", Source: src}, false},
		{"host name", Config{Addr: "localhost:53", Source: src}, false},
		{"named port", Config{Addr: "127.0.0.1:domain", Source: src}, false},
		{"port out of range", Config{Addr: "127.0.0.1:65536", Source: src}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			if _, err := New(tt.cfg); (err == nil) != tt.ok {
				t.Fatalf("New error %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	src := newMemSource(Zone{Name: "example.test", IP: netip.MustParseAddr("192.0.2.1"), TTL: 60})
	srv, err := New(Config{Addr: "127.0.0.1:0", Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Addr(); got != "" {
		t.Fatalf("Addr before Start = %q, want empty", got)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := srv.Start(); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}
	addr := srv.Addr()
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr = %q, want 127.0.0.1 with a real port", addr)
	}
	// Both transports answer on the same port.
	for _, network := range []string{"udp", "tcp"} {
		r := ask(t, network, addr, "example.test.", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("%s: rcode %s, %d answers", network, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := srv.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := srv.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}

	// The port is released for both transports.
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP port still bound after Close: %v", err)
	}
	pc.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("TCP port still bound after Close: %v", err)
	}
	ln.Close()
}

func TestCloseWithoutStart(t *testing.T) {
	srv, err := New(Config{Addr: "127.0.0.1:0", Source: newMemSource()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := srv.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := srv.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
}

func TestCloseWithOpenTCPConnection(t *testing.T) {
	src := newMemSource(Zone{Name: "example.test", IP: netip.MustParseAddr("192.0.2.1"), TTL: 60})
	srv, err := New(Config{Addr: "127.0.0.1:0", Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// An idle client connection must not keep Close waiting.
	conn, err := dns.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m := new(dns.Msg)
	m.SetQuestion("example.test.", dns.TypeA)
	if err := conn.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ReadMsg(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v with an idle TCP client", d)
	}
}

func TestStartFixedPortInUse(t *testing.T) {
	// Take a TCP port, then ask for the same port: Start must fail and
	// release the UDP socket it bound.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	srv, err := New(Config{Addr: addr, Source: newMemSource()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); !errors.Is(err, ErrListen) {
		t.Fatalf("Start = %v, want ErrListen", err)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP port leaked by failed Start: %v", err)
	}
	pc.Close()
	if err := srv.Close(context.Background()); err != nil {
		t.Fatalf("Close after failed Start: %v", err)
	}
}
