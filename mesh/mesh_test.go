package mesh

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger returns a logger for test nodes: silent unless MESH_TEST_LOG is
// set (memberlist goroutines may still log briefly after a test ends, so the
// logger must not write through *testing.T).
func testLogger(node string) *slog.Logger {
	if os.Getenv("MESH_TEST_LOG") == "" {
		return nil
	}
	h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h).With("node", node)
}

// eventually polls cond until it returns nil or timeout passes, then fails
// the test with cond's last error.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	var last error
	if !pollUntil(timeout, func() bool { last = cond(); return last == nil }) {
		t.Fatalf("condition not met within %s: %v", timeout, last)
	}
}

// newNode starts one node from LocalTestConfig, closed at the end of the test.
func newNode(t *testing.T, name string, configure func(*Config)) *Mesh {
	t.Helper()
	c := LocalTestConfig(name)
	c.Logger = testLogger(name)
	if configure != nil {
		configure(c)
	}
	m, err := New(c)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { closeNode(t, m) })
	return m
}

func closeNode(t *testing.T, m *Mesh) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Errorf("close %s: %v", m.LocalName(), err)
	}
}

// waitEvent reads events from ch until one satisfies match, failing the test
// on timeout or when an event satisfies forbid (which may be nil).
func waitEvent(t *testing.T, ch <-chan Event, timeout time.Duration, match, forbid func(Event) bool) Event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event channel closed while waiting")
			}
			if forbid != nil && forbid(ev) {
				t.Fatalf("unexpected event %s for %s", ev.Type, ev.Member.Name)
			}
			if match(ev) {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no matching event within %s", timeout)
		}
	}
}

func is(typ EventType, name string) func(Event) bool {
	return func(ev Event) bool { return ev.Type == typ && ev.Member.Name == name }
}

func clusterMeta(i int) Meta {
	return Meta{
		Control:      i == 0,
		Shield:       i != 0,
		ServerID:     fmt.Sprintf("srv-%d", i),
		Addr:         "127.0.0.1",
		RaftAddr:     fmt.Sprintf("127.0.0.1:%d", 7000+i),
		AppliedIndex: uint64(10 + i),
		Version:      "test",
		Started:      1700000000 + int64(i),
	}
}

func makeCluster(t *testing.T, n int, configure func(i int, c *Config)) []*Mesh {
	t.Helper()
	return MakeCluster(t, n, func(i int, c *Config) {
		c.Logger = testLogger(c.Name)
		c.Meta = clusterMeta(i)
		if configure != nil {
			configure(i, c)
		}
	})
}

func TestThreeNodesJoin(t *testing.T) {
	nodes := makeCluster(t, 3, nil)
	for _, obs := range nodes {
		eventually(t, 5*time.Second, func() error {
			for i, other := range nodes {
				mb, ok := obs.Member(other.LocalName())
				if !ok {
					return fmt.Errorf("%s does not know %s", obs.LocalName(), other.LocalName())
				}
				if mb.State != StateAlive {
					return fmt.Errorf("%s sees %s %s", obs.LocalName(), mb.Name, mb.State)
				}
				if mb.Meta != clusterMeta(i) {
					return fmt.Errorf("%s sees %s meta %+v, want %+v", obs.LocalName(), mb.Name, mb.Meta, clusterMeta(i))
				}
				if mb.Address() != other.LocalAddr() {
					return fmt.Errorf("%s sees %s at %s, want %s", obs.LocalName(), mb.Name, mb.Address(), other.LocalAddr())
				}
			}
			return nil
		})
		members := obs.Members()
		if len(members) != 3 {
			t.Fatalf("%s: %d members, want 3", obs.LocalName(), len(members))
		}
		for i, mb := range members {
			if want := fmt.Sprintf("node-%d", i); mb.Name != want {
				t.Errorf("%s: member %d is %s, want %s (sorted by name)", obs.LocalName(), i, mb.Name, want)
			}
			if mb.Since.IsZero() || mb.LastSeen.Before(mb.Since) {
				t.Errorf("%s: %s Since %v LastSeen %v", obs.LocalName(), mb.Name, mb.Since, mb.LastSeen)
			}
		}
	}
	if addr := nodes[0].LocalAddr(); !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Errorf("LocalAddr = %q, want 127.0.0.1 and the bound port", addr)
	}
	if _, ok := nodes[0].Member("nobody"); ok {
		t.Errorf("Member(nobody) found")
	}
}

