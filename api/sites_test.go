package api

import (
	"context"
	"errors"
	"testing"

	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

func TestSitesAndImport(t *testing.T) {
	b := newFakeBackend("ctl-1")
	id, _ := b.addServer(t, "web-1")
	b.mustApply(t, &state.ServerBind{ID: id, NodeName: "node-a", Addr: "10.0.0.9", RaftAddr: "10.0.0.9:7947", Sites: []state.Site{
		{Domain: "blog.example.com", Mode: "http", Origins: []string{"10.0.0.5:8080"}, Backend: "be_blog"},
		{Domain: "both.example.com", Mode: "http", Origins: []string{"10.0.0.6:80"}},
		{Domain: "both.example.com", Mode: "tcp", Origins: []string{"10.0.0.6:443"}},
		{Domain: "named.example.com", Mode: "http", Unresolved: []string{"app.internal:80"}},
		{Domain: "shop.example.com", Mode: "tcp", Origins: []string{"10.0.0.7:443"}},
	}})
	b.mustApply(t, &state.DomainAdd{Name: "shop.example.com", Origins: []string{"10.0.0.7:443"}, Mode: "tcp"})
	e := newEnv(t, b)
	ctx := context.Background()

	sites := got(e.client.ServerSites(ctx, "web-1")).ok(t)
	if len(sites) != 5 {
		t.Fatalf("sites %+v", sites)
	}
	for _, s := range sites {
		if s.Managed != (s.Domain == "shop.example.com") {
			t.Errorf("site %s managed=%v", s.Domain, s.Managed)
		}
	}
	if info := got(e.client.Server(ctx, "web-1")).ok(t); info.Sites != 5 {
		t.Fatalf("server detected_sites = %d", info.Sites)
	}

	before := b.snapshot(t)
	bad := []struct {
		sites []string
		code  string
	}{
		{nil, state.CodeInvalid},
		{[]string{"nope.example.com"}, state.CodeNotFound},
		{[]string{"both.example.com"}, state.CodeConflict},
		{[]string{"named.example.com"}, state.CodeInvalid},
		{[]string{"blog.example.com", "shop.example.com"}, state.CodeConflict}, // already managed: all or none
		{[]string{"bad_name"}, state.CodeInvalid},
	}
	for _, tc := range bad {
		_, err := e.client.ImportSites(ctx, "web-1", tc.sites)
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != tc.code {
			t.Errorf("import %v: %v, want %s", tc.sites, err, tc.code)
		}
	}
	if after := b.snapshot(t); string(after) != string(before) {
		t.Fatal("a refused import changed the state")
	}

	out := got(e.client.ImportSites(ctx, "web-1", []string{"blog.example.com", "both.example.com/tcp"})).ok(t)
	if len(out) != 2 || out[0].Name != "blog.example.com" || out[1].Mode != "tcp" || out[1].Origins[0] != "10.0.0.6:443" {
		t.Fatalf("imported %+v", out)
	}
	if len(out[0].Servers) != 1 || out[0].Servers[0].Name != "web-1" || !out[0].Servers[0].Primary {
		t.Fatalf("imported domain not assigned to its server: %+v", out[0].Servers)
	}
}

// TestCurrentFollowsServedConfig: a shield running HAProxy is current only
// when the config it serves was rendered from the latest change.
func TestCurrentFollowsServedConfig(t *testing.T) {
	b := newFakeBackend("ctl-1")
	id, _ := b.addServer(t, "web-1")
	b.mustApply(t, &state.ServerBind{ID: id, NodeName: "node-a", Addr: "10.0.0.9", RaftAddr: "10.0.0.9:7947"})
	b.mustApply(t, &state.DomainAdd{Name: "example.com", Origins: []string{"10.0.0.1:80"}, Servers: []string{id}}) // 3
	m := alive("node-a", id, 3, "ok")
	m.Meta.ConfigIndex = 2
	b.set(func(f *fakeBackend) { f.members = []mesh.Member{m} })
	e := newEnv(t, b)
	if info := got(e.client.Server(context.Background(), "web-1")).ok(t); info.Current {
		t.Fatal("current although HAProxy serves an older config")
	}
	m.Meta.ConfigIndex = 3
	b.set(func(f *fakeBackend) { f.members = []mesh.Member{m} })
	if info := got(e.client.Server(context.Background(), "web-1")).ok(t); !info.Current || info.ConfigIndex != 3 {
		t.Fatalf("not current at the served index: %+v", info)
	}
	st := got(e.client.Status(context.Background())).ok(t)
	var node *NodeInfo
	for i := range st.Nodes {
		if st.Nodes[i].Name == "node-a" {
			node = &st.Nodes[i]
		}
	}
	if node == nil || node.Current == nil || !*node.Current || node.Health != "ok" {
		t.Fatalf("status does not show the shield current: %+v", node)
	}
	// Unassigning the domain is a change the shield must apply too.
	b.mustApply(t, &state.DomainRemove{Name: "example.com"}) // 4
	if info := got(e.client.Server(context.Background(), "web-1")).ok(t); info.Current {
		t.Fatal("current although the removal is not served yet")
	}
}
