package api

import (
	"time"

	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

// Exported view builders: the dashboard and the metrics show servers,
// domains and the cluster status exactly as the API (and so the CLI) does.

// ViewSource is what the read-only views need from a node. *node.Node and
// every Backend satisfy it.
type ViewSource interface {
	// View gives fn read-only access to the local replicated state; fn
	// must not keep st or anything it points to after it returns.
	View(fn func(st *state.State))
	// Members is the gossip view, including dead and left members.
	Members() []mesh.Member
	// Status is the raft/cluster part of the status (see Backend.Status).
	Status() StatusResponse
	// Now is the node's clock.
	Now() time.Time
}

// MemberIndex is a gossip view indexed by member name, as the view
// builders use it. Build it with IndexMembers before calling View: the
// gossip view must not be read while the state is locked.
type MemberIndex struct{ idx memberIndex }

// IndexMembers indexes a gossip view. When a name appears twice, the
// member seen most recently wins.
func IndexMembers(ms []mesh.Member) MemberIndex { return MemberIndex{idx: indexMembers(ms)} }

// Member returns the gossip member of the node bound to sv; a member that
// announces another server ID is not it.
func (mi MemberIndex) Member(sv *state.Server) (mesh.Member, bool) { return mi.idx.memberOf(sv) }

// ServerStatus is a server's status as the API reports it: one of
// StatusOnline, StatusOffline, StatusError, StatusDecommissioned.
func ServerStatus(mi MemberIndex, sv *state.Server) string {
	m, seen := mi.idx.memberOf(sv)
	return serverStatus(sv, m, seen)
}

// ServerView is the API view of sv (GET /v1/servers/{ref}). Call it inside
// View; the result holds no pointer into st.
func ServerView(st *state.State, mi MemberIndex, sv *state.Server, now time.Time) ServerInfo {
	return serverInfo(st, mi.idx, sv, now)
}

// DomainView is the API view of d (GET /v1/domains/{name}). Call it inside
// View; the result holds no pointer into st.
func DomainView(st *state.State, mi MemberIndex, d *state.Domain) DomainInfo {
	return domainInfo(st, mi.idx, d)
}

// FillStatus adds to s (a Backend's Status) the counts GET /v1/status
// reports: servers by status, domains, failed-over domains, the plan, and
// whether each shield is current. Call it inside View.
func FillStatus(st *state.State, mi MemberIndex, s *StatusResponse) {
	fillStatus(st, mi.idx, s)
}

// Snapshot reads the status, every server (in creation order) and every
// domain (by name) from one consistent read of src's state, as GET
// /v1/status, /v1/servers and /v1/domains report them.
func Snapshot(src ViewSource) (StatusResponse, []ServerInfo, []DomainInfo) {
	status := src.Status()
	mi := IndexMembers(src.Members())
	now := src.Now()
	var (
		servers []ServerInfo
		domains []DomainInfo
	)
	src.View(func(st *state.State) {
		fillStatus(st, mi.idx, &status)
		servers = make([]ServerInfo, 0, len(st.Servers))
		for _, sv := range st.SortedServers() {
			servers = append(servers, serverInfo(st, mi.idx, sv, now))
		}
		domains = make([]DomainInfo, 0, len(st.Domains))
		for _, d := range st.SortedDomains() {
			domains = append(domains, domainInfo(st, mi.idx, d))
		}
	})
	return status, servers, domains
}
