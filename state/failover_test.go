package state

import (
	"testing"
)

func failoverFixture(t *testing.T) *tester {
	x := newTester(t)
	for _, id := range []string{"s1", "s2", "s3"} {
		x.addServer(id, "name-"+id)
		x.ok(&ServerBind{ID: id, NodeName: "node-" + id, Addr: "10.0.0." + id[1:], RaftAddr: "10.0.0." + id[1:] + ":7947"})
	}
	x.addDomain("shop.example", "s1", "s2", "s3")
	return x
}

func TestDomainFailoverAndRecovery(t *testing.T) {
	x := failoverFixture(t)
	d := x.s.Domains["shop.example"]
	version := d.Version
	rec, ok := x.s.DesiredRecord(d)
	if !ok || rec.IP != "10.0.0.1" || rec.TTL != DefaultTTL || rec.Provider != DNSBuiltin {
		t.Fatalf("desired record before failover = %+v %v", rec, ok)
	}

	// Bad decisions change nothing.
	x.fail(&DomainFailover{Name: "shop.example", From: "s2", To: "s3", Status: FailoverFailedOver, Event: Event{Type: EventFailoverTriggered}}, CodeConflict, "from", "outdated")
	x.fail(&DomainFailover{Name: "shop.example", From: "s1", To: "s1", Status: FailoverActive, Event: Event{Type: EventFailoverTriggered}}, CodeConflict, "to")
	x.fail(&DomainFailover{Name: "shop.example", From: "s1", To: "s9", Status: FailoverFailedOver, Event: Event{Type: EventFailoverTriggered}}, CodeNotFound, "to")
	x.fail(&DomainFailover{Name: "shop.example", From: "s1", To: "s2", Status: FailoverActive, Event: Event{Type: EventFailoverTriggered}}, CodeInvalid, "status")
	x.fail(&DomainFailover{Name: "shop.example", From: "s1", To: "s2", Status: FailoverFailedOver, Event: Event{Type: EventServerDown}}, CodeInvalid, "event")
	x.fail(&DomainFailover{Name: "nope.example", From: "s1", To: "s2", Status: FailoverFailedOver, Event: Event{Type: EventFailoverTriggered}}, CodeNotFound, "domain")

	x.ok(&DomainFailover{Name: "shop.example", From: "s1", To: "s2", Status: FailoverFailedOver,
		Event: Event{Type: EventFailoverTriggered, FromIP: "10.0.0.1", ToIP: "10.0.0.2", Reason: "primary server down"}})
	x.wantLastEvent(EventFailoverTriggered, "shop.example", "")
	d = x.s.Domains["shop.example"]
	if d.ActiveServer != "s2" || d.FailoverStatus != FailoverFailedOver || d.Version != version || !d.FailoverAt.Equal(at(int(x.idx))) {
		t.Fatalf("after failover: %+v", d)
	}
	rec, _ = x.s.DesiredRecord(d)
	if rec.IP != "10.0.0.2" || rec.TTL != DefaultFailoverTTL {
		t.Fatalf("desired record while failed over = %+v", rec)
	}
	// The active secondary dies: on to the next one, still failed over.
	x.ok(&DomainFailover{Name: "shop.example", From: "s2", To: "s3", Status: FailoverFailedOver, Event: Event{Type: EventFailoverTriggered}})
	x.ok(&DomainFailover{Name: "shop.example", From: "s3", To: "s1", Status: FailoverActive, Event: Event{Type: EventFailoverRecovered}})
	x.wantLastEvent(EventFailoverRecovered, "shop.example", "")
	if d := x.s.Domains["shop.example"]; d.FailoverStatus != FailoverActive || d.ActiveServer != "s1" {
		t.Fatalf("after recovery: %+v", d)
	}
}

func TestDomainDNSSynced(t *testing.T) {
	x := failoverFixture(t)
	x.fail(&DomainDNSSynced{Name: "shop.example", Record: DNSRecord{Provider: DNSBuiltin}}, CodeInvalid, "record")
	x.ok(&DomainDNSSynced{Name: "shop.example", Record: DNSRecord{Provider: DNSCloudflare, IP: "10.0.0.1", TTL: 300}})
	d := x.s.Domains["shop.example"]
	want := &DNSRecord{Provider: DNSCloudflare, IP: "10.0.0.1", TTL: 300}
	if !d.DNSSynced.Same(want) || !d.DNSSynced.At.Equal(at(int(x.idx))) {
		t.Fatalf("synced = %+v", d.DNSSynced)
	}
	c := x.s.Clone()
	c.Domains["shop.example"].DNSSynced.IP = "changed"
	if d.DNSSynced.IP != "10.0.0.1" {
		t.Fatal("Clone shares the synced record")
	}
}

