package state

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DecommissionResult is returned by a server.decommission command.
type DecommissionResult struct {
	Server *Server `json:"server"`
	// Unassigned lists the domains the server was removed from.
	Unassigned []string `json:"unassigned"`
	// Orphaned lists the domains left with no server at all.
	Orphaned []string `json:"orphaned"`
}

// Apply applies cmd at log index idx. It is deterministic and validates
// everything: on error the state is unchanged. The result is a copy of the
// record the command created or changed (nil for some commands).
func (s *State) Apply(idx uint64, c *Command) (any, error) {
	if c == nil {
		return nil, invalid("command", "empty command")
	}
	if c.Version < 1 || c.Version > CommandVersion {
		return nil, invalid("command", "command version %d is not supported by this node (max %d): upgrade it", c.Version, CommandVersion)
	}
	var (
		res any
		err error
	)
	switch c.Type {
	case CmdServerAdd:
		res, err = s.serverAdd(c.Time, c.ServerAdd)
	case CmdServerRename:
		res, err = s.serverRename(c.Time, c.ServerRename)
	case CmdServerBind:
		res, err = s.serverBind(c.Time, c.ServerBind)
	case CmdServerDecommission:
		res, err = s.serverDecommission(idx, c.Time, c.ServerDecommission)
	case CmdServerNodeRemoved:
		res, err = s.serverNodeRemoved(c.Time, c.ServerNodeRemoved)
	case CmdDomainAdd:
		res, err = s.domainAdd(idx, c.Time, c.DomainAdd)
	case CmdDomainAssign:
		res, err = s.domainAssign(idx, c.Time, c.DomainAssign)
	case CmdDomainRemove:
		res, err = s.domainRemove(idx, c.Time, c.DomainRemove)
	case CmdPlanSet:
		res, err = s.planSet(c.Time, c.PlanSet)
	case CmdEventAdd:
		res, err = s.eventAdd(c.Time, c.EventAdd)
	case CmdServerHealth:
		res, err = s.serverHealth(c.Time, c.ServerHealth)
	case CmdDomainImport:
		res, err = s.domainImport(idx, c.Time, c.DomainImport)
	case CmdDomainSet:
		res, err = s.domainSet(idx, c.Time, c.DomainSet)
	case CmdDomainFailover:
		res, err = s.domainFailover(c.Time, c.DomainFailover)
	case CmdDomainDNSSynced:
		res, err = s.domainDNSSynced(c.Time, c.DomainDNSSynced)
	case CmdServerLiveness:
		res, err = s.serverLiveness(c.Time, c.ServerLiveness)
	case CmdNotifyAck:
		res, err = s.notifyAck(c.NotifyAck)
	default:
		return nil, invalid("command", "unknown command type %q", c.Type)
	}
	if err != nil {
		return nil, err
	}
	if idx > s.Index {
		s.Index = idx
	}
	return res, nil
}

func missing(typ string) error { return invalid("command", "%s command has no payload", typ) }

func (s *State) addEvent(e Event) {
	e.ID = s.NextEventID
	s.NextEventID++
	s.Events = append(s.Events, e)
	// Trim in batches: copying the whole log on every event once it is full
	// would make each command cost O(MaxEvents) on every node.
	if len(s.Events) >= MaxEvents+eventSlack {
		s.Events = append([]Event(nil), s.Events[len(s.Events)-MaxEvents:]...)
	}
}

// eventSlack is how far the event log may grow past MaxEvents before it is
// trimmed back to the newest MaxEvents.
const eventSlack = MaxEvents / 4

func (s *State) liveNameTaken(name, exceptID string) bool {
	for _, sv := range s.Servers {
		if sv.ID != exceptID && !sv.Decommissioned && strings.EqualFold(sv.Name, name) {
			return true
		}
	}
	return false
}

func validTokenHash(h string) bool {
	b, err := hex.DecodeString(h)
	return err == nil && len(b) == 32 && h == strings.ToLower(h)
}

