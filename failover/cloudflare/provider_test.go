package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/failover/cloudflare/cftest"
)

func TestNewValidates(t *testing.T) {
	bad := []struct {
		name string
		cfg  Config
	}{
		{"no token", Config{}},
		{"blank token", Config{Token: "  "}},
		{"negative rate", Config{Token: testToken, Rate: -1}},
		{"negative burst", Config{Token: testToken, Burst: -1}},
		{"negative timeout", Config{Token: testToken, Timeout: -time.Second}},
		{"bad base url", Config{Token: testToken, BaseURL: "ftp://example.com"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
	p, err := New(Config{Token: testToken})
	if err != nil {
		t.Fatalf("New with defaults: %v", err)
	}
	defer p.Close(context.Background())
	if p.Name() != "cloudflare" {
		t.Fatalf("Name = %q", p.Name())
	}
	if p.timeout != DefaultTimeout || p.budget.Limit() != DefaultRate || p.budget.Burst() != DefaultBurst {
		t.Fatalf("defaults not applied: timeout %s rate %v burst %d", p.timeout, p.budget.Limit(), p.budget.Burst())
	}
}

func TestSetRejectsBadInput(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		domain, ip string
		ttl        int
	}{
		{"", "192.0.2.1", 300},
		{"localhost", "192.0.2.1", 300},
		{"shop.example.com", "not-an-ip", 300},
		{"shop.example.com", "2001:db8::1", 300},
		{"shop.example.com", "192.0.2.1", 0},
		{"shop.example.com", "192.0.2.1", 86401},
	} {
		_, err := e.trySet(tc.domain, tc.ip, tc.ttl)
		if !errors.Is(err, ErrInvalidInput) {
			t.Errorf("Set(%q, %q, %d) = %v, want ErrInvalidInput", tc.domain, tc.ip, tc.ttl, err)
		}
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Fatalf("bad input reached the API: %d requests", n)
	}
}

func TestSetUpdatesRecordInParentZone(t *testing.T) {
	e := newEnv(t, nil)
	zoneID := e.srv.AddZone("example.com")
	id := e.srv.AddRecord("example.com", cftest.Record{Name: "shop", Content: "192.0.2.1", TTL: 3600, Tags: []string{"team:web"}})
	e.srv.AddRecord("example.com", cftest.Record{Name: "other", Content: "192.0.2.9", TTL: 3600})

	if !e.set(t, "Shop.Example.com.", "198.51.100.7", 120) {
		t.Fatal("Set reported no change")
	}
	r := requireRecord(t, e.srv, "example.com", "shop.example.com", "198.51.100.7", 120)
	if r.ID != id || r.Proxied || len(r.Tags) != 1 || r.Tags[0] != "team:web" {
		t.Fatalf("record changed beyond content and ttl: %+v", r)
	}
	requireRecord(t, e.srv, "example.com", "other.example.com", "192.0.2.9", 3600)

	// Longest suffix first, stopping at the first zone found.
	want := []string{"name=shop.example.com&per_page=50", "name=example.com&per_page=50"}
	if got := zoneQueries(e.srv); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("zone lookups = %q, want %q", got, want)
	}
	if n := e.srv.Count(http.MethodPatch, "/zones/"+zoneID+"/dns_records/"+id); n != 1 {
		t.Fatalf("PATCH count = %d, want 1", n)
	}
	if n := e.srv.Count(http.MethodPut, ""); n != 0 {
		t.Fatalf("PUT used %d times; updates must be PATCH", n)
	}
	if n := e.srv.Count(http.MethodPost, ""); n != 0 {
		t.Fatalf("POST used %d times for an existing record", n)
	}
}

func TestSetWalksDownToTwoLabels(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.trySet("a.b.example.com", "192.0.2.1", 300)
	if !errors.Is(err, ErrZoneNotFound) {
		t.Fatalf("Set = %v, want ErrZoneNotFound", err)
	}
	want := []string{
		"name=a.b.example.com&per_page=50",
		"name=b.example.com&per_page=50",
		"name=example.com&per_page=50",
	}
	if got := zoneQueries(e.srv); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("zone lookups = %q, want %q", got, want)
	}
	// Misses are remembered for a while: no new lookup.
	e.srv.ResetRequests()
	if _, err := e.trySet("a.b.example.com", "192.0.2.1", 300); !errors.Is(err, ErrZoneNotFound) {
		t.Fatalf("second Set = %v, want ErrZoneNotFound", err)
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Fatalf("second Set made %d requests, want 0", n)
	}
	// Forget drops the misses: a zone added since is found.
	e.srv.AddZone("example.com")
	e.p.Forget()
	if !e.set(t, "a.b.example.com", "192.0.2.1", 300) {
		t.Fatal("Set after Forget reported no change")
	}
	requireRecord(t, e.srv, "example.com", "a.b.example.com", "192.0.2.1", 300)
}

