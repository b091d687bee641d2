package state

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Commands of the failover controller, DNS reconciler and notification
// dispatcher, and of `lumos domain set`.

func (s *State) domainSet(idx uint64, now time.Time, p *DomainSet) (any, error) {
	if p == nil {
		return nil, missing(CmdDomainSet)
	}
	d, err := s.domain(p.Name)
	if err != nil {
		return nil, err
	}
	origins, mode, dns := d.Origins, d.Mode, d.DNS
	if p.Origins != nil {
		if origins, err = NormalizeOrigins(p.Origins); err != nil {
			return nil, err
		}
	}
	if p.Mode != "" {
		if mode, err = ValidateMode(p.Mode); err != nil {
			return nil, err
		}
	}
	if p.DNS != nil {
		if dns, err = ValidateDNS(*p.DNS); err != nil {
			return nil, err
		}
	}
	var changed []string
	served := !slices.Equal(origins, d.Origins) || mode != d.Mode
	if !slices.Equal(origins, d.Origins) {
		changed = append(changed, "origins "+strings.Join(origins, ","))
	}
	if mode != d.Mode {
		changed = append(changed, "mode "+mode)
	}
	if dns != d.DNS {
		changed = append(changed, fmt.Sprintf("dns %s (ttl %d, failover ttl %d)", dns.Provider, dns.TTL, dns.FailoverTTL))
	}
	if len(changed) == 0 {
		return d.Clone(), nil
	}
	d.Origins, d.Mode, d.DNS = origins, mode, dns
	d.UpdatedAt = now
	if served {
		d.Version = idx
		s.touch(idx, d.Servers...)
	}
	s.addEvent(Event{Time: now, Type: EventDomainUpdated, Domain: d.Name, Message: fmt.Sprintf("domain %s: %s", d.Name, strings.Join(changed, "; "))})
	return d.Clone(), nil
}

func (s *State) domainFailover(now time.Time, p *DomainFailover) (any, error) {
	if p == nil {
		return nil, missing(CmdDomainFailover)
	}
	d, err := s.domain(p.Name)
	if err != nil {
		return nil, err
	}
	if d.ActiveServer != p.From {
		return nil, newErr(CodeConflict, "from", "domain %s: active server is %q, not %q: the decision is outdated", d.Name, d.ActiveServer, p.From)
	}
	if p.To == p.From {
		return nil, newErr(CodeConflict, "to", "domain %s: %q is already the active server", d.Name, p.To)
	}
	if !contains(d.Servers, p.To) {
		return nil, newErr(CodeNotFound, "to", "domain %s: server %q is not assigned to it", d.Name, p.To)
	}
	if sv := s.Servers[p.To]; sv.Decommissioned {
		return nil, newErr(CodeDecommissioned, "to", "server %q is decommissioned", sv.Name)
	}
	want := FailoverFailedOver
	if p.To == d.Primary() {
		want = FailoverActive
	}
	if p.Status != want {
		return nil, invalid("status", "domain %s: status must be %q when %q becomes active", d.Name, want, p.To)
	}
	switch p.Event.Type {
	case EventFailoverTriggered, EventFailoverRecovered:
	default:
		return nil, invalid("event", "a failover decision records a %s or %s event, not %q", EventFailoverTriggered, EventFailoverRecovered, p.Event.Type)
	}
	d.ActiveServer, d.FailoverStatus = p.To, p.Status
	d.FailoverAt, d.UpdatedAt = now, now
	e := p.Event
	e.Domain = d.Name
	if e.Time.IsZero() {
		e.Time = now
	}
	s.addEvent(e)
	return d.Clone(), nil
}

func (s *State) domainDNSSynced(now time.Time, p *DomainDNSSynced) (any, error) {
	if p == nil {
		return nil, missing(CmdDomainDNSSynced)
	}
	d, err := s.domain(p.Name)
	if err != nil {
		return nil, err
	}
	r := p.Record
	if r.Provider == "" || r.IP == "" {
		return nil, invalid("record", "a synced record needs a provider and an IP")
	}
	if r.At.IsZero() {
		r.At = now
	}
	d.DNSSynced = &r
	return d.Clone(), nil
}

func (s *State) serverLiveness(now time.Time, p *ServerLiveness) (any, error) {
	if p == nil {
		return nil, missing(CmdServerLiveness)
	}
	sv, err := s.server(p.ID)
	if err != nil {
		return nil, err
	}
	if sv.Down == p.Down {
		return nil, newErr(CodeConflict, "down", "server %q is already %s", sv.Name, map[bool]string{true: "down", false: "up"}[p.Down])
	}
	sv.Down = p.Down
	if p.Down {
		sv.DownReason, sv.DownSince = p.Reason, now
		s.addEvent(Event{Time: now, Type: EventServerDown, ServerID: sv.ID, FromIP: sv.Addr, Reason: p.Reason, Message: fmt.Sprintf("server %q is down: %s", sv.Name, p.Reason)})
	} else {
		took := now.Sub(sv.DownSince).Round(time.Second)
		sv.DownReason, sv.DownSince = "", time.Time{}
		s.addEvent(Event{Time: now, Type: EventServerRecovered, ServerID: sv.ID, ToIP: sv.Addr, Reason: p.Reason, Message: fmt.Sprintf("server %q recovered after %s", sv.Name, took)})
	}
	return sv.Clone(), nil
}

func (s *State) notifyAck(p *NotifyAck) (any, error) {
	if p == nil {
		return nil, missing(CmdNotifyAck)
	}
	if p.Target == "" {
		return nil, invalid("target", "notification target is empty")
	}
	if p.EventID >= s.NextEventID {
		return nil, invalid("event_id", "event %d does not exist yet", p.EventID)
	}
	if cur, ok := s.NotifyCursors[p.Target]; ok && p.EventID < cur {
		return nil, newErr(CodeConflict, "event_id", "target %s is already past event %d", p.Target, p.EventID)
	}
	if s.NotifyCursors == nil {
		s.NotifyCursors = map[string]uint64{}
	}
	s.NotifyCursors[p.Target] = p.EventID
	return nil, nil
}
