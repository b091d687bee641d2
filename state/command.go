package state

import (
	"encoding/json"
	"fmt"
	"time"
)

// CommandVersion is the version of the command encoding written by this
// build. Apply accepts versions up to it and refuses newer ones, so an old
// node never misreads a command from a newer leader.
const CommandVersion = 1

// Command types.
const (
	CmdServerAdd          = "server.add"
	CmdServerRename       = "server.rename"
	CmdServerBind         = "server.bind"
	CmdServerDecommission = "server.decommission"
	CmdServerNodeRemoved  = "server.node_removed"
	CmdDomainAdd          = "domain.add"
	CmdDomainAssign       = "domain.assign"
	CmdDomainRemove       = "domain.remove"
	CmdPlanSet            = "plan.set"
	CmdEventAdd           = "event.add"
	CmdServerHealth       = "server.health"
	CmdDomainImport       = "domain.import"
	CmdDomainSet          = "domain.set"
	CmdDomainFailover     = "domain.failover"
	CmdDomainDNSSynced    = "domain.dns_synced"
	CmdServerLiveness     = "server.liveness"
	CmdNotifyAck          = "notify.ack"
)

// Command is one replicated change. Time is stamped by the leader when the
// command is proposed; exactly one payload matches Type.
type Command struct {
	Type    string    `json:"type"`
	Version int       `json:"v"`
	Time    time.Time `json:"time"`

	ServerAdd          *ServerAdd          `json:"server_add,omitempty"`
	ServerRename       *ServerRename       `json:"server_rename,omitempty"`
	ServerBind         *ServerBind         `json:"server_bind,omitempty"`
	ServerDecommission *ServerDecommission `json:"server_decommission,omitempty"`
	ServerNodeRemoved  *ServerNodeRemoved  `json:"server_node_removed,omitempty"`
	DomainAdd          *DomainAdd          `json:"domain_add,omitempty"`
	DomainAssign       *DomainAssign       `json:"domain_assign,omitempty"`
	DomainRemove       *DomainRemove       `json:"domain_remove,omitempty"`
	PlanSet            *PlanSet            `json:"plan_set,omitempty"`
	EventAdd           *EventAdd           `json:"event_add,omitempty"`
	ServerHealth       *ServerHealth       `json:"server_health,omitempty"`
	DomainImport       *DomainImport       `json:"domain_import,omitempty"`
	DomainSet          *DomainSet          `json:"domain_set,omitempty"`
	DomainFailover     *DomainFailover     `json:"domain_failover,omitempty"`
	DomainDNSSynced    *DomainDNSSynced    `json:"domain_dns_synced,omitempty"`
	ServerLiveness     *ServerLiveness     `json:"server_liveness,omitempty"`
	NotifyAck          *NotifyAck          `json:"notify_ack,omitempty"`
}

// DomainSet changes an existing domain's settings; nil or empty fields keep
// their values.
type DomainSet struct {
	Name    string   `json:"name"`
	Origins []string `json:"origins,omitempty"`
	Mode    string   `json:"mode,omitempty"`
	DNS     *DNS     `json:"dns,omitempty"`
}

// DomainFailover records a failover or recovery decision of the leader. It
// applies only if the domain's active server is still From, so a decision
// taken on an outdated view (a deposed leader's) changes nothing.
type DomainFailover struct {
	Name   string `json:"name"`
	From   string `json:"from"`   // expected current active server ID
	To     string `json:"to"`     // new active server ID
	Status string `json:"status"` // FailoverActive when To is the primary, else FailoverFailedOver
	Event  Event  `json:"event"`  // failover_triggered or failover_recovered
}

// DomainDNSSynced records the record the leader confirmed at the domain's
// DNS provider.
type DomainDNSSynced struct {
	Name   string    `json:"name"`
	Record DNSRecord `json:"record"`
}

// ServerLiveness records the failover controller's verdict on a shield:
// down (with a reason) or recovered. Proposing the state it already has is
// refused, so two leaders never record the same change twice.
type ServerLiveness struct {
	ID     string `json:"id"`
	Down   bool   `json:"down"`
	Reason string `json:"reason,omitempty"`
}

// NotifyAck advances a notification target's cursor to EventID.
type NotifyAck struct {
	Target  string `json:"target"`
	EventID uint64 `json:"event_id"`
}

// ServerAdd creates a server. ID and token hash are made by the leader.
type ServerAdd struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	TokenHash   string `json:"token_hash"`
	TokenPrefix string `json:"token_prefix"`
}

// ServerRename renames a server.
type ServerRename struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ServerBind binds a server record to the node that presented its token.
// Rebind must be set by the proposer to take the record over from another
// node (which it may only do when that node is not alive).
type ServerBind struct {
	ID       string `json:"id"`
	NodeName string `json:"node_name"`
	Addr     string `json:"addr"`
	RaftAddr string `json:"raft_addr"`
	Rebind   bool   `json:"rebind,omitempty"`
	// Sites detected in the shield's original HAProxy configuration; nil
	// keeps those already stored.
	Sites []Site `json:"sites,omitempty"`
}