func TestSetKeepsProxied(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.AddZone("example.com")
	e.srv.AddRecord("example.com", cftest.Record{Name: "cdn.example.com", Content: "192.0.2.1", Proxied: true})

	if !e.set(t, "cdn.example.com", "198.51.100.2", 300) {
		t.Fatal("Set reported no change")
	}
	r := requireRecord(t, e.srv, "example.com", "cdn.example.com", "198.51.100.2", 1)
	if !r.Proxied {
		t.Fatal("proxied flag was dropped")
	}
	// The proxied record's TTL is automatic, so it matches: no call.
	e.srv.ResetRequests()
	if e.set(t, "cdn.example.com", "198.51.100.2", 300) {
		t.Fatal("identical Set reported a change")
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Fatalf("identical Set made %d requests", n)
	}
}

func TestIdenticalSetMakesNoCall(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.AddZone("example.com")
	e.srv.AddRecord("example.com", cftest.Record{Name: "www", Content: "192.0.2.1", TTL: 300})

	// Already right when first read: read, no write.
	if e.set(t, "www.example.com", "192.0.2.1", 300) {
		t.Fatal("Set of the current value reported a change")
	}
	if n := e.srv.Count(http.MethodPatch, "") + e.srv.Count(http.MethodPost, ""); n != 0 {
		t.Fatalf("Set of the current value wrote %d times", n)
	}

	e.srv.ResetRequests()
	for range 5 {
		if e.set(t, "www.example.com", "192.0.2.1", 300) {
			t.Fatal("cached identical Set reported a change")
		}
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Fatalf("cached identical Sets made %d requests, want 0", n)
	}

	// A TTL change alone is a change, and one write.
	if !e.set(t, "www.example.com", "192.0.2.1", 600) {
		t.Fatal("TTL change reported no change")
	}
	requireRecord(t, e.srv, "example.com", "www.example.com", "192.0.2.1", 600)
	if n := len(e.srv.Requests()); n != 1 {
		t.Fatalf("cached TTL change made %d requests, want 1 (PATCH)", n)
	}
}

func TestSetCreatesMissingRecord(t *testing.T) {
	e := newEnv(t, nil)
	zoneID := e.srv.AddZone("example.org")
	e.srv.AddRecord("example.org", cftest.Record{Type: "TXT", Name: "new.example.org", Content: "v=spf1 -all"})

	if !e.set(t, "new.example.org", "203.0.113.5", 60) {
		t.Fatal("create reported no change")
	}
	r := requireRecord(t, e.srv, "example.org", "new.example.org", "203.0.113.5", 60)
	if r.Proxied {
		t.Fatal("created record is proxied")
	}
	if n := e.srv.Count(http.MethodPost, "/zones/"+zoneID+"/dns_records"); n != 1 {
		t.Fatalf("POST count = %d, want 1", n)
	}
	if n := len(e.srv.Records("example.org")); n != 2 {
		t.Fatalf("zone holds %d records, want 2 (TXT kept, A added)", n)
	}
	// The created record is cached.
	e.srv.ResetRequests()
	if e.set(t, "new.example.org", "203.0.113.5", 60) {
		t.Fatal("identical Set after create reported a change")
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Fatalf("identical Set after create made %d requests", n)
	}
}

func TestSimilarZoneNames(t *testing.T) {
	e := newEnv(t, nil)
	for _, z := range []string{"myexample.com", "example.com.au", "example.com", "eu.example.com", "example.co"} {
		e.srv.AddZone(z)
	}
	cases := []struct{ domain, zone string }{
		{"shop.example.com", "example.com"},
		{"example.com", "example.com"},
		{"www.myexample.com", "myexample.com"},
		{"www.example.com.au", "example.com.au"},
		{"shop.eu.example.com", "eu.example.com"},
		{"example.co", "example.co"},
	}
	for i, c := range cases {
		ip := fmt.Sprintf("192.0.2.%d", i+1)
		if !e.set(t, c.domain, ip, 300) {
			t.Fatalf("Set %s reported no change", c.domain)
		}
		requireRecord(t, e.srv, c.zone, c.domain, ip, 300)
	}
	total := 0
	for _, z := range []string{"myexample.com", "example.com.au", "example.com", "eu.example.com", "example.co"} {
		total += len(e.srv.Records(z))
	}
	if total != len(cases) {
		t.Fatalf("%d records created, want %d (one per domain, in its own zone)", total, len(cases))
	}
}

