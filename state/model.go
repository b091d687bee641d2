package state

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// Domain modes.
const (
	ModeHTTP = "http" // HTTP reverse proxy, routed by Host header
	ModeTCP  = "tcp"  // TLS passthrough, routed by SNI
)

// Domain failover statuses.
const (
	FailoverActive     = "active"
	FailoverFailedOver = "failed_over"
)

// DNS providers.
const (
	DNSNone       = "none"
	DNSBuiltin    = "builtin"
	DNSCloudflare = "cloudflare"
)

// Defaults for DNS TTLs, in seconds.
const (
	DefaultTTL         = 300
	DefaultFailoverTTL = 30
)

// MaxEvents bounds the replicated event log: the newest MaxEvents are kept
// (the log is trimmed back to that when it grows a quarter past it).
const MaxEvents = 5000

// Server is a shield server record. Tokens are never stored: only the
// SHA-256 hash (hex) and a short prefix for identification.
type Server struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	TokenHash   string    `json:"token_hash"`
	TokenPrefix string    `json:"token_prefix"`
	CreatedAt   time.Time `json:"created_at"`

	// Bound node: set when a shield presents the token and joins.
	NodeName string    `json:"node_name,omitempty"`
	Addr     string    `json:"addr,omitempty"`      // advertise IP
	RaftAddr string    `json:"raft_addr,omitempty"` // IP:PORT
	BoundAt  time.Time `json:"bound_at,omitempty"`

	// Version is the log index of the last change to what this server
	// serves (its domain assignments); with its domains' versions it tells
	// whether a shield is current.
	Version uint64 `json:"version,omitempty"`

	// Sites are the sites found in the HAProxy configuration the shield
	// had before it joined, reported at join.
	Sites []Site `json:"sites,omitempty"`
	// ErrorType and Error describe a shield error (a failed HAProxy reload,
	// HAProxy down) until it clears; set by the leader from gossip health.
	ErrorType string `json:"error_type,omitempty"`
	Error     string `json:"error,omitempty"`

	// Down is the failover controller's verdict on the shield (gossip dead
	// or left, HAProxy unhealthy, or not heard from): set by the leader with
	// a server_down event, cleared with server_recovered after the recovery
	// hold.
	Down       bool      `json:"down,omitempty"`
	DownReason string    `json:"down_reason,omitempty"`
	DownSince  time.Time `json:"down_since,omitempty"`

	Decommissioned   bool      `json:"decommissioned,omitempty"`
	DecommissionedAt time.Time `json:"decommissioned_at,omitempty"`
	// NodeRemoved is set once the leader has removed a decommissioned
	// server's node from Raft after the grace period.
	NodeRemoved bool `json:"node_removed,omitempty"`
}

// Site is a site detected in a shield's original HAProxy configuration.
type Site struct {
	Domain     string   `json:"domain"`
	Mode       string   `json:"mode"`
	Origins    []string `json:"origins"`
	Backend    string   `json:"backend,omitempty"`
	Frontend   string   `json:"frontend,omitempty"`
	Unresolved []string `json:"unresolved,omitempty"`
}

// DNS holds a domain's DNS failover settings.
type DNS struct {
	Provider    string `json:"provider"`
	TTL         int    `json:"ttl"`
	FailoverTTL int    `json:"failover_ttl"`
}

// Domain is a managed domain.
type Domain struct {
	Name    string   `json:"name"`
	Origins []string `json:"origins"` // normalized IP:PORT
	Mode    string   `json:"mode"`
	// Servers is the ordered list of server IDs: the first is the primary.
	Servers        []string `json:"servers"`
	FailoverStatus string   `json:"failover_status"`
	ActiveServer   string   `json:"active_server,omitempty"`
	DNS            DNS      `json:"dns"`
	// FailoverAt is when the active server last changed by a failover or
	// recovery decision.
	FailoverAt time.Time `json:"failover_at,omitempty"`
	// DNSSynced is the record the leader last confirmed at the DNS provider
	// (nil: never). The reconciler writes where it differs from the desired
	// record (DesiredRecord), so a new leader finishes what an old one began.
	DNSSynced *DNSRecord `json:"dns_synced,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	// Version is the log index of the last change to what shields serve for
	// this domain (origins, mode, assignment); failover and DNS changes do
	// not touch it.
	Version uint64 `json:"version"`
}

// DNSRecord is a domain's A record at its DNS provider.
type DNSRecord struct {
	Provider string    `json:"provider"`
	IP       string    `json:"ip"`
	TTL      int       `json:"ttl"`
	At       time.Time `json:"at,omitempty"`
}

// Same reports whether two records have the same provider, IP and TTL.
func (r *DNSRecord) Same(o *DNSRecord) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.Provider == o.Provider && r.IP == o.IP && r.TTL == o.TTL
}

// Primary returns the primary server ID, or "".
func (d *Domain) Primary() string {
	if len(d.Servers) == 0 {
		return ""
	}
	return d.Servers[0]
}

// Event is an entry in the replicated event log.
type Event struct {
	ID       uint64    `json:"id"`
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	Domain   string    `json:"domain,omitempty"`
	ServerID string    `json:"server_id,omitempty"`
	FromIP   string    `json:"from_ip,omitempty"`
	ToIP     string    `json:"to_ip,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Message  string    `json:"message,omitempty"`
}

