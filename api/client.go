package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

// DefaultClientTimeout bounds each call of a Client.
const DefaultClientTimeout = 30 * time.Second

// maxResponseBytes bounds the responses a Client reads.
const maxResponseBytes = 64 << 20

// Client calls the lumos HTTP API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
	stale bool
}

// SetStale makes reads answer from the contacted node's own copy of the
// state instead of the leader's (see HeaderStale).
func (c *Client) SetStale(stale bool) { c.stale = stale }

// Error is an error answered by the API, or a failure to reach it. Code is
// one of the stable codes (state.Code*, Code*); StatusCode is 0 when no
// answer came back.
type Error struct {
	StatusCode int
	Code       string
	Field      string
	Message    string

	cause error
}

// Error returns the one-line message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the transport error behind a failure to reach the API.
func (e *Error) Unwrap() error { return e.cause }

// Is matches the state sentinels by code: errors.Is(err, state.ErrNotFound).
func (e *Error) Is(target error) bool {
	var se *state.Error
	if errors.As(target, &se) && se.Message == "" {
		return se.Code == e.Code
	}
	return false
}

// NewClient returns a client for the API at baseURL (http or https, e.g.
// http://127.0.0.1:7480) using the admin token.
func NewClient(baseURL, adminToken string) (*Client, error) {
	raw := strings.TrimSpace(baseURL)
	if raw == "" {
		return nil, fmt.Errorf("%w: empty API address: set --addr or LUMOS_ADDR", ErrBadAddr)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not a URL (want http://HOST:PORT): set --addr or LUMOS_ADDR", ErrBadAddr, raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: %q must start with http:// or https://", ErrBadAddr, raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: %q has no host", ErrBadAddr, raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: %q must be just scheme, host, port and optional path", ErrBadAddr, raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &Client{
		base:  u,
		token: strings.TrimSpace(adminToken),
		hc:    &http.Client{Timeout: DefaultClientTimeout, Transport: tr},
	}, nil
}

// SetTimeout changes the bound on each call (0 means none).
func (c *Client) SetTimeout(d time.Duration) { c.hc.Timeout = d }

// CloseIdleConnections closes connections kept for reuse.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// BaseURL returns the API address the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (if not nil). Non-2xx answers become *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	target := strings.TrimRight(c.base.String(), "/") + path
	if c.stale && method == http.MethodGet {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("stale", "true")
		query = q
	}
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return c.transportError(err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.responseError(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &Error{StatusCode: resp.StatusCode, Code: state.CodeInternal, Message: fmt.Sprintf("the API at %s answered %s %s with a body that is not the expected JSON: %v", c.base.Redacted(), method, path, err), cause: err}
	}
	return nil
}

// responseError decodes an error answer.
func (c *Client) responseError(resp *http.Response, data []byte) error {
	var eb ErrorBody
	if err := json.Unmarshal(data, &eb); err == nil && eb.Error.Code != "" {
		return &Error{StatusCode: resp.StatusCode, Code: eb.Error.Code, Field: eb.Error.Field, Message: oneLine(eb.Error.Message)}
	}
	msg := oneLine(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &Error{
		StatusCode: resp.StatusCode,
		Code:       codeOfStatus(resp.StatusCode),
		Message:    fmt.Sprintf("HTTP %d from %s: %s (is it a lumos API address?)", resp.StatusCode, c.base.Redacted(), msg),
	}
}

// transportError explains a failure to get an answer.
func (c *Client) transportError(err error) error {
	addr := c.base.Redacted()
	e := &Error{Code: state.CodeUnavailable, cause: err}
	var (
		ne    net.Error
		opErr *net.OpError
		dnsEr *net.DNSError
	)
	switch {
	case errors.Is(err, context.Canceled):
		e.Message = fmt.Sprintf("request to %s was canceled", addr)
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		e.Message = fmt.Sprintf("the lumos API at %s did not answer in time: check the address (--addr or LUMOS_ADDR) and that the node is running", addr)
	case errors.As(err, &dnsEr):
		e.Message = fmt.Sprintf("cannot resolve the host of the lumos API address %s (%s): set --addr or LUMOS_ADDR", addr, dnsEr.Err)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		e.Message = fmt.Sprintf("cannot connect to the lumos API at %s (%s): is the node running? set --addr or LUMOS_ADDR", addr, oneLine(opErr.Err.Error()))
	default:
		e.Message = fmt.Sprintf("cannot talk to the lumos API at %s: %s: check --addr or LUMOS_ADDR", addr, oneLine(unwrapURLError(err).Error()))
	}
	return e
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func seg(s string) string { return url.PathEscape(s) }

// Health checks that the node answers.
func (c *Client) Health(ctx context.Context) error {
	var h HealthResponse
	if err := c.do(ctx, http.MethodGet, "/v1/health", nil, nil, &h); err != nil {
		return err
	}
	if h.Status != "ok" {
		return &Error{StatusCode: http.StatusOK, Code: state.CodeUnavailable, Message: fmt.Sprintf("node %s at %s reports status %q", h.Node, c.base.Redacted(), h.Status)}
	}
	return nil
}

// Status returns the cluster status as the node sees it.
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	var out StatusResponse
	if err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Servers lists every server, decommissioned ones included.
func (c *Client) Servers(ctx context.Context) ([]ServerInfo, error) {
	var out []ServerInfo
	if err := c.do(ctx, http.MethodGet, "/v1/servers", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Server returns a server by ID or name.
func (c *Client) Server(ctx context.Context, ref string) (*ServerInfo, error) {
	var out ServerInfo
	if err := c.do(ctx, http.MethodGet, "/v1/servers/"+seg(ref), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddServer creates a server; the response holds its connection token,
// which is never shown again.
func (c *Client) AddServer(ctx context.Context, name string) (*AddServerResponse, error) {
	var out AddServerResponse
	if err := c.do(ctx, http.MethodPost, "/v1/servers", nil, &AddServerRequest{Name: name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RenameServer renames a server.
func (c *Client) RenameServer(ctx context.Context, ref, name string) (*ServerInfo, error) {
	var out ServerInfo
	if err := c.do(ctx, http.MethodPatch, "/v1/servers/"+seg(ref), nil, &RenameServerRequest{Name: name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DecommissionServer soft-deletes a server.
func (c *Client) DecommissionServer(ctx context.Context, ref string) (*DecommissionResponse, error) {
	var out DecommissionResponse
	if err := c.do(ctx, http.MethodPost, "/v1/servers/"+seg(ref)+"/decommission", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Domains lists every domain.
func (c *Client) Domains(ctx context.Context) ([]DomainInfo, error) {
	var out []DomainInfo
	if err := c.do(ctx, http.MethodGet, "/v1/domains", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Domain returns one domain.
func (c *Client) Domain(ctx context.Context, name string) (*DomainInfo, error) {
	var out DomainInfo
	if err := c.do(ctx, http.MethodGet, "/v1/domains/"+seg(name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddDomain creates a domain.
func (c *Client) AddDomain(ctx context.Context, req *AddDomainRequest) (*DomainInfo, error) {
	if req == nil {
		req = &AddDomainRequest{}
	}
	var out DomainInfo
	if err := c.do(ctx, http.MethodPost, "/v1/domains", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AssignDomain replaces a domain's ordered server list (IDs or names; the
// first is the primary).
func (c *Client) AssignDomain(ctx context.Context, name string, servers []string) (*DomainInfo, error) {
	if servers == nil {
		servers = []string{}
	}
	var out DomainInfo
	if err := c.do(ctx, http.MethodPut, "/v1/domains/"+seg(name)+"/servers", nil, &AssignRequest{Servers: servers}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetDomain changes a domain's settings; zero fields keep their values.
func (c *Client) SetDomain(ctx context.Context, name string, req *SetDomainRequest) (*DomainInfo, error) {
	var out DomainInfo
	if err := c.do(ctx, http.MethodPatch, "/v1/domains/"+seg(name), nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveDomain deletes a domain and returns it as it was.
func (c *Client) RemoveDomain(ctx context.Context, name string) (*DomainInfo, error) {
	var out DomainInfo
	if err := c.do(ctx, http.MethodDelete, "/v1/domains/"+seg(name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Events returns events newest first, optionally for one domain; limit 0
// means the server's default.
func (c *Client) Events(ctx context.Context, domain string, limit int) ([]state.Event, error) {
	q := url.Values{}
	if domain != "" {
		q.Set("domain", domain)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []state.Event
	if err := c.do(ctx, http.MethodGet, "/v1/events", q, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Plan returns the plan and its usage.
func (c *Client) Plan(ctx context.Context) (*PlanInfo, error) {
	var out PlanInfo
	if err := c.do(ctx, http.MethodGet, "/v1/plan", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetPlan changes the plan: "free", "pro", "enterprise" or a number.
func (c *Client) SetPlan(ctx context.Context, plan string) (*PlanInfo, error) {
	var out PlanInfo
	if err := c.do(ctx, http.MethodPut, "/v1/plan", nil, &PlanRequest{Plan: plan}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Join presents a shield's server token to the control plane. It needs no
// admin token.
// ServerSites lists the sites detected on a server's original HAProxy
// configuration.
func (c *Client) ServerSites(ctx context.Context, ref string) ([]SiteInfo, error) {
	var out []SiteInfo
	err := c.do(ctx, http.MethodGet, "/v1/servers/"+seg(ref)+"/sites", nil, nil, &out)
	return out, err
}

// ImportSites turns detected sites into managed domains on that server.
func (c *Client) ImportSites(ctx context.Context, ref string, sites []string) ([]DomainInfo, error) {
	var out []DomainInfo
	err := c.do(ctx, http.MethodPost, "/v1/servers/"+seg(ref)+"/import", nil, &ImportRequest{Sites: sites}, &out)
	return out, err
}

func (c *Client) Join(ctx context.Context, req *JoinRequest) (*JoinResponse, error) {
	if req == nil {
		req = &JoinRequest{}
	}
	var out JoinResponse
	if err := c.do(ctx, http.MethodPost, "/v1/join", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
