package cftest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// apiErr is one entry of an envelope's "errors" list.
type apiErr struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// envelope is the body of every JSON answer of the API.
type envelope struct {
	Success    bool        `json:"success"`
	Errors     []apiErr    `json:"errors"`
	Messages   []apiErr    `json:"messages"`
	Result     any         `json:"result"`
	ResultInfo *resultInfo `json:"result_info,omitempty"`
}

type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

type zoneJSON struct {
	ID                  string         `json:"id"`
	Name                string         `json:"name"`
	Status              string         `json:"status"`
	Paused              bool           `json:"paused"`
	Type                string         `json:"type"`
	DevelopmentMode     int            `json:"development_mode"`
	NameServers         []string       `json:"name_servers"`
	OriginalNameServers []string       `json:"original_name_servers"`
	OriginalRegistrar   *string        `json:"original_registrar"`
	OriginalDNSHost     *string        `json:"original_dnshost"`
	ModifiedOn          string         `json:"modified_on"`
	CreatedOn           string         `json:"created_on"`
	ActivatedOn         string         `json:"activated_on"`
	Meta                map[string]any `json:"meta"`
	Owner               map[string]any `json:"owner"`
	Account             map[string]any `json:"account"`
	Tenant              map[string]any `json:"tenant"`
	TenantUnit          map[string]any `json:"tenant_unit"`
	Permissions         []string       `json:"permissions"`
	Plan                map[string]any `json:"plan"`
}

type recordJSON struct {
	ID                string         `json:"id"`
	ZoneID            string         `json:"zone_id"`
	ZoneName          string         `json:"zone_name"`
	Name              string         `json:"name"`
	Type              string         `json:"type"`
	Content           string         `json:"content"`
	Proxiable         bool           `json:"proxiable"`
	Proxied           bool           `json:"proxied"`
	TTL               int            `json:"ttl"`
	Settings          map[string]any `json:"settings"`
	Meta              map[string]any `json:"meta"`
	Comment           *string        `json:"comment"`
	Tags              []string       `json:"tags"`
	CreatedOn         string         `json:"created_on"`
	ModifiedOn        string         `json:"modified_on"`
	CommentModifiedOn *string        `json:"comment_modified_on,omitempty"`
}

// recordInput is the body of POST, PUT and PATCH. Pointers tell a field
// that is absent (or null) from a zero value.
type recordInput struct {
	Type    *string   `json:"type"`
	Name    *string   `json:"name"`
	Content *string   `json:"content"`
	TTL     *int      `json:"ttl"`
	Proxied *bool     `json:"proxied"`
	Tags    *[]string `json:"tags"`
	Comment *string   `json:"comment"`
}

func timeString(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func (z *zone) json() zoneJSON {
	return zoneJSON{
		ID:                  z.id,
		Name:                z.name,
		Status:              "active",
		Type:                "full",
		NameServers:         []string{"ada.ns.cloudflare.com", "bob.ns.cloudflare.com"},
		OriginalNameServers: []string{},
		ModifiedOn:          timeString(z.created),
		CreatedOn:           timeString(z.created),
		ActivatedOn:         timeString(z.created),
		Meta: map[string]any{
			"step": 2, "custom_certificate_quota": 0, "page_rule_quota": 3,
			"phishing_detected": false,
		},
		Owner:       map[string]any{"id": nil, "type": "user", "email": nil},
		Account:     map[string]any{"id": "9a7806061c88ada191ed06f989cc3dac", "name": "lumos test account"},
		Tenant:      map[string]any{"id": nil, "name": nil},
		TenantUnit:  map[string]any{"id": nil},
		Permissions: []string{"#dns_records:edit", "#dns_records:read", "#zone:read"},
		Plan: map[string]any{
			"id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website", "price": 0,
			"currency": "USD", "frequency": "", "is_subscribed": false, "can_subscribe": false,
			"legacy_id": "free", "legacy_discount": false, "externally_managed": false,
		},
	}
}

func (r *record) json(z *zone) recordJSON {
	tags := r.Tags
	if tags == nil {
		tags = []string{}
	}
	return recordJSON{
		ID:         r.ID,
		ZoneID:     z.id,
		ZoneName:   z.name,
		Name:       r.Name,
		Type:       r.Type,
		Content:    r.Content,
		Proxiable:  r.Type == "A" || r.Type == "AAAA" || r.Type == "CNAME",
		Proxied:    r.Proxied,
		TTL:        r.TTL,
		Settings:   map[string]any{},
		Meta:       map[string]any{"auto_added": false, "managed_by_apps": false, "managed_by_argo_tunnel": false},
		Tags:       tags,
		CreatedOn:  timeString(r.created),
		ModifiedOn: timeString(r.modified),
	}
}

// handleZones serves GET /zones.
func (s *Server) handleZones(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeMethodNotAllowed(w)
		return
	}
	q := r.URL.Query()
	page, perPage, ok := pagination(w, q, 20, 5, 50)
	if !ok {
		return
	}
	match, ok := nameMatcher(w, q.Get("name"))
	if !ok {
		return
	}
	status := q.Get("status")

	s.mu.Lock()
	var all []zoneJSON
	for _, z := range s.zones {
		if !match(z.name) || (status != "" && status != "active") {
			continue
		}
		all = append(all, z.json())
	}
	s.mu.Unlock()
	writeList(w, all, page, perPage)
}

