package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	cf "github.com/cloudflare/cloudflare-go"
	"golang.org/x/time/rate"

	"github.com/lumos-mesh/lumos/state"
)

// Defaults used when a Config field is zero.
const (
	// DefaultTimeout bounds each API call.
	DefaultTimeout = 10 * time.Second
	// DefaultRate is the request budget's refill rate in calls per second:
	// 300 calls per 5 minutes, a quarter of Cloudflare's 1200.
	DefaultRate = 1.0
	// DefaultBurst is how many calls the budget grants at once.
	DefaultBurst = 20
)

const (
	// zoneMissTTL is how long "no zone of that name" is remembered.
	zoneMissTTL = time.Minute
	// recordsPerPage is the page size of a record lookup; setting it makes
	// cloudflare-go fetch one page only, so a lookup is one request.
	recordsPerPage = 100
	// maxTTL is the largest TTL Cloudflare accepts.
	maxTTL = 86400
)

// Config configures a Provider.
type Config struct {
	// Token is the API token (needs Zone:Read and DNS:Edit on the zones).
	// It is never logged and never put in an error.
	Token string
	// BaseURL is the API base URL; "" means Cloudflare's real API. Tests
	// pass a cftest server's URL.
	BaseURL string
	// Timeout is the deadline of each API call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Rate and Burst size the request budget, a token bucket every API
	// call draws from; 0 means DefaultRate and DefaultBurst. Waiting for
	// the budget respects the caller's context.
	Rate  float64
	Burst int
	// Logger receives the provider's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with the defaults filled in and no token.
func DefaultConfig() Config {
	return Config{Timeout: DefaultTimeout, Rate: DefaultRate, Burst: DefaultBurst}
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	return c
}

func (c Config) validate() error {
	if strings.TrimSpace(c.Token) == "" {
		return fmt.Errorf("%w: api token is required", ErrInvalidConfig)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: timeout %s is negative", ErrInvalidConfig, c.Timeout)
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return fmt.Errorf("%w: rate must be a positive number of calls per second", ErrInvalidConfig)
	}
	if c.Burst < 0 {
		return fmt.Errorf("%w: burst %d is negative", ErrInvalidConfig, c.Burst)
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: base url must be an http or https url", ErrInvalidConfig)
		}
	}
	return nil
}

// Provider points DNS A records at shields through the Cloudflare API.
// It caches zone and record IDs and the last content it saw, so a Set that
// changes nothing makes no API call. It is safe for concurrent use; Sets
// for the same domain are serialised.
type Provider struct {
	api     *cf.API
	tr      *http.Transport
	budget  *rate.Limiter
	timeout time.Duration
	log     *slog.Logger
	token   string

	mu      sync.Mutex
	closed  bool
	gen     uint64 // bumped by Forget; stale lookups are not cached
	zones   map[string]zoneEntry
	domains map[string]*domainEntry
	locks   map[string]chan struct{}
}

// zoneEntry caches the answer to "which zone is named n".
type zoneEntry struct {
	id      string
	missing bool
	expires time.Time // for missing entries
}

// domainEntry caches where a domain's A record lives.
type domainEntry struct {
	zoneID   string
	zoneName string
	rec      *recordState // nil: not read yet or invalidated
}

// recordState is the A record as last read or written.
type recordState struct {
	id      string
	content netip.Addr
	ttl     int
	proxied bool
	tags    []string
}