// Event types.
const (
	EventServerAdded          = "server_added"
	EventServerRenamed        = "server_renamed"
	EventServerJoined         = "server_joined"
	EventServerDecommissioned = "server_decommissioned"
	EventServerNodeRemoved    = "server_node_removed"
	EventServerDown           = "server_down"
	EventServerRecovered      = "server_recovered"
	EventServerError          = "server_error"
	EventServerErrorCleared   = "server_error_cleared"
	EventDomainImported       = "domain_imported"
	EventDomainAdded          = "domain_added"
	EventDomainAssigned       = "domain_assigned"
	EventDomainRemoved        = "domain_removed"
	EventDomainUpdated        = "domain_updated"
	EventFailoverTriggered    = "failover_triggered"
	EventFailoverRecovered    = "failover_recovered"
	EventFailoverHeld         = "failover_held"
	EventPlanChanged          = "plan_changed"
)

// Plan names and their server limits.
const (
	PlanFree       = "free"
	PlanPro        = "pro"
	PlanEnterprise = "enterprise"
	PlanCustom     = "custom"
)

// PlanLimits maps named plans to their server limits.
var PlanLimits = map[string]int{PlanFree: 1, PlanPro: 5, PlanEnterprise: 20}

// DefaultPlan is the plan of a new cluster.
var DefaultPlan = Plan{Name: PlanEnterprise, Limit: 20}

// Plan limits the number of non-decommissioned servers.
type Plan struct {
	Name  string `json:"name"`
	Limit int    `json:"limit"`
}

// State is the whole replicated state.
type State struct {
	Servers     map[string]*Server `json:"servers"`
	Domains     map[string]*Domain `json:"domains"`
	Events      []Event            `json:"events"`
	NextEventID uint64             `json:"next_event_id"`
	Plan        Plan               `json:"plan"`
	// NotifyCursors maps a notification target's ID to the ID of the last
	// event delivered to it, so a new leader resumes where the old one
	// stopped.
	NotifyCursors map[string]uint64 `json:"notify_cursors,omitempty"`
	// Index is the log index of the last applied command.
	Index uint64 `json:"index"`
}

// New returns an empty state with the default plan.
func New() *State {
	return &State{
		Servers:     map[string]*Server{},
		Domains:     map[string]*Domain{},
		NextEventID: 1,
		Plan:        DefaultPlan,
	}
}

// Clone returns a deep copy.
func (s *State) Clone() *State {
	c := &State{
		Servers:     make(map[string]*Server, len(s.Servers)),
		Domains:     make(map[string]*Domain, len(s.Domains)),
		Events:      slices.Clone(s.Events),
		NextEventID: s.NextEventID,
		Plan:        s.Plan,
		Index:       s.Index,
	}
	if s.NotifyCursors != nil {
		c.NotifyCursors = make(map[string]uint64, len(s.NotifyCursors))
		for k, v := range s.NotifyCursors {
			c.NotifyCursors[k] = v
		}
	}
	for id, sv := range s.Servers {
		c.Servers[id] = sv.Clone()
	}
	for n, d := range s.Domains {
		c.Domains[n] = d.Clone()
	}
	return c
}

// Clone returns a deep copy of the server.
func (sv *Server) Clone() *Server {
	v := *sv
	if sv.Sites != nil {
		v.Sites = make([]Site, len(sv.Sites))
		for i, st := range sv.Sites {
			st.Origins = slices.Clone(st.Origins)
			st.Unresolved = slices.Clone(st.Unresolved)
			v.Sites[i] = st
		}
	}
	return &v
}