func TestSeveralRecordsUpdatesFirstAndWarns(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.AddZone("example.com")
	first := e.srv.AddRecord("example.com", cftest.Record{Name: "rr", Content: "192.0.2.1", TTL: 300})
	e.srv.AddRecord("example.com", cftest.Record{Name: "rr", Content: "192.0.2.2", TTL: 300})

	if !e.set(t, "rr.example.com", "198.51.100.1", 300) {
		t.Fatal("Set reported no change")
	}
	recs := e.srv.Records("example.com")
	if recs[0].ID != first || recs[0].Content != "198.51.100.1" || recs[1].Content != "192.0.2.2" {
		t.Fatalf("records = %+v, want the first updated and the second untouched", recs)
	}
	if !strings.Contains(e.logs.String(), "several A records") {
		t.Fatalf("no warning logged:\n%s", e.logs.String())
	}
}

func TestNoClientSideThrottling(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.AddZone("example.com")
	start := time.Now()
	for i := range 8 {
		e.set(t, "fast.example.com", fmt.Sprintf("192.0.2.%d", i+1), 300)
	}
	// cloudflare-go's default limiter (4 req/s) alone would make these
	// 10 calls take over 2 s.
	if d := time.Since(start); d > time.Second {
		t.Fatalf("8 Sets (10 calls) took %s; a client-side limiter is in the way", d)
	}
}

func TestErrorsAreClassified(t *testing.T) {
	cases := []struct {
		status int
		want   error
	}{
		{http.StatusTooManyRequests, ErrRateLimited},
		{http.StatusInternalServerError, ErrUnavailable},
		{http.StatusBadGateway, ErrUnavailable},
		{http.StatusServiceUnavailable, ErrUnavailable},
		{http.StatusGatewayTimeout, ErrUnavailable},
		{http.StatusUnauthorized, ErrAuth},
		{http.StatusForbidden, ErrAuth},
		{http.StatusBadRequest, ErrRejected},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			e := newEnv(t, nil)
			e.srv.AddZone("example.com")
			e.srv.AddRecord("example.com", cftest.Record{Name: "www", Content: "192.0.2.1", TTL: 300})
			e.set(t, "www.example.com", "192.0.2.1", 300) // warm the cache
			e.srv.ResetRequests()

			e.srv.FailNext(1, tc.status)
			start := time.Now()
			_, err := e.trySet("www.example.com", "192.0.2.2", 300)
			elapsed := time.Since(start)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Set = %v, want %v", err, tc.want)
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tc.status {
				t.Fatalf("Set error %v carries no APIError with status %d", err, tc.status)
			}
			// One request, no retry inside cloudflare-go, and prompt.
			if n := len(e.srv.Requests()); n != 1 {
				t.Fatalf("failed Set made %d requests, want 1", n)
			}
			if elapsed > 500*time.Millisecond {
				t.Fatalf("failed Set took %s; internal retries?", elapsed)
			}
			if tc.status == http.StatusTooManyRequests {
				if ra, ok := RetryAfter(err); !ok || ra != cftest.DefaultRetryAfter {
					t.Fatalf("RetryAfter = %s, %v; want %s", ra, ok, cftest.DefaultRetryAfter)
				}
			}

			// The failure dropped the cached record: the next Set reads
			// it again, then writes.
			e.srv.ResetRequests()
			if !e.set(t, "www.example.com", "192.0.2.2", 300) {
				t.Fatal("Set after the failure reported no change")
			}
			requireRecord(t, e.srv, "example.com", "www.example.com", "192.0.2.2", 300)
			if n := e.srv.Count(http.MethodGet, "/zones/"); n != 1 {
				t.Fatalf("Set after the failure made %d record reads, want 1", n)
			}
			if n := e.srv.Count(http.MethodPatch, ""); n != 1 {
				t.Fatalf("Set after the failure made %d writes, want 1", n)
			}
		})
	}
}