// handleZone serves GET /zones/{zone}.
func (s *Server) handleZone(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeMethodNotAllowed(w)
		return
	}
	s.mu.Lock()
	z := s.zoneByIDLocked(r.PathValue("zone"))
	var out zoneJSON
	if z != nil {
		out = z.json()
	}
	s.mu.Unlock()
	if z == nil {
		writeErrors(w, http.StatusNotFound, noRoute(r.URL.Path)...)
		return
	}
	writeResult(w, http.StatusOK, out)
}

// handleRecords serves GET and POST /zones/{zone}/dns_records.
func (s *Server) handleRecords(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.listRecords(w, r)
	case http.MethodPost:
		s.createRecord(w, r)
	default:
		writeMethodNotAllowed(w)
	}
}

func (s *Server) listRecords(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, perPage, ok := pagination(w, q, 100, 5, 5000)
	if !ok {
		return
	}
	name := q.Get("name")
	if name == "" {
		name = q.Get("name.exact")
	}
	typ := strings.ToUpper(q.Get("type"))
	content := q.Get("content")
	if content == "" {
		content = q.Get("content.exact")
	}
	proxied := q.Get("proxied")

	s.mu.Lock()
	z := s.zoneByIDLocked(r.PathValue("zone"))
	var all []recordJSON
	if z != nil {
		for _, rec := range z.records {
			switch {
			case name != "" && !strings.EqualFold(rec.Name, normName(name)):
			case typ != "" && rec.Type != typ:
			case content != "" && rec.Content != content:
			case proxied != "" && strconv.FormatBool(rec.Proxied) != proxied:
			default:
				all = append(all, rec.json(z))
			}
		}
	}
	s.mu.Unlock()
	if z == nil {
		writeErrors(w, http.StatusNotFound, noRoute(r.URL.Path)...)
		return
	}
	writeList(w, all, page, perPage)
}

