package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

// DefaultSMTPTimeout bounds one whole SMTP conversation.
const DefaultSMTPTimeout = 30 * time.Second

// SMTPConfig configures the SMTP submission server used by email targets.
// STARTTLS is always required; credentials never travel in clear.
type SMTPConfig struct {
	// Addr is the server's HOST:PORT (usually port 587).
	Addr string
	// From is the sender address.
	From string
	// Username and Password enable AUTH PLAIN; empty Username means no
	// authentication. The password is never logged.
	Username string
	Password string
	// TLSConfig is used for STARTTLS; nil means the system roots, with the
	// server name taken from Addr. A config without ServerName gets it
	// from Addr.
	TLSConfig *tls.Config
	// Timeout bounds the whole conversation; 0 means DefaultSMTPTimeout.
	Timeout time.Duration
}

type email struct {
	cfg     SMTPConfig
	host    string // server host name from Addr
	from    string // bare address
	fromDom string // domain of from, for Message-ID
	to      string // bare address
	timeout time.Duration
}

// NewEmail returns an email target that sends to the address to through the
// SMTP server in cfg.
func NewEmail(cfg SMTPConfig, to string) (Target, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("smtp addr %q: want HOST:PORT: %w", cfg.Addr, ErrInvalidConfig)
	}
	from, err := bareAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp from: %w", err)
	}
	rcpt, err := bareAddress(to)
	if err != nil {
		return nil, fmt.Errorf("email to: %w", err)
	}
	if cfg.Username == "" && cfg.Password != "" {
		return nil, fmt.Errorf("smtp password set without a username: %w", ErrInvalidConfig)
	}
	if cfg.Username != "" && cfg.Password == "" {
		return nil, fmt.Errorf("smtp username set without a password: %w", ErrInvalidConfig)
	}
	if strings.ContainsAny(cfg.Username, "\x00\r\n") {
		return nil, fmt.Errorf("smtp username: control characters: %w", ErrInvalidConfig)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("smtp timeout %s: negative: %w", cfg.Timeout, ErrInvalidConfig)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultSMTPTimeout
	}
	return &email{
		cfg:     cfg,
		host:    host,
		from:    from,
		fromDom: from[strings.LastIndexByte(from, '@')+1:],
		to:      rcpt,
		timeout: timeout,
	}, nil
}

// bareAddress parses a single address ("Ops <ops@example.com>" or
// "ops@example.com") and returns the bare address.
func bareAddress(s string) (string, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", s, ErrInvalidConfig)
	}
	if strings.ContainsAny(a.Address, "\r\n<>") || !strings.Contains(a.Address, "@") {
		return "", fmt.Errorf("address %q: %w", s, ErrInvalidConfig)
	}
	return a.Address, nil
}

func (e *email) ID() string   { return KindEmail + ":" + e.to }
func (e *email) Kind() string { return KindEmail }