func TestUpdateMetaPropagates(t *testing.T) {
	nodes := makeCluster(t, 3, nil)
	remote, cancelRemote := nodes[1].Subscribe()
	defer cancelRemote()
	local, cancelLocal := nodes[0].Subscribe()
	defer cancelLocal()

	err := nodes[0].UpdateMeta(func(m *Meta) {
		m.AppliedIndex = 42
		m.ConfigHash = "sha256:abc"
		m.Health = "ok"
	})
	if err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	want := clusterMeta(0)
	want.AppliedIndex, want.ConfigHash, want.Health = 42, "sha256:abc", "ok"
	if got := nodes[0].LocalMeta(); got != want {
		t.Fatalf("LocalMeta = %+v, want %+v", got, want)
	}

	ev := waitEvent(t, remote, 5*time.Second, is(EventUpdate, "node-0"), nil)
	if ev.Member.Meta != want {
		t.Errorf("remote update meta = %+v, want %+v", ev.Member.Meta, want)
	}
	ev = waitEvent(t, local, 5*time.Second, is(EventUpdate, "node-0"), nil)
	if ev.Member.Meta != want {
		t.Errorf("local update meta = %+v, want %+v", ev.Member.Meta, want)
	}
	for _, obs := range nodes {
		eventually(t, 5*time.Second, func() error {
			mb, _ := obs.Member("node-0")
			if mb.Meta != want {
				return fmt.Errorf("%s sees node-0 meta %+v", obs.LocalName(), mb.Meta)
			}
			return nil
		})
	}
}

func TestUpdateMetaTooLarge(t *testing.T) {
	m := newNode(t, "solo", func(c *Config) { c.Meta = clusterMeta(1) })
	before := m.LocalMeta()
	err := m.UpdateMeta(func(meta *Meta) {
		meta.AppliedIndex = 99
		meta.Version = strings.Repeat("v", MetaMaxSize)
	})
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("UpdateMeta error = %v, want ErrMetaTooLarge", err)
	}
	if got := m.LocalMeta(); got != before {
		t.Errorf("LocalMeta changed after failed update: %+v", got)
	}
	if mb, _ := m.Member("solo"); mb.Meta != before {
		t.Errorf("member table changed after failed update: %+v", mb.Meta)
	}

	// A long HealthError is shortened to fit instead.
	long := strings.Repeat("é", MetaMaxSize)
	if err := m.UpdateMeta(func(meta *Meta) { meta.Health, meta.HealthError = "error", long }); err != nil {
		t.Fatalf("UpdateMeta with long HealthError: %v", err)
	}
	got := m.LocalMeta()
	if got.Health != "error" || got.HealthError == "" || len(got.HealthError) >= len(long) ||
		!strings.HasPrefix(long, got.HealthError) || !utf8.ValidString(got.HealthError) {
		t.Errorf("HealthError not truncated on a rune boundary: %d bytes", len(got.HealthError))
	}
	b, err := got.Encode()
	if err != nil || len(b) > MetaMaxSize {
		t.Errorf("Encode after truncation: %d bytes, err %v", len(b), err)
	}
	if mb, _ := m.Member("solo"); mb.Meta != got {
		t.Errorf("member table meta differs from LocalMeta")
	}
}

