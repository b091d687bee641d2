package node

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

// TestAdminToken is the admin token of clusters made by NewTestCluster.
const TestAdminToken = "lma_test_admin_token_0123456789"

// TestCluster is an in-process cluster on loopback sockets for tests: real
// Raft on disk, real memberlist sockets, real HTTP. Model: hashicorp/raft's
// MakeCluster.
type TestCluster struct {
	t         testing.TB
	base      string
	GossipKey []byte

	mu    sync.Mutex
	nodes map[string]*Node
	cfgs  map[string]*Config
	order []string
}

// TestClusterOptions shapes a test cluster.
type TestClusterOptions struct {
	Controls int // control nodes, bootstrapped together (default 3)
	// Tune lets a test change each node's config before it starts.
	Tune func(*Config)
}

// NewTestCluster starts opts.Controls control nodes that bootstrap
// together and waits for a leader. It registers cleanup with t.
func NewTestCluster(t testing.TB, opts TestClusterOptions) *TestCluster {
	t.Helper()
	if opts.Controls == 0 {
		opts.Controls = 3
	}
	key, err := mesh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, _ := mesh.ParseKey(key)
	c := &TestCluster{t: t, base: t.TempDir(), GossipKey: k, nodes: map[string]*Node{}, cfgs: map[string]*Config{}}
	t.Cleanup(c.Close)
	var first string
	for i := 1; i <= opts.Controls; i++ {
		cfg := c.baseConfig(fmt.Sprintf("c%d", i))
		cfg.Control = true
		cfg.BootstrapExpect = opts.Controls
		cfg.AdminTokenHash = state.HashToken(TestAdminToken)
		if first != "" {
			cfg.Peers = []string{first}
		}
		if opts.Tune != nil {
			opts.Tune(cfg)
		}
		n := c.start(cfg)
		if first == "" {
			first = n.GossipAddr()
		}
	}
	c.WaitLeader(15 * time.Second)
	return c
}