// ServerHealth records a shield error (ErrorType and Error set) or its
// clearing (both empty). The leader proposes it on a change of the health a
// shield gossips.
type ServerHealth struct {
	ID        string `json:"id"`
	ErrorType string `json:"error_type,omitempty"`
	Error     string `json:"error,omitempty"`
}

// DomainImport adds detected sites as domains assigned to one server, all
// or none.
type DomainImport struct {
	ServerID string      `json:"server_id"`
	Domains  []DomainAdd `json:"domains"`
}

// ServerDecommission soft-deletes a server.
type ServerDecommission struct {
	ID string `json:"id"`
}

// ServerNodeRemoved records that a decommissioned server's node was removed
// from the cluster after the grace period.
type ServerNodeRemoved struct {
	ID string `json:"id"`
}

// DomainAdd creates a domain.
type DomainAdd struct {
	Name    string   `json:"name"`
	Origins []string `json:"origins"`
	Mode    string   `json:"mode"`
	DNS     DNS      `json:"dns"`
	Servers []string `json:"servers,omitempty"`
}

// DomainAssign replaces a domain's ordered server list.
type DomainAssign struct {
	Name    string   `json:"name"`
	Servers []string `json:"servers"`
}

// DomainRemove deletes a domain.
type DomainRemove struct {
	Name string `json:"name"`
}

// PlanSet changes the plan.
type PlanSet struct {
	Plan Plan `json:"plan"`
}

// EventAdd appends an event (server_down, server_error, ...) decided by the
// leader.
type EventAdd struct {
	Event Event `json:"event"`
}

// NewCommand builds a command of the current version; payload must be one
// of the payload types above (pointer or value).
func NewCommand(now time.Time, payload any) (*Command, error) {
	c := &Command{Version: CommandVersion, Time: now.UTC()}
	switch p := payloadPointer(payload).(type) {
	case *ServerAdd:
		c.Type, c.ServerAdd = CmdServerAdd, p
	case *ServerRename:
		c.Type, c.ServerRename = CmdServerRename, p
	case *ServerBind:
		c.Type, c.ServerBind = CmdServerBind, p
	case *ServerDecommission:
		c.Type, c.ServerDecommission = CmdServerDecommission, p
	case *ServerNodeRemoved:
		c.Type, c.ServerNodeRemoved = CmdServerNodeRemoved, p
	case *DomainAdd:
		c.Type, c.DomainAdd = CmdDomainAdd, p
	case *DomainAssign:
		c.Type, c.DomainAssign = CmdDomainAssign, p
	case *DomainRemove:
		c.Type, c.DomainRemove = CmdDomainRemove, p
	case *PlanSet:
		c.Type, c.PlanSet = CmdPlanSet, p
	case *EventAdd:
		c.Type, c.EventAdd = CmdEventAdd, p
	case *ServerHealth:
		c.Type, c.ServerHealth = CmdServerHealth, p
	case *DomainImport:
		c.Type, c.DomainImport = CmdDomainImport, p
	case *DomainSet:
		c.Type, c.DomainSet = CmdDomainSet, p
	case *DomainFailover:
		c.Type, c.DomainFailover = CmdDomainFailover, p
	case *DomainDNSSynced:
		c.Type, c.DomainDNSSynced = CmdDomainDNSSynced, p
	case *ServerLiveness:
		c.Type, c.ServerLiveness = CmdServerLiveness, p
	case *NotifyAck:
		c.Type, c.NotifyAck = CmdNotifyAck, p
	default:
		return nil, fmt.Errorf("new command: unknown payload %T", payload)
	}
	return c, nil
}

// payloadPointer turns a payload passed by value into a pointer to a copy,
// so NewCommand accepts both forms; anything else is returned as is.
func payloadPointer(payload any) any {
	switch p := payload.(type) {
	case ServerAdd:
		return &p
	case ServerRename:
		return &p
	case ServerBind:
		return &p
	case ServerDecommission:
		return &p
	case ServerNodeRemoved:
		return &p
	case DomainAdd:
		return &p
	case DomainAssign:
		return &p
	case DomainRemove:
		return &p
	case PlanSet:
		return &p
	case EventAdd:
		return &p
	case ServerHealth:
		return &p
	case DomainImport:
		return &p
	case DomainSet:
		return &p
	case DomainFailover:
		return &p
	case DomainDNSSynced:
		return &p
	case ServerLiveness:
		return &p
	case NotifyAck:
		return &p
	}
	return payload
}

// MustCommand is NewCommand that panics on an unknown payload type; for
// payloads known at compile time.
func MustCommand(now time.Time, payload any) *Command {
	c, err := NewCommand(now, payload)
	if err != nil {
		panic(err)
	}
	return c
}

// Encode serializes a command for the log.
func (c *Command) Encode() ([]byte, error) { return json.Marshal(c) }

// DecodeCommand parses a log entry.
func DecodeCommand(b []byte) (*Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	return &c, nil
}
