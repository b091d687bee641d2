package api

import (
	"time"

	"github.com/lumos-mesh/lumos/state"
)

// Version is the API version prefix.
const Version = "v1"

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries a stable code, the field at fault (if any) and a
// human-readable one-line message.
type ErrorDetail struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Extra error codes used only by the API (the rest come from state).
const (
	CodeTooLarge    = "too_large"
	CodeMethod      = "method_not_allowed"
	CodeRateLimited = "rate_limited"
)

// HeaderForwarded marks a request that a follower forwarded to the leader;
// its value is the forwarding node's name. A non-leader that receives such a
// request refuses it instead of forwarding again, so requests never loop.
const HeaderForwarded = "X-Lumos-Forwarded"

// HeaderStale is set on a read answered from a follower's own copy of the
// state (asked for with ?stale=true, or when no leader is known); such an
// answer may lag the leader by a few entries.
const HeaderStale = "X-Lumos-Stale"

// HealthResponse is the body of GET /v1/health.
type HealthResponse struct {
	Status string `json:"status"`
	Node   string `json:"node"`
}

// Server statuses as users see them.
const (
	StatusOnline         = "online"
	StatusOffline        = "offline"
	StatusError          = "error"
	StatusDecommissioned = "decommissioned"
)

// ServerInfo is a server as the API shows it: the replicated record joined
// with what gossip says about its node.
type ServerInfo struct {
	ID               string     `json:"id"`
	Name             string     `json:"name"`
	Status           string     `json:"status"`
	TokenPrefix      string     `json:"token_prefix"`
	CreatedAt        time.Time  `json:"created_at"`
	NodeName         string     `json:"node_name,omitempty"`
	IP               string     `json:"ip,omitempty"`
	RaftAddr         string     `json:"raft_addr,omitempty"`
	GossipState      string     `json:"gossip_state,omitempty"` // alive, suspect, dead, left, or "" if never seen
	LastSeen         *time.Time `json:"last_seen,omitempty"`
	UptimeSeconds    int64      `json:"uptime_seconds,omitempty"`
	Domains          []string   `json:"domains"`
	AppliedIndex     uint64     `json:"applied_index"`
	Current          bool       `json:"current"` // has applied every change that concerns it
	Health           string     `json:"health,omitempty"`
	HealthError      string     `json:"health_error,omitempty"`
	Version          string     `json:"version,omitempty"`
	Decommissioned   bool       `json:"decommissioned,omitempty"`
	DecommissionedAt *time.Time `json:"decommissioned_at,omitempty"`
	NodeRemoved      bool       `json:"node_removed,omitempty"`
	// Down is the failover controller's verdict (see state.Server.Down).
	Down       bool       `json:"down,omitempty"`
	DownReason string     `json:"down_reason,omitempty"`
	DownSince  *time.Time `json:"down_since,omitempty"`

	// The shield's HAProxy pipeline, from its gossip metadata.
	ConfigHash  string       `json:"config_hash,omitempty"`
	ConfigIndex uint64       `json:"config_index,omitempty"` // state index its serving config was rendered from
	ErrorType   string       `json:"error_type,omitempty"`   // e.g. haproxy_reload_failed
	Restarts    int          `json:"haproxy_restarts,omitempty"`
	Traffic     *TrafficInfo `json:"traffic,omitempty"`
	Sites       int          `json:"detected_sites"` // sites found in its original HAProxy config
}

// TrafficInfo is a shield's HAProxy traffic summed over its sites.
type TrafficInfo struct {
	RequestsPerSec float64   `json:"requests_per_sec"`
	Requests       uint64    `json:"requests"`
	BytesIn        uint64    `json:"bytes_in"`
	BytesOut       uint64    `json:"bytes_out"`
	Connections    int       `json:"connections"`
	Responses5xx   uint64    `json:"responses_5xx"`
	At             time.Time `json:"at"`
}

// SiteInfo is a site detected in a shield's original HAProxy config.
type SiteInfo struct {
	state.Site
	// Managed is set when a domain of that name is already managed.
	Managed bool `json:"managed"`
}

// ImportRequest is the body of POST /v1/servers/{ref}/import: the sites to
// import, by domain ("example.com", or "example.com/tcp" when a domain was
// detected in both modes).
type ImportRequest struct {
	Sites []string `json:"sites"`
}

// AddServerRequest is the body of POST /v1/servers.
type AddServerRequest struct {
	Name string `json:"name"`
}

// AddServerResponse carries the connection token, shown this once.
type AddServerResponse struct {
	Server ServerInfo `json:"server"`
	Token  string     `json:"token"`
}

// RenameServerRequest is the body of PATCH /v1/servers/{ref}.
type RenameServerRequest struct {
	Name string `json:"name"`
}

// DecommissionResponse is the answer to POST /v1/servers/{ref}/decommission.
type DecommissionResponse struct {
	Server     ServerInfo `json:"server"`
	Unassigned []string   `json:"unassigned"`
	Orphaned   []string   `json:"orphaned"` // domains left with no server
}

// DomainServer is one entry of a domain's ordered server list.
type DomainServer struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Primary bool   `json:"primary"`
	Active  bool   `json:"active"` // the server DNS points at
	Status  string `json:"status"`
	IP      string `json:"ip,omitempty"`
}