func TestWrongTokenIsErrAuth(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Token = "not-the-right-token-123" })
	e.srv.AddZone("example.com")
	_, err := e.trySet("www.example.com", "192.0.2.1", 300)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("Set = %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), "not-the-right-token-123") {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestUnknownZone(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.AddZone("example.net")
	_, err := e.trySet("shop.example.com", "192.0.2.1", 300)
	if !errors.Is(err, ErrZoneNotFound) {
		t.Fatalf("Set = %v, want ErrZoneNotFound", err)
	}
	if n := e.srv.Count(http.MethodPost, "") + e.srv.Count(http.MethodPatch, ""); n != 0 {
		t.Fatalf("%d writes for a domain without zone", n)
	}
}

func TestTimeoutIsUnavailable(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Timeout = 150 * time.Millisecond })
	e.srv.AddZone("example.com")
	e.srv.SetDelay(3 * time.Second)
	start := time.Now()
	_, err := e.trySet("www.example.com", "192.0.2.1", 300)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Set = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timed-out Set took %s", d)
	}
	e.srv.SetDelay(0)
	if !e.set(t, "www.example.com", "192.0.2.1", 300) {
		t.Fatal("Set after the timeout reported no change")
	}
}

func TestNetworkErrorIsUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.AddZone("example.com")
	e.srv.Close()
	_, err := e.trySet("www.example.com", "192.0.2.1", 300)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Set = %v, want ErrUnavailable", err)
	}
}

func TestCallerCancelIsNotClassified(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.AddZone("example.com")
	e.srv.SetDelay(3 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := e.p.Set(ctx, "www.example.com", "192.0.2.1", 300)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Set = %v, want context.Canceled only", err)
	}
}

func TestRecordDeletedBehindOurBack(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.AddZone("example.com")
	id := e.srv.AddRecord("example.com", cftest.Record{Name: "www", Content: "192.0.2.1", TTL: 300})
	e.set(t, "www.example.com", "192.0.2.1", 300)
	e.srv.DeleteRecord("example.com", id)

	if !e.set(t, "www.example.com", "192.0.2.2", 300) {
		t.Fatal("Set reported no change")
	}
	r := requireRecord(t, e.srv, "example.com", "www.example.com", "192.0.2.2", 300)
	if r.ID == id {
		t.Fatal("record was not recreated")
	}
}

func TestForgetRereads(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.AddZone("example.com")
	e.srv.AddRecord("example.com", cftest.Record{Name: "www", Content: "192.0.2.1", TTL: 300})
	e.set(t, "www.example.com", "192.0.2.1", 300)

	// Someone changes the record by hand; the cache still says .1, so an
	// identical Set trusts it until Forget.
	recs := e.srv.Records("example.com")
	e.srv.DeleteRecord("example.com", recs[0].ID)
	e.srv.AddRecord("example.com", cftest.Record{Name: "www", Content: "192.0.2.99", TTL: 300})
	if e.set(t, "www.example.com", "192.0.2.1", 300) {
		t.Fatal("cached Set reported a change")
	}
	e.p.Forget()
	if !e.set(t, "www.example.com", "192.0.2.1", 300) {
		t.Fatal("Set after Forget did not repair the record")
	}
	requireRecord(t, e.srv, "example.com", "www.example.com", "192.0.2.1", 300)
}

func TestConcurrentSets(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.AddZone("example.com")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			domain := fmt.Sprintf("d%d.example.com", i%4)
			if _, err := e.trySet(domain, "192.0.2.10", 300); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Set: %v", err)
	}
	// Sets of one domain are serialised: one create per domain.
	if n := e.srv.Count(http.MethodPost, ""); n != 4 {
		t.Fatalf("%d creates, want 4", n)
	}
	if n := len(e.srv.Records("example.com")); n != 4 {
		t.Fatalf("%d records, want 4", n)
	}
}

func TestBudgetPacesCalls(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Rate, c.Burst = 2, 2 })
	e.srv.AddZone("pace.example")
	e.set(t, "pace.example", "192.0.2.1", 300) // zone, list, create

	// Six Sets the cache cannot answer: one PATCH each. The bucket holds at
	// most 2 calls and refills 2/s, so they need at least 2 s.
	start := time.Now()
	for i := range 6 {
		e.set(t, "pace.example", fmt.Sprintf("192.0.2.%d", i+2), 300)
	}
	elapsed := time.Since(start)
	if elapsed < 1500*time.Millisecond {
		t.Fatalf("6 API calls took %s; the budget (2/s, burst 2) did not pace them", elapsed)
	}
	if elapsed > 10*time.Second {
		t.Fatalf("6 API calls took %s", elapsed)
	}
	if n := e.srv.Count(http.MethodPatch, ""); n != 6 {
		t.Fatalf("%d PATCHes, want 6", n)
	}
}

