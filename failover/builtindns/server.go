package builtindns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Errors returned by this package. Match them with errors.Is.
var (
	// ErrInvalidConfig is wrapped by every Config.Validate error.
	ErrInvalidConfig = errors.New("builtindns: invalid config")
	// ErrStarted is returned by Start on a Server that is already running.
	ErrStarted = errors.New("builtindns: already started")
	// ErrClosed is returned by Start on a Server that has been closed.
	ErrClosed = errors.New("builtindns: closed")
	// ErrListen wraps the error of binding the UDP or TCP socket.
	ErrListen = errors.New("builtindns: listen")
	// ErrServe wraps the error of a listener that stopped while starting.
	ErrServe = errors.New("builtindns: serve")
)

// DefaultAddr is the address DefaultConfig listens on: every interface,
// the standard DNS port.
const DefaultAddr = ":53"

// Zone is what the server knows about one managed domain (its apex).
type Zone struct {
	Name   string       // apex, lower-case, no trailing dot, e.g. "example.test"
	IP     netip.Addr   // the A record of the apex: the active shield's IP (invalid = no A record)
	TTL    uint32       // TTL of that A record (normal TTL, or the low failover TTL while failed over)
	Serial uint32       // SOA serial; changes when the zone's answer changes
	NS     []NameServer // the control nodes serving the zone
}

// NameServer is one name server of a zone: a control node.
type NameServer struct {
	Name string     // FQDN without trailing dot, e.g. "ns1.example.test"
	IP   netip.Addr // its address (glue when Name lies inside the zone)
}

// Source answers for an exact apex name (lower-case, no trailing dot). It
// is called once or more per query, so it must be cheap and safe for
// concurrent use.
type Source interface {
	Zone(name string) (Zone, bool)
}

// SourceFunc adapts a function to the Source interface.
type SourceFunc func(name string) (Zone, bool)

// Zone calls f(name).
func (f SourceFunc) Zone(name string) (Zone, bool) { return f(name) }

// Config configures a Server.
type Config struct {
	Addr   string // IP:PORT for both UDP and TCP; port 0 picks a free port
	Source Source // the managed zones (required)
	Logger *slog.Logger
}

// DefaultConfig returns a Config listening on DefaultAddr. Source must
// still be set.
func DefaultConfig() Config {
	return Config{Addr: DefaultAddr}
}

// Validate checks the Config. Addr must be IP:PORT (or :PORT for every
// interface) with a numeric port; host names are refused so that binding
// never depends on a DNS lookup.
func (c Config) Validate() error {
	if c.Source == nil {
		return fmt.Errorf("%w: no source", ErrInvalidConfig)
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("%w: addr %q: %w", ErrInvalidConfig, c.Addr, err)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%w: addr %q: host is not an IP address", ErrInvalidConfig, c.Addr)
		}
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%w: addr %q: bad port", ErrInvalidConfig, c.Addr)
	}
	return nil
}

// Server is the authoritative DNS server. Create it with New, then Start
// and eventually Close it.
type Server struct {
	cfg Config
	log *slog.Logger
	h   *handler

	mu      sync.Mutex
	started bool
	closed  bool
	addr    string
	udp     *dns.Server
	tcp     *dns.Server

	wg      sync.WaitGroup
	running atomic.Bool // both listeners were serving when Start returned
	closing atomic.Bool // Close has begun: listener errors are expected
}

// New validates cfg and returns a Server that is not listening yet.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg: cfg,
		log: log,
		h:   &handler{src: cfg.Source, log: log},
	}, nil
}

// udpReadSize is the receive buffer for one UDP query: a query is small,
// but a client may add EDNS options.
const udpReadSize = 4096

// Start binds UDP and TCP on Config.Addr and starts serving. With port 0 a
// free port is picked, the same for both transports. Start returns once
// both listeners are serving.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.started {
		return ErrStarted
	}

	pc, ln, err := listen(s.cfg.Addr)
	if err != nil {
		return err
	}

	ready := make(chan struct{}, 2)
	notify := func() { ready <- struct{}{} }
	udp := &dns.Server{
		PacketConn:        pc,
		Handler:           s.h,
		UDPSize:           udpReadSize,
		MsgAcceptFunc:     acceptQuery,
		NotifyStartedFunc: notify,
	}
	tcp := &dns.Server{
		Listener:          ln,
		Handler:           s.h,
		MsgAcceptFunc:     acceptQuery,
		NotifyStartedFunc: notify,
	}

	errc := make(chan error, 2)
	for _, srv := range []*dns.Server{udp, tcp} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := srv.ActivateAndServe()
			if err != nil && s.running.Load() && !s.closing.Load() {
				s.log.Error("dns listener stopped", "err", err)
			}
			errc <- err
		}()
	}

	for n := 0; n < 2; {
		select {
		case <-ready:
			n++
		case err := <-errc:
			// A listener gave up before serving: close both sockets so the
			// other one stops too, and wait for both goroutines.
			pc.Close()
			ln.Close()
			s.wg.Wait()
			if err == nil {
				err = errors.New("listener stopped")
			}
			return fmt.Errorf("%w: %w", ErrServe, err)
		}
	}

	s.udp, s.tcp = udp, tcp
	s.addr = pc.LocalAddr().String()
	s.started = true
	s.running.Store(true)
	s.log.Info("dns server listening", "addr", s.addr)
	return nil
}

// listen binds UDP on addr, then TCP on the same IP and port. When addr's
// port is 0 and the free UDP port is taken for TCP, it tries another port.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w %s: %w", ErrListen, addr, err)
	}
	const attempts = 10
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("%w udp %s: %w", ErrListen, addr, err)
		}
		bound := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(bound)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if p, _ := strconv.Atoi(port); p != 0 || i+1 >= attempts {
			return nil, nil, fmt.Errorf("%w tcp %s: %w", ErrListen, addr, err)
		}
	}
}

// Addr returns the bound IP:PORT, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops both listeners, waits for queries in flight (bounded by ctx)
// and for every goroutine of the Server. It is safe to call twice; the
// second call returns nil at once.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.closing.Store(true)
	started := s.started
	udp, tcp := s.udp, s.tcp
	s.mu.Unlock()
	if !started {
		return nil
	}

	var errs []error
	for _, srv := range []*dns.Server{udp, tcp} {
		if err := srv.ShutdownContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	// ShutdownContext closes the TCP listener and, once the UDP loop has
	// returned, the UDP socket; closing both again makes sure every serve
	// loop ends even when ctx expired first.
	udp.PacketConn.Close()
	tcp.Listener.Close()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	s.log.Info("dns server stopped", "addr", s.Addr())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("builtindns: close: %w", err)
	}
	return nil
}