// DomainInfo is a domain as the API shows it.
type DomainInfo struct {
	Name           string         `json:"name"`
	Origins        []string       `json:"origins"`
	Mode           string         `json:"mode"`
	Servers        []DomainServer `json:"servers"`
	FailoverStatus string         `json:"failover_status"`
	ActiveServer   string         `json:"active_server,omitempty"`
	DNS            state.DNS      `json:"dns"`
	// Record is the A record the domain should have (the active shield's
	// IP and the TTL in force); DNSSynced is what the leader last confirmed
	// at an external provider.
	Record     *state.DNSRecord `json:"record,omitempty"`
	DNSSynced  *state.DNSRecord `json:"dns_synced,omitempty"`
	FailoverAt *time.Time       `json:"failover_at,omitempty"`
	CreatedAt  time.Time        `json:"created_at"`
	UpdatedAt  time.Time        `json:"updated_at"`
	Version    uint64           `json:"version"`
}

// AddDomainRequest is the body of POST /v1/domains.
type AddDomainRequest struct {
	Name    string    `json:"name"`
	Origins []string  `json:"origins"`
	Mode    string    `json:"mode,omitempty"`
	DNS     state.DNS `json:"dns,omitempty"`
	Servers []string  `json:"servers,omitempty"` // server IDs or names, ordered
}

// SetDomainRequest is the body of PATCH /v1/domains/{name}: absent fields
// keep their values.
type SetDomainRequest struct {
	Origins     []string `json:"origins,omitempty"`
	Mode        string   `json:"mode,omitempty"`
	DNS         string   `json:"dns,omitempty"` // provider: builtin, cloudflare or none
	TTL         int      `json:"ttl,omitempty"`
	FailoverTTL int      `json:"failover_ttl,omitempty"`
}

// AssignRequest is the body of PUT /v1/domains/{name}/servers.
type AssignRequest struct {
	Servers []string `json:"servers"` // server IDs or names, ordered: first is primary
}

// PlanRequest is the body of PUT /v1/plan: "free", "pro", "enterprise" or a number.
type PlanRequest struct {
	Plan string `json:"plan"`
}

// PlanInfo is the plan and its usage.
type PlanInfo struct {
	Name  string `json:"name"`
	Limit int    `json:"limit"`
	Used  int    `json:"used"`
}

// NodeInfo describes a control node or any gossip member.
type NodeInfo struct {
	Name        string     `json:"name"`
	Addr        string     `json:"addr"` // gossip IP:PORT
	RaftAddr    string     `json:"raft_addr,omitempty"`
	APIAddr     string     `json:"api_addr,omitempty"`
	GossipState string     `json:"gossip_state"`
	Suffrage    string     `json:"suffrage,omitempty"` // voter, nonvoter, or "" if not in the raft configuration
	Leader      bool       `json:"leader,omitempty"`
	Control     bool       `json:"control,omitempty"`
	Shield      bool       `json:"shield,omitempty"`
	ServerID    string     `json:"server_id,omitempty"`
	Applied     uint64     `json:"applied_index"`
	Health      string     `json:"health,omitempty"`  // shields: ok or error
	Current     *bool      `json:"current,omitempty"` // shields: serving every change that concerns them
	LastSeen    *time.Time `json:"last_seen,omitempty"`
	Version     string     `json:"version,omitempty"`
}

// StatusResponse is GET /v1/status: the cluster as seen by the answering
// node.
type StatusResponse struct {
	Node         string         `json:"node"`
	Version      string         `json:"version"`
	RaftState    string         `json:"raft_state"`
	Leader       string         `json:"leader"`
	LeaderAPI    string         `json:"leader_api,omitempty"`
	Term         uint64         `json:"term"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	Nodes        []NodeInfo     `json:"nodes"`
	Servers      map[string]int `json:"servers"` // count by status
	Domains      int            `json:"domains"`
	FailedOver   int            `json:"failed_over"`
	Plan         PlanInfo       `json:"plan"`
}

// JoinRequest is what a shield presents to POST /v1/join. It proves the
// shield holds a server token without carrying it (see NewJoinRequest):
// TokenPrefix finds the server, MAC is an HMAC over every field keyed from
// the token's hash.
type JoinRequest struct {
	TokenPrefix string `json:"token_prefix"`
	NodeName    string `json:"node_name"`
	Addr        string `json:"addr"`        // advertise IP
	GossipAddr  string `json:"gossip_addr"` // IP:PORT
	RaftAddr    string `json:"raft_addr"`   // IP:PORT
	Version     string `json:"version,omitempty"`
	// Sites found in the shield's original HAProxy configuration; sent
	// at the first join.
	Sites []state.Site `json:"sites,omitempty"`
	Time  int64        `json:"time"`  // unix seconds
	Nonce string       `json:"nonce"` // base64, 16 random bytes
	MAC   string       `json:"mac"`   // hex HMAC-SHA256
}

// JoinResponse admits a shield. Sealed holds a JoinSecret (the gossip key
// and peers) that only the holder of the token can open (OpenJoin).
type JoinResponse struct {
	ServerID   string `json:"server_id"`
	ServerName string `json:"server_name"`
	Sealed     string `json:"sealed"`
}