// New returns a Provider for cfg. It makes no API call.
func New(cfg Config) (*Provider, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Provider{
		budget:  rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst),
		timeout: cfg.Timeout,
		log:     log,
		token:   cfg.Token,
		zones:   make(map[string]zoneEntry),
		domains: make(map[string]*domainEntry),
		locks:   make(map[string]chan struct{}),
	}
	base, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		base = &http.Transport{}
	}
	p.tr = base.Clone()
	client := &http.Client{Transport: &transport{base: p.tr, budget: p.waitBudget}}

	opts := []cf.Option{
		cf.HTTPClient(client),
		cf.UserAgent("lumos"),
		// No retries inside cloudflare-go: it would sleep seconds on 429
		// and 5xx, ignore Retry-After and hide the status. The caller
		// retries with its own backoff, told apart by our error classes.
		cf.UsingRetryPolicy(0, 0, 0),
		// Its own limiter (4 req/s, burst 1) is switched off: the budget
		// above is the only limiter.
		cf.UsingRateLimit(float64(rate.Inf)),
	}
	if cfg.BaseURL != "" {
		opts = append(opts, cf.BaseURL(strings.TrimRight(cfg.BaseURL, "/")))
	}
	api, err := cf.NewWithAPIToken(cfg.Token, opts...)
	if err != nil {
		// cloudflare-go's messages here never contain the token.
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	p.api = api
	return p, nil
}

// Name returns "cloudflare".
func (p *Provider) Name() string { return "cloudflare" }

// Close releases idle connections; later calls fail with ErrClosed. It is
// safe to call twice. ctx is unused: nothing needs waiting for.
func (p *Provider) Close(ctx context.Context) error {
	_ = ctx
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.tr.CloseIdleConnections()
	return nil
}

// Forget drops every cached zone and record, so the next Set of each
// domain reads them again (for example after a leadership change, when
// another node may have changed records). A Set in flight does not cache
// what it read before Forget.
func (p *Provider) Forget() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	clear(p.zones)
	clear(p.domains)
}

// Set makes the A record named domain (the name itself, e.g.
// "shop.example.com") point at ip with ttl, and reports whether it wrote.
//
// When the cached record already has that content and TTL, Set returns
// false without calling the API; otherwise it finds the zone (longest
// suffix first), reads the A record and creates (not proxied) or updates
// it (PATCH of content and TTL, keeping the proxied flag; a proxied
// record's TTL is 1, automatic). A failure drops the domain's cached
// record, so the next Set reads it again.
//
// ip must be an IPv4 address; ttl is 1 (automatic) or 30..86400 seconds
// (Cloudflare accepts less than 60 on Enterprise zones only). Errors match
// ErrInvalidInput, ErrAuth, ErrRateLimited, ErrZoneNotFound,
// ErrUnavailable, ErrRejected, ErrClosed or ctx's error.
func (p *Provider) Set(ctx context.Context, domain, ip string, ttl int) (changed bool, err error) {
	name, addr, err := checkInput(domain, ip, ttl)
	if err != nil {
		return false, fmt.Errorf("cloudflare set %q: %w", domain, err)
	}
	release, err := p.lock(ctx, name)
	if err != nil {
		return false, fmt.Errorf("cloudflare set %s: %w", name, err)
	}
	defer release()
	changed, err = p.set(ctx, name, addr, ttl)
	if err != nil {
		return false, fmt.Errorf("cloudflare set %s: %w", name, err)
	}
	return changed, nil
}

func checkInput(domain, ip string, ttl int) (string, netip.Addr, error) {
	name, err := state.NormalizeDomainName(domain)
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("%w: ip %q is not an ip address", ErrInvalidInput, ip)
	}
	addr = addr.Unmap()
	if !addr.Is4() {
		return "", netip.Addr{}, fmt.Errorf("%w: ip %s is not an ipv4 address", ErrInvalidInput, addr)
	}
	if ttl < 1 || ttl > maxTTL {
		return "", netip.Addr{}, fmt.Errorf("%w: ttl %d must be 1 (automatic) to %d", ErrInvalidInput, ttl, maxTTL)
	}
	return name, addr, nil
}