func TestMetaEncoding(t *testing.T) {
	full := clusterMeta(0)
	full.APIAddr = "http://127.0.0.1:8080"
	full.ConfigHash = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	full.Health, full.HealthError = "error", "backend <x> & <y> down"
	full.Bootstrapped = true
	b, err := full.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	got, err := DecodeMeta(b)
	if err != nil || got != full {
		t.Fatalf("round trip = %+v, %v; want %+v", got, err, full)
	}
	if strings.Contains(string(b), `\u003c`) {
		t.Errorf("encoding escapes HTML: %s", b)
	}
	if z, err := DecodeMeta(nil); err != nil || z != (Meta{}) {
		t.Errorf("DecodeMeta(nil) = %+v, %v", z, err)
	}
	if b, _ := (Meta{}).Encode(); string(b) != "{}" {
		t.Errorf("zero Meta encodes to %s", b)
	}
	if _, err := DecodeMeta([]byte("{bad")); !errors.Is(err, ErrBadMeta) {
		t.Errorf("DecodeMeta(bad) error = %v, want ErrBadMeta", err)
	}
	if _, err := (Meta{ServerID: strings.Repeat("x", MetaMaxSize)}).Encode(); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("oversized Encode error = %v, want ErrMetaTooLarge", err)
	}
	// Exactly at the limit is fine, one byte over is not.
	overhead := len(`{"sid":""}`)
	atLimit := Meta{ServerID: strings.Repeat("x", MetaMaxSize-overhead)}
	if b, err := atLimit.Encode(); err != nil || len(b) != MetaMaxSize {
		t.Errorf("at limit: %d bytes, %v", len(b), err)
	}
	atLimit.ServerID += "x"
	if _, err := atLimit.Encode(); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("one over limit: %v", err)
	}
}

func TestFailureAndLeaveDetection(t *testing.T) {
	nodes := makeCluster(t, 3, nil)
	ch, cancel := nodes[0].Subscribe()
	defer cancel()

	// node-2 stops without leaving: failure detection.
	start := time.Now()
	closeNode(t, nodes[2])
	ev := waitEvent(t, ch, 15*time.Second, is(EventDead, "node-2"), is(EventLeave, "node-2"))
	t.Logf("node-2 (closed, no leave) reported dead after %s", time.Since(start).Round(time.Millisecond))
	if ev.Member.State != StateDead || ev.Member.Meta != clusterMeta(2) {
		t.Errorf("dead event member = %+v", ev.Member)
	}
	if mb, _ := nodes[0].Member("node-2"); mb.State != StateDead {
		t.Errorf("node-2 state = %s, want dead", mb.State)
	}

	// node-1 leaves gracefully.
	start = time.Now()
	if err := nodes[1].Leave(2 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := nodes[1].Leave(time.Second); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if err := nodes[1].UpdateMeta(func(*Meta) {}); !errors.Is(err, ErrLeft) {
		t.Errorf("UpdateMeta after Leave = %v, want ErrLeft", err)
	}
	if _, err := nodes[1].Join([]string{nodes[0].LocalAddr()}); !errors.Is(err, ErrLeft) {
		t.Errorf("Join after Leave = %v, want ErrLeft", err)
	}
	closeNode(t, nodes[1])
	waitEvent(t, ch, 10*time.Second, is(EventLeave, "node-1"), is(EventDead, "node-1"))
	t.Logf("node-1 (Leave then Close) reported left after %s", time.Since(start).Round(time.Millisecond))

	members := nodes[0].Members()
	states := map[string]State{}
	for _, mb := range members {
		states[mb.Name] = mb.State
		if mb.State != StateAlive && !mb.LastSeen.Equal(mb.Since) {
			t.Errorf("%s: LastSeen %v, Since %v", mb.Name, mb.LastSeen, mb.Since)
		}
	}
	want := map[string]State{"node-0": StateAlive, "node-1": StateLeft, "node-2": StateDead}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("states = %v, want %v", states, want)
	}
	if alive := nodes[0].AliveMembers(); len(alive) != 1 || alive[0].Name != "node-0" {
		t.Errorf("AliveMembers = %v", alive)
	}

	nodes[0].ForgetMember("node-2")
	nodes[0].ForgetMember("node-0") // alive: kept
	if _, ok := nodes[0].Member("node-2"); ok {
		t.Errorf("node-2 still known after ForgetMember")
	}
	if _, ok := nodes[0].Member("node-0"); !ok {
		t.Errorf("ForgetMember removed an alive member")
	}
	if got := len(nodes[0].Members()); got != 2 {
		t.Errorf("%d members after ForgetMember, want 2", got)
	}
}