// Deliver sends the event as a plain-text email. It refuses servers that do
// not offer STARTTLS.
func (e *email) Deliver(ctx context.Context, ev state.Event, names Names) (err error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.cfg.Addr)
	if err != nil {
		return fmt.Errorf("smtp %s: dial: %w", e.cfg.Addr, err)
	}
	// The deadline bounds the whole conversation; cancelling ctx interrupts
	// whatever read or write is under way.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	defer func() {
		if err == nil {
			return
		}
		// The connection deadline may fire a moment before ctx notices.
		cause := ctx.Err()
		if dl, ok := ctx.Deadline(); ok && cause == nil && !time.Now().Before(dl) {
			cause = context.DeadlineExceeded
		}
		if cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
	}()

	c, err := smtp.NewClient(conn, e.host)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("smtp %s: greeting: %w", e.cfg.Addr, err)
	}
	defer c.Close()
	if err := c.Hello(localName()); err != nil {
		return fmt.Errorf("smtp %s: ehlo: %w", e.cfg.Addr, err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		return fmt.Errorf("smtp %s: %w", e.cfg.Addr, ErrNoStartTLS)
	}
	if err := c.StartTLS(e.tlsConfig()); err != nil {
		return fmt.Errorf("smtp %s: starttls: %w", e.cfg.Addr, err)
	}
	if e.cfg.Username != "" {
		ok, mechs := c.Extension("AUTH")
		if !ok || !hasWord(mechs, "PLAIN") {
			return fmt.Errorf("smtp %s: %w", e.cfg.Addr, ErrNoAuthPlain)
		}
		// net/smtp's PLAIN refuses to run outside TLS, a second guard.
		if err := c.Auth(smtp.PlainAuth("", e.cfg.Username, e.cfg.Password, e.host)); err != nil {
			return fmt.Errorf("smtp %s: auth: %w", e.cfg.Addr, err)
		}
	}
	if err := c.Mail(e.from); err != nil {
		return fmt.Errorf("smtp %s: mail from: %w", e.cfg.Addr, err)
	}
	if err := c.Rcpt(e.to); err != nil {
		return fmt.Errorf("smtp %s: rcpt to: %w", e.cfg.Addr, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: data: %w", e.cfg.Addr, err)
	}
	if _, err := w.Write(e.message(ev, names)); err != nil {
		_ = w.Close()
		return fmt.Errorf("smtp %s: write message: %w", e.cfg.Addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: end of data: %w", e.cfg.Addr, err)
	}
	// The message is accepted once DATA is answered; a failed QUIT does
	// not make it undelivered.
	_ = c.Quit()
	return nil
}

func (e *email) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if e.cfg.TLSConfig != nil {
		cfg = e.cfg.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = e.host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// message renders the email with CRLF line endings.
func (e *email) message(ev state.Event, names Names) []byte {
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	date := ev.Time
	if date.IsZero() {
		date = time.Now()
	}
	header("From", e.from)
	header("To", e.to)
	header("Subject", mime.QEncoding.Encode("utf-8", "[lumos] "+summary(ev, names)))
	header("Date", date.Format(time.RFC1123Z))
	// Deterministic, so a repeated delivery of the same event carries the
	// same Message-ID and mail clients can thread or drop it.
	header("Message-ID", fmt.Sprintf("<lumos.event.%d.%d@%s>", ev.ID, ev.Time.Unix(), e.fromDom))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	header("Auto-Submitted", "auto-generated")
	header(HeaderEvent, oneLine(ev.Type))
	header(HeaderEventID, strconv.FormatUint(ev.ID, 10))
	b.WriteString("\r\n")

	line := func(k, v string) {
		if v != "" {
			b.WriteString(fmt.Sprintf("%-10s %s\r\n", k+":", oneLine(v)))
		}
	}
	line("Event", fmt.Sprintf("%s (#%d)", ev.Type, ev.ID))
	if !ev.Time.IsZero() {
		line("Time", ev.Time.UTC().Format(time.RFC3339))
	}
	line("Domain", ev.Domain)
	if ev.ServerID != "" {
		if n := serverName(ev, names); n != "" {
			line("Server", n+" ("+ev.ServerID+")")
		} else {
			line("Server", ev.ServerID)
		}
	}
	line("From IP", ev.FromIP)
	line("To IP", ev.ToIP)
	line("Reason", ev.Reason)
	if ev.Message != "" {
		b.WriteString("\r\n")
		for _, l := range strings.Split(strings.ReplaceAll(ev.Message, "\r\n", "\n"), "\n") {
			b.WriteString(strings.TrimRight(strings.ReplaceAll(l, "\r", " "), " ") + "\r\n")
		}
	}
	b.WriteString("\r\n-- \r\nlumos. Event ID " + strconv.FormatUint(ev.ID, 10) +
		" identifies this notification; it may be repeated after a leader change.\r\n")
	return b.Bytes()
}

// hasWord reports whether the space-separated list holds w (any case).
func hasWord(list, w string) bool {
	for _, f := range strings.Fields(list) {
		if strings.EqualFold(f, w) {
			return true
		}
	}
	return false
}

// localName is the name given in EHLO.
func localName() string {
	h, err := os.Hostname()
	if err != nil || h == "" || strings.ContainsAny(h, " \r\n") {
		return "localhost"
	}
	return h
}