// lock serialises Sets of one domain; waiting respects ctx.
func (p *Provider) lock(ctx context.Context, name string) (func(), error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	ch, ok := p.locks[name]
	if !ok {
		ch = make(chan struct{}, 1)
		p.locks[name] = ch
	}
	p.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Provider) set(ctx context.Context, name string, addr netip.Addr, ttl int) (bool, error) {
	p.mu.Lock()
	gen := p.gen
	var ent domainEntry
	cached := p.domains[name]
	if cached != nil {
		ent = *cached
	}
	p.mu.Unlock()

	if ent.rec != nil && ent.rec.matches(addr, ttl) {
		p.log.Debug("cloudflare record already current", "domain", name, "ip", addr.String(), "ttl", ttl)
		return false, nil
	}
	if cached == nil {
		zoneID, zoneName, err := p.findZone(ctx, gen, name)
		if err != nil {
			return false, err
		}
		ent = domainEntry{zoneID: zoneID, zoneName: zoneName}
		p.storeDomain(gen, name, ent)
	}

	for attempt := 0; ; attempt++ {
		rec := ent.rec
		if rec == nil {
			recs, err := p.listRecords(ctx, ent.zoneID, name)
			if err != nil {
				p.invalidate(gen, name, ent.zoneName, err)
				return false, err
			}
			if len(recs) == 0 {
				created, err := p.createRecord(ctx, ent.zoneID, name, addr, ttl)
				if err != nil {
					p.invalidate(gen, name, ent.zoneName, err)
					return false, err
				}
				ent.rec = created
				p.storeDomain(gen, name, ent)
				p.log.Info("cloudflare record created", "domain", name, "zone", ent.zoneName,
					"ip", addr.String(), "ttl", created.ttl)
				return true, nil
			}
			if len(recs) > 1 {
				p.log.Warn("cloudflare has several A records for the domain; managing the first",
					"domain", name, "zone", ent.zoneName, "records", len(recs), "record_id", recs[0].id)
			}
			rec = recs[0]
			ent.rec = rec
			p.storeDomain(gen, name, ent)
			if rec.matches(addr, ttl) {
				p.log.Debug("cloudflare record already current", "domain", name, "ip", addr.String(), "ttl", ttl)
				return false, nil
			}
		}

		updated, err := p.updateRecord(ctx, ent.zoneID, rec, addr, ttl)
		if err != nil {
			p.invalidate(gen, name, ent.zoneName, err)
			if errors.Is(err, errRecordGone) && attempt == 0 {
				// Deleted behind our back: read again and create it.
				ent.rec = nil
				continue
			}
			return false, err
		}
		ent.rec = updated
		p.storeDomain(gen, name, ent)
		p.log.Info("cloudflare record updated", "domain", name, "zone", ent.zoneName,
			"from", rec.content.String(), "ip", addr.String(), "ttl", updated.ttl, "proxied", updated.proxied)
		return true, nil
	}
}

// matches reports whether the record already points at addr with the TTL
// Set would write (1 for a proxied record).
func (r *recordState) matches(addr netip.Addr, ttl int) bool {
	return r.content == addr && r.ttl == wantTTL(ttl, r.proxied)
}

// MinTTL is the lowest TTL Cloudflare accepts on every plan (Enterprise
// zones allow 30): lower TTLs, lumos's 30 s failover default among them,
// are written as MinTTL so a failover is never refused for its TTL.
const MinTTL = 60

func wantTTL(ttl int, proxied bool) int {
	switch {
	case proxied || ttl == 1:
		return 1
	case ttl < MinTTL:
		return MinTTL
	}
	return ttl
}

// zoneCandidates lists the names a zone for name may have, longest first,
// down to two labels.
func zoneCandidates(name string) []string {
	out := []string{name}
	for {
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return out
		}
		name = name[i+1:]
		if !strings.Contains(name, ".") {
			return out
		}
		out = append(out, name)
	}
}

// findZone finds the zone holding name: the longest suffix of name that is
// a zone the token can see.
func (p *Provider) findZone(ctx context.Context, gen uint64, name string) (id, zoneName string, err error) {
	for _, cand := range zoneCandidates(name) {
		p.mu.Lock()
		e, ok := p.zones[cand]
		p.mu.Unlock()
		if ok && (!e.missing || time.Now().Before(e.expires)) {
			if e.missing {
				continue
			}
			return e.id, cand, nil
		}
		id, found, err := p.lookupZone(ctx, cand)
		if err != nil {
			return "", "", err
		}
		p.mu.Lock()
		if p.gen == gen {
			if found {
				p.zones[cand] = zoneEntry{id: id}
			} else {
				p.zones[cand] = zoneEntry{missing: true, expires: time.Now().Add(zoneMissTTL)}
			}
		}
		p.mu.Unlock()
		if found {
			return id, cand, nil
		}
	}
	return "", "", fmt.Errorf("%w: no zone holds %s", ErrZoneNotFound, name)
}

