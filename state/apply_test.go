package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// at returns t0 plus n seconds.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

// encode returns the JSON encoding of s.
func encode(t *testing.T, s *State) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("encode state: %v", err)
	}
	return b
}

// tester applies commands to one state at increasing log indexes.
type tester struct {
	t   *testing.T
	s   *State
	idx uint64
}

func newTester(t *testing.T) *tester { return &tester{t: t, s: New()} }

func (x *tester) cmd(payload any) *Command {
	x.t.Helper()
	c, err := NewCommand(at(int(x.idx)), payload)
	if err != nil {
		x.t.Fatal(err)
	}
	return c
}

// ok applies payload and fails the test on error.
func (x *tester) ok(payload any) any {
	x.t.Helper()
	x.idx++
	res, err := x.s.Apply(x.idx, x.cmd(payload))
	if err != nil {
		x.t.Fatalf("apply %T at %d: %v", payload, x.idx, err)
	}
	if x.s.Index != x.idx {
		x.t.Fatalf("Index = %d after applying at %d", x.s.Index, x.idx)
	}
	return res
}

// fail applies c and checks that it fails with code and field and that the
// state (its JSON encoding and its Index) is unchanged.
func (x *tester) failCmd(c *Command, code, field string, want ...string) {
	x.t.Helper()
	before := encode(x.t, x.s)
	index := x.s.Index
	events := len(x.s.Events)
	res, err := x.s.Apply(x.idx+1, c)
	if res != nil {
		x.t.Errorf("result %#v returned with an error", res)
	}
	checkErr(x.t, err, code, field, want...)
	if x.s.Index != index {
		x.t.Errorf("Index moved from %d to %d on error", index, x.s.Index)
	}
	if len(x.s.Events) != events {
		x.t.Errorf("events grew from %d to %d on error", events, len(x.s.Events))
	}
	if after := encode(x.t, x.s); !bytes.Equal(before, after) {
		x.t.Errorf("state changed on error:\nbefore %s\nafter  %s", before, after)
	}
}

func (x *tester) fail(payload any, code, field string, want ...string) {
	x.t.Helper()
	x.failCmd(x.cmd(payload), code, field, want...)
}

// addServer adds a server whose token hash is derived from its ID.
func (x *tester) addServer(id, name string) *Server {
	x.t.Helper()
	return x.ok(&ServerAdd{ID: id, Name: name, TokenHash: HashToken("tok-" + id), TokenPrefix: "lmt_" + id}).(*Server)
}

func (x *tester) addDomain(name string, servers ...string) *Domain {
	x.t.Helper()
	return x.ok(&DomainAdd{Name: name, Origins: []string{"10.0.0.1:80"}, Servers: servers}).(*Domain)
}

func (x *tester) lastEvent() Event {
	x.t.Helper()
	if len(x.s.Events) == 0 {
		x.t.Fatal("no events")
	}
	return x.s.Events[len(x.s.Events)-1]
}

func (x *tester) wantLastEvent(typ, domain, serverID string, msg ...string) {
	x.t.Helper()
	e := x.lastEvent()
	if e.Type != typ || e.Domain != domain || e.ServerID != serverID {
		x.t.Errorf("last event = %+v, want type %q domain %q server %q", e, typ, domain, serverID)
	}
	if !e.Time.Equal(at(int(x.idx))) {
		x.t.Errorf("event time = %v, want the command time %v", e.Time, at(int(x.idx)))
	}
	if e.ID != x.s.NextEventID-1 {
		x.t.Errorf("event id = %d, next = %d", e.ID, x.s.NextEventID)
	}
	for _, m := range msg {
		if !strings.Contains(e.Message, m) {
			x.t.Errorf("event message %q does not contain %q", e.Message, m)
		}
	}
}

func TestNew(t *testing.T) {
	s := New()
	if s.Plan != DefaultPlan || s.Plan.Limit != 20 || s.Plan.Name != PlanEnterprise {
		t.Errorf("plan = %+v", s.Plan)
	}
	if s.NextEventID != 1 || s.Index != 0 || len(s.Events) != 0 || s.Servers == nil || s.Domains == nil {
		t.Errorf("New() = %+v", s)
	}
}

func TestApplyCommandErrors(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "web1")
	x.addDomain("example.com", "s1")

	t.Run("nil command", func(t *testing.T) {
		x.t = t
		before := encode(t, x.s)
		res, err := x.s.Apply(99, nil)
		if res != nil {
			t.Errorf("result %v", res)
		}
		checkErr(t, err, CodeInvalid, "command", "empty")
		if !bytes.Equal(before, encode(t, x.s)) {
			t.Error("state changed")
		}
	})
	for _, v := range []int{0, -1, CommandVersion + 1, 99} {
		t.Run(fmt.Sprintf("version %d", v), func(t *testing.T) {
			x.t = t
			c := x.cmd(&DomainRemove{Name: "example.com"})
			c.Version = v
			x.failCmd(c, CodeInvalid, "command", fmt.Sprint(v), "upgrade")
		})
	}
	for _, typ := range []string{"", "server.delete", "SERVER.ADD", "domain.add "} {
		t.Run("type "+typ, func(t *testing.T) {
			x.t = t
			c := x.cmd(&DomainRemove{Name: "example.com"})
			c.Type = typ
			x.failCmd(c, CodeInvalid, "command", fmt.Sprintf("%q", typ))
		})
	}
	// Each type with its payload missing, including when another type's
	// payload is present.
	for _, typ := range []string{CmdServerAdd, CmdServerRename, CmdServerBind, CmdServerDecommission,
		CmdServerNodeRemoved, CmdDomainAdd, CmdDomainAssign, CmdDomainRemove, CmdPlanSet, CmdEventAdd} {
		t.Run("nil payload "+typ, func(t *testing.T) {
			x.t = t
			x.failCmd(&Command{Type: typ, Version: CommandVersion, Time: t0}, CodeInvalid, "command", typ, "no payload")
			other := &DomainRemove{Name: "example.com"}
			if typ == CmdDomainRemove {
				other = nil
			}
			c := &Command{Type: typ, Version: CommandVersion, Time: t0, DomainRemove: other}
			x.failCmd(c, CodeInvalid, "command", typ, "no payload")
		})
	}
	t.Run("typed nil payload", func(t *testing.T) {
		x.t = t
		x.failCmd(MustCommand(t0, (*ServerAdd)(nil)), CodeInvalid, "command", "no payload")
	})
}

func TestApplyIndex(t *testing.T) {
	s := New()
	c := MustCommand(t0, &ServerAdd{ID: "s1", Name: "a", TokenHash: HashToken("1")})
	if _, err := s.Apply(10, c); err != nil {
		t.Fatal(err)
	}
	if s.Index != 10 {
		t.Errorf("Index = %d, want 10", s.Index)
	}
	// A lower index (replay) never moves Index back.
	c = MustCommand(t0, &ServerAdd{ID: "s2", Name: "b", TokenHash: HashToken("2")})
	if _, err := s.Apply(5, c); err != nil {
		t.Fatal(err)
	}
	if s.Index != 10 {
		t.Errorf("Index = %d, want 10", s.Index)
	}
	c = MustCommand(t0, &ServerAdd{ID: "s3", Name: "c", TokenHash: HashToken("3")})
	if _, err := s.Apply(11, c); err != nil {
		t.Fatal(err)
	}
	if s.Index != 11 {
		t.Errorf("Index = %d, want 11", s.Index)
	}
}