// Clone returns a deep copy of the domain. Empty and nil lists stay as they
// are, so a clone encodes to the same bytes as the original.
func (d *Domain) Clone() *Domain {
	v := *d
	v.Origins = slices.Clone(d.Origins)
	v.Servers = slices.Clone(d.Servers)
	if d.DNSSynced != nil {
		r := *d.DNSSynced
		v.DNSSynced = &r
	}
	return &v
}

// DesiredRecord is the A record a domain should have at its DNS provider:
// the active server's address (the primary's when none is recorded), with
// the low failover TTL while failed over. ok is false when the domain has
// no DNS provider or no server with an address.
func (s *State) DesiredRecord(d *Domain) (rec DNSRecord, ok bool) {
	if d.DNS.Provider == "" || d.DNS.Provider == DNSNone {
		return rec, false
	}
	id := d.ActiveServer
	if id == "" {
		id = d.Primary()
	}
	sv, found := s.Servers[id]
	if !found || sv.Addr == "" {
		return rec, false
	}
	rec = DNSRecord{Provider: d.DNS.Provider, IP: sv.Addr, TTL: d.DNS.TTL}
	if d.FailoverStatus == FailoverFailedOver {
		rec.TTL = d.DNS.FailoverTTL
	}
	return rec, true
}

// LastEventID is the ID of the newest event (0 if none).
func (s *State) LastEventID() uint64 { return s.NextEventID - 1 }

// ActiveServerCount counts servers that are not decommissioned.
func (s *State) ActiveServerCount() int {
	n := 0
	for _, sv := range s.Servers {
		if !sv.Decommissioned {
			n++
		}
	}
	return n
}

// SortedServers returns servers ordered by creation time, then ID.
func (s *State) SortedServers() []*Server {
	out := make([]*Server, 0, len(s.Servers))
	for _, sv := range s.Servers {
		out = append(out, sv)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// SortedDomains returns domains ordered by name.
func (s *State) SortedDomains() []*Domain {
	out := make([]*Domain, 0, len(s.Domains))
	for _, d := range s.Domains {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// FindServer resolves a reference to a server: its ID, or its name
// (case-insensitive). A name shared by a live and decommissioned servers
// resolves to the live one.
func (s *State) FindServer(ref string) (*Server, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, invalid("server", "server reference is empty")
	}
	if sv, ok := s.Servers[ref]; ok {
		return sv, nil
	}
	var live, dead []*Server
	for _, sv := range s.SortedServers() {
		if strings.EqualFold(sv.Name, ref) {
			if sv.Decommissioned {
				dead = append(dead, sv)
			} else {
				live = append(live, sv)
			}
		}
	}
	switch {
	case len(live) == 1:
		return live[0], nil
	case len(live) == 0 && len(dead) == 1:
		return dead[0], nil
	case len(live)+len(dead) > 1 && len(live) == 0:
		return nil, newErr(CodeConflict, "server", "server name %q is ambiguous (%d decommissioned servers have it): use the server ID", ref, len(dead))
	}
	return nil, newErr(CodeNotFound, "server", "server %q not found", ref)
}

// ServerByNode returns the server bound to node name, if any. A node name
// may be held by decommissioned servers as well as by the live one that took
// it over: the live one wins, then the most recently created.
func (s *State) ServerByNode(node string) *Server {
	if node == "" {
		return nil
	}
	var found *Server
	for _, sv := range s.SortedServers() {
		if sv.NodeName != node {
			continue
		}
		if !sv.Decommissioned {
			return sv
		}
		found = sv
	}
	return found
}

// ServerByTokenHash returns the server whose token hash matches.
func (s *State) ServerByTokenHash(hash string) *Server {
	for _, sv := range s.Servers {
		if sv.TokenHash == hash {
			return sv
		}
	}
	return nil
}

// DomainsOf returns the names of domains assigned to server id, sorted.
func (s *State) DomainsOf(id string) []string {
	var out []string
	for _, d := range s.Domains {
		for _, sid := range d.Servers {
			if sid == id {
				out = append(out, d.Name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// EventsFor returns events newest first, optionally only for a domain, at
// most limit (0 = all).
func (s *State) EventsFor(domain string, limit int) []Event {
	var out []Event
	for i := len(s.Events) - 1; i >= 0; i-- {
		e := s.Events[i]
		if domain != "" && e.Domain != domain {
			continue
		}
		out = append(out, e)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out
}