// lookupZone asks the API for the zone named exactly zoneName.
func (p *Provider) lookupZone(ctx context.Context, zoneName string) (string, bool, error) {
	var res cf.ZonesResponse
	err := p.call(ctx, "list zones", ErrUnavailable, func(ctx context.Context) error {
		var err error
		res, err = p.api.ListZonesContext(ctx, cf.WithZoneFilters(zoneName, "", ""))
		return err
	})
	if err != nil {
		return "", false, err
	}
	id := ""
	for _, z := range res.Result {
		if !strings.EqualFold(strings.TrimSuffix(z.Name, "."), zoneName) || z.ID == "" {
			continue
		}
		if z.Status == "active" {
			return z.ID, true, nil
		}
		if id == "" {
			id = z.ID
		}
	}
	return id, id != "", nil
}

func (p *Provider) listRecords(ctx context.Context, zoneID, name string) ([]*recordState, error) {
	var recs []cf.DNSRecord
	err := p.call(ctx, "list records", ErrZoneNotFound, func(ctx context.Context) error {
		var err error
		recs, _, err = p.api.ListDNSRecords(ctx, cf.ZoneIdentifier(zoneID), cf.ListDNSRecordsParams{
			Type:       "A",
			Name:       name,
			ResultInfo: cf.ResultInfo{Page: 1, PerPage: recordsPerPage},
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []*recordState
	for _, r := range recs {
		if r.Type != "A" || !strings.EqualFold(strings.TrimSuffix(r.Name, "."), name) {
			continue
		}
		st, err := toState(r)
		if err != nil {
			return nil, fmt.Errorf("list records: %w", err)
		}
		out = append(out, st)
	}
	return out, nil
}

func (p *Provider) createRecord(ctx context.Context, zoneID, name string, addr netip.Addr, ttl int) (*recordState, error) {
	var rec cf.DNSRecord
	proxied := false
	err := p.call(ctx, "create record", ErrZoneNotFound, func(ctx context.Context) error {
		var err error
		rec, err = p.api.CreateDNSRecord(ctx, cf.ZoneIdentifier(zoneID), cf.CreateDNSRecordParams{
			Type:    "A",
			Name:    name,
			Content: addr.String(),
			TTL:     wantTTL(ttl, false),
			Proxied: &proxied,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	st, err := toState(rec)
	if err != nil {
		return nil, fmt.Errorf("create record: %w", err)
	}
	return st, nil
}

func (p *Provider) updateRecord(ctx context.Context, zoneID string, cur *recordState, addr netip.Addr, ttl int) (*recordState, error) {
	var rec cf.DNSRecord
	err := p.call(ctx, "update record", errRecordGone, func(ctx context.Context) error {
		var err error
		// PATCH: only content and TTL change; the proxied flag is left
		// as it is. tags is always sent by cloudflare-go, so send back
		// the ones the record has.
		rec, err = p.api.UpdateDNSRecord(ctx, cf.ZoneIdentifier(zoneID), cf.UpdateDNSRecordParams{
			ID:      cur.id,
			Content: addr.String(),
			TTL:     wantTTL(ttl, cur.proxied),
			Tags:    cur.tags,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	st, err := toState(rec)
	if err != nil {
		return nil, fmt.Errorf("update record: %w", err)
	}
	return st, nil
}

// toState converts an API record; an answer without an ID or with content
// that is no IPv4 address is not understood.
func toState(r cf.DNSRecord) (*recordState, error) {
	addr, err := netip.ParseAddr(r.Content)
	if r.ID == "" || err != nil {
		return nil, fmt.Errorf("%w: unexpected record in answer (id %q, content %q)", ErrUnavailable, r.ID, r.Content)
	}
	st := &recordState{
		id:      r.ID,
		content: addr.Unmap(),
		ttl:     r.TTL,
		proxied: r.Proxied != nil && *r.Proxied,
	}
	if len(r.Tags) > 0 {
		st.tags = slices.Clone(r.Tags)
	}
	return st, nil
}

func (p *Provider) storeDomain(gen uint64, name string, ent domainEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen {
		return
	}
	e := ent
	p.domains[name] = &e
}

// invalidate drops the cached record of name after a failed call; when the
// failure says the zone is gone, the zone and every domain in it go too.
func (p *Provider) invalidate(gen uint64, name, zoneName string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if errors.Is(err, ErrZoneNotFound) {
		delete(p.zones, zoneName)
		for d, e := range p.domains {
			if e.zoneName == zoneName {
				delete(p.domains, d)
			}
		}
		return
	}
	if p.gen != gen {
		return
	}
	if e := p.domains[name]; e != nil {
		e.rec = nil
	}
}

// waitBudget takes one call from the request budget, waiting as long as
// ctx allows.
func (p *Provider) waitBudget(ctx context.Context) error {
	r := p.budget.Reserve()
	if !r.OK() {
		return fmt.Errorf("wait for request budget: %w", ErrRateLimited)
	}
	d := r.Delay()
	if d == 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		r.Cancel()
		return fmt.Errorf("wait for request budget: %w: %w", ErrRateLimited, context.DeadlineExceeded)
	}
	p.log.Debug("waiting for cloudflare request budget", "wait", d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return fmt.Errorf("wait for request budget: %w", ctx.Err())
	}
}

// call runs one API call: it takes a call from the budget (under ctx),
// then runs fn under ctx with the call timeout and classifies a failure.
// notFound is what a 404 means for this call.
func (p *Provider) call(ctx context.Context, op string, notFound error, fn func(ctx context.Context) error) error {
	if err := p.waitBudget(ctx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	obs := &observation{}
	cctx, cancel := context.WithTimeout(withObservation(ctx, obs), p.timeout)
	defer cancel()
	err := fn(cctx)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		// The caller gave up; its reason is the answer.
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	return fmt.Errorf("%s: %w", op, p.classify(obs, notFound, err))
}

// classify turns a cloudflare-go error into an *APIError. The status comes
// from the transport: cloudflare-go reports 429 and 5xx as plain errors.
func (p *Provider) classify(obs *observation, notFound error, err error) *APIError {
	status, retryAfter := obs.result()
	e := &APIError{Status: status, RetryAfter: retryAfter}
	var cfErr *cf.Error
	if errors.As(err, &cfErr) {
		e.Codes = slices.Clone(cfErr.ErrorCodes)
		if e.Status == 0 {
			e.Status = cfErr.StatusCode
		}
	}
	switch s := e.Status; {
	case s == 0 && errors.Is(err, ErrRateLimited):
		// The budget refused an extra request of a paginated call.
		e.Kind = ErrRateLimited
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.Kind = ErrAuth
	case s == http.StatusTooManyRequests:
		e.Kind = ErrRateLimited
	case s == http.StatusNotFound || (s == http.StatusBadRequest && slices.Contains(e.Codes, 7003)):
		e.Kind = notFound
	case s >= 500:
		e.Kind = ErrUnavailable
	case s >= 400:
		e.Kind = ErrRejected
	default:
		// No answer (network error, timeout) or one we could not read.
		e.Kind = ErrUnavailable
	}
	// cloudflare-go's text for 429 and 5xx is made up ("exceeded available
	// rate limit retries") and says nothing the status does not; keep the
	// API's own messages for the rest.
	if e.Status != http.StatusTooManyRequests && e.Status < 500 {
		e.detail = p.redact(err.Error())
	}
	return e
}

// redact removes the token from a message, should anything ever echo it.
func (p *Provider) redact(s string) string {
	if len(p.token) >= 4 {
		s = strings.ReplaceAll(s, p.token, "[redacted]")
	}
	return strings.TrimSpace(s)
}
