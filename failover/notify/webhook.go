package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

// DefaultWebhookTimeout bounds one webhook delivery attempt.
const DefaultWebhookTimeout = 10 * time.Second

// maxDrain is how much of a webhook response body is read (and discarded)
// so the connection can be reused.
const maxDrain = 4 << 10

// Webhook headers.
const (
	HeaderEvent     = "X-Lumos-Event"
	HeaderEventID   = "X-Lumos-Event-Id"
	HeaderSignature = "X-Lumos-Signature"
)

// WebhookConfig configures a webhook target.
type WebhookConfig struct {
	// URL receives the POST; http or https with a host. It may embed a
	// token (in its path or query): it is never logged.
	URL string
	// Secret signs the body (X-Lumos-Signature); empty means no signature.
	Secret []byte
	// Client sends the request; nil means a client that does not follow
	// redirects.
	Client *http.Client
	// Timeout bounds one attempt; 0 means DefaultWebhookTimeout.
	Timeout time.Duration
}

// WebhookPayload is the JSON body of a webhook POST. Empty fields are
// omitted. ID is the idempotency key: the same event may arrive twice.
type WebhookPayload struct {
	ID         uint64 `json:"id"`
	Type       string `json:"type"`
	Time       string `json:"time,omitempty"` // RFC 3339, UTC
	Domain     string `json:"domain,omitempty"`
	ServerID   string `json:"server_id,omitempty"`
	ServerName string `json:"server_name,omitempty"`
	FromIP     string `json:"from_ip,omitempty"`
	ToIP       string `json:"to_ip,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
}

type webhook struct {
	id      string
	url     string
	host    string // the only part of the URL that is logged
	secret  []byte
	client  *http.Client
	timeout time.Duration
}

// NewWebhook returns a webhook target. The URL must be http or https with a
// host.
func NewWebhook(cfg WebhookConfig) (Target, error) {
	// Errors name no part of the URL: it may carry a token anywhere.
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("webhook url: unparsable: %w", ErrInvalidConfig)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("webhook url: scheme must be http or https: %w", ErrInvalidConfig)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("webhook url: no host: %w", ErrInvalidConfig)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("webhook timeout %s: negative: %w", cfg.Timeout, ErrInvalidConfig)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultWebhookTimeout
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{
			// A redirect is an answer outside 2xx: retried, not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	sum := sha256.Sum256([]byte(cfg.URL))
	return &webhook{
		id:      KindWebhook + ":" + hex.EncodeToString(sum[:])[:16],
		url:     cfg.URL,
		host:    u.Host,
		secret:  bytes.Clone(cfg.Secret),
		client:  client,
		timeout: timeout,
	}, nil
}

func (w *webhook) ID() string   { return w.id }
func (w *webhook) Kind() string { return KindWebhook }

// Deliver POSTs the event; a 2xx answer means delivered.
func (w *webhook) Deliver(ctx context.Context, ev state.Event, names Names) error {
	body, err := json.Marshal(payload(ev, names))
	if err != nil {
		return fmt.Errorf("webhook %s: encode: %w", w.host, err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: request: %w", w.host, ErrInvalidConfig)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lumos")
	req.Header.Set(HeaderEvent, ev.Type)
	req.Header.Set(HeaderEventID, strconv.FormatUint(ev.ID, 10))
	if len(w.secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(w.secret, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		// *url.Error prints the whole URL, query included: keep only the
		// cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("webhook %s: post: %w", w.host, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook %s: status %d: %w", w.host, resp.StatusCode, ErrStatus)
	}
	return nil
}

// payload builds the webhook body for an event.
func payload(ev state.Event, names Names) WebhookPayload {
	p := WebhookPayload{
		ID:         ev.ID,
		Type:       ev.Type,
		Domain:     ev.Domain,
		ServerID:   ev.ServerID,
		ServerName: serverName(ev, names),
		FromIP:     ev.FromIP,
		ToIP:       ev.ToIP,
		Reason:     ev.Reason,
		Message:    ev.Message,
	}
	if !ev.Time.IsZero() {
		p.Time = ev.Time.UTC().Format(time.RFC3339)
	}
	return p
}
