package notify

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

// smtpLine is a command the test server received, and whether it came over
// TLS.
type smtpLine struct {
	line string
	tls  bool
}

// smtpMessage is a message the test server accepted.
type smtpMessage struct {
	from, to string
	raw      string // DATA as received, CRLF line endings kept
	crlf     bool   // every line of DATA ended in CRLF
	tls      bool
}

// smtpServer is a small SMTP server over a real socket: EHLO, STARTTLS,
// AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP and QUIT.
type smtpServer struct {
	ln       net.Listener
	tlsCfg   *tls.Config
	roots    *x509.CertPool
	startTLS bool        // offer STARTTLS
	mute     atomic.Bool // never send the greeting
	user     string
	pass     string

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
	lines []smtpLine
	auths []string // decoded AUTH PLAIN responses
	msgs  []smtpMessage
}

func newSMTPServer(t *testing.T, startTLS bool) *smtpServer {
	t.Helper()
	cert, roots := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{
		ln:       ln,
		tlsCfg:   &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		roots:    roots,
		startTLS: startTLS,
		user:     "mailer",
		pass:     "smtp-pa55word",
		conns:    map[net.Conn]bool{},
	}
	s.wg.Go(s.serve)
	t.Cleanup(s.close)
	return s
}

func (s *smtpServer) addr() string { return s.ln.Addr().String() }

func (s *smtpServer) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *smtpServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				_ = c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			s.handle(c)
		})
	}
}

func (s *smtpServer) record(line string, tls bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, smtpLine{line, tls})
}

func (s *smtpServer) handle(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if s.mute.Load() {
		_, _ = conn.Read(make([]byte, 1)) // until the client gives up
		return
	}
	tp := textproto.NewConn(conn)
	reply := func(lines ...string) bool { return tp.PrintfLine("%s", strings.Join(lines, "\r\n")) == nil }
	if !reply("220 mail.test ESMTP") {
		return
	}
	inTLS, authed := false, false
	var from, to string
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		s.record(line, inTLS)
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			ext := []string{"250-mail.test"}
			if s.startTLS && !inTLS {
				ext = append(ext, "250-STARTTLS")
			}
			// AUTH is offered even in clear: the client must still not use it.
			ext = append(ext, "250-AUTH PLAIN LOGIN", "250 8BITMIME")
			if !reply(ext...) {
				return
			}
		case "STARTTLS":
			if !s.startTLS || inTLS {
				reply("502 not offered")
				continue
			}
			if !reply("220 go ahead") {
				return
			}
			tc := tls.Server(conn, s.tlsCfg)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, tp, inTLS = tc, textproto.NewConn(tc), true
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "PLAIN") {
				reply("504 unsupported")
				continue
			}
			if resp == "" {
				if !reply("334 ") {
					return
				}
				if resp, err = tp.ReadLine(); err != nil {
					return
				}
			}
			dec, err := base64.StdEncoding.DecodeString(resp)
			if err != nil {
				reply("501 bad base64")
				continue
			}
			s.mu.Lock()
			s.auths = append(s.auths, string(dec))
			s.mu.Unlock()
			if string(dec) != "\x00"+s.user+"\x00"+s.pass {
				reply("535 bad credentials")
				continue
			}
			authed = true
			reply("235 ok")
		case "MAIL":
			if !authed {
				reply("530 authentication required")
				continue
			}
			from = arg
			reply("250 ok")
		case "RCPT":
			to = arg
			reply("250 ok")
		case "DATA":
			if !reply("354 go on") {
				return
			}
			var raw strings.Builder
			crlf := true
			for {
				l, err := tp.R.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				if !strings.HasSuffix(l, "\r\n") || strings.Contains(strings.TrimSuffix(l, "\r\n"), "\r") {
					crlf = false
				}
				raw.WriteString(l)
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, smtpMessage{from: from, to: to, raw: raw.String(), crlf: crlf, tls: inTLS})
			s.mu.Unlock()
			reply("250 queued")
		case "RSET", "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 unknown command")
		}
	}
}

func (s *smtpServer) snapshot() ([]smtpLine, []string, []smtpMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines), slices.Clone(s.auths), slices.Clone(s.msgs)
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mail.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func (s *smtpServer) config() SMTPConfig {
	return SMTPConfig{
		Addr:      s.addr(),
		From:      "lumos <lumos@example.com>",
		Username:  s.user,
		Password:  s.pass,
		TLSConfig: &tls.Config{RootCAs: s.roots},
		Timeout:   5 * time.Second,
	}
}

func mustEmail(t *testing.T, cfg SMTPConfig, to string) Target {
	t.Helper()
	e, err := NewEmail(cfg, to)
	if err != nil {
		t.Fatalf("NewEmail: %v", err)
	}
	return e
}

