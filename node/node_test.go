package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/state"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// http.Client keep-alive connections close on their own.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestClusterConverges is the basic flow: three control nodes elect a
// leader, two shields join with their tokens, a domain is added and
// assigned, and every node holds the same state.
func TestClusterConverges(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{})
	s1 := c.AddShield("s1")
	c.AddShield("s2")
	ctx := ctxT(t)
	cl := c.Client()
	if _, err := cl.AddDomain(ctx, &api.AddDomainRequest{Name: "shop.example.com", Origins: []string{"10.0.0.5:8080", "10.0.0.6:8080"}}); err != nil {
		t.Fatal(err)
	}
	d, err := cl.AssignDomain(ctx, "shop.example.com", []string{"s1", "s2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Servers) != 2 || d.Servers[0].Name != "s1" || !d.Servers[0].Primary || d.Servers[1].Name != "s2" {
		t.Fatalf("assign order: %+v", d.Servers)
	}
	c.WaitConverged(10 * time.Second)

	// Every control node answers reads from its own copy.
	for _, n := range c.Controls() {
		got, err := c.ClientFor(n).Domain(ctx, "shop.example.com")
		if err != nil || got.Version != d.Version {
			t.Fatalf("%s: domain %+v, err %v", n.Name(), got, err)
		}
	}
	// The shield holds the state on its own disk and says it is current.
	var has bool
	s1.View(func(st *state.State) { _, has = st.Domains["shop.example.com"] })
	if !has {
		t.Fatal("shield s1 has no copy of the domain")
	}
	c.WaitFor(5*time.Second, func() bool {
		sv, err := cl.Server(ctx, "s1")
		return err == nil && sv.Current && sv.AppliedIndex >= d.Version
	}, "s1 reported current")

	// The shields are non-voters, the control nodes voters.
	conf, err := c.Leader().Store().Configuration()
	if err != nil {
		t.Fatal(err)
	}
	suffrage := map[string]raft.ServerSuffrage{}
	for _, s := range conf {
		suffrage[string(s.ID)] = s.Suffrage
	}
	for _, name := range []string{"c1", "c2", "c3"} {
		if suffrage[name] != raft.Voter {
			t.Errorf("%s suffrage %v, want voter", name, suffrage[name])
		}
	}
	for _, name := range []string{"s1", "s2"} {
		if s, ok := suffrage[name]; !ok || s != raft.Nonvoter {
			t.Errorf("%s suffrage %v (in config %v), want nonvoter", name, s, ok)
		}
	}
}

// TestLeaderLoss kills the leader: a new one is elected, writes keep
// working, and the old leader catches up when it returns.
func TestLeaderLoss(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{})
	c.AddShield("s1")
	old := c.Leader()
	start := time.Now()
	c.Kill(old.Name())
	nl := c.WaitLeader(10 * time.Second)
	t.Logf("new leader %s elected %s after killing %s", nl.Name(), time.Since(start).Round(time.Millisecond), old.Name())
	if nl.Name() == old.Name() {
		t.Fatal("old leader still leads")
	}
	ctx := ctxT(t)
	// Writes through a follower are forwarded to the new leader.
	var follower *Node
	for _, n := range c.Controls() {
		if !n.IsLeader() {
			follower = n
		}
	}
	if _, err := c.ClientFor(follower).AddDomain(ctx, &api.AddDomainRequest{Name: "after.example.com", Origins: []string{"192.168.1.10:80"}}); err != nil {
		t.Fatalf("write through follower %s: %v", follower.Name(), err)
	}
	c.Restart(old.Name())
	c.WaitConverged(15 * time.Second)
}