// A node that reported a member dead before learning it left corrects its
// view, directly from an intent or from another node's push/pull state.
func TestDeadReclassifiedAsLeft(t *testing.T) {
	nodes := makeCluster(t, 3, nil)
	ch0, cancel0 := nodes[0].Subscribe()
	defer cancel0()
	ch1, cancel1 := nodes[1].Subscribe()
	defer cancel1()
	closeNode(t, nodes[2])
	waitEvent(t, ch0, 15*time.Second, is(EventDead, "node-2"), nil)
	waitEvent(t, ch1, 15*time.Second, is(EventDead, "node-2"), nil)

	(*delegate)(nodes[0]).NotifyMsg(newIntentBroadcast("node-2", nil).Message())
	waitEvent(t, ch0, 5*time.Second, is(EventLeave, "node-2"), nil)
	if mb, _ := nodes[0].Member("node-2"); mb.State != StateLeft {
		t.Errorf("node-2 state = %s after intent, want left", mb.State)
	}

	// node-0's push/pull state now carries the leave to node-1.
	(*delegate)(nodes[1]).MergeRemoteState((*delegate)(nodes[0]).LocalState(false), false)
	waitEvent(t, ch1, 5*time.Second, is(EventLeave, "node-2"), nil)
	if mb, _ := nodes[1].Member("node-2"); mb.State != StateLeft {
		t.Errorf("node-2 state on node-1 = %s after push/pull, want left", mb.State)
	}
}

// fakeNode is a memberlist node fed straight to a Mesh's event delegate.
func fakeNode(name string, meta Meta) *memberlist.Node {
	b, _ := meta.Encode()
	return &memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 9), Port: 9999, Meta: b}
}

// An EventDead is held for a short grace so a leave intent that arrives just
// after the departure turns it into an EventLeave; a rejoin or Close releases
// it at once.
func TestDeadGrace(t *testing.T) {
	m := newNode(t, "solo", nil)
	ch, cancel := m.Subscribe()
	defer cancel()
	ev := (*eventDelegate)(m)
	m.mu.Lock()
	m.deadGrace = time.Minute // the held path must not race the clock
	m.mu.Unlock()

	// Departure, then the intent: only EventLeave.
	ev.NotifyJoin(fakeNode("late-intent", Meta{ServerID: "a"}))
	ev.NotifyLeave(fakeNode("late-intent", Meta{ServerID: "a"}))
	if mb, _ := m.Member("late-intent"); mb.State != StateDead {
		t.Errorf("state during grace = %s, want dead", mb.State)
	}
	(*delegate)(m).NotifyMsg(newIntentBroadcast("late-intent", nil).Message())
	waitEvent(t, ch, 5*time.Second, is(EventJoin, "late-intent"), nil)
	got := waitEvent(t, ch, 5*time.Second, is(EventLeave, "late-intent"), is(EventDead, "late-intent"))
	if got.Member.State != StateLeft || got.Member.Meta.ServerID != "a" {
		t.Errorf("leave event member = %+v", got.Member)
	}

	// Departure, then a rejoin: EventDead first, then EventJoin.
	ev.NotifyJoin(fakeNode("flap", Meta{}))
	ev.NotifyLeave(fakeNode("flap", Meta{}))
	ev.NotifyJoin(fakeNode("flap", Meta{Version: "2"}))
	var types []EventType
	for len(types) < 3 {
		e := waitEvent(t, ch, 5*time.Second, func(e Event) bool { return e.Member.Name == "flap" }, nil)
		types = append(types, e.Type)
	}
	if fmt.Sprint(types) != fmt.Sprint([]EventType{EventJoin, EventDead, EventJoin}) {
		t.Errorf("flap events = %v", types)
	}

	// A departure without intent is reported once the grace ends.
	m.mu.Lock()
	m.deadGrace = 20 * time.Millisecond
	m.mu.Unlock()
	ev.NotifyJoin(fakeNode("crashed", Meta{}))
	ev.NotifyLeave(fakeNode("crashed", Meta{}))
	waitEvent(t, ch, 5*time.Second, is(EventDead, "crashed"), is(EventLeave, "crashed"))

	// Close releases a held EventDead before closing the channel.
	m.mu.Lock()
	m.deadGrace = time.Minute
	m.mu.Unlock()
	ev.NotifyJoin(fakeNode("at-close", Meta{}))
	ev.NotifyLeave(fakeNode("at-close", Meta{}))
	closeNode(t, m)
	waitEvent(t, ch, 5*time.Second, is(EventDead, "at-close"), nil)
	if _, ok := <-ch; ok {
		t.Errorf("channel still open after Close")
	}
}