func TestBudgetWaitRespectsContext(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Rate, c.Burst = 0.01, 1 })
	e.srv.AddZone("example.com")

	// The first call (zone lookup) takes the only token; the next would
	// wait 100 s.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := e.p.Set(ctx, "example.com", "192.0.2.1", 300)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Set = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancelled Set returned after %s", d)
	}
	if n := len(e.srv.Requests()); n != 1 {
		t.Fatalf("%d requests, want 1 (the zone lookup)", n)
	}

	// A deadline too close for the budget fails at once as rate limited.
	ctx, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	start = time.Now()
	_, err = e.p.Set(ctx, "example.com", "192.0.2.1", 300)
	if !errors.Is(err, ErrRateLimited) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Set = %v, want ErrRateLimited and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Fatalf("Set waited %s for a budget it could not get", d)
	}
}

func TestClose(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := e.trySet("www.example.com", "192.0.2.1", 300); !errors.Is(err, ErrClosed) {
		t.Fatalf("Set after Close = %v, want ErrClosed", err)
	}
}

func TestTokenNeverLeaks(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	e.srv.AddZone("example.com")
	e.srv.AddRecord("example.com", cftest.Record{Name: "a", Content: "192.0.2.1", TTL: 300})
	e.srv.AddRecord("example.com", cftest.Record{Name: "a", Content: "192.0.2.2", TTL: 300})

	var errs []error
	try := func(domain, ip string, ttl int) {
		if _, err := e.trySet(domain, ip, ttl); err != nil {
			errs = append(errs, err)
		}
	}
	try("a.example.com", "198.51.100.1", 300) // update, warning logged
	try("b.example.com", "198.51.100.1", 300) // create
	for _, status := range []int{401, 403, 429, 500, 503, 400} {
		e.srv.FailNext(1, status)
		try("a.example.com", "198.51.100.9", 300)
	}
	try("a.example.com", "198.51.100.1", 45) // rejected by the API
	try("nozone.test", "198.51.100.1", 300)
	try("bad domain", "198.51.100.1", 300)
	e.srv.SetDelay(time.Second)
	try("c.example.com", "198.51.100.1", 300) // timeout
	e.srv.SetDelay(0)
	e.srv.Close()
	try("d.example.com", "198.51.100.1", 300) // network error

	if len(errs) < 10 {
		t.Fatalf("only %d errors produced; the scenarios did not run", len(errs))
	}
	for _, err := range errs {
		if strings.Contains(err.Error(), testToken) || strings.Contains(fmt.Sprintf("%+v", err), testToken) {
			t.Fatalf("error leaks the token: %v", err)
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "cloudflare record") {
		t.Fatalf("nothing was logged; the check proves nothing:\n%s", logs)
	}
	if strings.Contains(logs, testToken) {
		t.Fatalf("logs leak the token:\n%s", logs)
	}
	// The URL-escaped form must not appear either.
	if strings.Contains(logs, url.QueryEscape(testToken)) {
		t.Fatal("logs leak the escaped token")
	}
}

// TestLowTTLClamped: lumos's 30 s failover TTL is below what Cloudflare
// accepts outside Enterprise zones; it is written as MinTTL, never refused.
func TestLowTTLClamped(t *testing.T) {
	srv := cftest.New("tok")
	t.Cleanup(srv.Close)
	srv.AddZone("example.net")
	srv.AddRecord("example.net", cftest.Record{Type: "A", Name: "a.example.net", Content: "192.0.2.1", TTL: 300})
	p, err := New(Config{Token: "tok", BaseURL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.example.net", "b.example.net"} { // update, create
		if _, err := p.Set(context.Background(), name, "192.0.2.9", 30); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r, ok := srv.Record("example.net", name); !ok || r.TTL != MinTTL || r.Content != "192.0.2.9" {
			t.Fatalf("%s: record %+v", name, r)
		}
	}
	if changed, err := p.Set(context.Background(), "a.example.net", "192.0.2.9", 30); err != nil || changed {
		t.Fatalf("second Set: changed %v, %v", changed, err)
	}
}