func TestServerAdd(t *testing.T) {
	x := newTester(t)
	res := x.ok(&ServerAdd{ID: "s1", Name: "  Web1 ", TokenHash: HashToken("tok-s1"), TokenPrefix: "lmt_abcdefgh"})
	sv, ok := res.(*Server)
	if !ok {
		t.Fatalf("result is %T", res)
	}
	want := Server{ID: "s1", Name: "Web1", TokenHash: HashToken("tok-s1"), TokenPrefix: "lmt_abcdefgh", CreatedAt: at(1)}
	if !reflect.DeepEqual(*sv, want) {
		t.Errorf("result = %+v, want %+v", *sv, want)
	}
	if !reflect.DeepEqual(*x.s.Servers["s1"], want) {
		t.Errorf("stored = %+v, want %+v", *x.s.Servers["s1"], want)
	}
	x.wantLastEvent(EventServerAdded, "", "s1", `"Web1"`)
	// The result is a copy.
	sv.Name = "changed"
	if x.s.Servers["s1"].Name != "Web1" {
		t.Error("result aliases the stored server")
	}

	x.addServer("s2", "web2")
	x.addServer("dead", "old")
	x.ok(&ServerDecommission{ID: "dead"})
	// A decommissioned server's name is free again (case-insensitive).
	x.addServer("s3", "OLD")

	tests := []struct {
		name  string
		p     *ServerAdd
		code  string
		field string
		want  []string
	}{
		{"empty id", &ServerAdd{Name: "x", TokenHash: HashToken("x")}, CodeInvalid, "id", nil},
		{"duplicate id", &ServerAdd{ID: "s1", Name: "x", TokenHash: HashToken("x")}, CodeConflict, "id", []string{`"s1"`}},
		{"duplicate id of decommissioned", &ServerAdd{ID: "dead", Name: "x", TokenHash: HashToken("x")}, CodeConflict, "id", []string{`"dead"`}},
		{"empty name", &ServerAdd{ID: "n", Name: " ", TokenHash: HashToken("x")}, CodeInvalid, "name", []string{"empty"}},
		{"long name", &ServerAdd{ID: "n", Name: strings.Repeat("n", 65), TokenHash: HashToken("x")}, CodeInvalid, "name", nil},
		{"control in name", &ServerAdd{ID: "n", Name: "a\x07b", TokenHash: HashToken("x")}, CodeInvalid, "name", nil},
		{"duplicate name", &ServerAdd{ID: "n", Name: "web2", TokenHash: HashToken("x")}, CodeConflict, "name", []string{`"web2"`}},
		{"duplicate name case", &ServerAdd{ID: "n", Name: "WEB1", TokenHash: HashToken("x")}, CodeConflict, "name", []string{`"WEB1"`}},
		{"duplicate name spaces", &ServerAdd{ID: "n", Name: " web2 ", TokenHash: HashToken("x")}, CodeConflict, "name", nil},
		{"duplicate of reused name", &ServerAdd{ID: "n", Name: "old", TokenHash: HashToken("x")}, CodeConflict, "name", nil},
		{"empty hash", &ServerAdd{ID: "n", Name: "n"}, CodeInvalid, "token_hash", nil},
		{"short hash", &ServerAdd{ID: "n", Name: "n", TokenHash: "abcd"}, CodeInvalid, "token_hash", nil},
		{"upper hash", &ServerAdd{ID: "n", Name: "n", TokenHash: strings.ToUpper(HashToken("x"))}, CodeInvalid, "token_hash", nil},
		{"raw token", &ServerAdd{ID: "n", Name: "n", TokenHash: "lmt_" + strings.Repeat("a", 52)}, CodeInvalid, "token_hash", nil},
		{"hash in use", &ServerAdd{ID: "n", Name: "n", TokenHash: HashToken("tok-s2")}, CodeConflict, "token_hash", nil},
		{"hash of decommissioned", &ServerAdd{ID: "n", Name: "n", TokenHash: HashToken("tok-dead")}, CodeConflict, "token_hash", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x.t = t
			x.fail(tc.p, tc.code, tc.field, tc.want...)
		})
	}
}

func TestPlanLimit(t *testing.T) {
	x := newTester(t)
	for i := 1; i <= 20; i++ {
		x.addServer(fmt.Sprintf("s%02d", i), fmt.Sprintf("web%d", i))
	}
	x.fail(&ServerAdd{ID: "s21", Name: "web21", TokenHash: HashToken("21")}, CodePlanLimit, "plan", "enterprise", "20")
	// Decommissioning frees a slot; the record stays.
	x.ok(&ServerDecommission{ID: "s01"})
	x.addServer("s21", "web21")
	if len(x.s.Servers) != 21 || x.s.ActiveServerCount() != 20 {
		t.Errorf("servers = %d, active = %d", len(x.s.Servers), x.s.ActiveServerCount())
	}
	x.fail(&ServerAdd{ID: "s22", Name: "web22", TokenHash: HashToken("22")}, CodePlanLimit, "plan")

	// Plan lower than the number of live servers.
	x.fail(&PlanSet{Plan: Plan{Name: PlanPro, Limit: 5}}, CodePlanLimit, "plan", "20")
	x.fail(&PlanSet{Plan: Plan{Name: PlanCustom, Limit: 19}}, CodePlanLimit, "plan")
	// Equal to it is fine.
	x.ok(&PlanSet{Plan: Plan{Name: PlanCustom, Limit: 20}})
	x.ok(&PlanSet{Plan: Plan{Name: PlanCustom, Limit: 21}})
	x.addServer("s22", "web22")
}

func TestPlanFree(t *testing.T) {
	x := newTester(t)
	res := x.ok(&PlanSet{Plan: Plan{Name: PlanFree, Limit: 1}})
	if p, ok := res.(*Plan); !ok || *p != (Plan{Name: PlanFree, Limit: 1}) {
		t.Errorf("result = %#v", res)
	}
	x.wantLastEvent(EventPlanChanged, "", "", "free")
	x.addServer("s1", "web1")
	x.fail(&ServerAdd{ID: "s2", Name: "web2", TokenHash: HashToken("2")}, CodePlanLimit, "plan", "free", "1")
	x.ok(&ServerDecommission{ID: "s1"})
	x.addServer("s2", "web2")
	x.fail(&ServerAdd{ID: "s3", Name: "web3", TokenHash: HashToken("3")}, CodePlanLimit, "plan")
}

func TestPlanSet(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "a")
	x.addServer("s2", "b")
	for _, p := range []Plan{{PlanPro, 5}, {PlanEnterprise, 20}, {PlanCustom, 2}, {PlanCustom, 1000}} {
		res := x.ok(&PlanSet{Plan: p})
		if *res.(*Plan) != p || x.s.Plan != p {
			t.Errorf("set %+v: result %+v, state %+v", p, res, x.s.Plan)
		}
		// The result is a copy.
		res.(*Plan).Limit = -7
		if x.s.Plan != p {
			t.Error("result aliases the plan")
		}
	}
	tests := []struct {
		name string
		p    Plan
		code string
	}{
		{"free wrong limit", Plan{PlanFree, 3}, CodeInvalid},
		{"pro wrong limit", Plan{PlanPro, 50}, CodeInvalid},
		{"enterprise wrong limit", Plan{PlanEnterprise, 100}, CodeInvalid},
		{"unknown name", Plan{"gold", 10}, CodeInvalid},
		{"empty name", Plan{"", 10}, CodeInvalid},
		{"upper case name", Plan{"PRO", 5}, CodeInvalid},
		{"custom zero", Plan{PlanCustom, 0}, CodeInvalid},
		{"custom negative", Plan{PlanCustom, -1}, CodeInvalid},
		{"free below count", Plan{PlanFree, 1}, CodePlanLimit},
		{"custom below count", Plan{PlanCustom, 1}, CodePlanLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x.t = t
			x.fail(&PlanSet{Plan: tc.p}, tc.code, "plan")
		})
	}
}