func mustKey(t *testing.T) []byte {
	t.Helper()
	s, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func withKey(key []byte) func(*Config) {
	return func(c *Config) {
		c.SecretKey = key
		c.AllowPlaintext = false
	}
}

func TestEncryption(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	a := newNode(t, "a", withKey(k1))
	b := newNode(t, "b", withKey(k1))
	wrong := newNode(t, "wrong", withKey(k2))
	plain := newNode(t, "plain", nil)

	if n, err := b.Join([]string{a.LocalAddr()}); err != nil || n != 1 {
		t.Fatalf("join with same key: n=%d err=%v", n, err)
	}
	if n, err := wrong.Join([]string{a.LocalAddr()}); !errors.Is(err, ErrJoin) || n != 0 {
		t.Errorf("join with other key: n=%d err=%v, want ErrJoin", n, err)
	}
	if n, err := plain.Join([]string{a.LocalAddr()}); !errors.Is(err, ErrJoin) || n != 0 {
		t.Errorf("plaintext join of encrypted: n=%d err=%v, want ErrJoin", n, err)
	}
	if n, err := a.Join([]string{plain.LocalAddr()}); err == nil || n != 0 {
		t.Errorf("encrypted join of plaintext: n=%d err=%v, want error", n, err)
	}
	for _, m := range []*Mesh{a, b} {
		eventually(t, 5*time.Second, func() error {
			if got := len(m.AliveMembers()); got != 2 {
				return fmt.Errorf("%s sees %d alive, want 2", m.LocalName(), got)
			}
			return nil
		})
	}
	for _, m := range []*Mesh{a, b} {
		for _, name := range []string{"wrong", "plain"} {
			if _, ok := m.Member(name); ok {
				t.Errorf("%s knows %s", m.LocalName(), name)
			}
		}
	}
	if got := len(wrong.Members()); got != 1 {
		t.Errorf("wrong-key node knows %d members, want only itself", got)
	}
}

func TestKeyRotation(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	a := newNode(t, "a", withKey(k1))
	b := newNode(t, "b", withKey(k1))
	if _, err := b.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatalf("join: %v", err)
	}
	for _, step := range []func(*Mesh) error{
		func(m *Mesh) error { return m.InstallKey(k2) },
		func(m *Mesh) error { return m.UseKey(k2) },
		func(m *Mesh) error { return m.RemoveKey(k1) },
	} {
		for _, m := range []*Mesh{a, b} {
			if err := step(m); err != nil {
				t.Fatalf("%s: %v", m.LocalName(), err)
			}
		}
	}
	if err := a.RemoveKey(k2); err == nil {
		t.Errorf("removing the key in use succeeded")
	}
	if err := a.InstallKey(k2[:16]); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("InstallKey(16 bytes) = %v, want ErrInvalidKey", err)
	}
	if err := a.UseKey(k1); err == nil {
		t.Errorf("UseKey of a removed key succeeded")
	}

	c := newNode(t, "c", withKey(k2))
	if _, err := c.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatalf("join with the new key: %v", err)
	}
	old := newNode(t, "old", withKey(k1))
	if _, err := old.Join([]string{b.LocalAddr()}); !errors.Is(err, ErrJoin) {
		t.Errorf("join with the removed key = %v, want ErrJoin", err)
	}
	eventually(t, 5*time.Second, func() error {
		for _, m := range []*Mesh{a, b, c} {
			if got := len(m.AliveMembers()); got != 3 {
				return fmt.Errorf("%s sees %d alive, want 3", m.LocalName(), got)
			}
		}
		return nil
	})

	plain := newNode(t, "plain", nil)
	for name, op := range map[string]func([]byte) error{"install": plain.InstallKey, "use": plain.UseKey, "remove": plain.RemoveKey} {
		if err := op(k1); !errors.Is(err, ErrPlaintext) {
			t.Errorf("%s on plaintext mesh = %v, want ErrPlaintext", name, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	key := make([]byte, KeySize)
	good := func() *Config {
		c := DefaultConfig()
		c.Name = "n1"
		c.SecretKey = key
		return c
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
		is     error
	}{
		{"missing name", func(c *Config) { c.Name = "" }, "Name is required", nil},
		{"long name", func(c *Config) { c.Name = strings.Repeat("n", MaxNameLength+1) }, "Name is 257 bytes", nil},
		{"bad bind addr", func(c *Config) { c.BindAddr = "localhost" }, `BindAddr "localhost"`, nil},
		{"negative port", func(c *Config) { c.BindPort = -1 }, "BindPort -1", nil},
		{"port too large", func(c *Config) { c.BindPort = 65536 }, "BindPort 65536", nil},
		{"bad advertise addr", func(c *Config) { c.AdvertiseAddr = "10.0.0" }, `AdvertiseAddr "10.0.0"`, nil},
		{"bad advertise port", func(c *Config) { c.AdvertisePort = 70000 }, "AdvertisePort 70000", nil},
		{"no key", func(c *Config) { c.SecretKey = nil }, "SecretKey", ErrNoKey},
		{"short key", func(c *Config) { c.SecretKey = key[:16] }, "SecretKey", ErrInvalidKey},
		{"short key with plaintext", func(c *Config) { c.SecretKey, c.AllowPlaintext = key[:16], true }, "key is 16 bytes", ErrInvalidKey},
		{"unknown profile", func(c *Config) { c.Profile = "fast" }, `unknown Profile "fast"`, nil},
		{"negative probe interval", func(c *Config) { c.ProbeInterval = -time.Second }, "ProbeInterval", nil},
		{"negative probe timeout", func(c *Config) { c.ProbeTimeout = -time.Second }, "ProbeTimeout", nil},
		{"negative gossip interval", func(c *Config) { c.GossipInterval = -time.Second }, "GossipInterval", nil},
		{"negative suspicion mult", func(c *Config) { c.SuspicionMult = -1 }, "SuspicionMult", nil},
		{"negative event buffer", func(c *Config) { c.EventBuffer = -1 }, "EventBuffer", nil},
		{"timeout above interval", func(c *Config) { c.ProbeInterval = 100 * time.Millisecond }, "ProbeTimeout (250ms) must be shorter than ProbeInterval (100ms)", nil},
		{"meta too large", func(c *Config) { c.Meta.Version = strings.Repeat("v", MetaMaxSize) }, "Meta", ErrMetaTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.modify(c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want error containing %q", tt.want)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if _, nerr := New(c); nerr == nil || nerr.Error() != err.Error() {
				t.Errorf("New error = %v, want %v", nerr, err)
			}
		})
	}

	var nilConfig *Config
	if err := nilConfig.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil config: %v", err)
	}
	for name, modify := range map[string]func(*Config){
		"default with key":  func(*Config) {},
		"plaintext":         func(c *Config) { c.SecretKey, c.AllowPlaintext = nil, true },
		"key and plaintext": func(c *Config) { c.AllowPlaintext = true },
		"wan":               func(c *Config) { c.Profile = ProfileWAN },
		"local":             func(c *Config) { c.Profile = ProfileLocal },
		"empty profile":     func(c *Config) { c.Profile = "" },
		"overrides": func(c *Config) {
			c.ProbeInterval, c.ProbeTimeout, c.GossipInterval, c.SuspicionMult = time.Second, 400*time.Millisecond, 200*time.Millisecond, 5
		},
	} {
		c := good()
		modify(c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v", name, err)
		}
	}
}