func (s *Server) createRecord(w http.ResponseWriter, r *http.Request) {
	in, ok := decodeInput(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zoneByIDLocked(r.PathValue("zone"))
	if z == nil {
		writeErrors(w, http.StatusNotFound, noRoute(r.URL.Path)...)
		return
	}
	rec := Record{TTL: 1}
	if e := apply(&rec, in, z, true); e != nil {
		writeErrors(w, http.StatusBadRequest, *e)
		return
	}
	if z.duplicateLocked(rec, "") {
		writeErrors(w, http.StatusBadRequest, apiErr{81057, "Record already exists."})
		return
	}
	rec.ID = s.newIDLocked()
	now := time.Now().UTC()
	stored := &record{Record: rec, created: now, modified: now}
	z.records = append(z.records, stored)
	writeResult(w, http.StatusOK, stored.json(z))
}

// handleRecord serves GET, PATCH, PUT and DELETE
// /zones/{zone}/dns_records/{record}.
func (s *Server) handleRecord(w http.ResponseWriter, r *http.Request) {
	var in recordInput
	switch r.Method {
	case http.MethodGet, http.MethodDelete:
	case http.MethodPatch, http.MethodPut:
		var ok bool
		if in, ok = decodeInput(w, r); !ok {
			return
		}
	default:
		writeMethodNotAllowed(w)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zoneByIDLocked(r.PathValue("zone"))
	if z == nil {
		writeErrors(w, http.StatusNotFound, noRoute(r.URL.Path)...)
		return
	}
	rec := z.recordLocked(r.PathValue("record"))
	if rec == nil {
		writeErrors(w, http.StatusNotFound, apiErr{81044, "Record does not exist."})
		return
	}

	switch r.Method {
	case http.MethodGet:
		writeResult(w, http.StatusOK, rec.json(z))
	case http.MethodDelete:
		z.deleteLocked(rec.ID)
		writeResult(w, http.StatusOK, map[string]string{"id": rec.ID})
	default:
		next := rec.copy()
		full := r.Method == http.MethodPut
		if full {
			next = Record{ID: rec.ID, TTL: 1}
		}
		if e := apply(&next, in, z, full); e != nil {
			writeErrors(w, http.StatusBadRequest, *e)
			return
		}
		if z.duplicateLocked(next, rec.ID) {
			writeErrors(w, http.StatusBadRequest, apiErr{81058, "A record with the same settings already exists."})
			return
		}
		rec.Record = next
		rec.modified = time.Now().UTC()
		writeResult(w, http.StatusOK, rec.json(z))
	}
}

// apply merges in into rec and validates the result as the API does. full
// (POST, PUT) requires type, name and content.
func apply(rec *Record, in recordInput, z *zone, full bool) *apiErr {
	if in.Type != nil {
		rec.Type = strings.ToUpper(*in.Type)
	}
	if in.Name != nil {
		rec.Name = qualify(*in.Name, z.name)
	}
	if in.Content != nil {
		rec.Content = *in.Content
	}
	if in.TTL != nil {
		rec.TTL = *in.TTL
	}
	if in.Proxied != nil {
		rec.Proxied = *in.Proxied
	}
	if in.Tags != nil {
		rec.Tags = cloneTags(*in.Tags)
	}
	if full {
		switch {
		case in.Type == nil || rec.Type == "":
			return &apiErr{9000, "DNS record type is invalid."}
		case in.Name == nil || strings.TrimSpace(*in.Name) == "":
			return &apiErr{9007, "DNS record name is required."}
		case in.Content == nil || rec.Content == "":
			return &apiErr{9008, "DNS record content is required."}
		}
	}
	if rec.TTL == 0 {
		rec.TTL = 1
	}
	if rec.TTL != 1 && (rec.TTL < 60 || rec.TTL > 86400) {
		return &apiErr{9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic."}
	}
	switch rec.Type {
	case "A":
		if a, err := netip.ParseAddr(rec.Content); err != nil || !a.Is4() {
			return &apiErr{9005, "Content for A record must be a valid IPv4 address."}
		}
	case "AAAA":
		if a, err := netip.ParseAddr(rec.Content); err != nil || !a.Is6() || a.Is4In6() {
			return &apiErr{9006, "Content for AAAA record must be a valid IPv6 address."}
		}
	}
	if rec.Proxied {
		if rec.Type != "A" && rec.Type != "AAAA" && rec.Type != "CNAME" {
			return &apiErr{9004, "This record type cannot be proxied."}
		}
		// A proxied record's TTL is always automatic.
		rec.TTL = 1
	}
	return nil
}

// duplicateLocked reports whether the zone holds another record (not
// exceptID) of the same type, name and content.
func (z *zone) duplicateLocked(rec Record, exceptID string) bool {
	for _, o := range z.records {
		if o.ID != exceptID && o.Type == rec.Type && strings.EqualFold(o.Name, rec.Name) && o.Content == rec.Content {
			return true
		}
	}
	return false
}

func decodeInput(w http.ResponseWriter, r *http.Request) (recordInput, bool) {
	var in recordInput
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &in)
	}
	if err != nil {
		writeErrors(w, http.StatusBadRequest, apiErr{9207, "Request body is invalid."})
		return recordInput{}, false
	}
	return in, true
}

// pagination reads page and per_page, answering 400 for values that are
// not numbers. per_page is clamped to [min, max].
func pagination(w http.ResponseWriter, q url.Values, def, minPer, maxPer int) (page, perPage int, ok bool) {
	page, perPage = 1, def
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeErrors(w, http.StatusBadRequest, apiErr{1001, "Invalid page: must be a positive integer"})
			return 0, 0, false
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeErrors(w, http.StatusBadRequest, apiErr{1001, "Invalid per_page: must be an integer"})
			return 0, 0, false
		}
		perPage = min(max(n, minPer), maxPer)
	}
	return page, perPage, true
}