func TestServerRename(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "web1")
	x.addServer("s2", "web2")
	x.addServer("d1", "gone")
	x.ok(&ServerDecommission{ID: "d1"})

	res := x.ok(&ServerRename{ID: "s1", Name: " Frontend "}).(*Server)
	if res.Name != "Frontend" || x.s.Servers["s1"].Name != "Frontend" {
		t.Errorf("rename: result %q, stored %q", res.Name, x.s.Servers["s1"].Name)
	}
	x.wantLastEvent(EventServerRenamed, "", "s1", `"web1"`, `"Frontend"`)
	res.Name = "alias"
	if x.s.Servers["s1"].Name != "Frontend" {
		t.Error("result aliases the stored server")
	}
	// Same name in another case: allowed (it is its own name).
	x.ok(&ServerRename{ID: "s1", Name: "FRONTEND"})
	// The name of a decommissioned server is free.
	x.ok(&ServerRename{ID: "s2", Name: "Gone"})
	if sv, err := x.s.FindServer("gone"); err != nil || sv.ID != "s2" {
		t.Errorf("FindServer(gone) = %v, %v; want the live s2", sv, err)
	}
	// A decommissioned server may be renamed, even to a live name.
	x.ok(&ServerRename{ID: "d1", Name: "frontend"})
	if !x.s.Servers["d1"].Decommissioned {
		t.Error("rename revived a decommissioned server")
	}

	tests := []struct {
		name  string
		p     *ServerRename
		code  string
		field string
	}{
		{"unknown", &ServerRename{ID: "nope", Name: "x"}, CodeNotFound, "server"},
		{"empty id", &ServerRename{Name: "x"}, CodeNotFound, "server"},
		{"empty name", &ServerRename{ID: "s1", Name: ""}, CodeInvalid, "name"},
		{"bad name", &ServerRename{ID: "s1", Name: "a\nb"}, CodeInvalid, "name"},
		{"taken", &ServerRename{ID: "s1", Name: "gone"}, CodeConflict, "name"},
		{"taken case", &ServerRename{ID: "s2", Name: "FrontEnd"}, CodeConflict, "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x.t = t
			x.fail(tc.p, tc.code, tc.field)
		})
	}
}