// TestMinorityCannotCommit leaves one control node of three: it cannot
// commit, and the API says so instead of hanging.
func TestMinorityCannotCommit(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{})
	leader := c.Leader()
	var survivor *Node
	for _, n := range c.Controls() {
		if n != leader && survivor == nil {
			survivor = n
			continue
		}
		if n != survivor {
			c.Kill(n.Name())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := survivor.Apply(ctx, state.MustCommand(time.Now(), &state.PlanSet{Plan: state.Plan{Name: state.PlanPro, Limit: 5}}))
	if err == nil {
		t.Fatal("a lone control node of three committed a write")
	}
	var st state.Plan
	survivor.View(func(s *state.State) { st = s.Plan })
	if st.Name != state.DefaultPlan.Name {
		t.Fatalf("plan changed on the minority: %+v", st)
	}
	_, err = c.ClientFor(survivor).SetPlan(ctx, "pro")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != 503 {
		t.Fatalf("API write on a minority: %v, want a 503", err)
	}
}

// TestShieldCatchUp stops a shield, changes the state, and restarts it on
// the same data dir without its token: it catches up from the log. Then
// with the log compacted past what it has, from a snapshot.
func TestShieldCatchUp(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{Tune: func(cfg *Config) {
		cfg.RaftSnapshotThreshold = 8
		cfg.RaftTrailingLogs = 4
	}})
	c.AddShield("s1")
	ctx := ctxT(t)
	cl := c.Client()

	c.Stop("s1")
	for _, name := range []string{"a.example.com", "b.example.com"} {
		if _, err := cl.AddDomain(ctx, &api.AddDomainRequest{Name: name, Origins: []string{"10.1.1.1:80"}, Servers: []string{"s1"}}); err != nil {
			t.Fatal(err)
		}
	}
	c.Restart("s1")
	c.WaitConverged(15 * time.Second)

	// Now far behind a compacted log.
	c.Stop("s1")
	sv, err := cl.Server(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := cl.RenameServer(ctx, sv.ID, "s1-"+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Controls() {
		if err := n.Store().TakeSnapshot(); err != nil {
			t.Fatalf("snapshot on %s: %v", n.Name(), err)
		}
	}
	s1 := c.Restart("s1")
	c.WaitConverged(20 * time.Second)
	snaps, _ := filepath.Glob(filepath.Join(c.DataDir("s1"), "raft", "snapshots", "*"))
	if len(snaps) == 0 {
		t.Fatal("shield caught up without installing a snapshot; the log was expected to be compacted")
	}
	var name string
	s1.View(func(st *state.State) {
		if sv := st.ServerByNode("s1"); sv != nil {
			name = sv.Name
		}
	})
	if name != "s1-t" {
		t.Fatalf("shield's copy names itself %q, want s1-t", name)
	}
}

// TestJoinRefusals: a wrong token, a token bound to another live node and a
// decommissioned server's token are refused and change nothing.
func TestJoinRefusals(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{})
	c.AddShield("s1")
	ctx := ctxT(t)
	cl := c.Client()
	spare, err := cl.AddServer(ctx, "spare")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DecommissionServer(ctx, "spare"); err != nil {
		t.Fatal(err)
	}
	before := stateJSON(c.Leader())

	try := func(name, token string) error {
		cfg := c.baseConfig(name)
		cfg.Shield = true
		cfg.GossipKey = nil
		cfg.Token = token
		cfg.ControlURL = c.Leader().APIURL()
		n, err := New(ctx, cfg)
		if err == nil {
			n.Close(ctx)
			return nil
		}
		return err
	}
	if err := try("x1", "lmt_not_a_real_token"); err == nil || !contains(err.Error(), "not valid") {
		t.Errorf("wrong token: %v", err)
	}
	if err := try("x2", spare.Token); err == nil || !contains(err.Error(), "decommissioned") {
		t.Errorf("decommissioned token: %v", err)
	}
	// s1's token, presented by another node while s1 is alive.
	var s1Token string
	{
		// The harness does not keep tokens; create a new server and join it
		// twice instead.
		resp, err := cl.AddServer(ctx, "twice")
		if err != nil {
			t.Fatal(err)
		}
		s1Token = resp.Token
		cfg := c.baseConfig("tw1")
		cfg.Shield = true
		cfg.GossipKey = nil
		cfg.Token = s1Token
		cfg.ControlURL = c.Leader().APIURL()
		c.start(cfg)
		c.WaitFor(10*time.Second, func() bool {
			sv, err := cl.Server(ctx, "twice")
			return err == nil && sv.Status == api.StatusOnline
		}, "tw1 online")
		before = stateJSON(c.Leader())
	}
	if err := try("tw2", s1Token); err == nil || !contains(err.Error(), "already in use by live node") {
		t.Errorf("token bound to a live node: %v", err)
	}
	if after := stateJSON(c.Leader()); string(after) != string(before) {
		t.Errorf("refused joins changed the state:\nbefore %s\nafter  %s", before, after)
	}
	// A restart on the same data dir needs no token.
	c.Stop("tw1")
	cfg := c.Config("tw1")
	if cfg.Token != "" {
		t.Fatal("harness kept the token")
	}
	c.Restart("tw1")
	c.WaitFor(10*time.Second, func() bool {
		sv, err := cl.Server(ctx, "twice")
		return err == nil && sv.Status == api.StatusOnline
	}, "tw1 back online without its token")
}

// TestDecommission: the shield is told through the log, leaves and stops;
// the leader removes its node from Raft after the grace period; it can
// never rejoin.
func TestDecommission(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{Tune: func(cfg *Config) { cfg.DecommissionGrace = 500 * time.Millisecond }})
	s1 := c.AddShield("s1")
	ctx := ctxT(t)
	cl := c.Client()
	if _, err := cl.AddDomain(ctx, &api.AddDomainRequest{Name: "only.example.com", Origins: []string{"10.0.0.1:80"}, Servers: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	res, err := cl.DecommissionServer(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Orphaned) != 1 || res.Orphaned[0] != "only.example.com" {
		t.Fatalf("orphaned %v", res.Orphaned)
	}
	select {
	case <-s1.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("decommissioned shield did not stop")
	}
	if !errors.Is(s1.StopReason(), ErrDecommissioned) {
		t.Fatalf("stop reason %v", s1.StopReason())
	}
	c.mu.Lock()
	delete(c.nodes, "s1")
	c.mu.Unlock()
	c.WaitFor(10*time.Second, func() bool {
		conf, err := c.Leader().Store().Configuration()
		if err != nil {
			return false
		}
		for _, s := range conf {
			if s.ID == "s1" {
				return false
			}
		}
		sv, err := cl.Server(ctx, "s1")
		return err == nil && sv.NodeRemoved && sv.Status == api.StatusDecommissioned
	}, "s1 removed from raft after the grace period")
	c.WaitFor(10*time.Second, func() bool {
		for _, n := range c.Controls() {
			if _, ok := n.Mesh().Member("s1"); ok {
				return false
			}
		}
		return true
	}, "s1 forgotten by every control node's gossip table")

	// Its data dir refuses to start again.
	cfg := c.Config("s1")
	cc := *cfg
	if _, err := New(ctx, &cc); !errors.Is(err, ErrDecommissioned) {
		t.Fatalf("restart of a decommissioned shield: %v", err)
	}
}

// TestRestartAllKeepsState stops every node and starts them again: the
// cluster comes back with the same state and never bootstraps twice.
func TestRestartAllKeepsState(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{})
	c.AddShield("s1")
	ctx := ctxT(t)
	if _, err := c.Client().AddDomain(ctx, &api.AddDomainRequest{Name: "keep.example.com", Origins: []string{"10.0.0.1:80"}, Servers: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(10 * time.Second)
	before := stateJSON(c.Leader())
	names := []string{}
	for _, n := range c.Running() {
		names = append(names, n.Name())
	}
	for _, name := range names {
		c.Stop(name)
	}
	for _, name := range names {
		c.Restart(name)
	}
	c.WaitLeader(15 * time.Second)
	c.WaitConverged(15 * time.Second)
	if after := stateJSON(c.Leader()); string(after) != string(before) {
		t.Fatalf("state changed across a full restart:\nbefore %s\nafter  %s", before, after)
	}
	c.WaitFor(10*time.Second, func() bool {
		sv, err := c.Client().Server(ctx, "s1")
		return err == nil && sv.Status == api.StatusOnline
	}, "s1 online after restart")
}

// TestLateControlNodeBecomesVoter: a fourth control node started later with
// a peer and no bootstrap-expect is added as a voter by the leader.
func TestLateControlNodeBecomesVoter(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{})
	cfg := c.baseConfig("c4")
	cfg.Control = true
	cfg.AdminTokenHash = state.HashToken(TestAdminToken)
	cfg.Peers = []string{c.Leader().GossipAddr()}
	c.start(cfg)
	c.WaitFor(10*time.Second, func() bool {
		conf, err := c.Leader().Store().Configuration()
		if err != nil {
			return false
		}
		for _, s := range conf {
			if s.ID == "c4" && s.Suffrage == raft.Voter {
				return true
			}
		}
		return false
	}, "c4 added as a voter")
	c.WaitConverged(10 * time.Second)
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	good := func() *Config {
		c := DefaultConfig()
		c.Name, c.DataDir, c.Control = "n1", dir, true
		c.AdminTokenHash = state.HashToken(TestAdminToken)
		c.GossipKey = make([]byte, 32)
		return c
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "--name is required"},
		{"bad name", func(c *Config) { c.Name = "a b" }, "--name"},
		{"no role", func(c *Config) { c.Control = false }, "control node, a shield"},
		{"no admin token", func(c *Config) { c.AdminTokenHash = "" }, "admin token"},
		{"no gossip key", func(c *Config) { c.GossipKey = nil }, "gossip encryption is required"},
		{"short key", func(c *Config) { c.GossipKey = make([]byte, 16) }, "32 bytes"},
		{"bad bind", func(c *Config) { c.BindAddr = "nope" }, "--bind"},
		{"bad raft bind", func(c *Config) { c.RaftBind = "host:1" }, "--raft-bind"},
		{"bad advertise", func(c *Config) { c.AdvertiseIP = "0.0.0.0" }, "--advertise"},
		{"bad expect", func(c *Config) { c.BootstrapExpect = 9 }, "--bootstrap-expect"},
		{"bad profile", func(c *Config) { c.Profile = "fast" }, "profile"},
		{"bad control url", func(c *Config) { c.ControlURL = "ftp://x" }, "control URL"},
		{"bad peer", func(c *Config) { c.Peers = []string{"x"} }, "peer"},
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mod(c)
			err := c.Validate()
			if err == nil || !errors.Is(err, ErrConfig) || !contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDataDirLockedAndOwned(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{Controls: 1})
	n := c.Controls()[0]
	cfg := *c.Config(n.Name())
	if _, err := New(context.Background(), &cfg); err == nil || !contains(err.Error(), "in use") {
		t.Fatalf("second process on a data dir: %v", err)
	}
	c.Stop(n.Name())
	cfg.Name = "other"
	if _, err := New(context.Background(), &cfg); err == nil || !contains(err.Error(), "belongs to node") {
		t.Fatalf("data dir of another node: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.DataDir(n.Name()), identityFile)); err != nil {
		t.Fatal(err)
	}
}

func contains(s, sub string) bool {
	return strings.Contains(s, sub)
}

// TestShieldKeepsStateWithoutControlPlane: with every control node down, a
// restarted shield still holds the whole state from its own disk.
func TestShieldKeepsStateWithoutControlPlane(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{})
	c.AddShield("s1")
	ctx := ctxT(t)
	if _, err := c.Client().AddDomain(ctx, &api.AddDomainRequest{Name: "kept.example.com", Origins: []string{"10.0.0.1:80"}, Servers: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(10 * time.Second)
	want := stateJSON(c.Node("s1"))
	for _, n := range c.Controls() {
		c.Kill(n.Name())
	}
	c.Stop("s1")
	s1 := c.Restart("s1")
	c.WaitFor(5*time.Second, func() bool { return string(stateJSON(s1)) == string(want) }, "s1's state back from its disk")
	if _, leader := s1.Store().Leader(); leader != "" {
		t.Fatalf("s1 knows a leader (%s) with every control node down", leader)
	}
}