func TestProfiles(t *testing.T) {
	for _, tt := range []struct {
		profile                string
		probe, timeout, gossip time.Duration
		suspicion              int
	}{
		{ProfileLAN, 500 * time.Millisecond, 250 * time.Millisecond, 100 * time.Millisecond, 3},
		{ProfileWAN, 5 * time.Second, 3 * time.Second, 500 * time.Millisecond, 6},
		{ProfileLocal, 200 * time.Millisecond, 100 * time.Millisecond, 50 * time.Millisecond, 3},
	} {
		c := &Config{Profile: tt.profile}
		mc, err := c.profileConfig()
		if err != nil {
			t.Fatal(err)
		}
		if mc.ProbeInterval != tt.probe || mc.ProbeTimeout != tt.timeout || mc.GossipInterval != tt.gossip || mc.SuspicionMult != tt.suspicion {
			t.Errorf("%s: probe %s timeout %s gossip %s suspicion %d", tt.profile, mc.ProbeInterval, mc.ProbeTimeout, mc.GossipInterval, mc.SuspicionMult)
		}
		if mc.GossipToTheDeadTime < 10*mc.ProbeInterval {
			t.Errorf("%s: GossipToTheDeadTime %s is under 10 probe intervals", tt.profile, mc.GossipToTheDeadTime)
		}
	}
	c := &Config{Profile: ProfileLocal, ProbeInterval: time.Second, ProbeTimeout: 300 * time.Millisecond, GossipInterval: 70 * time.Millisecond, SuspicionMult: 7}
	mc, _ := c.profileConfig()
	if mc.ProbeInterval != time.Second || mc.ProbeTimeout != 300*time.Millisecond || mc.GossipInterval != 70*time.Millisecond || mc.SuspicionMult != 7 {
		t.Errorf("overrides not applied: %+v", mc)
	}
}

