package cftest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const token = "cftest-token-4711"

type reply struct {
	status int
	header http.Header
	body   string
	env    struct {
		Success    bool            `json:"success"`
		Errors     []apiErr        `json:"errors"`
		Messages   []apiErr        `json:"messages"`
		Result     json.RawMessage `json:"result"`
		ResultInfo *resultInfo     `json:"result_info"`
	}
}

func do(t *testing.T, s *Server, method, path, tok, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &r.env); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, path, b, err)
		}
	}
	return r
}

func newServer(t *testing.T) *Server {
	t.Helper()
	s := New(token)
	t.Cleanup(s.Close)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	return s
}

func TestAuth(t *testing.T) {
	s := newServer(t)
	r := do(t, s, "GET", "/zones", "", "")
	if r.status != 401 || r.env.Success || len(r.env.Errors) != 1 || r.env.Errors[0].Code != 10000 {
		t.Fatalf("no token: %d %s", r.status, r.body)
	}
	r = do(t, s, "GET", "/zones", "wrong", "")
	if r.status != 403 || r.env.Errors[0].Code != 9109 {
		t.Fatalf("wrong token: %d %s", r.status, r.body)
	}
	r = do(t, s, "GET", "/zones", token, "")
	if r.status != 200 || !r.env.Success {
		t.Fatalf("right token: %d %s", r.status, r.body)
	}
}

func TestZonesList(t *testing.T) {
	s := newServer(t)
	id := s.AddZone("Example.com.")
	if again := s.AddZone("example.com"); again != id {
		t.Fatalf("AddZone twice gave %s and %s", id, again)
	}
	s.AddZone("myexample.com")
	s.AddZone("example.com.au")
	if len(id) != 32 {
		t.Fatalf("zone id %q is not 32 hex digits", id)
	}

	r := do(t, s, "GET", "/zones?name=example.com&per_page=50", token, "")
	var zones []struct{ ID, Name, Status string }
	if err := json.Unmarshal(r.env.Result, &zones); err != nil {
		t.Fatal(err)
	}
	if len(zones) != 1 || zones[0].ID != id || zones[0].Name != "example.com" || zones[0].Status != "active" {
		t.Fatalf("zones = %+v", zones)
	}
	ri := r.env.ResultInfo
	if ri == nil || ri.Page != 1 || ri.PerPage != 50 || ri.Count != 1 || ri.TotalCount != 1 || ri.TotalPages != 1 {
		t.Fatalf("result_info = %+v", ri)
	}

	// Pagination over all zones, 5 per page minimum.
	for _, n := range []string{"a.test", "b.test", "c.test"} {
		s.AddZone(n)
	}
	r = do(t, s, "GET", "/zones?per_page=5&page=2", token, "")
	if err := json.Unmarshal(r.env.Result, &zones); err != nil {
		t.Fatal(err)
	}
	ri = r.env.ResultInfo
	if len(zones) != 1 || ri.Page != 2 || ri.TotalCount != 6 || ri.TotalPages != 2 || ri.Count != 1 {
		t.Fatalf("page 2 = %+v, %+v", zones, ri)
	}

	r = do(t, s, "GET", "/zones?name=contains:example", token, "")
	if r.env.ResultInfo.TotalCount != 3 {
		t.Fatalf("contains filter: %s", r.body)
	}
}