func (s *State) serverAdd(now time.Time, p *ServerAdd) (any, error) {
	if p == nil {
		return nil, missing(CmdServerAdd)
	}
	if p.ID == "" {
		return nil, invalid("id", "server id is empty")
	}
	if _, ok := s.Servers[p.ID]; ok {
		return nil, newErr(CodeConflict, "id", "server id %q already exists", p.ID)
	}
	name, err := NormalizeServerName(p.Name)
	if err != nil {
		return nil, err
	}
	if s.liveNameTaken(name, "") {
		return nil, newErr(CodeConflict, "name", "a server named %q already exists", name)
	}
	if !validTokenHash(p.TokenHash) {
		return nil, invalid("token_hash", "token hash must be 64 lower-case hex characters")
	}
	if s.ServerByTokenHash(p.TokenHash) != nil {
		return nil, newErr(CodeConflict, "token_hash", "token hash already in use")
	}
	if n := s.ActiveServerCount(); n >= s.Plan.Limit {
		return nil, newErr(CodePlanLimit, "plan", "plan %s allows %d server(s) and %d are in use: decommission one or change the plan", s.Plan.Name, s.Plan.Limit, n)
	}
	sv := &Server{ID: p.ID, Name: name, TokenHash: p.TokenHash, TokenPrefix: p.TokenPrefix, CreatedAt: now}
	s.Servers[sv.ID] = sv
	s.addEvent(Event{Time: now, Type: EventServerAdded, ServerID: sv.ID, Message: fmt.Sprintf("server %q added", name)})
	return sv.Clone(), nil
}

func (s *State) serverRename(now time.Time, p *ServerRename) (any, error) {
	if p == nil {
		return nil, missing(CmdServerRename)
	}
	sv, err := s.server(p.ID)
	if err != nil {
		return nil, err
	}
	name, err := NormalizeServerName(p.Name)
	if err != nil {
		return nil, err
	}
	if !sv.Decommissioned && s.liveNameTaken(name, sv.ID) {
		return nil, newErr(CodeConflict, "name", "a server named %q already exists", name)
	}
	old := sv.Name
	sv.Name = name
	s.addEvent(Event{Time: now, Type: EventServerRenamed, ServerID: sv.ID, Message: fmt.Sprintf("server %q renamed to %q", old, name)})
	return sv.Clone(), nil
}

func (s *State) serverBind(now time.Time, p *ServerBind) (any, error) {
	if p == nil {
		return nil, missing(CmdServerBind)
	}
	sv, err := s.server(p.ID)
	if err != nil {
		return nil, err
	}
	if sv.Decommissioned {
		return nil, newErr(CodeDecommissioned, "token", "server %q is decommissioned: its token can never reconnect", sv.Name)
	}
	if p.NodeName == "" {
		return nil, invalid("node_name", "node name is empty")
	}
	for _, other := range s.SortedServers() {
		if other.ID != sv.ID && !other.Decommissioned && other.NodeName == p.NodeName {
			return nil, newErr(CodeConflict, "node_name", "node %q is already bound to server %q", p.NodeName, other.Name)
		}
	}
	if sv.NodeName != "" && sv.NodeName != p.NodeName && !p.Rebind {
		return nil, newErr(CodeConflict, "token", "server %q is already bound to node %q", sv.Name, sv.NodeName)
	}
	sites, err := normalizeSites(p.Sites)
	if err != nil {
		return nil, err
	}
	first := sv.NodeName != p.NodeName || sv.Addr != p.Addr || sv.RaftAddr != p.RaftAddr
	sv.NodeName, sv.Addr, sv.RaftAddr = p.NodeName, p.Addr, p.RaftAddr
	if p.Sites != nil {
		sv.Sites = sites
	}
	if sv.BoundAt.IsZero() || first {
		sv.BoundAt = now
		s.addEvent(Event{Time: now, Type: EventServerJoined, ServerID: sv.ID, Message: fmt.Sprintf("server %q joined as node %q (%s)", sv.Name, p.NodeName, p.Addr)})
	}
	return sv.Clone(), nil
}

