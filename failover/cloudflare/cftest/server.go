package cftest

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// APIPath is the path prefix of the API v4 on the server; URL ends with it.
const APIPath = "/client/v4"

// DefaultRetryAfter is the Retry-After a 429 injected by FailNext carries
// until SetRetryAfter changes it.
const DefaultRetryAfter = time.Second

// Record is a DNS record held by the server. Name is the fully qualified
// name without a trailing dot, as the API returns it.
type Record struct {
	ID      string
	Type    string
	Name    string
	Content string
	TTL     int
	Proxied bool
	Tags    []string
}

// Request is one request the server received.
type Request struct {
	Method string
	Path   string // URL path as received, including APIPath
	Query  string // raw query string
	Time   time.Time
	Status int // status answered; 0 while the request is in flight
}

// Server is an httptest server speaking the Cloudflare API v4.
type Server struct {
	srv       *httptest.Server
	token     string
	done      chan struct{}
	closeOnce sync.Once

	mu         sync.Mutex
	seq        uint64
	zones      []*zone
	failN      int
	failStatus int
	retryAfter time.Duration
	delay      time.Duration
	requests   []Request
}

type zone struct {
	id      string
	name    string
	created time.Time
	records []*record
}

type record struct {
	Record
	created  time.Time
	modified time.Time
}

// New starts a server that accepts the API token token (sent as
// "Authorization: Bearer <token>"). Close it when done.
func New(token string) *Server {
	s := &Server{
		token:      token,
		done:       make(chan struct{}),
		retryAfter: DefaultRetryAfter,
	}
	mux := http.NewServeMux()
	mux.HandleFunc(APIPath+"/zones", s.handleZones)
	mux.HandleFunc(APIPath+"/zones/{zone}", s.handleZone)
	mux.HandleFunc(APIPath+"/zones/{zone}/dns_records", s.handleRecords)
	mux.HandleFunc(APIPath+"/zones/{zone}/dns_records/{record}", s.handleRecord)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErrors(w, http.StatusNotFound, noRoute(r.URL.Path)...)
	})
	s.srv = httptest.NewServer(s.wrap(mux))
	return s
}

// URL is the API base URL to hand to cloudflare-go's BaseURL option: the
// server's address followed by APIPath.
func (s *Server) URL() string { return s.srv.URL + APIPath }

// Close stops the server, aborting delayed answers. It is safe to call twice.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.srv.Close()
	})
}

// AddZone adds an active zone and returns its ID. Adding a zone that exists
// returns the existing zone's ID.
func (s *Server) AddZone(name string) (zoneID string) {
	name = normName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if z := s.zoneByNameLocked(name); z != nil {
		return z.id
	}
	z := &zone{id: s.newIDLocked(), name: name, created: time.Now().UTC()}
	s.zones = append(s.zones, z)
	return z.id
}

// AddRecord adds a record to the zone named zoneName as the API would store
// it and returns its ID: an empty Type means "A", a Name relative to the
// zone (or "@") is made fully qualified, a TTL of 0 or a proxied record gets
// 1 (automatic), an empty ID gets a fresh one. It panics if the zone does
// not exist.
func (s *Server) AddRecord(zoneName string, r Record) (id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zoneByNameLocked(normName(zoneName))
	if z == nil {
		panic(fmt.Sprintf("cftest: AddRecord: no zone %q", zoneName))
	}
	if r.Type == "" {
		r.Type = "A"
	}
	r.Type = strings.ToUpper(r.Type)
	r.Name = qualify(r.Name, z.name)
	if r.TTL == 0 || r.Proxied {
		r.TTL = 1
	}
	if r.ID == "" {
		r.ID = s.newIDLocked()
	}
	r.Tags = cloneTags(r.Tags)
	now := time.Now().UTC()
	z.records = append(z.records, &record{Record: r, created: now, modified: now})
	return r.ID
}

// DeleteRecord removes the record with the given ID from the zone named
// zoneName, as someone editing the zone by hand would. It reports whether
// the record existed.
func (s *Server) DeleteRecord(zoneName, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zoneByNameLocked(normName(zoneName))
	if z == nil {
		return false
	}
	return z.deleteLocked(id)
}

// Record returns the first A record named name in the zone named zoneName.
// name may be relative to the zone.
func (s *Server) Record(zoneName, name string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zoneByNameLocked(normName(zoneName))
	if z == nil {
		return Record{}, false
	}
	name = qualify(name, z.name)
	for _, r := range z.records {
		if r.Type == "A" && strings.EqualFold(r.Name, name) {
			return r.copy(), true
		}
	}
	return Record{}, false
}