func TestRecordsCRUD(t *testing.T) {
	s := newServer(t)
	zid := s.AddZone("example.com")
	base := "/zones/" + zid + "/dns_records"

	r := do(t, s, "POST", base, token, `{"type":"A","name":"www","content":"192.0.2.1","ttl":300,"proxied":false}`)
	if r.status != 200 || !r.env.Success {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var rec struct {
		RID      string `json:"id"`
		RName    string `json:"name"`
		RContent string `json:"content"`
		TTL      int    `json:"ttl"`
		Proxied  bool   `json:"proxied"`
		ZID      string `json:"zone_id"`
	}
	if err := json.Unmarshal(r.env.Result, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.RName != "www.example.com" || rec.RContent != "192.0.2.1" || rec.TTL != 300 || rec.ZID != zid {
		t.Fatalf("created %+v", rec)
	}

	// Duplicate and invalid content are refused with Cloudflare's codes.
	r = do(t, s, "POST", base, token, `{"type":"A","name":"www.example.com","content":"192.0.2.1","ttl":300}`)
	if r.status != 400 || r.env.Errors[0].Code != 81057 {
		t.Fatalf("duplicate: %d %s", r.status, r.body)
	}
	r = do(t, s, "POST", base, token, `{"type":"A","name":"x","content":"2001:db8::1"}`)
	if r.status != 400 || r.env.Errors[0].Code != 9005 {
		t.Fatalf("bad content: %d %s", r.status, r.body)
	}
	r = do(t, s, "POST", base, token, `{"type":"A","name":"x","content":"192.0.2.3","ttl":30}`)
	if r.status != 400 || r.env.Errors[0].Code != 9021 {
		t.Fatalf("bad ttl: %d %s", r.status, r.body)
	}

	// List with filters.
	s.AddRecord("example.com", Record{Type: "TXT", Name: "www", Content: "hello"})
	r = do(t, s, "GET", base+"?type=A&name=WWW.example.com", token, "")
	if r.env.ResultInfo.TotalCount != 1 {
		t.Fatalf("filtered list: %s", r.body)
	}

	// PATCH changes only what it names; a proxied record's TTL is 1.
	r = do(t, s, "PATCH", base+"/"+rec.RID, token, `{"proxied":true}`)
	if r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	got, _ := s.Record("example.com", "www")
	if !got.Proxied || got.TTL != 1 || got.Content != "192.0.2.1" {
		t.Fatalf("after patch %+v", got)
	}
	r = do(t, s, "PATCH", base+"/"+rec.RID, token, `{"content":"192.0.2.7","ttl":600,"tags":null}`)
	if r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	got, _ = s.Record("example.com", "www.example.com")
	if !got.Proxied || got.TTL != 1 || got.Content != "192.0.2.7" {
		t.Fatalf("after patch %+v", got)
	}

	// PUT replaces the whole record: proxied goes back to false.
	r = do(t, s, "PUT", base+"/"+rec.RID, token, `{"type":"A","name":"www","content":"192.0.2.8","ttl":120}`)
	if r.status != 200 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	got, _ = s.Record("example.com", "www")
	if got.Proxied || got.TTL != 120 || got.Content != "192.0.2.8" {
		t.Fatalf("after put %+v", got)
	}

	r = do(t, s, "GET", base+"/"+rec.RID, token, "")
	if r.status != 200 || !strings.Contains(r.body, `"content":"192.0.2.8"`) {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	r = do(t, s, "DELETE", base+"/"+rec.RID, token, "")
	if r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	r = do(t, s, "GET", base+"/"+rec.RID, token, "")
	if r.status != 404 || r.env.Errors[0].Code != 81044 {
		t.Fatalf("get deleted: %d %s", r.status, r.body)
	}
	r = do(t, s, "GET", "/zones/00000000000000000000000000000000/dns_records", token, "")
	if r.status != 404 || r.env.Errors[0].Code != 7003 {
		t.Fatalf("unknown zone: %d %s", r.status, r.body)
	}
	r = do(t, s, "POST", "/zones", token, "{}")
	if r.status != 405 || r.env.Success {
		t.Fatalf("wrong method: %d %s", r.status, r.body)
	}
}

func TestFailNext(t *testing.T) {
	s := newServer(t)
	s.SetRetryAfter(3 * time.Second)
	s.FailNext(1, 429)
	r := do(t, s, "GET", "/zones", token, "")
	if r.status != 429 || r.header.Get("Retry-After") != "3" || r.env.Success || r.env.Errors[0].Code != 10013 {
		t.Fatalf("429: %d %v %s", r.status, r.header, r.body)
	}
	s.FailNext(2, 503)
	for range 2 {
		r = do(t, s, "GET", "/zones", token, "")
		if r.status != 503 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(r.body, "503 Service Unavailable") {
			t.Fatalf("503: %d %s", r.status, r.body)
		}
	}
	s.FailNext(1, 500)
	r = do(t, s, "GET", "/zones", token, "")
	if r.status != 500 || r.env.Success || len(r.env.Errors) == 0 {
		t.Fatalf("500: %d %s", r.status, r.body)
	}
	// Faults hit even unauthenticated requests, and then stop.
	r = do(t, s, "GET", "/zones", token, "")
	if r.status != 200 {
		t.Fatalf("after faults: %d %s", r.status, r.body)
	}
	if got := s.Count("GET", "/zones"); got != 5 {
		t.Fatalf("Count = %d, want 5", got)
	}
	if got := s.Count("", APIPath+"/zones"); got != 5 {
		t.Fatalf("Count with full prefix = %d, want 5", got)
	}
	reqs := s.Requests()
	if len(reqs) != 5 || reqs[0].Status != 429 || reqs[4].Status != 200 || reqs[0].Time.IsZero() {
		t.Fatalf("Requests = %+v", reqs)
	}
	s.ResetRequests()
	if n := len(s.Requests()); n != 0 {
		t.Fatalf("%d requests after reset", n)
	}
}

func TestDelayAbandonedByClient(t *testing.T) {
	s := newServer(t)
	s.SetDelay(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"/zones", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	_, err := http.DefaultClient.Do(req)
	if err == nil {
		t.Fatal("delayed request answered before the client's deadline")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("client waited %s", d)
	}
	// Close does not wait for the full delay of abandoned requests.
	start = time.Now()
	s.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %s", d)
	}
}