func TestServerLiveness(t *testing.T) {
	x := failoverFixture(t)
	x.fail(&ServerLiveness{ID: "s1", Down: false}, CodeConflict, "down", "already up")
	x.ok(&ServerLiveness{ID: "s1", Down: true, Reason: "gossip: dead"})
	x.wantLastEvent(EventServerDown, "", "s1", "down", "gossip: dead")
	if sv := x.s.Servers["s1"]; !sv.Down || sv.DownReason != "gossip: dead" || !sv.DownSince.Equal(at(int(x.idx))) {
		t.Fatalf("server after down: %+v", sv)
	}
	x.fail(&ServerLiveness{ID: "s1", Down: true, Reason: "again"}, CodeConflict, "down", "already down")
	x.fail(&ServerLiveness{ID: "s9", Down: true}, CodeNotFound, "server")
	x.ok(&ServerLiveness{ID: "s1", Down: false})
	x.wantLastEvent(EventServerRecovered, "", "s1", "recovered")
	if sv := x.s.Servers["s1"]; sv.Down || sv.DownReason != "" || !sv.DownSince.IsZero() {
		t.Fatalf("server after recovery: %+v", sv)
	}
}

func TestNotifyAck(t *testing.T) {
	x := failoverFixture(t)
	last := x.s.LastEventID()
	x.fail(&NotifyAck{Target: "", EventID: 1}, CodeInvalid, "target")
	x.fail(&NotifyAck{Target: "webhook:a", EventID: last + 1}, CodeInvalid, "event_id")
	x.ok(&NotifyAck{Target: "webhook:a", EventID: last})
	x.fail(&NotifyAck{Target: "webhook:a", EventID: last - 1}, CodeConflict, "event_id")
	x.ok(&NotifyAck{Target: "webhook:a", EventID: last})
	if x.s.NotifyCursors["webhook:a"] != last {
		t.Fatalf("cursor = %d, want %d", x.s.NotifyCursors["webhook:a"], last)
	}
	c := x.s.Clone()
	c.NotifyCursors["webhook:a"] = 0
	if x.s.NotifyCursors["webhook:a"] != last {
		t.Fatal("Clone shares the cursors")
	}
}

func TestDomainSet(t *testing.T) {
	x := failoverFixture(t)
	d := x.s.Domains["shop.example"]
	version, sv := d.Version, x.s.Servers["s1"].Version
	x.fail(&DomainSet{Name: "shop.example", DNS: &DNS{Provider: "route53"}}, CodeInvalid, "dns")
	x.fail(&DomainSet{Name: "shop.example", DNS: &DNS{TTL: 100000}}, CodeInvalid, "ttl")
	x.fail(&DomainSet{Name: "shop.example", Origins: []string{"0.0.0.0:80"}}, CodeInvalid, "origin")
	x.fail(&DomainSet{Name: "shop.example", Mode: "udp"}, CodeInvalid, "mode")

	// DNS settings do not change what shields serve.
	x.ok(&DomainSet{Name: "shop.example", DNS: &DNS{Provider: DNSCloudflare, TTL: 600, FailoverTTL: 60}})
	x.wantLastEvent(EventDomainUpdated, "shop.example", "", "cloudflare", "600")
	d = x.s.Domains["shop.example"]
	if d.DNS != (DNS{Provider: DNSCloudflare, TTL: 600, FailoverTTL: 60}) || d.Version != version || x.s.Servers["s1"].Version != sv {
		t.Fatalf("after dns set: %+v (server version %d)", d, x.s.Servers["s1"].Version)
	}
	// Origins do.
	x.ok(&DomainSet{Name: "shop.example", Origins: []string{"10.0.0.9:8080"}})
	d = x.s.Domains["shop.example"]
	if d.Version != x.idx || x.s.Servers["s1"].Version != x.idx || d.Origins[0] != "10.0.0.9:8080" || d.DNS.Provider != DNSCloudflare {
		t.Fatalf("after origins set: %+v", d)
	}
	// Nothing to change: no event.
	events := len(x.s.Events)
	x.ok(&DomainSet{Name: "shop.example", Mode: ModeHTTP})
	if len(x.s.Events) != events {
		t.Fatal("a no-op set added an event")
	}
}
