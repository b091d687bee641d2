package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, HealthResponse{Status: "ok", Node: s.b.NodeName()})
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	resp := s.b.Status()
	s.read(func(st *state.State, mi memberIndex, _ time.Time) { fillStatus(st, mi, &resp) })
	writeJSON(w, http.StatusOK, resp)
}

// ---- servers ----

func (s *server) listServers(w http.ResponseWriter, r *http.Request) {
	var out []ServerInfo
	s.read(func(st *state.State, mi memberIndex, now time.Time) {
		out = make([]ServerInfo, 0, len(st.Servers))
		for _, sv := range st.SortedServers() {
			out = append(out, serverInfo(st, mi, sv, now))
		}
	})
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getServer(w http.ResponseWriter, r *http.Request) {
	var (
		info ServerInfo
		err  error
	)
	s.read(func(st *state.State, mi memberIndex, now time.Time) {
		var sv *state.Server
		if sv, err = st.FindServer(r.PathValue("ref")); err == nil {
			info = serverInfo(st, mi, sv, now)
		}
	})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// serverView returns the API view of server id after a change; fallback is
// the record the command returned, used if the local state does not hold it.
func (s *server) serverView(id string, fallback *state.Server) ServerInfo {
	var info ServerInfo
	s.read(func(st *state.State, mi memberIndex, now time.Time) {
		sv := st.Servers[id]
		if sv == nil {
			sv = fallback
		}
		if sv != nil {
			info = serverInfo(st, mi, sv, now)
		}
	})
	return info
}

func (s *server) addServer(w http.ResponseWriter, r *http.Request) {
	var req AddServerRequest
	if e := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	id, err := state.NewID("srv-")
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	token, hash, prefix, err := state.NewToken()
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	res, ok := s.commit(w, r, func(*state.State) (any, error) {
		return &state.ServerAdd{ID: id, Name: req.Name, TokenHash: hash, TokenPrefix: prefix}, nil
	})
	if !ok {
		return
	}
	sv, _ := res.(*state.Server)
	w.Header().Set("Location", "/v1/servers/"+url.PathEscape(id))
	writeJSON(w, http.StatusCreated, AddServerResponse{Server: s.serverView(id, sv), Token: token})
}

func (s *server) renameServer(w http.ResponseWriter, r *http.Request) {
	var req RenameServerRequest
	if e := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	var id string
	res, ok := s.commit(w, r, func(st *state.State) (any, error) {
		sv, err := st.FindServer(r.PathValue("ref"))
		if err != nil {
			return nil, err
		}
		id = sv.ID
		return &state.ServerRename{ID: sv.ID, Name: req.Name}, nil
	})
	if !ok {
		return
	}
	sv, _ := res.(*state.Server)
	writeJSON(w, http.StatusOK, s.serverView(id, sv))
}

// serverSites lists the sites detected in a server's original HAProxy
// configuration, marking those already managed.
func (s *server) serverSites(w http.ResponseWriter, r *http.Request) {
	var (
		out []SiteInfo
		err error
	)
	s.read(func(st *state.State, _ memberIndex, _ time.Time) {
		var sv *state.Server
		if sv, err = st.FindServer(r.PathValue("ref")); err != nil {
			return
		}
		out = make([]SiteInfo, 0, len(sv.Sites))
		for _, site := range sv.Sites {
			_, managed := st.Domains[site.Domain]
			out = append(out, SiteInfo{Site: site, Managed: managed})
		}
	})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// importSites turns detected sites into managed domains assigned to the
// server they were found on, all or none.
func (s *server) importSites(w http.ResponseWriter, r *http.Request) {
	var req ImportRequest
	if e := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	res, ok := s.commit(w, r, func(st *state.State) (any, error) {
		sv, err := st.FindServer(r.PathValue("ref"))
		if err != nil {
			return nil, err
		}
		if len(req.Sites) == 0 {
			return nil, &state.Error{Code: state.CodeInvalid, Field: "sites", Message: "name at least one site to import (see lumos server sites)"}
		}
		imp := &state.DomainImport{ServerID: sv.ID}
		for _, ref := range req.Sites {
			site, err := findSite(sv, ref)
			if err != nil {
				return nil, err
			}
			if len(site.Unresolved) > 0 && len(site.Origins) == 0 {
				return nil, &state.Error{Code: state.CodeInvalid, Field: "sites", Message: fmt.Sprintf("site %s has no IP:PORT origin (servers %s): add it with lumos domain add instead", site.Domain, strings.Join(site.Unresolved, ", "))}
			}
			imp.Domains = append(imp.Domains, state.DomainAdd{Name: site.Domain, Origins: site.Origins, Mode: site.Mode})
		}
		return imp, nil
	})
	if !ok {
		return
	}
	domains, _ := res.([]*state.Domain)
	out := make([]DomainInfo, 0, len(domains))
	for _, d := range domains {
		out = append(out, s.domainView(d.Name, d))
	}
	writeJSON(w, http.StatusCreated, out)
}

// findSite resolves "example.com" or "example.com/tcp" among a server's
// detected sites.
func findSite(sv *state.Server, ref string) (*state.Site, error) {
	name, mode, _ := strings.Cut(strings.TrimSpace(ref), "/")
	n, err := state.NormalizeDomainName(name)
	if err != nil {
		return nil, &state.Error{Code: state.CodeInvalid, Field: "sites", Message: fmt.Sprintf("site %q: %s", ref, err.Error())}
	}
	var found []*state.Site
	for i := range sv.Sites {
		st := &sv.Sites[i]
		if st.Domain == n && (mode == "" || st.Mode == strings.ToLower(mode)) {
			found = append(found, st)
		}
	}
	switch len(found) {
	case 0:
		return nil, &state.Error{Code: state.CodeNotFound, Field: "sites", Message: fmt.Sprintf("server %q has no detected site %q (see lumos server sites %s)", sv.Name, ref, sv.Name)}
	case 1:
		return found[0], nil
	}
	return nil, &state.Error{Code: state.CodeConflict, Field: "sites", Message: fmt.Sprintf("site %s was detected in both http and tcp mode: name it %s/http or %s/tcp", n, n, n)}
}

func (s *server) decommissionServer(w http.ResponseWriter, r *http.Request) {
	var id string
	res, ok := s.commit(w, r, func(st *state.State) (any, error) {
		sv, err := st.FindServer(r.PathValue("ref"))
		if err != nil {
			return nil, err
		}
		id = sv.ID
		return &state.ServerDecommission{ID: sv.ID}, nil
	})
	if !ok {
		return
	}
	resp := DecommissionResponse{Unassigned: []string{}, Orphaned: []string{}}
	var fallback *state.Server
	if dr, _ := res.(*state.DecommissionResult); dr != nil {
		fallback = dr.Server
		if dr.Unassigned != nil {
			resp.Unassigned = dr.Unassigned
		}
		if dr.Orphaned != nil {
			resp.Orphaned = dr.Orphaned
		}
	}
	resp.Server = s.serverView(id, fallback)
	writeJSON(w, http.StatusOK, resp)
}

// ---- domains ----

func (s *server) listDomains(w http.ResponseWriter, r *http.Request) {
	var out []DomainInfo
	s.read(func(st *state.State, mi memberIndex, _ time.Time) {
		out = make([]DomainInfo, 0, len(st.Domains))
		for _, d := range st.SortedDomains() {
			out = append(out, domainInfo(st, mi, d))
		}
	})
	writeJSON(w, http.StatusOK, out)
}

// lookupDomain finds a domain by a name as the user wrote it.
func lookupDomain(st *state.State, raw string) (*state.Domain, error) {
	name, err := state.NormalizeDomainName(raw)
	if err != nil {
		return nil, err
	}
	d, ok := st.Domains[name]
	if !ok {
		return nil, &state.Error{Code: state.CodeNotFound, Field: "domain", Message: fmt.Sprintf("domain %s not found", name)}
	}
	return d, nil
}

func (s *server) getDomain(w http.ResponseWriter, r *http.Request) {
	var (
		info DomainInfo
		err  error
	)
	s.read(func(st *state.State, mi memberIndex, _ time.Time) {
		var d *state.Domain
		if d, err = lookupDomain(st, r.PathValue("name")); err == nil {
			info = domainInfo(st, mi, d)
		}
	})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// domainView returns the API view of domain name after a change; fallback
// is used if the local state does not hold it (a removed domain).
func (s *server) domainView(name string, fallback *state.Domain) DomainInfo {
	var info DomainInfo
	s.read(func(st *state.State, mi memberIndex, _ time.Time) {
		d := st.Domains[name]
		if d == nil {
			d = fallback
		}
		if d != nil {
			info = domainInfo(st, mi, d)
		}
	})
	return info
}

func (s *server) addDomain(w http.ResponseWriter, r *http.Request) {
	var req AddDomainRequest
	if e := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	name, err := state.NormalizeDomainName(req.Name)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	res, ok := s.commit(w, r, func(st *state.State) (any, error) {
		ids, err := resolveServers(st, req.Servers)
		if err != nil {
			return nil, err
		}
		return &state.DomainAdd{Name: name, Origins: req.Origins, Mode: req.Mode, DNS: req.DNS, Servers: ids}, nil
	})
	if !ok {
		return
	}
	d, _ := res.(*state.Domain)
	w.Header().Set("Location", "/v1/domains/"+url.PathEscape(name))
	writeJSON(w, http.StatusCreated, s.domainView(name, d))
}

func (s *server) assignDomain(w http.ResponseWriter, r *http.Request) {
	var req AssignRequest
	if e := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	var name string
	res, ok := s.commit(w, r, func(st *state.State) (any, error) {
		d, err := lookupDomain(st, r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		name = d.Name
		ids, err := resolveServers(st, req.Servers)
		if err != nil {
			return nil, err
		}
		return &state.DomainAssign{Name: d.Name, Servers: ids}, nil
	})
	if !ok {
		return
	}
	d, _ := res.(*state.Domain)
	writeJSON(w, http.StatusOK, s.domainView(name, d))
}

func (s *server) setDomain(w http.ResponseWriter, r *http.Request) {
	var req SetDomainRequest
	if e := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	var name string
	res, ok := s.commit(w, r, func(st *state.State) (any, error) {
		d, err := lookupDomain(st, r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		name = d.Name
		set := &state.DomainSet{Name: d.Name, Origins: req.Origins, Mode: req.Mode}
		if req.DNS != "" || req.TTL != 0 || req.FailoverTTL != 0 {
			dns := d.DNS
			if req.DNS != "" {
				dns.Provider = req.DNS
			}
			if req.TTL != 0 {
				dns.TTL = req.TTL
			}
			if req.FailoverTTL != 0 {
				dns.FailoverTTL = req.FailoverTTL
			}
			set.DNS = &dns
		}
		return set, nil
	})
	if !ok {
		return
	}
	d, _ := res.(*state.Domain)
	writeJSON(w, http.StatusOK, s.domainView(name, d))
}

func (s *server) removeDomain(w http.ResponseWriter, r *http.Request) {
	var removed *state.Domain
	res, ok := s.commit(w, r, func(st *state.State) (any, error) {
		d, err := lookupDomain(st, r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		removed = d.Clone()
		return &state.DomainRemove{Name: d.Name}, nil
	})
	if !ok {
		return
	}
	if d, _ := res.(*state.Domain); d != nil {
		removed = d
	}
	var info DomainInfo
	s.read(func(st *state.State, mi memberIndex, _ time.Time) { info = domainInfo(st, mi, removed) })
	writeJSON(w, http.StatusOK, info)
}

// ---- events ----

func (s *server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := DefaultEventLimit
	if v := strings.TrimSpace(q.Get("limit")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, &state.Error{Code: state.CodeInvalid, Field: "limit", Message: fmt.Sprintf("limit %q is not a positive number", v)})
			return
		}
		limit = min(n, MaxEventLimit)
	}
	domain := ""
	if v := q.Get("domain"); v != "" {
		n, err := state.NormalizeDomainName(v)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		domain = n
	}
	var out []state.Event
	s.b.View(func(st *state.State) { out = st.EventsFor(domain, limit) })
	if out == nil {
		out = []state.Event{}
	}
	writeJSON(w, http.StatusOK, out)
}

// ---- plan ----

func (s *server) getPlan(w http.ResponseWriter, r *http.Request) {
	var info PlanInfo
	s.b.View(func(st *state.State) { info = planInfo(st) })
	writeJSON(w, http.StatusOK, info)
}

func (s *server) setPlan(w http.ResponseWriter, r *http.Request) {
	var req PlanRequest
	if e := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	plan, err := state.ParsePlan(req.Plan)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if _, ok := s.commit(w, r, func(*state.State) (any, error) { return &state.PlanSet{Plan: plan}, nil }); !ok {
		return
	}
	var info PlanInfo
	s.b.View(func(st *state.State) { info = planInfo(st) })
	writeJSON(w, http.StatusOK, info)
}

// ---- join ----

func (s *server) join(w http.ResponseWriter, r *http.Request) {
	ip := s.clientIP(r)
	ok, wait := s.joins.take(ip, s.b.Now())
	if !ok {
		secs := int(wait.Round(time.Second) / time.Second)
		if secs < 1 {
			secs = 1
		}
		s.log.Warn("join refused: too many failed attempts", "client", ip)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, &state.Error{Code: CodeRateLimited, Message: fmt.Sprintf("too many failed join attempts from %s: retry in %d s", ip, secs)})
		return
	}
	var req JoinRequest
	if e := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	if strings.TrimSpace(req.TokenPrefix) == "" || req.MAC == "" || req.Nonce == "" {
		writeError(w, &state.Error{Code: state.CodeUnauthorized, Field: "token", Message: "a signed join request is required: join with the token printed by lumos server add"})
		return
	}
	resp, err := s.b.Join(r.Context(), &req)
	if err != nil {
		e := s.apiError(r, err)
		switch e.Code {
		case state.CodeNotLeader, state.CodeUnavailable, state.CodeInternal:
			// Not the client's fault: the attempt costs nothing.
			s.joins.refund(ip, s.b.Now())
		default:
			s.log.Info("join refused", "client", ip, "node", req.NodeName, "code", e.Code, "reason", e.Message)
		}
		writeError(w, e)
		return
	}
	s.joins.refund(ip, s.b.Now())
	s.log.Info("shield joined", "client", ip, "node", req.NodeName, "server", resp.ServerID)
	writeJSON(w, http.StatusOK, resp)
}
