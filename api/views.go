package api

import (
	"time"

	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

// memberIndex maps gossip member names to members.
type memberIndex map[string]mesh.Member

// indexMembers indexes members by name. When a name appears twice (which
// gossip should not report), the member seen most recently wins.
func indexMembers(ms []mesh.Member) memberIndex {
	idx := make(memberIndex, len(ms))
	for _, m := range ms {
		if old, ok := idx[m.Name]; ok && !m.LastSeen.After(old.LastSeen) {
			continue
		}
		idx[m.Name] = m
	}
	return idx
}

// memberOf returns the gossip member of the node bound to sv. A member that
// announces a different server ID is somebody else's node and is ignored.
func (mi memberIndex) memberOf(sv *state.Server) (mesh.Member, bool) {
	if sv.NodeName == "" {
		return mesh.Member{}, false
	}
	m, ok := mi[sv.NodeName]
	if !ok {
		return mesh.Member{}, false
	}
	if m.Meta.ServerID != "" && m.Meta.ServerID != sv.ID {
		return mesh.Member{}, false
	}
	return m, true
}

// serverStatus derives a server's status from its record and the gossip
// view of its node:
//   - decommissioned when the record says so;
//   - online when gossip says alive or suspect and HAProxy is not in error;
//   - error when gossip says alive or suspect and HAProxy reports an error;
//   - offline when the node is dead, has left, or was never seen.
func serverStatus(sv *state.Server, m mesh.Member, seen bool) string {
	if sv.Decommissioned {
		return StatusDecommissioned
	}
	if !seen {
		return StatusOffline
	}
	switch m.State {
	case mesh.StateAlive, mesh.StateSuspect:
		if m.Meta.Health == "error" {
			return StatusError
		}
		return StatusOnline
	}
	return StatusOffline
}

// maxDomainVersion returns the highest Version of the given domains.
func maxDomainVersion(st *state.State, names []string) uint64 {
	var v uint64
	for _, n := range names {
		if d, ok := st.Domains[n]; ok && d.Version > v {
			v = d.Version
		}
	}
	return v
}

// serverInfo builds the API view of sv.
func serverInfo(st *state.State, mi memberIndex, sv *state.Server, now time.Time) ServerInfo {
	m, seen := mi.memberOf(sv)
	info := ServerInfo{
		ID:             sv.ID,
		Name:           sv.Name,
		Status:         serverStatus(sv, m, seen),
		TokenPrefix:    sv.TokenPrefix,
		CreatedAt:      sv.CreatedAt,
		NodeName:       sv.NodeName,
		IP:             sv.Addr,
		RaftAddr:       sv.RaftAddr,
		Domains:        st.DomainsOf(sv.ID),
		Decommissioned: sv.Decommissioned,
		NodeRemoved:    sv.NodeRemoved,
		Sites:          len(sv.Sites),
		Down:           sv.Down,
		DownReason:     sv.DownReason,
	}
	if !sv.DownSince.IsZero() {
		t := sv.DownSince
		info.DownSince = &t
	}
	if info.Domains == nil {
		info.Domains = []string{}
	}
	if !sv.DecommissionedAt.IsZero() {
		t := sv.DecommissionedAt
		info.DecommissionedAt = &t
	}
	if !seen {
		return info
	}
	info.GossipState = string(m.State)
	if !m.LastSeen.IsZero() {
		t := m.LastSeen
		info.LastSeen = &t
	}
	if info.IP == "" {
		info.IP = m.Meta.Addr
		if info.IP == "" {
			info.IP = m.Addr
		}
	}
	if info.RaftAddr == "" {
		info.RaftAddr = m.Meta.RaftAddr
	}
	if info.Status == StatusOnline && m.Meta.Started > 0 {
		if up := now.Unix() - m.Meta.Started; up > 0 {
			info.UptimeSeconds = up
		}
	}
	info.AppliedIndex = m.Meta.AppliedIndex
	info.Current = serverCurrent(st, sv, info.Domains, m.Meta)
	info.Health = m.Meta.Health
	info.HealthError = m.Meta.HealthError
	info.ErrorType = m.Meta.ErrorType
	info.Version = m.Meta.Version
	info.ConfigHash = m.Meta.ConfigHash
	info.ConfigIndex = m.Meta.ConfigIndex
	info.Restarts = m.Meta.Restarts
	if t := m.Meta.Traffic; t != nil {
		info.Traffic = &TrafficInfo{
			RequestsPerSec: t.RequestsPerSec, Requests: t.Requests,
			BytesIn: t.BytesIn, BytesOut: t.BytesOut,
			Connections: t.Connections, Responses5xx: t.Responses5xx,
			At: time.Unix(t.At, 0).UTC(),
		}
	}
	return info
}

// serverCurrent tells whether a shield has applied every change that
// concerns it: the last change to its assignments and to each of its
// domains. A shield running HAProxy counts what HAProxy serves (the state
// index its config was rendered from); one without counts what it applied.
func serverCurrent(st *state.State, sv *state.Server, domains []string, meta mesh.Meta) bool {
	have := meta.AppliedIndex
	if meta.Health != "" {
		have = meta.ConfigIndex
	}
	need := max(sv.Version, maxDomainVersion(st, domains), 1)
	return have >= need
}

// domainInfo builds the API view of d. d need not be in st (a removed
// domain); its servers are looked up in st.
func domainInfo(st *state.State, mi memberIndex, d *state.Domain) DomainInfo {
	info := DomainInfo{
		Name:           d.Name,
		Origins:        append([]string{}, d.Origins...),
		Mode:           d.Mode,
		Servers:        make([]DomainServer, 0, len(d.Servers)),
		FailoverStatus: d.FailoverStatus,
		ActiveServer:   d.ActiveServer,
		DNS:            d.DNS,
		CreatedAt:      d.CreatedAt,
		UpdatedAt:      d.UpdatedAt,
		Version:        d.Version,
	}
	if d.DNSSynced != nil {
		r := *d.DNSSynced
		info.DNSSynced = &r
	}
	if rec, ok := st.DesiredRecord(d); ok {
		info.Record = &rec
	}
	if !d.FailoverAt.IsZero() {
		t := d.FailoverAt
		info.FailoverAt = &t
	}
	for i, id := range d.Servers {
		ds := DomainServer{ID: id, Primary: i == 0, Active: id == d.ActiveServer, Status: StatusOffline}
		if sv, ok := st.Servers[id]; ok {
			m, seen := mi.memberOf(sv)
			ds.Name = sv.Name
			ds.Status = serverStatus(sv, m, seen)
			ds.IP = sv.Addr
			if ds.IP == "" && seen {
				ds.IP = m.Meta.Addr
				if ds.IP == "" {
					ds.IP = m.Addr
				}
			}
		}
		info.Servers = append(info.Servers, ds)
	}
	return info
}

// planInfo returns the plan and its usage.
func planInfo(st *state.State) PlanInfo {
	return PlanInfo{Name: st.Plan.Name, Limit: st.Plan.Limit, Used: st.ActiveServerCount()}
}

// fillStatus adds the counts computed from the replicated state and the
// gossip view to a node's status.
func fillStatus(st *state.State, mi memberIndex, s *StatusResponse) {
	s.Servers = map[string]int{
		StatusOnline:         0,
		StatusOffline:        0,
		StatusError:          0,
		StatusDecommissioned: 0,
	}
	current := map[string]bool{} // by node name
	for _, sv := range st.Servers {
		m, seen := mi.memberOf(sv)
		s.Servers[serverStatus(sv, m, seen)]++
		if seen && !sv.Decommissioned {
			current[sv.NodeName] = serverCurrent(st, sv, st.DomainsOf(sv.ID), m.Meta)
		}
	}
	for i := range s.Nodes {
		if c, ok := current[s.Nodes[i].Name]; ok {
			s.Nodes[i].Current = &c
		}
	}
	s.Domains = len(st.Domains)
	s.FailedOver = 0
	for _, d := range st.Domains {
		if d.FailoverStatus == state.FailoverFailedOver {
			s.FailedOver++
		}
	}
	s.Plan = planInfo(st)
	if s.Nodes == nil {
		s.Nodes = []NodeInfo{}
	}
}