// nameMatcher implements the zones list name filter: an exact name, or an
// operator prefix (equal:, not_equal:, starts_with:, ends_with:, contains:).
func nameMatcher(w http.ResponseWriter, filter string) (func(string) bool, bool) {
	if filter == "" {
		return func(string) bool { return true }, true
	}
	op, val, found := strings.Cut(filter, ":")
	if !found {
		op, val = "equal", filter
	}
	val = normName(val)
	switch op {
	case "equal":
		return func(n string) bool { return n == val }, true
	case "not_equal":
		return func(n string) bool { return n != val }, true
	case "starts_with":
		return func(n string) bool { return strings.HasPrefix(n, val) }, true
	case "ends_with":
		return func(n string) bool { return strings.HasSuffix(n, val) }, true
	case "contains":
		return func(n string) bool { return strings.Contains(n, val) }, true
	}
	writeErrors(w, http.StatusBadRequest, apiErr{1001, fmt.Sprintf("Invalid name filter operator %q", op)})
	return nil, false
}

// writeList answers one page of a list with its result_info.
func writeList[T any](w http.ResponseWriter, all []T, page, perPage int) {
	total := len(all)
	start := min((page-1)*perPage, total)
	end := min(start+perPage, total)
	result := slices.Clone(all[start:end])
	if result == nil {
		result = []T{}
	}
	writeJSON(w, http.StatusOK, envelope{
		Success:  true,
		Errors:   []apiErr{},
		Messages: []apiErr{},
		Result:   result,
		ResultInfo: &resultInfo{
			Page:       page,
			PerPage:    perPage,
			Count:      len(result),
			TotalCount: total,
			TotalPages: int(math.Ceil(float64(total) / float64(perPage))),
		},
	})
}

func writeResult(w http.ResponseWriter, status int, result any) {
	writeJSON(w, status, envelope{Success: true, Errors: []apiErr{}, Messages: []apiErr{}, Result: result})
}

func writeErrors(w http.ResponseWriter, status int, errs ...apiErr) {
	writeJSON(w, status, envelope{Success: false, Errors: errs, Messages: []apiErr{}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cf-Ray", "8f0c1d2e3a4b5c6d-AMS")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeMethodNotAllowed(w http.ResponseWriter) {
	writeErrors(w, http.StatusMethodNotAllowed, apiErr{10405, "Method not allowed"})
}

func noRoute(path string) []apiErr {
	rel := strings.TrimPrefix(path, APIPath)
	return []apiErr{
		{7003, fmt.Sprintf("Could not route to %s, perhaps your object identifier is invalid?", rel)},
		{7000, "No route for that URI"},
	}
}

// writeFault answers an injected failure the way Cloudflare does: JSON
// envelopes from the API itself, HTML pages from its edge for gateway
// errors.
func writeFault(w http.ResponseWriter, status int, retryAfter time.Duration) {
	switch status {
	case http.StatusTooManyRequests:
		secs := int(math.Ceil(retryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		w.Header().Set("X-RateLimit-Limit", "1200")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", time.Now().Add(time.Duration(secs)*time.Second).UTC().Format(http.TimeFormat))
		writeErrors(w, status, apiErr{10013, "More than 1200 requests per 300 seconds reached. Please wait and consider throttling your request speed"})
	case http.StatusUnauthorized, http.StatusForbidden:
		writeErrors(w, status, apiErr{10000, "Authentication error"})
	case http.StatusNotFound:
		writeErrors(w, status, apiErr{7003, "Could not route to the requested resource, perhaps your object identifier is invalid?"}, apiErr{7000, "No route for that URI"})
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.Header().Set("Cf-Ray", "8f0c1d2e3a4b5c6d-AMS")
		w.WriteHeader(status)
		text := http.StatusText(status)
		_, _ = fmt.Fprintf(w, "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n", status, text, status, text)
	default:
		if status >= 500 {
			writeErrors(w, status, apiErr{10001, "Internal server error"})
			return
		}
		writeErrors(w, status, apiErr{status, http.StatusText(status)})
	}
}