// Records returns a copy of every record in the zone named zoneName, in the
// order they were created.
func (s *Server) Records(zoneName string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zoneByNameLocked(normName(zoneName))
	if z == nil {
		return nil
	}
	out := make([]Record, 0, len(z.records))
	for _, r := range z.records {
		out = append(out, r.copy())
	}
	return out
}

// FailNext makes the next n requests fail with status, whatever they ask,
// with the body Cloudflare sends for that status. n <= 0 clears a pending
// failure.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		n, status = 0, 0
	}
	s.failN, s.failStatus = n, status
}

// SetRetryAfter sets the Retry-After header of injected 429 answers; it is
// sent in whole seconds, rounded up.
func (s *Server) SetRetryAfter(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAfter = d
}

// SetDelay delays every answer by d (0 turns the delay off). A delayed
// answer is abandoned when the client gives up or the server closes.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests returns a copy of every request received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Count returns how many requests received so far used method (any method
// when method is "") on a path starting with pathPrefix. The prefix may
// include APIPath or start after it: "/zones/ID/dns_records" and
// "/client/v4/zones/ID/dns_records" count the same requests.
func (s *Server) Count(method, pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if method != "" && !strings.EqualFold(r.Method, method) {
			continue
		}
		rel := strings.TrimPrefix(r.Path, APIPath)
		if strings.HasPrefix(r.Path, pathPrefix) || strings.HasPrefix(rel, pathPrefix) {
			n++
		}
	}
	return n
}

// wrap records the request, applies the delay and injected failures and
// checks the token before the API routes see the request.
func (s *Server) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		idx := len(s.requests)
		s.requests = append(s.requests, Request{
			Method: r.Method,
			Path:   r.URL.Path,
			Query:  r.URL.RawQuery,
			Time:   time.Now(),
		})
		delay := s.delay
		fail, retryAfter := 0, s.retryAfter
		if s.failN > 0 {
			s.failN--
			fail = s.failStatus
		}
		s.mu.Unlock()

		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			s.mu.Lock()
			if idx < len(s.requests) {
				s.requests[idx].Status = sw.status
			}
			s.mu.Unlock()
		}()

		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			case <-s.done:
				t.Stop()
				writeFault(sw, http.StatusServiceUnavailable, 0)
				return
			}
		}
		if fail != 0 {
			writeFault(sw, fail, retryAfter)
			return
		}
		if !s.authorized(sw, r) {
			return
		}
		next.ServeHTTP(sw, r)
	})
}

// authorized checks the bearer token and answers the error when it fails.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if h == "" || !ok {
		writeErrors(w, http.StatusUnauthorized, apiErr{10000, "Authentication error"})
		return false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1 {
		writeErrors(w, http.StatusForbidden, apiErr{9109, "Invalid access token"})
		return false
	}
	return true
}

func (s *Server) newIDLocked() string {
	s.seq++
	// 32 lowercase hex digits, like Cloudflare's identifiers.
	return fmt.Sprintf("%08x%024x", uint32(0x1f3a9c5d), s.seq)
}

func (s *Server) zoneByNameLocked(name string) *zone {
	for _, z := range s.zones {
		if z.name == name {
			return z
		}
	}
	return nil
}

func (s *Server) zoneByIDLocked(id string) *zone {
	for _, z := range s.zones {
		if z.id == id {
			return z
		}
	}
	return nil
}

func (z *zone) recordLocked(id string) *record {
	for _, r := range z.records {
		if r.ID == id {
			return r
		}
	}
	return nil
}

func (z *zone) deleteLocked(id string) bool {
	for i, r := range z.records {
		if r.ID == id {
			z.records = append(z.records[:i], z.records[i+1:]...)
			return true
		}
	}
	return false
}

func (r *record) copy() Record {
	c := r.Record
	c.Tags = cloneTags(r.Tags)
	return c
}

func cloneTags(t []string) []string {
	if len(t) == 0 {
		return nil
	}
	return append([]string(nil), t...)
}

// normName lowercases a name and drops a trailing dot.
func normName(name string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
}

// qualify turns a record name relative to zone (or "@") into a fully
// qualified one, as the API does.
func qualify(name, zone string) string {
	name = normName(name)
	switch {
	case name == "" || name == "@":
		return zone
	case name == zone || strings.HasSuffix(name, "."+zone):
		return name
	default:
		return name + "." + zone
	}
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