func (s *State) serverDecommission(idx uint64, now time.Time, p *ServerDecommission) (any, error) {
	if p == nil {
		return nil, missing(CmdServerDecommission)
	}
	sv, err := s.server(p.ID)
	if err != nil {
		return nil, err
	}
	if sv.Decommissioned {
		return nil, newErr(CodeDecommissioned, "server", "server %q is already decommissioned", sv.Name)
	}
	res := &DecommissionResult{Unassigned: []string{}, Orphaned: []string{}}
	for _, name := range s.DomainsOf(sv.ID) {
		d := s.Domains[name]
		d.Servers = without(d.Servers, sv.ID)
		if d.ActiveServer == sv.ID {
			// The failover controller decides again from the new list.
			d.ActiveServer = d.Primary()
			d.FailoverStatus = FailoverActive
		}
		d.UpdatedAt = now
		res.Unassigned = append(res.Unassigned, name)
		if len(d.Servers) == 0 {
			res.Orphaned = append(res.Orphaned, name)
		}
	}
	sv.Decommissioned = true
	sv.DecommissionedAt = now
	sv.Version = idx
	s.addEvent(Event{Time: now, Type: EventServerDecommissioned, ServerID: sv.ID, Message: fmt.Sprintf("server %q decommissioned; removed from %d domain(s)", sv.Name, len(res.Unassigned))})
	res.Server = sv.Clone()
	return res, nil
}

func (s *State) serverNodeRemoved(now time.Time, p *ServerNodeRemoved) (any, error) {
	if p == nil {
		return nil, missing(CmdServerNodeRemoved)
	}
	sv, err := s.server(p.ID)
	if err != nil {
		return nil, err
	}
	if !sv.Decommissioned {
		return nil, newErr(CodeConflict, "server", "server %q is not decommissioned", sv.Name)
	}
	if sv.NodeRemoved {
		return nil, nil
	}
	sv.NodeRemoved = true
	s.addEvent(Event{Time: now, Type: EventServerNodeRemoved, ServerID: sv.ID, Message: fmt.Sprintf("node %q of decommissioned server %q removed from the cluster", sv.NodeName, sv.Name)})
	return sv.Clone(), nil
}

// checkServers validates an ordered server list for a domain.
func (s *State) checkServers(ids []string) error {
	if len(ids) > MaxServersPerDomain {
		return invalid("servers", "a domain can have at most %d servers", MaxServersPerDomain)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		sv, ok := s.Servers[id]
		if !ok {
			return newErr(CodeNotFound, "servers", "server %q not found", id)
		}
		if sv.Decommissioned {
			return newErr(CodeDecommissioned, "servers", "server %q is decommissioned", sv.Name)
		}
		if seen[id] {
			return invalid("servers", "server %q is listed twice", sv.Name)
		}
		seen[id] = true
	}
	return nil
}