func (c *TestCluster) baseConfig(name string) *Config {
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.DataDir = filepath.Join(c.base, name)
	cfg.BindAddr = "127.0.0.1:0"
	cfg.RaftBind = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.AdvertiseIP = "127.0.0.1"
	cfg.GossipKey = c.GossipKey
	cfg.Profile = "local"
	cfg.RaftHeartbeatTimeout = 300 * time.Millisecond
	cfg.RaftElectionTimeout = 300 * time.Millisecond
	cfg.RaftLeaderLease = 150 * time.Millisecond
	cfg.Version = "test"
	if os.Getenv("LUMOS_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	return cfg
}

func (c *TestCluster) start(cfg *Config) *Node {
	c.t.Helper()
	n, err := New(context.Background(), cfg)
	if err != nil {
		c.t.Fatalf("start node %s: %v", cfg.Name, err)
	}
	// Pin the ports the node got so a restart comes back on the same ones.
	cc := *cfg
	cc.BindAddr = n.GossipAddr()
	cc.RaftBind = n.RaftAddr()
	if n.httpLn != nil {
		cc.HTTPAddr = n.httpLn.Addr().String()
	}
	cc.Token = ""
	c.mu.Lock()
	if _, ok := c.nodes[cfg.Name]; !ok && c.cfgs[cfg.Name] == nil {
		c.order = append(c.order, cfg.Name)
	}
	c.nodes[cfg.Name] = n
	c.cfgs[cfg.Name] = &cc
	c.mu.Unlock()
	return n
}

// AddShield creates a server through the API, starts a shield node that
// joins with its token, and waits until the leader sees it online. The
// shield runs no HAProxy; see AddHAProxyShield.
func (c *TestCluster) AddShield(name string) *Node {
	c.t.Helper()
	return c.addShield(name, nil)
}

// AddHAProxyShield adds a shield that runs a real HAProxy on free loopback
// ports (read them from the node's config: Config(name).HAProxy). tune may
// adjust the HAProxy settings before the shield starts.
func (c *TestCluster) AddHAProxyShield(name string, tune func(*HAProxyConfig)) *Node {
	c.t.Helper()
	hc := &HAProxyConfig{
		ListenHTTP:    freeAddr(c.t),
		ListenTLS:     freeAddr(c.t),
		StatsInterval: 500 * time.Millisecond,
	}
	if tune != nil {
		tune(hc)
	}
	return c.addShield(name, hc)
}

// freeAddr returns a loopback IP:PORT that was free a moment ago, below
// the ephemeral range, so outgoing connections (HAProxy's health checks)
// do not take it in the meantime.
func freeAddr(t testing.TB) string {
	t.Helper()
	for i := 0; i < 200; i++ {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	t.Fatal("no free loopback port")
	return ""
}

func (c *TestCluster) addShield(name string, hc *HAProxyConfig) *Node {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Client().AddServer(ctx, name)
	if err != nil {
		c.t.Fatalf("add server %s: %v", name, err)
	}
	cfg := c.baseConfig(name)
	cfg.Shield = true
	cfg.GossipKey = nil
	cfg.Token = resp.Token
	cfg.ControlURL = c.Leader().APIURL()
	cfg.HAProxy = hc
	n := c.start(cfg)
	c.WaitFor(10*time.Second, func() bool {
		sv, err := c.Client().Server(context.Background(), resp.Server.ID)
		return err == nil && sv.Status == api.StatusOnline
	}, "shield %s online", name)
	return n
}

// Node returns a running node by name, or nil.
func (c *TestCluster) Node(name string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[name]
}

// Config returns the config a node was (or will be re-)started with.
func (c *TestCluster) Config(name string) *Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfgs[name]
}

// Running returns the running nodes in start order.
func (c *TestCluster) Running() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, name := range c.order {
		if n := c.nodes[name]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Controls returns the running control nodes.
func (c *TestCluster) Controls() []*Node {
	var out []*Node
	for _, n := range c.Running() {
		if n.cfg.Control {
			out = append(out, n)
		}
	}
	return out
}

// Kill stops a node as a crash would (no gossip leave).
func (c *TestCluster) Kill(name string) {
	c.stop(name, false)
}

// Stop stops a node cleanly.
func (c *TestCluster) Stop(name string) {
	c.stop(name, true)
}

func (c *TestCluster) stop(name string, clean bool) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[name]
	delete(c.nodes, name)
	c.mu.Unlock()
	if n == nil {
		c.t.Fatalf("node %s is not running", name)
	}
	if clean {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Close(ctx)
	} else {
		n.Kill()
	}
}

// Restart starts a stopped node again on its data dir and ports.
func (c *TestCluster) Restart(name string) *Node {
	c.t.Helper()
	cfg := c.Config(name)
	if cfg == nil {
		c.t.Fatalf("unknown node %s", name)
	}
	cc := *cfg
	var n *Node
	// The ports were just freed; retry briefly if the OS has not let go.
	c.WaitFor(10*time.Second, func() bool {
		var err error
		n, err = New(context.Background(), &cc)
		if err != nil {
			c.t.Logf("restart %s: %v", name, err)
			return false
		}
		return true
	}, "restart %s", name)
	c.mu.Lock()
	c.nodes[name] = n
	c.mu.Unlock()
	return n
}

// Leader returns the running node that is the Raft leader; it fails the
// test if there is none.
func (c *TestCluster) Leader() *Node {
	c.t.Helper()
	for _, n := range c.Controls() {
		if n.IsLeader() {
			return n
		}
	}
	c.t.Fatal("no leader")
	return nil
}

// WaitLeader waits until exactly one running control node is leader.
func (c *TestCluster) WaitLeader(timeout time.Duration) *Node {
	c.t.Helper()
	var leader *Node
	c.WaitFor(timeout, func() bool {
		leader = nil
		count := 0
		for _, n := range c.Controls() {
			if n.IsLeader() {
				leader = n
				count++
			}
		}
		return count == 1
	}, "a single leader")
	return leader
}

// Client returns an API client for a running control node (the leader if
// there is one).
func (c *TestCluster) Client() *api.Client {
	c.t.Helper()
	var target *Node
	for _, n := range c.Controls() {
		if target == nil || n.IsLeader() {
			target = n
		}
	}
	if target == nil {
		c.t.Fatal("no control node running")
	}
	cl, err := api.NewClient(target.APIURL(), TestAdminToken)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// ClientFor returns an API client for one node.
func (c *TestCluster) ClientFor(n *Node) *api.Client {
	cl, err := api.NewClient(n.APIURL(), TestAdminToken)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// WaitConverged waits until every running node has applied the leader's
// last index and holds byte-identical state.
func (c *TestCluster) WaitConverged(timeout time.Duration) {
	c.t.Helper()
	c.WaitFor(timeout, func() bool {
		// The leader must have applied everything it has logged, or empty
		// states right after a restart would look converged.
		var leader *Node
		for _, n := range c.Controls() {
			if n.IsLeader() {
				leader = n
			}
		}
		if leader == nil || leader.Store().Barrier(time.Second) != nil {
			return false
		}
		nodes := c.Running()
		var want []byte
		for i, n := range nodes {
			b := stateJSON(n)
			if i == 0 {
				want = b
			} else if string(b) != string(want) {
				return false
			}
		}
		return true
	}, "all nodes converge to the same state")
}

// WaitFor polls cond until it is true or timeout passes, then fails the
// test naming what it waited for.
func (c *TestCluster) WaitFor(timeout time.Duration, cond func() bool, what string, args ...any) {
	c.t.Helper()
	if !Eventually(timeout, cond) {
		c.t.Fatalf("timed out after %s waiting for %s", timeout, fmt.Sprintf(what, args...))
	}
}

// Eventually polls cond every 20 ms until it is true (true) or timeout
// passes (false).
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close stops every node.
func (c *TestCluster) Close() {
	for _, n := range c.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n.Close(ctx)
		cancel()
	}
	c.mu.Lock()
	c.nodes = map[string]*Node{}
	c.mu.Unlock()
}

// DataDir returns a node's data dir.
func (c *TestCluster) DataDir(name string) string { return filepath.Join(c.base, name) }

// RemoveDataDir deletes a stopped node's data dir.
func (c *TestCluster) RemoveDataDir(name string) error { return os.RemoveAll(c.DataDir(name)) }

func stateJSON(n *Node) []byte {
	var b []byte
	n.store.View(func(st *state.State) { b = mustJSON(st) })
	return b
}
