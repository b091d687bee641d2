package raftstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/lumos-mesh/lumos/state"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor polls cond every 10ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitForCond polls cond every 10ms until it holds (true) or timeout
// passes (false).
func waitForCond(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// recv waits for a value on ch for at most timeout.
func recv[T any](t *testing.T, ch <-chan T, timeout time.Duration) (T, bool) {
	t.Helper()
	select {
	case v, ok := <-ch:
		return v, ok
	case <-time.After(timeout):
		t.Fatalf("nothing received within %s", timeout)
		var zero T
		return zero, false
	}
}

// testLogger writes raft's logs to stderr when RAFTSTORE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("RAFTSTORE_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testConfig(id, dir string) *Config {
	c := DefaultConfig()
	c.NodeID = id
	c.DataDir = dir
	c.BindAddr = "127.0.0.1:0"
	c.Logger = testLogger()
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 10 * time.Millisecond
	c.SnapshotThreshold = 1 << 20 // snapshots only when a test asks
	c.SnapshotInterval = time.Hour
	c.ApplyTimeout = 5 * time.Second
	c.TransportTimeout = 2 * time.Second
	return c
}

func open(t *testing.T, cfg *Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { closeStore(t, s) })
	return s
}

// reopen opens the node again on the same directory and address.
func reopen(t *testing.T, cfg *Config, addr string) *Store {
	t.Helper()
	c := *cfg
	c.BindAddr = addr
	return open(t, &c)
}

func closeStore(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Errorf("close %s: %v", s.ID(), err)
	}
}

func addServerCmd(id, name string) *state.Command {
	return state.MustCommand(time.Now(), &state.ServerAdd{ID: id, Name: name, TokenHash: state.HashToken("token-" + id), TokenPrefix: "lmt_" + id})
}

func eventCmd(msg string) *state.Command {
	return state.MustCommand(time.Now(), &state.EventAdd{Event: state.Event{Type: state.EventServerError, Message: msg}})
}

func apply(t *testing.T, s *Store, cmd *state.Command) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := s.Apply(ctx, cmd)
	if err != nil {
		t.Fatalf("apply %s on %s: %v", cmd.Type, s.ID(), err)
	}
	return v
}

func viewJSON(s *Store) string {
	var b []byte
	s.View(func(st *state.State) {
		var err error
		if b, err = json.Marshal(st); err != nil {
			panic(err)
		}
	})
	return string(b)
}

func hasServer(s *Store, id string) bool {
	ok := false
	s.View(func(st *state.State) { _, ok = st.Servers[id] })
	return ok
}

func stat(s *Store, key string) uint64 {
	n, _ := strconv.ParseUint(s.Stats()[key], 10, 64)
	return n
}

func TestConfigValidate(t *testing.T) {
	ok := func() *Config { return testConfig("n1", t.TempDir()) }
	if err := ok().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if err := DefaultConfig().Validate(); err == nil {
		t.Fatal("default config without node ID validated")
	}
	cases := []struct {
		mod  func(c *Config)
		want string
	}{
		{func(c *Config) { c.NodeID = "" }, "NodeID"},
		{func(c *Config) { c.DataDir = "" }, "DataDir"},
		{func(c *Config) { c.BindAddr = "" }, "BindAddr"},
		{func(c *Config) { c.BindAddr = "localhost:7300" }, "BindAddr"},
		{func(c *Config) { c.BindAddr = "127.0.0.1" }, "BindAddr"},
		{func(c *Config) { c.BindAddr = "127.0.0.1:99999" }, "BindAddr"},
		{func(c *Config) { c.BindAddr = "0.0.0.0:7300" }, "AdvertiseAddr"},
		{func(c *Config) { c.AdvertiseAddr = "0.0.0.0:7300" }, "AdvertiseAddr"},
		{func(c *Config) { c.AdvertiseAddr = "10.0.0.1:0" }, "AdvertiseAddr"},
		{func(c *Config) { c.AdvertiseAddr = "shield.example.com:7300" }, "AdvertiseAddr"},
		{func(c *Config) { c.HeartbeatTimeout = -time.Second }, "HeartbeatTimeout"},
		{func(c *Config) { c.ApplyTimeout = -time.Second }, "ApplyTimeout"},
		{func(c *Config) { c.MaxPool = -1 }, "MaxPool"},
		{func(c *Config) { c.LeaderLeaseTimeout = time.Second }, "LeaderLeaseTimeout"},
		{func(c *Config) { c.ElectionTimeout = 100 * time.Millisecond }, "ElectionTimeout"},
	}
	for _, tc := range cases {
		c := ok()
		tc.mod(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", c, err, tc.want)
		}
		if _, oerr := Open(c); oerr == nil {
			t.Errorf("Open accepted a config Validate rejects: %v", err)
		}
	}

	// Unspecified bind address with an advertise address is fine, and so is
	// a heartbeat below raft's default lease with the lease left unset.
	c := ok()
	c.BindAddr, c.AdvertiseAddr = "0.0.0.0:0", "127.0.0.1:7300"
	c.LeaderLeaseTimeout = 0
	if err := c.Validate(); err != nil {
		t.Errorf("%+v: %v", c, err)
	}
}