func TestServerBind(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "web1")
	x.addServer("s2", "web2")
	x.addServer("s3", "web3")

	res := x.ok(&ServerBind{ID: "s1", NodeName: "node-a", Addr: "10.0.0.1", RaftAddr: "10.0.0.1:7000"}).(*Server)
	sv := x.s.Servers["s1"]
	if sv.NodeName != "node-a" || sv.Addr != "10.0.0.1" || sv.RaftAddr != "10.0.0.1:7000" || !sv.BoundAt.Equal(at(4)) {
		t.Errorf("bound = %+v", sv)
	}
	if !reflect.DeepEqual(*res, *sv) {
		t.Errorf("result %+v != stored %+v", *res, *sv)
	}
	res.NodeName = "alias"
	if sv.NodeName != "node-a" {
		t.Error("result aliases the stored server")
	}
	x.wantLastEvent(EventServerJoined, "", "s1", "node-a", "10.0.0.1")
	if x.s.ServerByNode("node-a") != sv {
		t.Error("ServerByNode(node-a) is not s1")
	}

	// The same bind again (a restarted shield) is idempotent: no event, and
	// BoundAt kept.
	events := len(x.s.Events)
	x.ok(&ServerBind{ID: "s1", NodeName: "node-a", Addr: "10.0.0.1", RaftAddr: "10.0.0.1:7000"})
	if len(x.s.Events) != events || !sv.BoundAt.Equal(at(4)) {
		t.Errorf("repeated bind: events %d -> %d, bound at %v", events, len(x.s.Events), sv.BoundAt)
	}
	// A new address on the same node is recorded.
	x.ok(&ServerBind{ID: "s1", NodeName: "node-a", Addr: "10.0.0.9", RaftAddr: "10.0.0.9:7000"})
	if sv.Addr != "10.0.0.9" || !sv.BoundAt.Equal(at(int(x.idx))) || len(x.s.Events) != events+1 {
		t.Errorf("address change: %+v, events %d", sv, len(x.s.Events))
	}

	tests := []struct {
		name  string
		p     *ServerBind
		code  string
		field string
		want  []string
	}{
		{"unknown", &ServerBind{ID: "nope", NodeName: "n"}, CodeNotFound, "server", []string{`"nope"`}},
		{"empty node", &ServerBind{ID: "s2", NodeName: ""}, CodeInvalid, "node_name", nil},
		{"node bound to other", &ServerBind{ID: "s2", NodeName: "node-a"}, CodeConflict, "node_name", []string{`"node-a"`, `"web1"`}},
		{"node bound to other rebind", &ServerBind{ID: "s2", NodeName: "node-a", Rebind: true}, CodeConflict, "node_name", nil},
		{"already bound elsewhere", &ServerBind{ID: "s1", NodeName: "node-b"}, CodeConflict, "token", []string{`"web1"`, `"node-a"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x.t = t
			x.fail(tc.p, tc.code, tc.field, tc.want...)
		})
	}
	x.t = t

	// Rebind takes the record over to another node.
	x.ok(&ServerBind{ID: "s1", NodeName: "node-b", Addr: "10.0.0.2", RaftAddr: "10.0.0.2:7000", Rebind: true})
	if sv.NodeName != "node-b" || !sv.BoundAt.Equal(at(int(x.idx))) {
		t.Errorf("rebind: %+v", sv)
	}
	x.wantLastEvent(EventServerJoined, "", "s1", "node-b")
	// node-a is free now.
	x.ok(&ServerBind{ID: "s2", NodeName: "node-a", Addr: "10.0.0.1"})

	// A decommissioned server can never bind again, even with Rebind.
	x.ok(&ServerDecommission{ID: "s2"})
	x.fail(&ServerBind{ID: "s2", NodeName: "node-a"}, CodeDecommissioned, "token", `"web2"`)
	x.fail(&ServerBind{ID: "s2", NodeName: "node-z", Rebind: true}, CodeDecommissioned, "token")
	// Its node name may be used by another server.
	x.ok(&ServerBind{ID: "s3", NodeName: "node-a", Addr: "10.0.0.1"})
	if got := x.s.ServerByNode("node-a"); got == nil || got.ID != "s3" {
		t.Errorf("ServerByNode(node-a) = %+v, want the live s3", got)
	}
}

// TestServerBindNodeReuseDeterministic: a node name held by a decommissioned
// server and by a live one must still conflict for a third server, whatever
// the map order.
func TestServerBindNodeReuseDeterministic(t *testing.T) {
	for i := 0; i < 50; i++ {
		x := newTester(t)
		for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
			x.addServer(id, "srv-"+id)
		}
		for _, id := range []string{"a", "b", "c", "d"} {
			x.ok(&ServerBind{ID: id, NodeName: "node-1"})
			x.ok(&ServerDecommission{ID: id})
		}
		x.ok(&ServerBind{ID: "e", NodeName: "node-1"})
		x.fail(&ServerBind{ID: "f", NodeName: "node-1"}, CodeConflict, "node_name", `"srv-e"`)
		if got := x.s.ServerByNode("node-1"); got == nil || got.ID != "e" {
			t.Fatalf("ServerByNode(node-1) = %+v, want the live e", got)
		}
		if t.Failed() {
			return
		}
	}
}

func TestServerDecommission(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "web1")
	x.addServer("s2", "web2")
	x.addServer("s3", "web3")
	x.ok(&ServerBind{ID: "s1", NodeName: "node-1", Addr: "10.0.0.1"})
	x.addDomain("a.example", "s1", "s2") // s1 primary: moves to s2
	x.addDomain("b.example", "s2", "s1") // s1 secondary: primary stays
	x.addDomain("c.example", "s1")       // orphaned
	x.addDomain("d.example", "s3")       // untouched
	x.addDomain("e.example", "s3", "s1") // s1 last
	x.addDomain("f.example", "s1", "s3", "s2")
	x.addDomain("g.example") // no servers at all

	before := x.s.Clone()
	res := x.ok(&ServerDecommission{ID: "s1"})
	r, ok := res.(*DecommissionResult)
	if !ok {
		t.Fatalf("result is %T", res)
	}
	wantUn := []string{"a.example", "b.example", "c.example", "e.example", "f.example"}
	if !reflect.DeepEqual(r.Unassigned, wantUn) {
		t.Errorf("Unassigned = %q, want %q", r.Unassigned, wantUn)
	}
	if !reflect.DeepEqual(r.Orphaned, []string{"c.example"}) {
		t.Errorf("Orphaned = %q, want [c.example]", r.Orphaned)
	}
	sv := x.s.Servers["s1"]
	if sv == nil || !sv.Decommissioned || !sv.DecommissionedAt.Equal(at(int(x.idx))) {
		t.Fatalf("record after decommission = %+v", sv)
	}
	if r.Server == sv || !reflect.DeepEqual(*r.Server, *sv) {
		t.Errorf("result server %+v is not a copy of %+v", r.Server, sv)
	}
	// The record, its token hash and its node binding stay.
	if sv.TokenHash != HashToken("tok-s1") || sv.NodeName != "node-1" || x.s.ServerByTokenHash(sv.TokenHash) != sv {
		t.Errorf("record lost its identity: %+v", sv)
	}
	x.wantLastEvent(EventServerDecommissioned, "", "s1", `"web1"`, "5 domain")

	wantServers := map[string][]string{
		"a.example": {"s2"},
		"b.example": {"s2"},
		"c.example": {},
		"d.example": {"s3"},
		"e.example": {"s3"},
		"f.example": {"s3", "s2"},
		"g.example": {},
	}
	wantActive := map[string]string{
		"a.example": "s2", "b.example": "s2", "c.example": "", "d.example": "s3",
		"e.example": "s3", "f.example": "s3", "g.example": "",
	}
	for name, d := range x.s.Domains {
		if !reflect.DeepEqual(d.Servers, wantServers[name]) {
			t.Errorf("%s servers = %q, want %q", name, d.Servers, wantServers[name])
		}
		if d.ActiveServer != wantActive[name] {
			t.Errorf("%s active = %q, want %q", name, d.ActiveServer, wantActive[name])
		}
		changed := contains(before.Domains[name].Servers, "s1")
		if changed && !d.UpdatedAt.Equal(at(int(x.idx))) {
			t.Errorf("%s UpdatedAt = %v, want the command time", name, d.UpdatedAt)
		}
		if !changed && !reflect.DeepEqual(d, before.Domains[name]) {
			t.Errorf("%s changed although s1 was not assigned", name)
		}
	}
	if got := x.s.DomainsOf("s1"); len(got) != 0 {
		t.Errorf("DomainsOf(s1) = %q", got)
	}
	if x.s.ActiveServerCount() != 2 {
		t.Errorf("ActiveServerCount = %d", x.s.ActiveServerCount())
	}

	// Cannot repeat.
	x.fail(&ServerDecommission{ID: "s1"}, CodeDecommissioned, "server", `"web1"`)
	x.fail(&ServerDecommission{ID: "nope"}, CodeNotFound, "server", `"nope"`)
	x.fail(&ServerDecommission{}, CodeNotFound, "server")
	// A decommissioned server can no longer be assigned.
	x.fail(&DomainAssign{Name: "c.example", Servers: []string{"s1"}}, CodeDecommissioned, "servers")

	// A server with no domains.
	r = x.ok(&ServerDecommission{ID: "s3"}).(*DecommissionResult)
	if !reflect.DeepEqual(r.Unassigned, []string{"d.example", "e.example", "f.example"}) ||
		!reflect.DeepEqual(r.Orphaned, []string{"d.example", "e.example"}) {
		t.Errorf("s3: %+v", r)
	}
	if f := x.s.Domains["f.example"]; !reflect.DeepEqual(f.Servers, []string{"s2"}) || f.ActiveServer != "s2" {
		t.Errorf("f.example after s3: %+v", f)
	}
	x.addServer("s4", "web4")
	r = x.ok(&ServerDecommission{ID: "s4"}).(*DecommissionResult)
	if r.Unassigned == nil || r.Orphaned == nil || len(r.Unassigned)+len(r.Orphaned) != 0 {
		t.Errorf("s4: %+v, want empty non-nil lists", r)
	}
	b, _ := json.Marshal(r)
	if !bytes.Contains(b, []byte(`"unassigned":[]`)) || !bytes.Contains(b, []byte(`"orphaned":[]`)) {
		t.Errorf("empty result encodes as %s", b)
	}
}

func TestServerNodeRemoved(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "web1")
	x.ok(&ServerBind{ID: "s1", NodeName: "node-1"})
	x.fail(&ServerNodeRemoved{ID: "s1"}, CodeConflict, "server", "not decommissioned")
	x.fail(&ServerNodeRemoved{ID: "nope"}, CodeNotFound, "server")
	x.ok(&ServerDecommission{ID: "s1"})
	res := x.ok(&ServerNodeRemoved{ID: "s1"}).(*Server)
	if !res.NodeRemoved || !x.s.Servers["s1"].NodeRemoved {
		t.Errorf("NodeRemoved not set: %+v", x.s.Servers["s1"])
	}
	x.wantLastEvent(EventServerNodeRemoved, "", "s1", `"node-1"`, `"web1"`)
	// Again: accepted with no change and no event (the leader may retry).
	before := encode(t, x.s)
	events := len(x.s.Events)
	res2 := x.ok(&ServerNodeRemoved{ID: "s1"})
	if res2 != nil {
		t.Errorf("repeat result = %#v, want nil", res2)
	}
	after := encode(t, x.s)
	x.s.Index = x.idx - 1
	if len(x.s.Events) != events || !bytes.Equal(before, encode(t, x.s)) {
		t.Errorf("repeat changed the state:\n%s\n%s", before, after)
	}
}

func TestDomainAdd(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "web1")
	x.addServer("s2", "web2")
	x.addServer("dead", "old")
	x.ok(&ServerDecommission{ID: "dead"})

	idx := x.idx + 1
	res := x.ok(&DomainAdd{
		Name:    "Shop.Example.COM.",
		Origins: []string{" 10.0.0.1:80", "[::ffff:192.168.1.5]:8080", "[2001:DB8::1]:443"},
		Mode:    "TCP",
		DNS:     DNS{Provider: "Cloudflare", TTL: 120},
		Servers: []string{"s2", "s1"},
	})
	d, ok := res.(*Domain)
	if !ok {
		t.Fatalf("result is %T", res)
	}
	want := Domain{
		Name:           "shop.example.com",
		Origins:        []string{"10.0.0.1:80", "192.168.1.5:8080", "[2001:db8::1]:443"},
		Mode:           ModeTCP,
		Servers:        []string{"s2", "s1"},
		FailoverStatus: FailoverActive,
		ActiveServer:   "s2",
		DNS:            DNS{Provider: DNSCloudflare, TTL: 120, FailoverTTL: DefaultFailoverTTL},
		CreatedAt:      at(int(idx)),
		UpdatedAt:      at(int(idx)),
		Version:        idx,
	}
	if !reflect.DeepEqual(*d, want) {
		t.Errorf("result =\n%+v\nwant\n%+v", *d, want)
	}
	stored := x.s.Domains["shop.example.com"]
	if stored == nil || !reflect.DeepEqual(*stored, want) {
		t.Errorf("stored = %+v", stored)
	}
	if stored.Primary() != "s2" {
		t.Errorf("primary = %q", stored.Primary())
	}
	x.wantLastEvent(EventDomainAdded, "shop.example.com", "", "tcp", "3 origin")
	// The result is a deep copy.
	d.Origins[0] = "1.1.1.1:1"
	d.Servers[0] = "zz"
	if stored.Origins[0] != "10.0.0.1:80" || stored.Servers[0] != "s2" {
		t.Error("result aliases the stored domain")
	}

	// Defaults: http mode, builtin DNS, no servers.
	d = x.ok(&DomainAdd{Name: "plain.example", Origins: []string{"127.0.0.1:3000"}}).(*Domain)
	if d.Mode != ModeHTTP || d.DNS != (DNS{DNSBuiltin, DefaultTTL, DefaultFailoverTTL}) ||
		d.Servers == nil || len(d.Servers) != 0 || d.ActiveServer != "" || d.FailoverStatus != FailoverActive {
		t.Errorf("defaults: %+v", d)
	}
	if d.Primary() != "" {
		t.Errorf("primary of unassigned domain = %q", d.Primary())
	}
	// The caller's slices are not kept.
	srv := []string{"s1"}
	orig := []string{"10.0.0.7:80"}
	x.ok(&DomainAdd{Name: "copy.example", Origins: orig, Servers: srv})
	srv[0], orig[0] = "s2", "10.0.0.8:80"
	if c := x.s.Domains["copy.example"]; c.Servers[0] != "s1" || c.Origins[0] != "10.0.0.7:80" {
		t.Errorf("domain shares the command's slices: %+v", c)
	}

	seventeen := make([]string, 0, 17)
	for i := 0; i < 17; i++ {
		id := fmt.Sprintf("m%02d", i)
		if i < 15 {
			x.addServer(id, id)
		}
		seventeen = append(seventeen, id)
	}
	tooManyOrigins := make([]string, MaxOrigins+1)
	for i := range tooManyOrigins {
		tooManyOrigins[i] = fmt.Sprintf("10.0.1.%d:80", i+1)
	}
	o := []string{"10.0.0.1:80"}
	tests := []struct {
		name  string
		p     *DomainAdd
		code  string
		field string
		want  []string
	}{
		{"bad name", &DomainAdd{Name: "bad_name.com", Origins: o}, CodeInvalid, "domain", []string{`"bad_name.com"`}},
		{"empty name", &DomainAdd{Name: "", Origins: o}, CodeInvalid, "domain", nil},
		{"single label", &DomainAdd{Name: "intranet", Origins: o}, CodeInvalid, "domain", []string{`"intranet"`}},
		{"ip name", &DomainAdd{Name: "10.0.0.1", Origins: o}, CodeInvalid, "domain", nil},
		{"duplicate", &DomainAdd{Name: "shop.example.com", Origins: o}, CodeConflict, "domain", []string{"shop.example.com"}},
		{"duplicate case", &DomainAdd{Name: "SHOP.example.com.", Origins: o}, CodeConflict, "domain", []string{"shop.example.com"}},
		{"no origins", &DomainAdd{Name: "new.example"}, CodeInvalid, "origin", nil},
		{"bad origin", &DomainAdd{Name: "new.example", Origins: []string{"example.com:80"}}, CodeInvalid, "origin", []string{`"example.com:80"`}},
		{"forbidden origin", &DomainAdd{Name: "new.example", Origins: []string{"10.0.0.1:80", "169.254.169.254:80"}}, CodeInvalid, "origin", []string{"169.254.169.254"}},
		{"origin no port", &DomainAdd{Name: "new.example", Origins: []string{"10.0.0.1"}}, CodeInvalid, "origin", nil},
		{"duplicate origin", &DomainAdd{Name: "new.example", Origins: []string{"10.0.0.1:80", "[::ffff:10.0.0.1]:80"}}, CodeInvalid, "origin", []string{"twice"}},
		{"too many origins", &DomainAdd{Name: "new.example", Origins: tooManyOrigins}, CodeInvalid, "origin", nil},
		{"bad mode", &DomainAdd{Name: "new.example", Origins: o, Mode: "udp"}, CodeInvalid, "mode", []string{`"udp"`}},
		{"bad dns", &DomainAdd{Name: "new.example", Origins: o, DNS: DNS{Provider: "route53"}}, CodeInvalid, "dns", nil},
		{"bad ttl", &DomainAdd{Name: "new.example", Origins: o, DNS: DNS{TTL: -1}}, CodeInvalid, "ttl", nil},
		{"bad failover ttl", &DomainAdd{Name: "new.example", Origins: o, DNS: DNS{FailoverTTL: 90000}}, CodeInvalid, "failover_ttl", nil},
		{"unknown server", &DomainAdd{Name: "new.example", Origins: o, Servers: []string{"s1", "ghost"}}, CodeNotFound, "servers", []string{`"ghost"`}},
		{"server by name", &DomainAdd{Name: "new.example", Origins: o, Servers: []string{"web1"}}, CodeNotFound, "servers", nil},
		{"decommissioned server", &DomainAdd{Name: "new.example", Origins: o, Servers: []string{"dead"}}, CodeDecommissioned, "servers", []string{`"old"`}},
		{"server twice", &DomainAdd{Name: "new.example", Origins: o, Servers: []string{"s1", "s2", "s1"}}, CodeInvalid, "servers", []string{`"web1"`, "twice"}},
		{"too many servers", &DomainAdd{Name: "new.example", Origins: o, Servers: seventeen}, CodeInvalid, "servers", []string{"16"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x.t = t
			x.fail(tc.p, tc.code, tc.field, tc.want...)
		})
	}
	x.t = t
	// Exactly MaxServersPerDomain is fine.
	x.ok(&DomainAdd{Name: "wide.example", Origins: o, Servers: append([]string{"s1"}, seventeen[:15]...)})
	// Exactly MaxOrigins is fine.
	x.ok(&DomainAdd{Name: "many.example", Origins: tooManyOrigins[:MaxOrigins]})
}

func TestDomainAssign(t *testing.T) {
	x := newTester(t)
	for _, id := range []string{"s1", "s2", "s3", "s4"} {
		x.addServer(id, "web-"+id)
	}
	x.addServer("dead", "old")
	x.ok(&ServerDecommission{ID: "dead"})
	x.addDomain("example.com", "s1")
	created := x.s.Domains["example.com"].CreatedAt

	idx := x.idx + 1
	res := x.ok(&DomainAssign{Name: "EXAMPLE.com.", Servers: []string{"s3", "s1", "s2"}})
	d := res.(*Domain)
	st := x.s.Domains["example.com"]
	if !reflect.DeepEqual(st.Servers, []string{"s3", "s1", "s2"}) || st.Primary() != "s3" || st.ActiveServer != "s3" {
		t.Errorf("after assign: %+v", st)
	}
	if st.Version != idx || !st.UpdatedAt.Equal(at(int(idx))) || !st.CreatedAt.Equal(created) || st.FailoverStatus != FailoverActive {
		t.Errorf("after assign: version %d updated %v created %v status %q", st.Version, st.UpdatedAt, st.CreatedAt, st.FailoverStatus)
	}
	if !reflect.DeepEqual(d, st) || &d.Servers[0] == &st.Servers[0] {
		t.Errorf("result %+v is not a deep copy of %+v", d, st)
	}
	x.wantLastEvent(EventDomainAssigned, "example.com", "", "web-s3, web-s1, web-s2", "primary web-s3")
	if got := x.s.DomainsOf("s1"); !reflect.DeepEqual(got, []string{"example.com"}) {
		t.Errorf("DomainsOf(s1) = %q", got)
	}

	// The new list replaces the old one entirely.
	x.ok(&DomainAssign{Name: "example.com", Servers: []string{"s4"}})
	if !reflect.DeepEqual(st.Servers, []string{"s4"}) || st.ActiveServer != "s4" {
		t.Errorf("replace: %+v", st)
	}
	if len(x.s.DomainsOf("s1")) != 0 {
		t.Error("s1 still assigned")
	}
	// The caller's slice is not kept.
	list := []string{"s1", "s2"}
	x.ok(&DomainAssign{Name: "example.com", Servers: list})
	list[0] = "s4"
	if st.Servers[0] != "s1" {
		t.Error("domain shares the command's slice")
	}

	seventeen := make([]string, 17)
	for i := range seventeen {
		seventeen[i] = "s1"
	}
	tests := []struct {
		name  string
		p     *DomainAssign
		code  string
		field string
		want  []string
	}{
		{"bad name", &DomainAssign{Name: "-bad.com", Servers: []string{"s1"}}, CodeInvalid, "domain", []string{`"-bad.com"`}},
		{"unknown domain", &DomainAssign{Name: "other.com", Servers: []string{"s1"}}, CodeNotFound, "domain", []string{"other.com"}},
		{"no servers", &DomainAssign{Name: "example.com"}, CodeInvalid, "servers", []string{"at least one"}},
		{"empty servers", &DomainAssign{Name: "example.com", Servers: []string{}}, CodeInvalid, "servers", nil},
		{"unknown server", &DomainAssign{Name: "example.com", Servers: []string{"s1", "ghost"}}, CodeNotFound, "servers", []string{`"ghost"`}},
		{"empty server id", &DomainAssign{Name: "example.com", Servers: []string{""}}, CodeNotFound, "servers", nil},
		{"decommissioned", &DomainAssign{Name: "example.com", Servers: []string{"s2", "dead"}}, CodeDecommissioned, "servers", []string{`"old"`}},
		{"twice", &DomainAssign{Name: "example.com", Servers: []string{"s2", "s2"}}, CodeInvalid, "servers", []string{"twice"}},
		{"too many", &DomainAssign{Name: "example.com", Servers: seventeen}, CodeInvalid, "servers", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x.t = t
			x.fail(tc.p, tc.code, tc.field, tc.want...)
		})
	}
}

// TestDomainAssignFailedOver: while a domain is failed over to a secondary,
// reassigning keeps that secondary active if it is still a non-primary
// member, and otherwise goes back to the new primary.
func TestDomainAssignFailedOver(t *testing.T) {
	tests := []struct {
		name       string
		servers    []string
		wantActive string
		wantStatus string
	}{
		{"active still secondary", []string{"s1", "s3", "s2"}, "s2", FailoverFailedOver},
		{"active dropped", []string{"s1", "s3"}, "s1", FailoverActive},
		{"active becomes primary", []string{"s2", "s1"}, "s2", FailoverActive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newTester(t)
			for _, id := range []string{"s1", "s2", "s3"} {
				x.addServer(id, id)
			}
			x.addDomain("example.com", "s1", "s2")
			d := x.s.Domains["example.com"]
			d.FailoverStatus, d.ActiveServer = FailoverFailedOver, "s2"
			x.ok(&DomainAssign{Name: "example.com", Servers: tc.servers})
			if d.ActiveServer != tc.wantActive || d.FailoverStatus != tc.wantStatus {
				t.Errorf("active %q status %q, want %q %q", d.ActiveServer, d.FailoverStatus, tc.wantActive, tc.wantStatus)
			}
		})
	}
}

func TestDomainRemove(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "web1")
	x.addDomain("example.com", "s1")
	x.addDomain("other.com", "s1")
	res := x.ok(&DomainRemove{Name: " Example.COM. "})
	if d, ok := res.(*Domain); !ok || d.Name != "example.com" {
		t.Errorf("result = %#v", res)
	}
	if _, ok := x.s.Domains["example.com"]; ok {
		t.Error("domain still present")
	}
	if _, ok := x.s.Domains["other.com"]; !ok {
		t.Error("other domain removed")
	}
	x.wantLastEvent(EventDomainRemoved, "example.com", "", "removed")
	if got := x.s.DomainsOf("s1"); !reflect.DeepEqual(got, []string{"other.com"}) {
		t.Errorf("DomainsOf(s1) = %q", got)
	}
	x.fail(&DomainRemove{Name: "example.com"}, CodeNotFound, "domain", "example.com")
	x.fail(&DomainRemove{Name: "nope.org"}, CodeNotFound, "domain", "nope.org")
	x.fail(&DomainRemove{Name: ""}, CodeInvalid, "domain")
	x.fail(&DomainRemove{Name: "bad name.org"}, CodeInvalid, "domain", `"bad name.org"`)
	// It can be added again.
	x.addDomain("example.com")
}

func TestEventAdd(t *testing.T) {
	x := newTester(t)
	explicit := time.Date(2024, 12, 31, 23, 59, 0, 0, time.UTC)
	res := x.ok(&EventAdd{Event: Event{ID: 999, Time: explicit, Type: EventFailoverTriggered, Domain: "example.com",
		ServerID: "s1", FromIP: "10.0.0.1", ToIP: "10.0.0.2", Reason: "primary down"}})
	e, ok := res.(*Event)
	if !ok {
		t.Fatalf("result is %T", res)
	}
	want := Event{ID: 1, Time: explicit, Type: EventFailoverTriggered, Domain: "example.com",
		ServerID: "s1", FromIP: "10.0.0.1", ToIP: "10.0.0.2", Reason: "primary down"}
	if *e != want || x.s.Events[0] != want {
		t.Errorf("event = %+v, stored %+v, want %+v", *e, x.s.Events[0], want)
	}
	// The result is a copy, not a pointer into the log.
	e.Type = "tampered"
	if x.s.Events[0].Type != EventFailoverTriggered {
		t.Error("result aliases the stored event")
	}
	// A zero time takes the command's time.
	e = x.ok(&EventAdd{Event: Event{Type: EventServerDown, ServerID: "s1"}}).(*Event)
	if !e.Time.Equal(at(int(x.idx))) || e.ID != 2 || x.s.NextEventID != 3 {
		t.Errorf("second event = %+v, next %d", *e, x.s.NextEventID)
	}
	x.fail(&EventAdd{Event: Event{Domain: "example.com"}}, CodeInvalid, "event", "type")
}

func TestEventsBounded(t *testing.T) {
	x := newTester(t)
	// Up to MaxEvents+eventSlack-1 events are held ...
	total := MaxEvents + eventSlack - 1
	for i := 0; i < total; i++ {
		x.ok(&EventAdd{Event: Event{Type: EventServerError, Message: fmt.Sprint(i)}})
	}
	if len(x.s.Events) != total {
		t.Fatalf("len = %d, want %d", len(x.s.Events), total)
	}
	// ... and the next one trims the log back to the newest MaxEvents.
	x.ok(&EventAdd{Event: Event{Type: EventServerError, Message: fmt.Sprint(total)}})
	total++
	if len(x.s.Events) != MaxEvents {
		t.Fatalf("len = %d, want %d", len(x.s.Events), MaxEvents)
	}
	dropped := total - MaxEvents
	if first := x.s.Events[0]; first.ID != uint64(dropped+1) || first.Message != fmt.Sprint(dropped) {
		t.Errorf("oldest kept = %+v, want id %d", first, dropped+1)
	}
	if last := x.s.Events[MaxEvents-1]; last.ID != uint64(total) || last.Message != fmt.Sprint(total-1) {
		t.Errorf("newest = %+v", last)
	}
	for i := 1; i < len(x.s.Events); i++ {
		if x.s.Events[i].ID != x.s.Events[i-1].ID+1 {
			t.Fatalf("ids not increasing at %d: %d after %d", i, x.s.Events[i].ID, x.s.Events[i-1].ID)
		}
	}
	if x.s.NextEventID != uint64(total+1) {
		t.Errorf("NextEventID = %d", x.s.NextEventID)
	}
	// Other commands' events count too, and the newest is always kept.
	x.addServer("s1", "web1")
	if len(x.s.Events) != MaxEvents+1 || x.lastEvent().Type != EventServerAdded {
		t.Errorf("after server add: len %d, last %+v", len(x.s.Events), x.lastEvent())
	}
}

func TestEventsFor(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "web1")
	x.addDomain("a.example", "s1")
	x.addDomain("b.example", "s1")
	x.ok(&EventAdd{Event: Event{Type: EventFailoverTriggered, Domain: "a.example"}})
	all := x.s.EventsFor("", 0)
	if len(all) != 4 || all[0].ID != 4 || all[3].ID != 1 {
		t.Errorf("all events newest first = %+v", all)
	}
	a := x.s.EventsFor("a.example", 0)
	if len(a) != 2 || a[0].Type != EventFailoverTriggered || a[1].Type != EventDomainAdded {
		t.Errorf("a.example events = %+v", a)
	}
	if got := x.s.EventsFor("", 2); len(got) != 2 || got[0].ID != 4 || got[1].ID != 3 {
		t.Errorf("limit 2 = %+v", got)
	}
	if got := x.s.EventsFor("a.example", 1); len(got) != 1 || got[0].ID != 4 {
		t.Errorf("a.example limit 1 = %+v", got)
	}
	if got := x.s.EventsFor("none.example", 0); len(got) != 0 {
		t.Errorf("unknown domain = %+v", got)
	}
}

// script is a mixed sequence of commands, some of which fail.
func script() []any {
	return []any{
		&ServerAdd{ID: "s1", Name: "web1", TokenHash: HashToken("1"), TokenPrefix: "lmt_1"},
		&ServerAdd{ID: "s2", Name: "web2", TokenHash: HashToken("2"), TokenPrefix: "lmt_2"},
		&ServerAdd{ID: "s3", Name: "web3", TokenHash: HashToken("3"), TokenPrefix: "lmt_3"},
		&ServerAdd{ID: "s4", Name: "WEB1", TokenHash: HashToken("4")}, // fails
		&ServerBind{ID: "s1", NodeName: "n1", Addr: "10.0.0.1", RaftAddr: "10.0.0.1:7000"},
		&ServerBind{ID: "s2", NodeName: "n2", Addr: "10.0.0.2", RaftAddr: "10.0.0.2:7000"},
		&ServerBind{ID: "s3", NodeName: "n1"}, // fails
		&DomainAdd{Name: "a.example", Origins: []string{"10.1.0.1:80", "[2001:db8::5]:80"}, Servers: []string{"s1", "s2"}},
		&DomainAdd{Name: "b.example", Origins: []string{"10.1.0.2:443"}, Mode: ModeTCP, Servers: []string{"s1"}},
		&DomainAdd{Name: "c.example", Origins: []string{"10.1.0.3:80"}, DNS: DNS{Provider: DNSNone}},
		&DomainAdd{Name: "bad", Origins: []string{"10.1.0.3:80"}}, // fails
		&DomainAssign{Name: "c.example", Servers: []string{"s3", "s2"}},
		&ServerRename{ID: "s2", Name: "edge"},
		&EventAdd{Event: Event{Type: EventServerDown, ServerID: "s1"}},
		&ServerDecommission{ID: "s1"},
		&ServerNodeRemoved{ID: "s1"},
		&PlanSet{Plan: Plan{Name: PlanPro, Limit: 5}},
		&PlanSet{Plan: Plan{Name: PlanFree, Limit: 1}}, // fails
		&ServerAdd{ID: "s5", Name: "web1", TokenHash: HashToken("5")},
		&ServerBind{ID: "s5", NodeName: "n1", Addr: "10.0.0.1"},
		&DomainAssign{Name: "b.example", Servers: []string{"s5"}},
		&DomainRemove{Name: "a.example"},
	}
}

func runScript(t *testing.T, s *State, viaLog bool) []string {
	t.Helper()
	var errs []string
	for i, p := range script() {
		c := MustCommand(at(i), p)
		if viaLog {
			b, err := c.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if c, err = DecodeCommand(b); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Apply(uint64(i+1), c); err != nil {
			errs = append(errs, fmt.Sprintf("%d %s", i, CodeOf(err)))
		}
	}
	return errs
}

func TestDeterminism(t *testing.T) {
	a, b, c := New(), New(), New()
	errsA := runScript(t, a, false)
	errsB := runScript(t, b, false)
	errsC := runScript(t, c, true)
	wantErrs := []string{"3 conflict", "6 conflict", "10 invalid_argument", "17 plan_limit"}
	if !reflect.DeepEqual(errsA, wantErrs) {
		t.Errorf("errors = %q, want %q", errsA, wantErrs)
	}
	if !reflect.DeepEqual(errsA, errsB) || !reflect.DeepEqual(errsA, errsC) {
		t.Errorf("errors differ: %q / %q / %q", errsA, errsB, errsC)
	}
	ja, jb, jc := encode(t, a), encode(t, b), encode(t, c)
	if !bytes.Equal(ja, jb) {
		t.Errorf("two runs differ:\n%s\n%s", ja, jb)
	}
	if !bytes.Equal(ja, jc) {
		t.Errorf("run through the log encoding differs:\n%s\n%s", ja, jc)
	}
	if a.Index != uint64(len(script())) {
		t.Errorf("Index = %d", a.Index)
	}

	// A snapshot round trip (JSON) gives the same bytes, and the restored
	// state goes on applying identically.
	var r State
	if err := json.Unmarshal(ja, &r); err != nil {
		t.Fatal(err)
	}
	if jr := encode(t, &r); !bytes.Equal(ja, jr) {
		t.Errorf("snapshot round trip differs:\n%s\n%s", ja, jr)
	}
	// So does a clone.
	if jcl := encode(t, a.Clone()); !bytes.Equal(ja, jcl) {
		t.Errorf("clone encodes differently:\n%s\n%s", ja, jcl)
	}
	next := MustCommand(at(100), &DomainAssign{Name: "c.example", Servers: []string{"s5"}})
	if _, err := a.Apply(100, next); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(100, next); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(t, a), encode(t, &r)) {
		t.Error("restored state diverges after one more command")
	}
}

func TestCloneIsDeep(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "web1")
	x.addServer("s2", "web2")
	x.addDomain("a.example", "s1", "s2")
	x.addDomain("empty.example")
	x.ok(&ServerBind{ID: "s1", NodeName: "n1"})
	orig := encode(t, x.s)

	c := x.s.Clone()
	if !bytes.Equal(orig, encode(t, c)) {
		t.Fatalf("clone encodes differently:\n%s\n%s", orig, encode(t, c))
	}
	if !reflect.DeepEqual(c, x.s) {
		t.Errorf("clone is not equal:\n%+v\n%+v", c, x.s)
	}
	c.Servers["s1"].Name = "changed"
	c.Servers["s1"].Decommissioned = true
	delete(c.Servers, "s2")
	c.Servers["s9"] = &Server{ID: "s9"}
	d := c.Domains["a.example"]
	d.Origins[0] = "1.1.1.1:1"
	d.Servers[0] = "s9"
	d.Servers = append(d.Servers, "s7")
	d.DNS.TTL = 1
	c.Domains["empty.example"].Servers = append(c.Domains["empty.example"].Servers, "s1")
	delete(c.Domains, "empty.example")
	c.Domains["new.example"] = &Domain{Name: "new.example"}
	c.Events[0].Type = "changed"
	c.Events = append(c.Events, Event{ID: 99})
	c.NextEventID = 1000
	c.Plan.Limit = 1
	c.Index = 12345
	if _, err := c.Apply(500, MustCommand(t0, &EventAdd{Event: Event{Type: "x"}})); err != nil {
		t.Fatal(err)
	}
	if after := encode(t, x.s); !bytes.Equal(orig, after) {
		t.Errorf("mutating the clone changed the original:\n%s\n%s", orig, after)
	}
	// And the other way round.
	c2 := x.s.Clone()
	x.ok(&DomainAssign{Name: "a.example", Servers: []string{"s2"}})
	x.ok(&ServerRename{ID: "s1", Name: "renamed"})
	if c2.Domains["a.example"].Servers[0] != "s1" || c2.Servers["s1"].Name != "web1" {
		t.Error("applying to the original changed the clone")
	}
	// An empty state clones to an equal encoding.
	if !bytes.Equal(encode(t, New()), encode(t, New().Clone())) {
		t.Error("empty clone differs")
	}
}

func TestFindServer(t *testing.T) {
	x := newTester(t)
	x.addServer("s1", "Web1")
	x.addServer("old1", "db")
	x.ok(&ServerDecommission{ID: "old1"})
	x.addServer("s2", "db") // live, shares its name with old1
	x.addServer("old2", "legacy")
	x.ok(&ServerDecommission{ID: "old2"})
	x.addServer("old3", "twice")
	x.ok(&ServerDecommission{ID: "old3"})
	x.addServer("old4", "TWICE")
	x.ok(&ServerDecommission{ID: "old4"})
	x.addServer("s3", "s1") // a name that is another server's ID

	good := []struct {
		ref, want string
	}{
		{"s1", "s1"},
		{" s1 ", "s1"},
		{"Web1", "s1"},
		{"web1", "s1"},
		{"  WEB1\t", "s1"},
		{"db", "s2"},     // live wins over decommissioned
		{"DB", "s2"},     // case-insensitive
		{"old1", "old1"}, // a decommissioned server by ID
		{"legacy", "old2"},
		{"LEGACY", "old2"},
		{"old3", "old3"},
		{"s3", "s3"},
	}
	for _, tc := range good {
		sv, err := x.s.FindServer(tc.ref)
		if err != nil {
			t.Errorf("FindServer(%q): %v", tc.ref, err)
			continue
		}
		if sv.ID != tc.want {
			t.Errorf("FindServer(%q) = %s, want %s", tc.ref, sv.ID, tc.want)
		}
		if sv != x.s.Servers[tc.want] {
			t.Errorf("FindServer(%q) did not return the stored record", tc.ref)
		}
	}
	bad := []struct {
		ref, code string
		want      []string
	}{
		{"", CodeInvalid, []string{"empty"}},
		{"   ", CodeInvalid, []string{"empty"}},
		{"nope", CodeNotFound, []string{`"nope"`}},
		{"web", CodeNotFound, nil},
		{"S1X", CodeNotFound, nil},
		{"twice", CodeConflict, []string{`"twice"`, "2 decommissioned", "ID"}},
	}
	for _, tc := range bad {
		sv, err := x.s.FindServer(tc.ref)
		if sv != nil {
			t.Errorf("FindServer(%q) = %+v with error", tc.ref, sv)
		}
		checkErr(t, err, tc.code, "server", tc.want...)
	}
	// IDs match exactly: a different case is looked up as a name.
	if sv, err := x.s.FindServer("S1"); err != nil || sv.ID != "s3" {
		t.Errorf("FindServer(S1) = %+v, %v; want s3 by name", sv, err)
	}
}

func TestModelHelpers(t *testing.T) {
	x := newTester(t)
	// Same creation time: ordered by ID.
	for _, p := range []*ServerAdd{
		{ID: "b", Name: "b", TokenHash: HashToken("b")},
		{ID: "a", Name: "a", TokenHash: HashToken("a")},
	} {
		if _, err := x.s.Apply(1, MustCommand(t0, p)); err != nil {
			t.Fatal(err)
		}
	}
	x.idx = 1
	x.addServer("c", "c") // later
	var ids []string
	for _, sv := range x.s.SortedServers() {
		ids = append(ids, sv.ID)
	}
	if !reflect.DeepEqual(ids, []string{"a", "b", "c"}) {
		t.Errorf("SortedServers = %q", ids)
	}
	x.addDomain("z.example", "a")
	x.addDomain("m.example", "c", "a")
	x.addDomain("b.example")
	var names []string
	for _, d := range x.s.SortedDomains() {
		names = append(names, d.Name)
	}
	if !reflect.DeepEqual(names, []string{"b.example", "m.example", "z.example"}) {
		t.Errorf("SortedDomains = %q", names)
	}
	if got := x.s.DomainsOf("a"); !reflect.DeepEqual(got, []string{"m.example", "z.example"}) {
		t.Errorf("DomainsOf(a) = %q", got)
	}
	if got := x.s.DomainsOf("b"); got != nil {
		t.Errorf("DomainsOf(b) = %q", got)
	}
	if sv := x.s.ServerByTokenHash(HashToken("b")); sv == nil || sv.ID != "b" {
		t.Errorf("ServerByTokenHash(b) = %+v", sv)
	}
	if sv := x.s.ServerByTokenHash(HashToken("zzz")); sv != nil {
		t.Errorf("ServerByTokenHash(unknown) = %+v", sv)
	}
	if sv := x.s.ServerByNode(""); sv != nil {
		t.Errorf("ServerByNode(\"\") = %+v", sv)
	}
	if sv := x.s.ServerByNode("n"); sv != nil {
		t.Errorf("ServerByNode(unbound) = %+v", sv)
	}
	if n := x.s.ActiveServerCount(); n != 3 {
		t.Errorf("ActiveServerCount = %d", n)
	}
	if (&Domain{}).Primary() != "" {
		t.Error("Primary of an empty domain")
	}
}
