package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNewHandlerConfig(t *testing.T) {
	b := newFakeBackend("n1")
	if _, err := NewHandler(b, ServerConfig{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("empty admin token hash: got %v, want ErrConfig", err)
	}
	if _, err := NewHandler(b, ServerConfig{AdminTokenHash: "abc"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("short admin token hash: got %v, want ErrConfig", err)
	}
	if _, err := NewHandler(nil, ServerConfig{AdminTokenHash: state.HashToken("x")}); !errors.Is(err, ErrConfig) {
		t.Fatalf("nil backend: got %v, want ErrConfig", err)
	}
	cfg := ServerConfig{AdminTokenHash: strings.ToUpper(state.HashToken("x"))}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxBodyBytes != DefaultMaxBodyBytes || cfg.ForwardTimeout != DefaultForwardTimeout || cfg.AdminTokenHash != state.HashToken("x") {
		t.Fatalf("defaults not filled: %+v", cfg)
	}
}

// TestRoutes walks every route through the Client on a leader.
func TestRoutes(t *testing.T) {
	b := newFakeBackend("ctl-1")
	e := newEnv(t, b)
	c := e.client
	ctx := context.Background()

	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}

	// Servers.
	add1 := got(c.AddServer(ctx, "  web-1 ")).ok(t)
	if add1.Server.Name != "web-1" || !strings.HasPrefix(add1.Server.ID, "srv-") || add1.Server.Status != StatusOffline {
		t.Fatalf("add server: %+v", add1.Server)
	}
	if !strings.HasPrefix(add1.Token, "lmt_") || !strings.HasPrefix(add1.Token, add1.Server.TokenPrefix) || len(add1.Server.TokenPrefix) != state.TokenPrefixLen {
		t.Fatalf("token %q, prefix %q", add1.Token, add1.Server.TokenPrefix)
	}
	if !add1.Server.CreatedAt.Equal(testStart) {
		t.Fatalf("created at %v, want the backend clock %v", add1.Server.CreatedAt, testStart)
	}
	// Only the hash is stored.
	if snap := b.snapshot(t); strings.Contains(snap, add1.Token) || !strings.Contains(snap, state.HashToken(add1.Token)) {
		t.Fatal("state must hold the token hash and never the token")
	}
	add2 := got(c.AddServer(ctx, "web-2")).ok(t)
	list := got(c.Servers(ctx)).ok(t)
	if len(list) != 2 || list[0].ID != add1.Server.ID && list[1].ID != add1.Server.ID {
		t.Fatalf("servers: %+v", list)
	}
	byName := got(c.Server(ctx, "WEB-1")).ok(t)
	byID := got(c.Server(ctx, add1.Server.ID)).ok(t)
	if byName.ID != add1.Server.ID || byID.Name != "web-1" {
		t.Fatalf("show: %+v %+v", byName, byID)
	}
	renamed := got(c.RenameServer(ctx, "web-2", "edge/2 paris")).ok(t)
	if renamed.ID != add2.Server.ID || renamed.Name != "edge/2 paris" {
		t.Fatalf("rename: %+v", renamed)
	}
	// A name with a slash and a space survives path escaping.
	if sv := got(c.Server(ctx, "edge/2 paris")).ok(t); sv.ID != add2.Server.ID {
		t.Fatalf("show escaped name: %+v", sv)
	}

	// Domains.
	d := got(c.AddDomain(ctx, &AddDomainRequest{
		Name: "Example.COM.", Origins: []string{"10.0.0.5:8080", "[2001:db8::1]:443"},
		Servers: []string{"web-1", add2.Server.ID},
	})).ok(t)
	if d.Name != "example.com" || d.Mode != state.ModeHTTP || d.DNS.Provider != state.DNSBuiltin || d.FailoverStatus != state.FailoverActive {
		t.Fatalf("add domain: %+v", d)
	}
	if len(d.Servers) != 2 || d.Servers[0].ID != add1.Server.ID || !d.Servers[0].Primary || !d.Servers[0].Active ||
		d.Servers[1].Primary || d.Servers[1].Active || d.Servers[1].Name != "edge/2 paris" || d.ActiveServer != add1.Server.ID {
		t.Fatalf("domain servers: %+v", d.Servers)
	}
	got(c.AddDomain(ctx, &AddDomainRequest{Name: "shop.example.org", Origins: []string{"192.168.1.10:443"}, Mode: "tcp"})).ok(t)
	dom := got(c.Domain(ctx, "EXAMPLE.com")).ok(t)
	if dom.Name != "example.com" || !slices.Equal(dom.Origins, []string{"10.0.0.5:8080", "[2001:db8::1]:443"}) {
		t.Fatalf("show domain: %+v", dom)
	}
	domains := got(c.Domains(ctx)).ok(t)
	if len(domains) != 2 || domains[0].Name != "example.com" || domains[1].Name != "shop.example.org" || domains[1].Mode != "tcp" {
		t.Fatalf("domains: %+v", domains)
	}
	assigned := got(c.AssignDomain(ctx, "shop.example.org", []string{"edge/2 paris", "web-1"})).ok(t)
	if assigned.Servers[0].ID != add2.Server.ID || assigned.ActiveServer != add2.Server.ID || len(assigned.Servers) != 2 {
		t.Fatalf("assign: %+v", assigned)
	}
	sv1 := got(c.Server(ctx, "web-1")).ok(t)
	if !slices.Equal(sv1.Domains, []string{"example.com", "shop.example.org"}) {
		t.Fatalf("server domains: %v", sv1.Domains)
	}

	// Events: newest first, filtered, limited.
	evs := got(c.Events(ctx, "", 0)).ok(t)
	if len(evs) != 6 || evs[0].Type != state.EventDomainAssigned || evs[len(evs)-1].Type != state.EventServerAdded {
		t.Fatalf("events: %+v", evs)
	}
	evs = got(c.Events(ctx, "EXAMPLE.COM", 0)).ok(t)
	if len(evs) != 1 || evs[0].Domain != "example.com" {
		t.Fatalf("domain events: %+v", evs)
	}
	if evs = got(c.Events(ctx, "", 2)).ok(t); len(evs) != 2 {
		t.Fatalf("limited events: %d", len(evs))
	}
	if evs = got(c.Events(ctx, "", 999999)).ok(t); len(evs) != 6 {
		t.Fatalf("big limit is clamped, not refused: %d", len(evs))
	}
	if evs = got(c.Events(ctx, "none.example", 0)).ok(t); evs == nil || len(evs) != 0 {
		t.Fatalf("no events must be an empty list: %#v", evs)
	}

	// Plan.
	pl := got(c.Plan(ctx)).ok(t)
	if *pl != (PlanInfo{Name: "enterprise", Limit: 20, Used: 2}) {
		t.Fatalf("plan: %+v", pl)
	}
	pl = got(c.SetPlan(ctx, "pro")).ok(t)
	if *pl != (PlanInfo{Name: "pro", Limit: 5, Used: 2}) {
		t.Fatalf("set plan: %+v", pl)
	}
	pl = got(c.SetPlan(ctx, "7")).ok(t)
	if *pl != (PlanInfo{Name: "custom", Limit: 7, Used: 2}) {
		t.Fatalf("set custom plan: %+v", pl)
	}

	// Status.
	st := got(c.Status(ctx)).ok(t)
	if st.Node != "ctl-1" || st.RaftState != "Leader" || st.Domains != 2 || st.FailedOver != 0 ||
		st.Servers[StatusOffline] != 2 || st.Servers[StatusOnline] != 0 || st.Plan.Used != 2 || len(st.Nodes) != 1 {
		t.Fatalf("status: %+v", st)
	}

	// Decommission: unassigned everywhere, orphaned where it was alone.
	got(c.AssignDomain(ctx, "shop.example.org", []string{"web-1"})).ok(t)
	dec := got(c.DecommissionServer(ctx, "web-1")).ok(t)
	if dec.Server.Status != StatusDecommissioned || !dec.Server.Decommissioned || dec.Server.DecommissionedAt == nil ||
		!slices.Equal(dec.Unassigned, []string{"example.com", "shop.example.org"}) || !slices.Equal(dec.Orphaned, []string{"shop.example.org"}) {
		t.Fatalf("decommission: %+v", dec)
	}
	dom = got(c.Domain(ctx, "example.com")).ok(t)
	if len(dom.Servers) != 1 || dom.Servers[0].ID != add2.Server.ID || !dom.Servers[0].Primary {
		t.Fatalf("domain after decommission: %+v", dom.Servers)
	}
	if pl = got(c.Plan(ctx)).ok(t); pl.Used != 1 {
		t.Fatalf("plan usage after decommission: %+v", pl)
	}

	// Remove returns the removed domain.
	rm := got(c.RemoveDomain(ctx, "Example.com")).ok(t)
	if rm.Name != "example.com" || len(rm.Servers) != 1 || rm.Servers[0].Name != "edge/2 paris" {
		t.Fatalf("remove: %+v", rm)
	}
	if _, err := c.Domain(ctx, "example.com"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("removed domain: %v", err)
	}
	st = got(c.Status(ctx)).ok(t)
	if st.Domains != 1 || st.Servers[StatusDecommissioned] != 1 || st.Servers[StatusOffline] != 1 {
		t.Fatalf("status after: %+v", st)
	}
}

// TestAuth: every route but health and join needs the admin token.
func TestAuth(t *testing.T) {
	b := newFakeBackend("ctl-1")
	id, _ := b.addServer(t, "web-1")
	b.mustApply(t, &state.DomainAdd{Name: "example.com", Origins: []string{"10.0.0.1:80"}, Servers: []string{id}})
	e := newEnv(t, b)
	routes := []struct{ method, path, body string }{
		{"GET", "/v1/status", ""},
		{"GET", "/v1/servers", ""},
		{"POST", "/v1/servers", `{"name":"x"}`},
		{"GET", "/v1/servers/web-1", ""},
		{"PATCH", "/v1/servers/web-1", `{"name":"y"}`},
		{"POST", "/v1/servers/web-1/decommission", ""},
		{"GET", "/v1/domains", ""},
		{"POST", "/v1/domains", `{"name":"a.example","origins":["10.0.0.1:80"]}`},
		{"GET", "/v1/domains/example.com", ""},
		{"PUT", "/v1/domains/example.com/servers", `{"servers":["web-1"]}`},
		{"DELETE", "/v1/domains/example.com", ""},
		{"GET", "/v1/events", ""},
		{"GET", "/v1/plan", ""},
		{"PUT", "/v1/plan", `{"plan":"pro"}`},
		{"GET", "/v1/nonexistent", ""},
		{"DELETE", "/v1/servers", ""},
	}
	before := b.snapshot(t)
	for _, rt := range routes {
		for _, tc := range []struct {
			name string
			hdr  []string
		}{
			{"missing", nil},
			{"wrong", []string{"Authorization", "Bearer not-the-token"}},
			{"basic", []string{"Authorization", "Basic " + testAdminToken}},
			{"empty bearer", []string{"Authorization", "Bearer "}},
		} {
			resp, body := e.raw(t, rt.method, rt.path, rt.body, "", tc.hdr...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s (%s token): status %d, want 401: %s", rt.method, rt.path, tc.name, resp.StatusCode, body)
				continue
			}
			ed := errorOf(t, body)
			if ed.Code != state.CodeUnauthorized || !strings.Contains(ed.Message, "LUMOS_ADMIN_TOKEN") {
				t.Errorf("%s %s (%s token): %+v", rt.method, rt.path, tc.name, ed)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: no WWW-Authenticate header", rt.method, rt.path)
			}
		}
	}
	if after := b.snapshot(t); after != before {
		t.Fatal("state changed by unauthorized requests")
	}

	// Health is open.
	resp, body := e.raw(t, "GET", "/v1/health", "", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"node":"ctl-1"`) || !strings.Contains(string(body), `"status":"ok"`) {
		t.Fatalf("health: %d %s", resp.StatusCode, body)
	}
	// A read with the token works; the client reports 401 as *Error.
	resp, _ = e.raw(t, "GET", "/v1/servers", "", testAdminToken)
	if resp.StatusCode != 200 {
		t.Fatalf("authorized read: %d", resp.StatusCode)
	}
	bad := got(NewClient(e.srv.URL, "wrong")).ok(t)
	defer bad.CloseIdleConnections()
	_, err := bad.Servers(context.Background())
	var ae *Error
	if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Code != state.CodeUnauthorized || !strings.Contains(ae.Error(), "LUMOS_ADMIN_TOKEN") {
		t.Fatalf("client 401: %#v", err)
	}
}

// TestBadInputs: every bad input is refused with the right code and field,
// and the replicated state is byte-identical afterwards.
func TestBadInputs(t *testing.T) {
	b := newFakeBackend("ctl-1")
	web1, _ := b.addServer(t, "web-1")
	web2, _ := b.addServer(t, "web-2")
	old, _ := b.addServer(t, "old")
	b.mustApply(t, &state.ServerDecommission{ID: old})
	b.mustApply(t, &state.PlanSet{Plan: state.Plan{Name: state.PlanCustom, Limit: 2}})
	b.mustApply(t, &state.DomainAdd{Name: "example.com", Origins: []string{"10.0.0.1:80"}, Servers: []string{web1}})
	e := newEnv(t, b)
	_ = web2

	domain := func(name string, origins ...string) string {
		return jsonString(AddDomainRequest{Name: name, Origins: origins})
	}
	big := `{"name":"` + strings.Repeat("x", 9000) + `"}`

	cases := []struct {
		name         string
		method, path string
		body         string
		status       int
		code, field  string
	}{
		// Domain names.
		{"domain underscore", "POST", "/v1/domains", domain("bad_name.com", "10.0.0.1:80"), 400, state.CodeInvalid, "domain"},
		{"domain one label", "POST", "/v1/domains", domain("localhost", "10.0.0.1:80"), 400, state.CodeInvalid, "domain"},
		{"domain leading dash", "POST", "/v1/domains", domain("-a.example.com", "10.0.0.1:80"), 400, state.CodeInvalid, "domain"},
		{"domain is an IP", "POST", "/v1/domains", domain("10.0.0.1", "10.0.0.1:80"), 400, state.CodeInvalid, "domain"},
		{"domain empty", "POST", "/v1/domains", domain("", "10.0.0.1:80"), 400, state.CodeInvalid, "domain"},
		{"domain empty label", "POST", "/v1/domains", domain("a..example.com", "10.0.0.1:80"), 400, state.CodeInvalid, "domain"},
		{"domain long label", "POST", "/v1/domains", domain(strings.Repeat("a", 64)+".com", "10.0.0.1:80"), 400, state.CodeInvalid, "domain"},
		{"domain duplicate", "POST", "/v1/domains", domain("EXAMPLE.com", "10.0.0.2:80"), 409, state.CodeConflict, "domain"},
		// Origins.
		{"origin missing", "POST", "/v1/domains", domain("a.example.com"), 400, state.CodeInvalid, "origin"},
		{"origin this network", "POST", "/v1/domains", domain("a.example.com", "0.1.2.3:80"), 400, state.CodeInvalid, "origin"},
		{"origin unspecified", "POST", "/v1/domains", domain("a.example.com", "0.0.0.0:80"), 400, state.CodeInvalid, "origin"},
		{"origin unspecified v6", "POST", "/v1/domains", domain("a.example.com", "[::]:80"), 400, state.CodeInvalid, "origin"},
		{"origin link-local", "POST", "/v1/domains", domain("a.example.com", "169.254.169.254:80"), 400, state.CodeInvalid, "origin"},
		{"origin link-local v6", "POST", "/v1/domains", domain("a.example.com", "[fe80::1]:80"), 400, state.CodeInvalid, "origin"},
		{"origin multicast", "POST", "/v1/domains", domain("a.example.com", "224.0.0.1:80"), 400, state.CodeInvalid, "origin"},
		{"origin multicast v6", "POST", "/v1/domains", domain("a.example.com", "[ff02::1]:80"), 400, state.CodeInvalid, "origin"},
		{"origin broadcast", "POST", "/v1/domains", domain("a.example.com", "255.255.255.255:80"), 400, state.CodeInvalid, "origin"},
		{"origin host name", "POST", "/v1/domains", domain("a.example.com", "origin.example.com:80"), 400, state.CodeInvalid, "origin"},
		{"origin no port", "POST", "/v1/domains", domain("a.example.com", "10.0.0.1"), 400, state.CodeInvalid, "origin"},
		{"origin bad port", "POST", "/v1/domains", domain("a.example.com", "10.0.0.1:70000"), 400, state.CodeInvalid, "origin"},
		{"origin twice", "POST", "/v1/domains", domain("a.example.com", "10.0.0.1:80", "10.0.0.1:80"), 400, state.CodeInvalid, "origin"},
		// Other domain fields.
		{"mode", "POST", "/v1/domains", `{"name":"a.example.com","origins":["10.0.0.1:80"],"mode":"udp"}`, 400, state.CodeInvalid, "mode"},
		{"dns provider", "POST", "/v1/domains", `{"name":"a.example.com","origins":["10.0.0.1:80"],"dns":{"provider":"route53"}}`, 400, state.CodeInvalid, "dns"},
		{"dns ttl", "POST", "/v1/domains", `{"name":"a.example.com","origins":["10.0.0.1:80"],"dns":{"ttl":100000}}`, 400, state.CodeInvalid, "ttl"},
		{"dns ttl type", "POST", "/v1/domains", `{"name":"a.example.com","origins":["10.0.0.1:80"],"dns":{"ttl":"60"}}`, 400, state.CodeInvalid, "dns.ttl"},
		// Servers of a domain.
		{"domain unknown server", "POST", "/v1/domains", `{"name":"a.example.com","origins":["10.0.0.1:80"],"servers":["nope"]}`, 404, state.CodeNotFound, "servers"},
		{"domain decommissioned server", "POST", "/v1/domains", `{"name":"a.example.com","origins":["10.0.0.1:80"],"servers":["old"]}`, 409, state.CodeDecommissioned, "servers"},
		{"domain server twice", "POST", "/v1/domains", `{"name":"a.example.com","origins":["10.0.0.1:80"],"servers":["web-1","srv-web-1"]}`, 400, state.CodeInvalid, "servers"},
		{"assign unknown domain", "PUT", "/v1/domains/nope.example.com/servers", `{"servers":["web-1"]}`, 404, state.CodeNotFound, "domain"},
		{"assign bad domain", "PUT", "/v1/domains/bad_name/servers", `{"servers":["web-1"]}`, 400, state.CodeInvalid, "domain"},
		{"assign empty", "PUT", "/v1/domains/example.com/servers", `{"servers":[]}`, 400, state.CodeInvalid, "servers"},
		{"assign unknown server", "PUT", "/v1/domains/example.com/servers", `{"servers":["web-1","ghost"]}`, 404, state.CodeNotFound, "servers"},
		{"assign decommissioned", "PUT", "/v1/domains/example.com/servers", `{"servers":["old"]}`, 409, state.CodeDecommissioned, "servers"},
		{"assign twice", "PUT", "/v1/domains/example.com/servers", `{"servers":["web-2","WEB-2"]}`, 400, state.CodeInvalid, "servers"},
		{"remove unknown domain", "DELETE", "/v1/domains/nope.example.com", "", 404, state.CodeNotFound, "domain"},
		{"show unknown domain", "GET", "/v1/domains/nope.example.com", "", 404, state.CodeNotFound, "domain"},
		{"show bad domain", "GET", "/v1/domains/bad_name.com", "", 400, state.CodeInvalid, "domain"},
		// Servers.
		{"server duplicate", "POST", "/v1/servers", `{"name":"WEB-1"}`, 409, state.CodeConflict, "name"},
		{"server empty name", "POST", "/v1/servers", `{"name":"  "}`, 400, state.CodeInvalid, "name"},
		{"server long name", "POST", "/v1/servers", `{"name":"` + strings.Repeat("n", 65) + `"}`, 400, state.CodeInvalid, "name"},
		{"server control char", "POST", "/v1/servers", `{"name":"a\u0007b"}`, 400, state.CodeInvalid, "name"},
		{"server plan limit", "POST", "/v1/servers", `{"name":"web-3"}`, 409, state.CodePlanLimit, "plan"},
		{"rename unknown", "PATCH", "/v1/servers/ghost", `{"name":"x"}`, 404, state.CodeNotFound, "server"},
		{"rename taken", "PATCH", "/v1/servers/web-2", `{"name":"web-1"}`, 409, state.CodeConflict, "name"},
		{"rename empty", "PATCH", "/v1/servers/web-2", `{"name":""}`, 400, state.CodeInvalid, "name"},
		{"decommission unknown", "POST", "/v1/servers/ghost/decommission", "", 404, state.CodeNotFound, "server"},
		{"decommission twice", "POST", "/v1/servers/old/decommission", "", 409, state.CodeDecommissioned, "server"},
		{"show unknown server", "GET", "/v1/servers/ghost", "", 404, state.CodeNotFound, "server"},
		// Plan.
		{"plan bogus", "PUT", "/v1/plan", `{"plan":"gold"}`, 400, state.CodeInvalid, "plan"},
		{"plan zero", "PUT", "/v1/plan", `{"plan":"0"}`, 400, state.CodeInvalid, "plan"},
		{"plan below usage", "PUT", "/v1/plan", `{"plan":"free"}`, 409, state.CodePlanLimit, "plan"},
		// Events.
		{"events bad limit", "GET", "/v1/events?limit=abc", "", 400, state.CodeInvalid, "limit"},
		{"events zero limit", "GET", "/v1/events?limit=0", "", 400, state.CodeInvalid, "limit"},
		{"events bad domain", "GET", "/v1/events?domain=bad_name", "", 400, state.CodeInvalid, "domain"},
		// Bodies.
		{"oversize body", "POST", "/v1/servers", big, 413, CodeTooLarge, "body"},
		{"oversize domain", "POST", "/v1/domains", `{"name":"a.example.com","origins":["` + strings.Repeat("1", 9000) + `"]}`, 413, CodeTooLarge, "body"},
		{"unknown field", "POST", "/v1/servers", `{"name":"web-9","admin":true}`, 400, state.CodeInvalid, "admin"},
		{"unknown nested field", "POST", "/v1/domains", `{"name":"a.example.com","origins":["10.0.0.1:80"],"dns":{"zone":"x"}}`, 400, state.CodeInvalid, "zone"},
		{"empty body", "POST", "/v1/servers", "", 400, state.CodeInvalid, "body"},
		{"invalid json", "POST", "/v1/servers", `{"name":`, 400, state.CodeInvalid, "body"},
		{"not json", "PUT", "/v1/plan", `plan=free`, 400, state.CodeInvalid, "body"},
		{"array body", "PUT", "/v1/plan", `["free"]`, 400, state.CodeInvalid, "body"},
		{"wrong type", "POST", "/v1/servers", `{"name":5}`, 400, state.CodeInvalid, "name"},
		{"trailing data", "POST", "/v1/servers", `{"name":"web-9"} {"name":"web-10"}`, 400, state.CodeInvalid, "body"},
		// Methods and paths.
		{"wrong method servers", "DELETE", "/v1/servers", "", 405, CodeMethod, ""},
		{"wrong method plan", "PATCH", "/v1/plan", `{"plan":"pro"}`, 405, CodeMethod, ""},
		{"wrong method domain", "POST", "/v1/domains/example.com", "", 405, CodeMethod, ""},
		{"wrong method join", "GET", "/v1/join", "", 405, CodeMethod, ""},
		{"unknown route", "GET", "/v1/things", "", 404, state.CodeNotFound, ""},
		{"unknown version", "GET", "/v2/servers", "", 404, state.CodeNotFound, ""},
	}
	before := b.snapshot(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.raw(t, tc.method, tc.path, tc.body, testAdminToken)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			ed := errorOf(t, body)
			if ed.Code != tc.code || ed.Field != tc.field {
				t.Fatalf("got code %q field %q, want %q %q (message %q)", ed.Code, ed.Field, tc.code, tc.field, ed.Message)
			}
			if ed.Message == "" || strings.Contains(ed.Message, "\n") {
				t.Fatalf("message must be one non-empty line: %q", ed.Message)
			}
			if tc.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			if after := b.snapshot(t); after != before {
				t.Fatalf("state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	if b.appliedCount() != 0 {
		t.Fatalf("%d commands reached Apply; bad input must be refused before committing", b.appliedCount())
	}

	// The client surfaces the same codes as *Error and state sentinels.
	_, err := e.client.AddDomain(context.Background(), &AddDomainRequest{Name: "a.example.com", Origins: []string{"169.254.1.1:80"}})
	var ae *Error
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Code != state.CodeInvalid || ae.Field != "origin" || !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("client error: %#v", err)
	}
	_, err = e.client.AddServer(context.Background(), "web-3")
	if !errors.Is(err, state.ErrPlanLimit) || errors.Is(err, state.ErrConflict) {
		t.Fatalf("client plan limit: %v", err)
	}
}

// TestApplyErrors: an error of Backend.Apply (lost leadership, a race caught
// by the second validation, a timeout, a failure) is reported with its code
// and changes nothing.
func TestApplyErrors(t *testing.T) {
	b := newFakeBackend("ctl-1")
	b.addServer(t, "web-1")
	e := newEnv(t, b)
	ctx := context.Background()

	cases := []struct {
		err    error
		status int
		code   string
	}{
		{ErrNotLeader, 503, state.CodeNotLeader},
		{errRaftNotLeader(), 503, state.CodeNotLeader},
		{errRaftLeadershipLost(), 503, state.CodeNotLeader},
		{&state.Error{Code: state.CodeConflict, Field: "name", Message: "raced"}, 409, state.CodeConflict},
		{context.DeadlineExceeded, 503, state.CodeUnavailable},
		{errors.New("disk on fire"), 500, state.CodeInternal},
	}
	before := b.snapshot(t)
	for _, tc := range cases {
		b.set(func(f *fakeBackend) { f.applyErr = tc.err })
		_, err := e.client.AddServer(ctx, "web-2")
		var ae *Error
		if !errors.As(err, &ae) || ae.StatusCode != tc.status || ae.Code != tc.code {
			t.Fatalf("apply error %v: got %#v", tc.err, err)
		}
		if tc.code == state.CodeInternal && strings.Contains(ae.Message, "disk") {
			t.Fatalf("internal details leaked: %q", ae.Message)
		}
	}
	if b.snapshot(t) != before {
		t.Fatal("state changed")
	}
}

// TestServerStatus: status, current flag and uptime from record + gossip.
func TestServerStatus(t *testing.T) {
	cases := []struct {
		name        string
		bind        bool
		domains     bool // assign a domain (at version 3) to the server
		decommision bool
		member      *mesh.Member
		status      string
		current     bool
		uptime      int64
		gossip      string
		healthErr   string
		ip          string
	}{
		{name: "never joined", status: StatusOffline},
		{name: "joined, never seen", bind: true, status: StatusOffline, ip: "10.0.0.9"},
		{name: "alive ok current", bind: true, domains: true, member: ptr(alive("node-a", "srv-web-1", 3, "ok")),
			status: StatusOnline, current: true, uptime: 3600, gossip: "alive", ip: "10.0.0.9"},
		{name: "alive no health yet", bind: true, member: ptr(alive("node-a", "", 1, "")),
			status: StatusOnline, current: true, uptime: 3600, gossip: "alive", ip: "10.0.0.9"},
		{name: "alive behind", bind: true, domains: true, member: ptr(alive("node-a", "srv-web-1", 2, "ok")),
			status: StatusOnline, current: false, uptime: 3600, gossip: "alive", ip: "10.0.0.9"},
		{name: "alive nothing applied", bind: true, member: ptr(alive("node-a", "srv-web-1", 0, "ok")),
			status: StatusOnline, current: false, uptime: 3600, gossip: "alive", ip: "10.0.0.9"},
		{name: "suspect", bind: true, member: ptr(withState(alive("node-a", "srv-web-1", 5, "ok"), mesh.StateSuspect)),
			status: StatusOnline, current: true, uptime: 3600, gossip: "suspect", ip: "10.0.0.9"},
		{name: "haproxy error", bind: true, domains: true, member: ptr(withError(alive("node-a", "srv-web-1", 9, "error"), "reload failed")),
			status: StatusError, current: true, gossip: "alive", healthErr: "reload failed", ip: "10.0.0.9"},
		{name: "dead", bind: true, domains: true, member: ptr(withState(alive("node-a", "srv-web-1", 9, "ok"), mesh.StateDead)),
			status: StatusOffline, current: true, gossip: "dead", ip: "10.0.0.9"},
		{name: "left", bind: true, member: ptr(withState(alive("node-a", "srv-web-1", 9, "ok"), mesh.StateLeft)),
			status: StatusOffline, current: true, gossip: "left", ip: "10.0.0.9"},
		{name: "other server's node", bind: true, member: ptr(alive("node-a", "srv-other", 9, "ok")),
			status: StatusOffline, ip: "10.0.0.9"},
		{name: "decommissioned while alive", bind: true, decommision: true, member: ptr(alive("node-a", "srv-web-1", 9, "ok")),
			status: StatusDecommissioned, current: true, gossip: "alive", ip: "10.0.0.9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newFakeBackend("ctl-1")
			id, _ := b.addServer(t, "web-1") // index 1
			if tc.bind {
				b.mustApply(t, &state.ServerBind{ID: id, NodeName: "node-a", Addr: "10.0.0.9", RaftAddr: "10.0.0.9:7947"}) // 2
			} else {
				b.mustApply(t, &state.EventAdd{Event: state.Event{Type: "note"}}) // 2
			}
			if tc.domains {
				b.mustApply(t, &state.DomainAdd{Name: "example.com", Origins: []string{"10.0.0.1:80"}, Servers: []string{id}}) // version 3
			}
			if tc.decommision {
				b.mustApply(t, &state.ServerDecommission{ID: id})
			}
			b.mustApply(t, &state.EventAdd{Event: state.Event{Type: "note"}}) // moves the index past the domain version
			if tc.member != nil {
				b.set(func(f *fakeBackend) {
					f.members = []mesh.Member{
						{Name: "ctl-1", Addr: "127.0.0.1", State: mesh.StateAlive, Meta: mesh.Meta{Control: true}},
						*tc.member,
					}
				})
			}
			e := newEnv(t, b)
			info := got(e.client.Server(context.Background(), "web-1")).ok(t)
			if info.Status != tc.status || info.Current != tc.current || info.UptimeSeconds != tc.uptime ||
				info.GossipState != tc.gossip || info.HealthError != tc.healthErr || info.IP != tc.ip {
				t.Fatalf("got status %q current %v uptime %d gossip %q health error %q ip %q; want %q %v %d %q %q %q",
					info.Status, info.Current, info.UptimeSeconds, info.GossipState, info.HealthError, info.IP,
					tc.status, tc.current, tc.uptime, tc.gossip, tc.healthErr, tc.ip)
			}
			if tc.gossip != "" && (info.LastSeen == nil || !info.LastSeen.Equal(testStart)) {
				t.Fatalf("last seen %v", info.LastSeen)
			}
			if tc.gossip != "" && info.AppliedIndex != tc.member.Meta.AppliedIndex {
				t.Fatalf("applied index %d", info.AppliedIndex)
			}
			if tc.bind && info.NodeName != "node-a" || tc.bind && info.RaftAddr != "10.0.0.9:7947" {
				t.Fatalf("node %q raft %q", info.NodeName, info.RaftAddr)
			}
			st := got(e.client.Status(context.Background())).ok(t)
			if st.Servers[tc.status] != 1 {
				t.Fatalf("status counts %v", st.Servers)
			}
			if tc.domains && !tc.decommision {
				d := got(e.client.Domain(context.Background(), "example.com")).ok(t)
				if d.Servers[0].Status != tc.status || d.Servers[0].IP != tc.ip {
					t.Fatalf("domain server %+v", d.Servers[0])
				}
			}
		})
	}
}

// TestDomainFailoverView: the domain view marks primary and active servers
// and the status counts failed-over domains.
func TestDomainFailoverView(t *testing.T) {
	b := newFakeBackend("ctl-1")
	a, _ := b.addServer(t, "a")
	bb, _ := b.addServer(t, "b")
	b.mustApply(t, &state.ServerBind{ID: a, NodeName: "node-a", Addr: "10.0.0.1"})
	b.mustApply(t, &state.ServerBind{ID: bb, NodeName: "node-b", Addr: "10.0.0.2"})
	b.mustApply(t, &state.DomainAdd{Name: "example.com", Origins: []string{"10.0.0.9:80"}, Servers: []string{a, bb}})
	b.mustApply(t, &state.DomainAdd{Name: "example.net", Origins: []string{"10.0.0.9:80"}, Servers: []string{a, bb}})
	// Simulate a failover decided by the leader.
	b.set(func(f *fakeBackend) {
		d := f.st.Domains["example.com"]
		d.FailoverStatus, d.ActiveServer = state.FailoverFailedOver, bb
		f.members = []mesh.Member{
			withState(alive("node-a", a, 5, "ok"), mesh.StateDead),
			alive("node-b", bb, 5, "ok"),
		}
	})
	e := newEnv(t, b)
	d := got(e.client.Domain(context.Background(), "example.com")).ok(t)
	want := []DomainServer{
		{ID: a, Name: "a", Primary: true, Active: false, Status: StatusOffline, IP: "10.0.0.1"},
		{ID: bb, Name: "b", Primary: false, Active: true, Status: StatusOnline, IP: "10.0.0.2"},
	}
	if !slices.Equal(d.Servers, want) || d.FailoverStatus != state.FailoverFailedOver || d.ActiveServer != bb {
		t.Fatalf("domain view %+v", d)
	}
	st := got(e.client.Status(context.Background())).ok(t)
	if st.FailedOver != 1 || st.Domains != 2 || st.Servers[StatusOnline] != 1 || st.Servers[StatusOffline] != 1 {
		t.Fatalf("status %+v", st)
	}
}

func ptr[T any](v T) *T { return &v }

func withState(m mesh.Member, s mesh.State) mesh.Member { m.State = s; return m }

func withError(m mesh.Member, reason string) mesh.Member {
	m.Meta.Health, m.Meta.HealthError = "error", reason
	return m
}

// TestEventsLimit: default 100, at most 5000.
func TestEventsLimit(t *testing.T) {
	b := newFakeBackend("ctl-1")
	for i := 0; i < 150; i++ {
		b.mustApply(t, &state.EventAdd{Event: state.Event{Type: "note", Domain: "example.com"}})
	}
	e := newEnv(t, b)
	evs := got(e.client.Events(context.Background(), "", 0)).ok(t)
	if len(evs) != DefaultEventLimit || evs[0].ID != 150 {
		t.Fatalf("default limit: %d events, first %d", len(evs), evs[0].ID)
	}
	if evs = got(e.client.Events(context.Background(), "example.com", 120)).ok(t); len(evs) != 120 {
		t.Fatalf("limit 120: %d", len(evs))
	}
}

// TestTimeStamping: the leader stamps its clock into commands.
func TestTimeStamping(t *testing.T) {
	b := newFakeBackend("ctl-1")
	e := newEnv(t, b)
	later := testStart.Add(90 * time.Minute)
	b.set(func(f *fakeBackend) { f.now = later })
	s := got(e.client.AddServer(context.Background(), "web-1")).ok(t)
	if !s.Server.CreatedAt.Equal(later) {
		t.Fatalf("created at %v, want %v", s.Server.CreatedAt, later)
	}
}
