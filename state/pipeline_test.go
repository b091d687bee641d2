package state

import "testing"

func TestServerBindSites(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "edge")
	sites := []Site{{Domain: "Shop.Example.com.", Mode: "", Origins: []string{"10.0.0.5:80"}, Backend: "be_shop", Frontend: "fe"}}
	sv := x.ok(&ServerBind{ID: "s1", NodeName: "n1", Addr: "10.0.0.9", RaftAddr: "10.0.0.9:7947", Sites: sites}).(*Server)
	if len(sv.Sites) != 1 || sv.Sites[0].Domain != "shop.example.com" || sv.Sites[0].Mode != ModeHTTP {
		t.Fatalf("sites stored as %+v", sv.Sites)
	}
	// A rejoin without sites keeps them.
	sv = x.ok(&ServerBind{ID: "s1", NodeName: "n1", Addr: "10.0.0.9", RaftAddr: "10.0.0.9:7947"}).(*Server)
	if len(sv.Sites) != 1 {
		t.Fatalf("sites lost on rejoin: %+v", sv.Sites)
	}
	// The result is a copy: changing it does not touch the state.
	sv.Sites[0].Origins[0] = "changed"
	if x.s.Servers["s1"].Sites[0].Origins[0] != "10.0.0.5:80" {
		t.Fatal("bind result shares memory with the state")
	}
	x.fail(&ServerBind{ID: "s1", NodeName: "n1", Addr: "10.0.0.9", RaftAddr: "10.0.0.9:7947", Sites: []Site{{Domain: "bad_name", Origins: []string{"10.0.0.1:80"}}}}, CodeInvalid, "sites", "bad_name")
	x.fail(&ServerBind{ID: "s1", NodeName: "n1", Addr: "10.0.0.9", RaftAddr: "10.0.0.9:7947", Sites: []Site{{Domain: "ok.example.com", Mode: "udp"}}}, CodeInvalid, "sites", "udp")
}

func TestServerHealth(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "edge")
	x.ok(&ServerHealth{ID: "s1", ErrorType: "haproxy_reload_failed", Error: "bind: address in use"})
	x.wantLastEvent(EventServerError, "", "s1", "address in use")
	if e := x.lastEvent(); e.Reason != "haproxy_reload_failed" {
		t.Fatalf("reason %q", e.Reason)
	}
	events := len(x.s.Events)
	// The same error again is not a new event.
	x.ok(&ServerHealth{ID: "s1", ErrorType: "haproxy_reload_failed", Error: "bind: address in use"})
	if len(x.s.Events) != events {
		t.Fatal("a repeated error added an event")
	}
	x.ok(&ServerHealth{ID: "s1"})
	x.wantLastEvent(EventServerErrorCleared, "", "s1", "cleared")
	if sv := x.s.Servers["s1"]; sv.Error != "" || sv.ErrorType != "" {
		t.Fatalf("error not cleared: %+v", sv)
	}
	// Clearing an absent error is a no-op.
	events = len(x.s.Events)
	x.ok(&ServerHealth{ID: "s1"})
	if len(x.s.Events) != events {
		t.Fatal("clearing nothing added an event")
	}
	x.fail(&ServerHealth{ID: "nope", ErrorType: "x", Error: "y"}, CodeNotFound, "server")
	x.fail(&ServerHealth{ID: "s1", ErrorType: "x"}, CodeInvalid, "error")
}

func TestDomainImport(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "edge")
	x.addDomain("taken.example.com")
	res := x.ok(&DomainImport{ServerID: "s1", Domains: []DomainAdd{
		{Name: "a.example.com", Origins: []string{"10.0.0.1:80"}},
		{Name: "b.example.com", Origins: []string{"10.0.0.2:443"}, Mode: ModeTCP},
	}}).([]*Domain)
	if len(res) != 2 || res[0].Primary() != "s1" || res[1].Mode != ModeTCP {
		t.Fatalf("imported %+v", res)
	}
	x.wantLastEvent(EventDomainImported, "", "s1", "a.example.com, b.example.com")
	// All or none: one bad site (a duplicate) and nothing is added.
	x.fail(&DomainImport{ServerID: "s1", Domains: []DomainAdd{
		{Name: "c.example.com", Origins: []string{"10.0.0.3:80"}},
		{Name: "taken.example.com", Origins: []string{"10.0.0.4:80"}},
	}}, CodeConflict, "domain", "taken.example.com")
	x.fail(&DomainImport{ServerID: "s1", Domains: []DomainAdd{
		{Name: "d.example.com", Origins: []string{"0.0.0.0:80"}},
	}}, CodeInvalid, "origin")
	x.fail(&DomainImport{ServerID: "s1"}, CodeInvalid, "sites")
	x.fail(&DomainImport{ServerID: "nope", Domains: []DomainAdd{{Name: "e.example.com", Origins: []string{"10.0.0.1:80"}}}}, CodeNotFound, "server")
	x.ok(&ServerDecommission{ID: "s1"})
	x.fail(&DomainImport{ServerID: "s1", Domains: []DomainAdd{{Name: "e.example.com", Origins: []string{"10.0.0.1:80"}}}}, CodeDecommissioned, "server")
}