func TestParseKey(t *testing.T) {
	valid, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := GenerateKey()
	if valid == other {
		t.Errorf("GenerateKey returned the same key twice")
	}
	key, err := ParseKey(" \n" + valid + "\n\t")
	if err != nil || len(key) != KeySize {
		t.Fatalf("ParseKey(valid with whitespace) = %d bytes, %v", len(key), err)
	}
	for _, tt := range []struct{ in, want string }{
		{"", "key is empty"},
		{"  \n", "key is empty"},
		{"not base64!", "not valid base64"},
		{base64.URLEncoding.EncodeToString(append([]byte{0xfb, 0xff}, key[2:]...)), "not valid base64"},
		{base64.StdEncoding.EncodeToString(key[:16]), "key is 16 bytes, want 32"},
		{base64.StdEncoding.EncodeToString(append(key, 1)), "key is 33 bytes, want 32"},
		{valid[:len(valid)-1], "not valid base64"},
	} {
		_, err := ParseKey(tt.in)
		if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseKey(%q) = %v, want ErrInvalidKey containing %q", tt.in, err, tt.want)
		}
	}

	dir := t.TempDir()
	good := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(good, []byte(valid+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := ReadKeyFile(good); err != nil || string(k) != string(key) {
		t.Errorf("ReadKeyFile = %v, %v", k, err)
	}
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(bad); !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), bad) {
		t.Errorf("ReadKeyFile(bad) = %v, want ErrInvalidKey naming the file", err)
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadKeyFile(missing) = %v, want not exist", err)
	}
}