func TestSingleNode(t *testing.T) {
	t.Parallel()
	cfg := testConfig("ctl-1", t.TempDir())
	s := open(t, cfg)
	addr := s.Addr()
	if strings.HasSuffix(addr, ":0") || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("Addr %q, want the bound port", addr)
	}
	if s.HasState() {
		t.Fatal("fresh node has state")
	}
	leaderCh, cancelLeader := s.LeadershipChanges()
	defer cancelLeader()
	if v, _ := recv(t, leaderCh, time.Second); v {
		t.Fatal("first leadership value true before bootstrap")
	}
	watch, cancelWatch := s.Watch()
	defer cancelWatch()

	if err := s.Bootstrap(nil); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	if !s.HasState() {
		t.Fatal("no state after bootstrap")
	}
	if v, _ := recv(t, leaderCh, 5*time.Second); !v {
		t.Fatal("leadership change false, want true")
	}
	waitFor(t, 5*time.Second, s.IsLeader)
	if a, id := s.Leader(); a != addr || id != "ctl-1" {
		t.Fatalf("leader %s %s", a, id)
	}

	v := apply(t, s, addServerCmd("srv-1", "edge-1"))
	if sv, ok := v.(*state.Server); !ok || sv.ID != "srv-1" || sv.Name != "edge-1" {
		t.Fatalf("apply result %#v", v)
	}
	if !hasServer(s, "srv-1") {
		t.Fatal("View does not see the server")
	}
	idx, _ := recv(t, watch, time.Second)
	var stIdx uint64
	s.View(func(st *state.State) { stIdx = st.Index })
	if idx != stIdx || idx == 0 {
		t.Fatalf("watch %d, state index %d", idx, stIdx)
	}
	// raft records the applied index just after answering the future.
	waitFor(t, time.Second, func() bool { return s.AppliedIndex() >= idx })

	// Validation errors come back as the *state.Error with its code.
	_, err := s.Apply(context.Background(), addServerCmd("srv-1", "other"))
	var se *state.Error
	if !errors.As(err, &se) || se.Code != state.CodeConflict || !errors.Is(err, state.ErrConflict) {
		t.Fatalf("duplicate: %v (%T), want conflict *state.Error", err, err)
	}
	bad := addServerCmd("srv-2", "edge-2")
	bad.ServerAdd.TokenHash = "nope"
	if _, err := s.Apply(context.Background(), bad); state.CodeOf(err) != state.CodeInvalid {
		t.Fatalf("bad token hash: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Apply(ctx, eventCmd("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	if err := s.Barrier(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Bootstrap(nil); !errors.Is(err, ErrAlreadyBootstrapped) || !errors.Is(err, raft.ErrCantBootstrap) || !errors.Is(err, state.ErrConflict) {
		t.Fatalf("second bootstrap: %v", err)
	}
	if snap := s.Snapshot(); snap.Servers["srv-1"] == nil {
		t.Fatal("Snapshot misses the server")
	}
	before := viewJSON(s)

	closeStore(t, s)
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Apply(context.Background(), eventCmd("x")); !errors.Is(err, ErrClosed) || state.CodeOf(err) != state.CodeUnavailable {
		t.Fatalf("apply after close: %v", err)
	}
	for v := range leaderCh { // closed by Close, false last
		if v {
			t.Error("leadership true after close")
		}
	}
	if _, ok := <-watch; ok {
		// one buffered value may remain; the channel must then be closed
		if _, ok := <-watch; ok {
			t.Fatal("watch channel not closed by Close")
		}
	}

	// Reopen: the state comes back from the log once the node leads again.
	s = reopen(t, cfg, addr)
	if !s.HasState() {
		t.Fatal("reopened node has no state")
	}
	if err := s.Bootstrap(nil); !errors.Is(err, ErrAlreadyBootstrapped) {
		t.Fatalf("bootstrap after reopen: %v", err)
	}
	// A clean close snapshots, so the state is back at open, before any
	// election.
	if got := viewJSON(s); got != before {
		t.Fatalf("state right after reopen:\n%s\nwant\n%s", got, before)
	}
	waitFor(t, 5*time.Second, s.IsLeader)

	// Snapshot, one more command, reopen: snapshot restore plus log tail.
	if err := s.TakeSnapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	apply(t, s, addServerCmd("srv-2", "edge-2"))
	after := viewJSON(s)
	closeStore(t, s)

	s = reopen(t, cfg, addr)
	if n := stat(s, "fsm_restores"); n != 1 {
		t.Fatalf("restores %d, want 1", n)
	}
	if !hasServer(s, "srv-1") {
		t.Fatal("state not restored from the snapshot at open")
	}
	waitFor(t, 5*time.Second, func() bool { return viewJSON(s) == after })
}

// cluster is a set of stores of one test cluster.
type cluster struct {
	t     *testing.T
	cfgs  map[string]*Config
	addrs map[string]string
	nodes map[string]*Store
}

func (c *cluster) open(id string) *Store {
	cfg, ok := c.cfgs[id]
	if !ok {
		cfg = testConfig(id, c.t.TempDir())
		cfg.TrailingLogs = 2 // so a snapshot compacts the log away
		c.cfgs[id] = cfg
	}
	var s *Store
	if addr, ok := c.addrs[id]; ok {
		s = reopen(c.t, cfg, addr)
	} else {
		s = open(c.t, cfg)
		c.addrs[id] = s.Addr()
	}
	c.nodes[id] = s
	return s
}

func (c *cluster) close(id string) {
	closeStore(c.t, c.nodes[id])
	delete(c.nodes, id)
}

// leader waits for exactly one leader among the open nodes, agreed on by
// the given voters.
func (c *cluster) leader(timeout time.Duration, voters ...string) *Store {
	c.t.Helper()
	var l *Store
	waitFor(c.t, timeout, func() bool {
		l = nil
		for _, id := range voters {
			s := c.nodes[id]
			if s.IsLeader() {
				if l != nil {
					return false
				}
				l = s
			}
		}
		if l == nil {
			return false
		}
		for _, id := range voters {
			if _, lid := c.nodes[id].Leader(); lid != l.ID() {
				return false
			}
		}
		return true
	})
	return l
}

// converged waits until every listed node holds the leader's state.
func (c *cluster) converged(timeout time.Duration, leader *Store, ids ...string) {
	c.t.Helper()
	waitFor(c.t, timeout, func() bool {
		want := viewJSON(leader)
		for _, id := range ids {
			if viewJSON(c.nodes[id]) != want {
				return false
			}
		}
		return true
	})
}

// apply applies cmd on whichever voter leads, retrying while leadership
// moves (slow test machines can lose a 100ms lease). A retried command
// that reports a conflict was already committed by the earlier attempt.
func (c *cluster) apply(cmd *state.Command, voters ...string) {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for try := 0; ; try++ {
		var alive []string
		for _, id := range voters {
			if c.nodes[id] != nil {
				alive = append(alive, id)
			}
		}
		l := c.leader(10*time.Second, alive...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := l.Apply(ctx, cmd)
		cancel()
		switch {
		case err == nil:
			return
		case try > 0 && state.CodeOf(err) == state.CodeConflict:
			return
		case errors.Is(err, ErrNotLeader) && time.Now().Before(deadline):
			c.t.Logf("apply %s on %s: %v; retrying", cmd.Type, l.ID(), err)
			continue
		}
		c.t.Fatalf("apply %s on %s: %v", cmd.Type, l.ID(), err)
	}
}

// sawTrue drains a leadership subscription until it reports true.
func sawTrue(t *testing.T, ch <-chan bool) {
	t.Helper()
	waitFor(t, 5*time.Second, func() bool {
		for {
			select {
			case v := <-ch:
				if v {
					return true
				}
			default:
				return false
			}
		}
	})
}

func TestCluster(t *testing.T) {
	t.Parallel()
	c := &cluster{t: t, cfgs: map[string]*Config{}, addrs: map[string]string{}, nodes: map[string]*Store{}}
	voters := []string{"ctl-1", "ctl-2", "ctl-3"}
	var servers []raft.Server
	for _, id := range voters {
		s := c.open(id)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(s.Addr())})
	}
	leaderSubs := map[string]<-chan bool{}
	for _, id := range voters {
		ch, cancel := c.nodes[id].LeadershipChanges()
		defer cancel()
		leaderSubs[id] = ch
	}
	if err := c.nodes["ctl-1"].Bootstrap(servers); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	leader := c.leader(10*time.Second, voters...)
	t.Logf("first leader %s", leader.ID())
	sawTrue(t, leaderSubs[leader.ID()])

	// Apply on the leader; every voter converges.
	c.apply(addServerCmd("srv-1", "edge-1"), voters...)
	leader = c.leader(10*time.Second, voters...)
	c.converged(10*time.Second, leader, voters...)

	// Apply on a follower is refused. (Under heavy load the follower may
	// win an election just then; the event it applies is harmless.)
	waitFor(t, 10*time.Second, func() bool {
		var follower *Store
		for _, id := range voters {
			if !c.nodes[id].IsLeader() {
				follower = c.nodes[id]
				break
			}
		}
		_, err := follower.Apply(context.Background(), eventCmd("from follower"))
		if err == nil {
			return false
		}
		if !errors.Is(err, ErrNotLeader) || !errors.Is(err, raft.ErrNotLeader) || state.CodeOf(err) != state.CodeNotLeader {
			t.Fatalf("apply on follower: %v, want ErrNotLeader", err)
		}
		if err := follower.AddNonvoter("x", "127.0.0.1:1", time.Second); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("add nonvoter on follower: %v", err)
		}
		return true
	})

	// A shield joins as a non-voter and receives everything.
	shield := c.open("shield-1")
	if shield.HasState() {
		t.Fatal("new shield has state")
	}
	waitFor(t, 15*time.Second, func() bool {
		err := c.leader(10*time.Second, voters...).AddNonvoter("shield-1", shield.Addr(), 5*time.Second)
		if err != nil && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("add nonvoter: %v", err)
		}
		return err == nil
	})
	leader = c.leader(10*time.Second, voters...)
	c.converged(10*time.Second, leader, "shield-1")
	if !shield.HasState() || shield.IsLeader() {
		t.Fatalf("shield: has state %v, state %v", shield.HasState(), shield.State())
	}
	conf, err := leader.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	suffrage := map[string]raft.ServerSuffrage{}
	for _, s := range conf {
		suffrage[string(s.ID)] = s.Suffrage
	}
	if len(conf) != 4 || suffrage["shield-1"] != raft.Nonvoter || suffrage["ctl-2"] != raft.Voter {
		t.Fatalf("configuration %+v", conf)
	}

	// A restarted shield catches up from the log.
	c.close("shield-1")
	for i := range 3 {
		c.apply(eventCmd(fmt.Sprintf("while shield down %d", i)), voters...)
	}
	shield = c.open("shield-1")
	// At open the shield restores at most its own latest snapshot.
	atOpen := stat(shield, "fsm_restores")
	leader = c.leader(10*time.Second, voters...)
	c.converged(10*time.Second, leader, "shield-1")
	if n := stat(shield, "fsm_restores"); n != atOpen {
		t.Fatalf("shield restored %d snapshots after open, want none (log catch-up)", n-atOpen)
	}

	// ... and from a snapshot once the voters compacted their logs (all of
	// them, so whichever leads must send the snapshot).
	c.close("shield-1")
	for i := range 5 {
		c.apply(eventCmd(fmt.Sprintf("before snapshot %d", i)), voters...)
	}
	leader = c.leader(10*time.Second, voters...)
	c.converged(10*time.Second, leader, voters...)
	for _, id := range voters {
		if err := c.nodes[id].TakeSnapshot(); err != nil {
			t.Fatalf("snapshot on %s: %v", id, err)
		}
	}
	shield = c.open("shield-1")
	atOpen = stat(shield, "fsm_restores")
	waitFor(t, 10*time.Second, func() bool { return stat(shield, "fsm_restores") > atOpen })
	leader = c.leader(10*time.Second, voters...)
	c.converged(10*time.Second, leader, "shield-1")
	shieldWatch, cancelShieldWatch := shield.Watch()
	defer cancelShieldWatch()

	// Kill the leader: a new one is elected and applies continue.
	old := leader.ID()
	c.close(old)
	var alive []string
	for _, id := range voters {
		if id != old {
			alive = append(alive, id)
		}
	}
	leader = c.leader(10*time.Second, alive...)
	t.Logf("new leader %s", leader.ID())
	if leader.ID() == old {
		t.Fatal("closed node still leads")
	}
	sawTrue(t, leaderSubs[leader.ID()])
	c.apply(addServerCmd("srv-2", "edge-2"), alive...)
	leader = c.leader(10*time.Second, alive...)
	c.converged(10*time.Second, leader, append(alive, "shield-1")...)
	idx, _ := recv(t, shieldWatch, 5*time.Second)
	if idx == 0 || idx != stat(shield, "fsm_index") {
		t.Fatalf("shield watch %d, fsm_index %d", idx, stat(shield, "fsm_index"))
	}

	// Removing the shield: raft stops replicating to it after sending the
	// configuration that leaves it out, and the shield sees that
	// configuration (it does not shut itself down: ShutdownOnRemove only
	// concerns a leader removing itself).
	waitFor(t, 15*time.Second, func() bool {
		err := c.leader(10*time.Second, alive...).RemoveServer("shield-1", 5*time.Second)
		if err != nil && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("remove server: %v", err)
		}
		return err == nil
	})
	if conf, err := c.leader(10*time.Second, alive...).Configuration(); err != nil || len(conf) != 3 {
		t.Fatalf("configuration after removal: %+v, %v", conf, err)
	}
	waitFor(t, 5*time.Second, func() bool {
		conf, err := shield.Configuration()
		if err != nil {
			t.Fatalf("configuration on the removed shield: %v", err)
		}
		for _, s := range conf {
			if s.ID == "shield-1" {
				return false
			}
		}
		return len(conf) == 3
	})

	// Close another voter: one of three cannot commit.
	c.close(alive[0])
	last := c.nodes[alive[1]]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err = last.Apply(ctx, eventCmd("minority"))
	if err == nil {
		t.Fatal("apply without a quorum succeeded")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("apply without a quorum took %s", d)
	}
	t.Logf("minority apply: %v after %s", err, time.Since(start).Round(time.Millisecond))
	waitFor(t, 5*time.Second, func() bool { return !last.IsLeader() })
}