var failoverEvent = state.Event{
	ID: 42, Time: time.Date(2025, 3, 1, 12, 30, 5, 0, time.UTC),
	Type: "failover_triggered", Domain: "shop.example.com", ServerID: "s1",
	FromIP: "203.0.113.10", ToIP: "198.51.100.7", Reason: "server_down",
	Message: "shield edge-1 is down\nDNS now points at edge-2",
}

func TestEmailDeliveredOverSTARTTLS(t *testing.T) {
	srv := newSMTPServer(t, true)
	e := mustEmail(t, srv.config(), "Ops <ops@example.com>")
	if e.ID() != "email:ops@example.com" || e.Kind() != KindEmail {
		t.Fatalf("id %q kind %q", e.ID(), e.Kind())
	}
	if err := e.Deliver(context.Background(), failoverEvent, namesMap{"s1": "edge-1"}); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	lines, auths, msgs := srv.snapshot()

	// Credentials only after STARTTLS: nothing but EHLO and STARTTLS in clear.
	sawAuth := false
	for _, l := range lines {
		verb, _, _ := strings.Cut(strings.ToUpper(l.line), " ")
		if !l.tls && verb != "EHLO" && verb != "STARTTLS" {
			t.Errorf("%q sent before STARTTLS", l.line)
		}
		if verb == "AUTH" {
			sawAuth = true
			if !l.tls {
				t.Errorf("AUTH sent in clear")
			}
		}
	}
	if !sawAuth || !slices.Equal(auths, []string{"\x00mailer\x00smtp-pa55word"}) {
		t.Fatalf("auth = %q (seen %v)", auths, sawAuth)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if !strings.HasPrefix(m.from, "FROM:<lumos@example.com>") || !strings.HasPrefix(m.to, "TO:<ops@example.com>") || !m.tls {
		t.Errorf("envelope from %q to %q tls %v", m.from, m.to, m.tls)
	}
	if !m.crlf {
		t.Errorf("message lines do not all end in CRLF:\n%q", m.raw)
	}
	msg, err := mail.ReadMessage(strings.NewReader(m.raw))
	if err != nil {
		t.Fatalf("parse message: %v", err)
	}
	for k, want := range map[string]string{
		"From":             "lumos@example.com",
		"To":               "ops@example.com",
		"Subject":          "[lumos] failover_triggered shop.example.com: 203.0.113.10 -> 198.51.100.7",
		"Content-Type":     "text/plain; charset=utf-8",
		"X-Lumos-Event-Id": "42",
		"X-Lumos-Event":    "failover_triggered",
	} {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	date, err := msg.Header.Date()
	if err != nil || !date.Equal(failoverEvent.Time) {
		t.Errorf("Date = %v (%v), want %v", date, err, failoverEvent.Time)
	}
	if id := msg.Header.Get("Message-ID"); !strings.HasPrefix(id, "<lumos.event.42.") || !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("Message-ID = %q", id)
	}
	body := m.raw[strings.Index(m.raw, "\r\n\r\n")+4:]
	for _, want := range []string{"edge-1 (s1)", "203.0.113.10", "198.51.100.7", "server_down", "DNS now points at edge-2", "Event ID 42"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}

	// The same event again gets the same Message-ID: receivers can drop it.
	if err := e.Deliver(context.Background(), failoverEvent, nil); err != nil {
		t.Fatal(err)
	}
	_, _, msgs = srv.snapshot()
	m2, _ := mail.ReadMessage(strings.NewReader(msgs[1].raw))
	if m2.Header.Get("Message-ID") != msg.Header.Get("Message-ID") {
		t.Errorf("Message-ID not stable across deliveries")
	}
}

func TestEmailRefusedWithoutSTARTTLS(t *testing.T) {
	srv := newSMTPServer(t, false)
	e := mustEmail(t, srv.config(), "ops@example.com")
	err := e.Deliver(context.Background(), failoverEvent, nil)
	if !errors.Is(err, ErrNoStartTLS) {
		t.Fatalf("err = %v, want ErrNoStartTLS", err)
	}
	assertNoSecrets(t, err.Error(), "smtp-pa55word")
	lines, auths, msgs := srv.snapshot()
	if len(auths) != 0 || len(msgs) != 0 {
		t.Fatalf("auth %q, messages %d sent to a server without STARTTLS", auths, len(msgs))
	}
	for _, l := range lines {
		verb, _, _ := strings.Cut(strings.ToUpper(l.line), " ")
		if verb != "EHLO" && verb != "QUIT" {
			t.Errorf("%q sent to a server without STARTTLS", l.line)
		}
	}
}

func TestEmailUntrustedCertificateSendsNoCredentials(t *testing.T) {
	srv := newSMTPServer(t, true)
	cfg := srv.config()
	cfg.TLSConfig = &tls.Config{RootCAs: x509.NewCertPool()} // trusts nothing
	e := mustEmail(t, cfg, "ops@example.com")
	err := e.Deliver(context.Background(), failoverEvent, nil)
	if err == nil || !strings.Contains(err.Error(), "starttls") {
		t.Fatalf("err = %v, want a starttls error", err)
	}
	assertNoSecrets(t, err.Error(), "smtp-pa55word")
	if _, auths, msgs := srv.snapshot(); len(auths) != 0 || len(msgs) != 0 {
		t.Fatalf("credentials or message sent over an unverified connection")
	}
}

func TestEmailTimeoutAndCancel(t *testing.T) {
	srv := newSMTPServer(t, true)
	srv.mute.Store(true)
	cfg := srv.config()
	cfg.Timeout = 200 * time.Millisecond
	e := mustEmail(t, cfg, "ops@example.com")
	start := time.Now()
	err := e.Deliver(context.Background(), failoverEvent, nil)
	if err == nil {
		t.Fatal("Deliver to a silent server succeeded")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("took %s with a 200ms timeout", el)
	}

	cfg.Timeout = time.Minute
	e = mustEmail(t, cfg, "ops@example.com")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = e.Deliver(ctx, failoverEvent, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("took %s after the context ended", el)
	}
}

func TestEmailThroughDispatcher(t *testing.T) {
	srv := newSMTPServer(t, true)
	e := mustEmail(t, srv.config(), "ops@example.com")
	s := newFakeStore()
	s.names["s1"] = "edge-1"
	s.setCursor(e.ID(), 0)
	s.add(state.Event{Type: "server_down", ServerID: "s1", FromIP: "203.0.113.10", Reason: "gossip: dead"},
		state.Event{Type: "domain_added", Domain: "shop.example.com"})
	runDispatcher(t, mustDispatcher(t, fastConfig(s, e)))
	eventually(t, 5*time.Second, "cursor at 2", s.cursorIs(e.ID(), 2))
	_, _, msgs := srv.snapshot()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	msg, err := mail.ReadMessage(strings.NewReader(msgs[0].raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("Subject"); got != "[lumos] server_down edge-1: 203.0.113.10" {
		t.Fatalf("Subject = %q", got)
	}
}

func TestNewEmailValidation(t *testing.T) {
	good := SMTPConfig{Addr: "smtp.example.com:587", From: "lumos@example.com", Username: "u", Password: "p"}
	cases := []struct {
		name string
		mod  func(*SMTPConfig)
		to   string
	}{
		{"no port", func(c *SMTPConfig) { c.Addr = "smtp.example.com" }, "ops@example.com"},
		{"no host", func(c *SMTPConfig) { c.Addr = ":587" }, "ops@example.com"},
		{"bad from", func(c *SMTPConfig) { c.From = "not an address" }, "ops@example.com"},
		{"bad to", func(*SMTPConfig) {}, "ops"},
		{"two recipients", func(*SMTPConfig) {}, "a@example.com, b@example.com"},
		{"header injection", func(*SMTPConfig) {}, "ops@example.com\r\nBcc: x@example.com"},
		{"user without password", func(c *SMTPConfig) { c.Password = "" }, "ops@example.com"},
		{"password without user", func(c *SMTPConfig) { c.Username = "" }, "ops@example.com"},
		{"negative timeout", func(c *SMTPConfig) { c.Timeout = -time.Second }, "ops@example.com"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			cfg.Password = "sekrit-pw"
			c.mod(&cfg)
			_, err := NewEmail(cfg, c.to)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			assertNoSecrets(t, err.Error(), "sekrit-pw")
		})
	}
	if _, err := NewEmail(good, "Ops Team <ops@example.com>"); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	noAuth := good
	noAuth.Username, noAuth.Password = "", ""
	if _, err := NewEmail(noAuth, "ops@example.com"); err != nil {
		t.Fatalf("valid config without auth: %v", err)
	}
}

func TestEmailMessageFormat(t *testing.T) {
	e := mustEmail(t, SMTPConfig{Addr: "127.0.0.1:25", From: "lumos@example.com"}, "ops@example.com").(*email)
	ev := failoverEvent
	ev.Domain = "shop.example.com\r\nBcc: evil@example.com"
	ev.Reason = "ünïcode"
	raw := string(e.message(ev, nil))
	head := raw[:strings.Index(raw, "\r\n\r\n")]
	if strings.Contains(head, "\r\nBcc:") {
		t.Fatalf("header injection:\n%s", head)
	}
	for _, l := range strings.SplitAfter(raw, "\n") {
		if l != "" && !strings.HasSuffix(l, "\r\n") {
			t.Fatalf("line %q does not end in CRLF", l)
		}
	}
	r := bufio.NewReader(strings.NewReader(raw))
	msg, err := mail.ReadMessage(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(msg.Header.Get("Subject"), "[lumos] failover_triggered shop.example.com  Bcc") {
		t.Fatalf("Subject = %q", msg.Header.Get("Subject"))
	}
}