// NormalizeOrigins validates and normalizes a list of origins.
func NormalizeOrigins(origins []string) ([]string, error) {
	if len(origins) == 0 {
		return nil, invalid("origin", "at least one origin (IP:PORT) is required")
	}
	if len(origins) > MaxOrigins {
		return nil, invalid("origin", "at most %d origins are allowed", MaxOrigins)
	}
	out := make([]string, 0, len(origins))
	seen := map[string]bool{}
	for _, o := range origins {
		n, err := ParseOrigin(o)
		if err != nil {
			return nil, err
		}
		if seen[n] {
			return nil, invalid("origin", "origin %s is listed twice", n)
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}

func (s *State) domainAdd(idx uint64, now time.Time, p *DomainAdd) (any, error) {
	if p == nil {
		return nil, missing(CmdDomainAdd)
	}
	name, err := NormalizeDomainName(p.Name)
	if err != nil {
		return nil, err
	}
	if _, ok := s.Domains[name]; ok {
		return nil, newErr(CodeConflict, "domain", "domain %s already exists", name)
	}
	origins, err := NormalizeOrigins(p.Origins)
	if err != nil {
		return nil, err
	}
	mode, err := ValidateMode(p.Mode)
	if err != nil {
		return nil, err
	}
	dns, err := ValidateDNS(p.DNS)
	if err != nil {
		return nil, err
	}
	if err := s.checkServers(p.Servers); err != nil {
		return nil, err
	}
	d := &Domain{
		Name: name, Origins: origins, Mode: mode, DNS: dns,
		Servers:        append([]string{}, p.Servers...),
		FailoverStatus: FailoverActive,
		CreatedAt:      now, UpdatedAt: now, Version: idx,
	}
	d.ActiveServer = d.Primary()
	s.Domains[name] = d
	s.touch(idx, d.Servers...)
	s.addEvent(Event{Time: now, Type: EventDomainAdded, Domain: name, Message: fmt.Sprintf("domain %s added (%s, %d origin(s))", name, mode, len(origins))})
	return d.Clone(), nil
}

func (s *State) domainAssign(idx uint64, now time.Time, p *DomainAssign) (any, error) {
	if p == nil {
		return nil, missing(CmdDomainAssign)
	}
	d, err := s.domain(p.Name)
	if err != nil {
		return nil, err
	}
	name := d.Name
	if len(p.Servers) == 0 {
		return nil, invalid("servers", "at least one server is required")
	}
	if err := s.checkServers(p.Servers); err != nil {
		return nil, err
	}
	s.touch(idx, d.Servers...)
	s.touch(idx, p.Servers...)
	d.Servers = append([]string{}, p.Servers...)
	if d.FailoverStatus != FailoverFailedOver || !contains(d.Servers, d.ActiveServer) || d.ActiveServer == d.Primary() {
		d.FailoverStatus = FailoverActive
		d.ActiveServer = d.Primary()
	}
	d.UpdatedAt, d.Version = now, idx
	names := make([]string, len(d.Servers))
	for i, id := range d.Servers {
		names[i] = s.Servers[id].Name
	}
	s.addEvent(Event{Time: now, Type: EventDomainAssigned, Domain: name, Message: fmt.Sprintf("domain %s assigned to %s (primary %s)", name, strings.Join(names, ", "), names[0])})
	return d.Clone(), nil
}

func (s *State) domainRemove(idx uint64, now time.Time, p *DomainRemove) (any, error) {
	if p == nil {
		return nil, missing(CmdDomainRemove)
	}
	d, err := s.domain(p.Name)
	if err != nil {
		return nil, err
	}
	name := d.Name
	delete(s.Domains, name)
	s.touch(idx, d.Servers...)
	s.addEvent(Event{Time: now, Type: EventDomainRemoved, Domain: name, Message: fmt.Sprintf("domain %s removed", name)})
	return d, nil
}

func (s *State) planSet(now time.Time, p *PlanSet) (any, error) {
	if p == nil {
		return nil, missing(CmdPlanSet)
	}
	pl := p.Plan
	if lim, ok := PlanLimits[pl.Name]; ok {
		if pl.Limit != lim {
			return nil, invalid("plan", "plan %s has limit %d, not %d", pl.Name, lim, pl.Limit)
		}
	} else if pl.Name != PlanCustom || pl.Limit < 1 {
		return nil, invalid("plan", "plan %q with limit %d is not valid", pl.Name, pl.Limit)
	}
	if n := s.ActiveServerCount(); n > pl.Limit {
		return nil, newErr(CodePlanLimit, "plan", "plan %s allows %d server(s) but %d are in use: decommission some first", pl.Name, pl.Limit, n)
	}
	s.Plan = pl
	s.addEvent(Event{Time: now, Type: EventPlanChanged, Message: fmt.Sprintf("plan set to %s (%d servers)", pl.Name, pl.Limit)})
	v := s.Plan
	return &v, nil
}

func (s *State) eventAdd(now time.Time, p *EventAdd) (any, error) {
	if p == nil {
		return nil, missing(CmdEventAdd)
	}
	e := p.Event
	if e.Type == "" {
		return nil, invalid("event", "event type is empty")
	}
	if e.Time.IsZero() {
		e.Time = now
	}
	s.addEvent(e)
	v := s.Events[len(s.Events)-1]
	return &v, nil
}

// MaxSites bounds the detected sites stored with a server.
const MaxSites = 10000

func normalizeSites(in []Site) ([]Site, error) {
	if len(in) > MaxSites {
		return nil, invalid("sites", "at most %d detected sites are kept", MaxSites)
	}
	out := make([]Site, 0, len(in))
	for _, st := range in {
		name, err := NormalizeDomainName(st.Domain)
		if err != nil {
			return nil, invalid("sites", "detected site %q: %s", st.Domain, err.Error())
		}
		mode, err := ValidateMode(st.Mode)
		if err != nil {
			return nil, invalid("sites", "detected site %s: %s", name, err.Error())
		}
		st.Domain, st.Mode = name, mode
		st.Origins = slices.Clone(st.Origins)
		st.Unresolved = slices.Clone(st.Unresolved)
		out = append(out, st)
	}
	return out, nil
}

func (s *State) serverHealth(now time.Time, p *ServerHealth) (any, error) {
	if p == nil {
		return nil, missing(CmdServerHealth)
	}
	sv, err := s.server(p.ID)
	if err != nil {
		return nil, err
	}
	if (p.ErrorType == "") != (p.Error == "") {
		return nil, invalid("error", "error type and error go together")
	}
	if len(p.Error) > 1000 {
		p.Error = p.Error[:1000]
	}
	if sv.ErrorType == p.ErrorType && sv.Error == p.Error {
		return sv.Clone(), nil
	}
	switch {
	case p.ErrorType != "":
		s.addEvent(Event{Time: now, Type: EventServerError, ServerID: sv.ID, Reason: p.ErrorType, Message: fmt.Sprintf("server %q: %s", sv.Name, p.Error)})
	case sv.ErrorType != "":
		s.addEvent(Event{Time: now, Type: EventServerErrorCleared, ServerID: sv.ID, Reason: sv.ErrorType, Message: fmt.Sprintf("server %q: %s cleared", sv.Name, sv.ErrorType)})
	}
	sv.ErrorType, sv.Error = p.ErrorType, p.Error
	return sv.Clone(), nil
}

// domainImport adds several domains assigned to one server, all or none.
func (s *State) domainImport(idx uint64, now time.Time, p *DomainImport) (any, error) {
	if p == nil {
		return nil, missing(CmdDomainImport)
	}
	sv, err := s.server(p.ServerID)
	if err != nil {
		return nil, err
	}
	if sv.Decommissioned {
		return nil, newErr(CodeDecommissioned, "server", "server %q is decommissioned", sv.Name)
	}
	if len(p.Domains) == 0 {
		return nil, invalid("sites", "no site to import")
	}
	// Validate everything on a copy first, so a bad site changes nothing.
	trial := s.Clone()
	for i := range p.Domains {
		d := p.Domains[i]
		d.Servers = []string{sv.ID}
		if _, err := trial.domainAdd(idx, now, &d); err != nil {
			return nil, err
		}
	}
	out := make([]*Domain, 0, len(p.Domains))
	for i := range p.Domains {
		d := p.Domains[i]
		d.Servers = []string{sv.ID}
		res, _ := s.domainAdd(idx, now, &d)
		out = append(out, res.(*Domain))
	}
	names := make([]string, len(out))
	for i, d := range out {
		names[i] = d.Name
	}
	s.addEvent(Event{Time: now, Type: EventDomainImported, ServerID: sv.ID, Message: fmt.Sprintf("imported %d site(s) from server %q: %s", len(out), sv.Name, strings.Join(names, ", "))})
	return out, nil
}

// touch records that what the given servers serve changed at idx.
func (s *State) touch(idx uint64, ids ...string) {
	for _, id := range ids {
		if sv, ok := s.Servers[id]; ok && idx > sv.Version {
			sv.Version = idx
		}
	}
}

// domain looks a domain up by name for a command.
func (s *State) domain(ref string) (*Domain, error) {
	name, err := NormalizeDomainName(ref)
	if err != nil {
		return nil, err
	}
	d, ok := s.Domains[name]
	if !ok {
		return nil, newErr(CodeNotFound, "domain", "domain %s not found", name)
	}
	return d, nil
}

// server looks a server up by ID for a command.
func (s *State) server(id string) (*Server, error) {
	sv, ok := s.Servers[id]
	if !ok {
		return nil, newErr(CodeNotFound, "server", "server %q not found", id)
	}
	return sv, nil
}

func without(list []string, x string) []string {
	out := make([]string, 0, len(list))
	for _, v := range list {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}

func contains(list []string, x string) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}