// countingLayer is a raft.StreamLayer over TCP that counts its use.
type countingLayer struct {
	net.Listener
	dials  atomic.Int32
	closed atomic.Bool
}

func (l *countingLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	l.dials.Add(1)
	return net.DialTimeout("tcp", string(addr), timeout)
}

func (l *countingLayer) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

func TestStreamLayer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	layer := &countingLayer{Listener: ln}
	cfg := testConfig("ctl-1", t.TempDir())
	cfg.BindAddr = "" // unused with a stream layer
	cfg.StreamLayer = layer
	a := open(t, cfg)
	if a.Addr() != ln.Addr().String() {
		t.Fatalf("Addr %s, want the layer's %s", a.Addr(), ln.Addr())
	}
	b := open(t, testConfig("shield-1", t.TempDir()))
	if err := a.Bootstrap(nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, a.IsLeader)
	if err := a.AddNonvoter(b.ID(), b.Addr(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	apply(t, a, addServerCmd("srv-1", "edge-1"))
	waitFor(t, 5*time.Second, func() bool { return hasServer(b, "srv-1") })
	if layer.dials.Load() == 0 {
		t.Fatal("the leader did not dial through the stream layer")
	}
	closeStore(t, a)
	if !layer.closed.Load() {
		t.Fatal("Close did not close the stream layer")
	}

	// Open closes the layer when it fails.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	layer2 := &countingLayer{Listener: ln2}
	bad := testConfig("ctl-2", t.TempDir())
	bad.StreamLayer = layer2
	if err := os.WriteFile(filepath.Join(bad.DataDir, "raft"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad); err == nil {
		t.Fatal("Open succeeded with DataDir/raft being a file")
	}
	if !layer2.closed.Load() {
		t.Fatal("failed Open did not close the stream layer")
	}
}

func TestOpenLayoutAndAdvertise(t *testing.T) {
	cfg := testConfig("ctl-1", filepath.Join(t.TempDir(), "data"))
	cfg.AdvertiseAddr = "127.0.0.1:7399"
	s := open(t, cfg)
	if s.Addr() != "127.0.0.1:7399" {
		t.Fatalf("Addr %s, want the advertised address", s.Addr())
	}
	for _, p := range []string{cfg.DataDir, filepath.Join(cfg.DataDir, "raft"), filepath.Join(cfg.DataDir, "raft", "snapshots")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want a 0700 directory", p, fi.Mode())
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "raft", "raft.db")); err != nil {
		t.Errorf("raft.db: %v", err)
	}
	if st := s.Stats(); st["node_id"] != "ctl-1" || st["state"] != "Follower" || st["fsm_index"] != "0" {
		t.Errorf("stats %v", st)
	}
}

// TestHeartbeatGuard checks that stopHeartbeats waits for a heartbeat that
// is being handled and refuses later ones, so Close never closes the log
// store under raft's heartbeat fast path.
func TestHeartbeatGuard(t *testing.T) {
	nt, err := raft.NewTCPTransportWithConfig("127.0.0.1:0", nil, &raft.NetworkTransportConfig{MaxPool: 1, Timeout: 2 * time.Second, Logger: NewHCLogger(nil, "")})
	if err != nil {
		t.Fatal(err)
	}
	gt := &guardedTransport{NetworkTransport: nt}
	defer func() {
		gt.CloseStreams()
		_ = gt.Close()
	}()
	entered, release := make(chan struct{}), make(chan struct{})
	gt.SetHeartbeatHandler(func(rpc raft.RPC) {
		close(entered)
		<-release
		rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
	})

	client, err := raft.NewTCPTransportWithConfig("127.0.0.1:0", nil, &raft.NetworkTransportConfig{MaxPool: 1, Timeout: 2 * time.Second, Logger: NewHCLogger(nil, "")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		client.CloseStreams()
		_ = client.Close()
	}()
	heartbeat := func() error {
		req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("leader"), Addr: []byte(client.LocalAddr())}, Term: 1}
		return client.AppendEntries("node", gt.LocalAddr(), req, &raft.AppendEntriesResponse{})
	}
	first := make(chan error, 1)
	go func() { first <- heartbeat() }()
	<-entered

	stopped := make(chan struct{})
	go func() {
		gt.stopHeartbeats()
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("stopHeartbeats returned while a heartbeat was being handled")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if _, ok := recv(t, stopped, 5*time.Second); ok {
		t.Fatal("stopped channel delivered a value")
	}
	if err := <-first; err != nil {
		t.Fatalf("heartbeat in flight: %v", err)
	}
	if err := heartbeat(); err == nil || !strings.Contains(err.Error(), raft.ErrRaftShutdown.Error()) {
		t.Fatalf("heartbeat after stop: %v, want %v", err, raft.ErrRaftShutdown)
	}
}