func TestSubscribeCancelAndCloseTwice(t *testing.T) {
	m := newNode(t, "solo", nil)
	ch, cancel := m.Subscribe()
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Errorf("channel open after cancel")
	}

	ch2, cancel2 := m.Subscribe()
	closeNode(t, m)
	closeNode(t, m)
	if _, ok := <-ch2; ok {
		t.Errorf("channel open after Close")
	}
	cancel2()
	cancel2()

	ch3, cancel3 := m.Subscribe()
	if _, ok := <-ch3; ok {
		t.Errorf("Subscribe after Close returned an open channel")
	}
	cancel3()

	if err := m.UpdateMeta(func(*Meta) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("UpdateMeta after Close = %v", err)
	}
	if _, err := m.Join([]string{"127.0.0.1:1"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close = %v", err)
	}
	if err := m.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Close = %v", err)
	}
	if got := len(m.Members()); got != 1 {
		t.Errorf("Members after Close = %d, want 1", got)
	}
}

func TestJoinNoPeers(t *testing.T) {
	m := newNode(t, "solo", nil)
	if _, err := m.Join(nil); !errors.Is(err, ErrNoPeers) {
		t.Errorf("Join(nil) = %v", err)
	}
	if _, err := m.Join([]string{" ", ""}); !errors.Is(err, ErrNoPeers) {
		t.Errorf("Join(blank) = %v", err)
	}
	if err := m.UpdateMeta(nil); err == nil {
		t.Errorf("UpdateMeta(nil) succeeded")
	}
}

func TestSlowSubscriberDropsOldest(t *testing.T) {
	m := newNode(t, "solo", func(c *Config) { c.EventBuffer = 2 })
	ch, cancel := m.Subscribe()
	defer cancel()
	for i := 1; i <= 5; i++ {
		if err := m.UpdateMeta(func(meta *Meta) { meta.AppliedIndex = uint64(i) }); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, func() error {
		if d := m.Dropped(); d != 3 {
			return fmt.Errorf("Dropped = %d, want 3", d)
		}
		return nil
	})
	for _, want := range []uint64{4, 5} {
		ev := <-ch
		if ev.Type != EventUpdate || ev.Member.Meta.AppliedIndex != want {
			t.Errorf("got %s AppliedIndex %d, want update %d", ev.Type, ev.Member.Meta.AppliedIndex, want)
		}
	}
}

// recordHandler collects slog records for the log adapter test.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestLogAdapter(t *testing.T) {
	h := &recordHandler{}
	l := newStdLogger(slog.New(h))
	lines := []struct {
		in    string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1", slog.LevelDebug, "Stream connection from=127.0.0.1:1"},
		{"[INFO] memberlist: Marking b as failed", slog.LevelInfo, "Marking b as failed"},
		{"[WARN] memberlist: Refuting a suspect message", slog.LevelWarn, "Refuting a suspect message"},
		{"[ERR] memberlist: Failed to send ping", slog.LevelError, "Failed to send ping"},
		{"[ERR] Failed to shutdown transport", slog.LevelError, "Failed to shutdown transport"},
		{"[TRACE] memberlist: noise", slog.LevelDebug - 4, "noise"},
		{"no prefix at all", slog.LevelInfo, "no prefix at all"},
		{"[custom] memberlist: kept", slog.LevelInfo, "[custom] memberlist: kept"},
	}
	for _, ln := range lines {
		l.Print(ln.in)
	}
	if len(h.records) != len(lines) {
		t.Fatalf("%d records, want %d", len(h.records), len(lines))
	}
	for i, ln := range lines {
		if r := h.records[i]; r.Level != ln.level || r.Message != ln.msg {
			t.Errorf("%q → %s %q, want %s %q", ln.in, r.Level, r.Message, ln.level, ln.msg)
		}
	}
}
