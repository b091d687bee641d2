package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

func errRaftNotLeader() error      { return fmt.Errorf("apply: %w", raft.ErrNotLeader) }
func errRaftLeadershipLost() error { return fmt.Errorf("apply: %w", raft.ErrLeadershipLost) }

// headerRecorder wraps a handler and remembers the headers it saw.
type headerRecorder struct {
	h    http.Handler
	mu   sync.Mutex
	seen []http.Header
}

func (r *headerRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.seen = append(r.seen, req.Header.Clone())
	r.mu.Unlock()
	r.h.ServeHTTP(w, req)
}

func (r *headerRecorder) last() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == 0 {
		return nil
	}
	return r.seen[len(r.seen)-1]
}

// newRecordedLeader serves a leader backend behind a header recorder.
func newRecordedLeader(t *testing.T, b *fakeBackend) (*httptest.Server, *headerRecorder) {
	t.Helper()
	h, err := NewHandler(b, ServerConfig{AdminTokenHash: state.HashToken(testAdminToken)})
	if err != nil {
		t.Fatal(err)
	}
	rec := &headerRecorder{h: h}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return srv, rec
}

func TestFollowerForwardsWrites(t *testing.T) {
	leader := newFakeBackend("ctl-leader")
	leaderSrv, rec := newRecordedLeader(t, leader)

	follower := newFakeBackend("ctl-follower")
	follower.set(func(f *fakeBackend) { f.leader, f.leaderAPI = false, leaderSrv.URL })
	fe := newEnv(t, follower)
	ctx := context.Background()
	c := fe.client

	// A write through the follower lands on the leader's state.
	added := got(c.AddServer(ctx, "web-1")).ok(t)
	if added.Token == "" || added.Server.Name != "web-1" {
		t.Fatalf("forwarded add: %+v", added)
	}
	if h := rec.last(); h.Get(HeaderForwarded) != "ctl-follower" || h.Get("Authorization") != "Bearer "+testAdminToken || h.Get("X-Forwarded-For") == "" {
		t.Fatalf("leader saw headers %v", h)
	}
	var onLeader, onFollower int
	leader.View(func(st *state.State) { onLeader = len(st.Servers) })
	follower.View(func(st *state.State) { onFollower = len(st.Servers) })
	if onLeader != 1 || onFollower != 0 || leader.appliedCount() != 1 || follower.appliedCount() != 0 {
		t.Fatalf("leader has %d servers (%d applies), follower %d (%d applies)", onLeader, leader.appliedCount(), onFollower, follower.appliedCount())
	}

	// Every write route is forwarded; path, query and body arrive intact.
	d := got(c.AddDomain(ctx, &AddDomainRequest{Name: "example.com", Origins: []string{"10.0.0.1:80"}, Servers: []string{"web-1"}})).ok(t)
	if len(d.Servers) != 1 || d.Servers[0].Name != "web-1" {
		t.Fatalf("forwarded domain add: %+v", d)
	}
	got(c.AssignDomain(ctx, "example.com", []string{"web-1"})).ok(t)
	got(c.RenameServer(ctx, "web-1", "web-one")).ok(t)
	got(c.SetPlan(ctx, "pro")).ok(t)
	got(c.RemoveDomain(ctx, "example.com")).ok(t)
	dec := got(c.DecommissionServer(ctx, "web-one")).ok(t)
	if dec.Server.Status != StatusDecommissioned {
		t.Fatalf("forwarded decommission: %+v", dec)
	}
	if leader.appliedCount() != 7 {
		t.Fatalf("leader applied %d commands, want 7", leader.appliedCount())
	}

	// Validation errors from the leader come back unchanged.
	_, err := c.AddDomain(ctx, &AddDomainRequest{Name: "bad_name", Origins: []string{"10.0.0.1:80"}})
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != state.CodeInvalid || ae.Field != "domain" || ae.StatusCode != 400 {
		t.Fatalf("forwarded validation error: %#v", err)
	}

	// Reads go to the leader, so a client reads its own writes ...
	if list := got(c.Servers(ctx)).ok(t); len(list) != 1 {
		t.Fatalf("follower read not served by the leader: %+v", list)
	}
	// ... unless it asks for the follower's own copy (empty here).
	c.SetStale(true)
	if list := got(c.Servers(ctx)).ok(t); len(list) != 0 {
		t.Fatalf("stale read served by the leader: %+v", list)
	}
	r, _ := fe.raw(t, "GET", "/v1/servers?stale=true", "", testAdminToken)
	if r.Header.Get(HeaderStale) != "true" {
		t.Fatalf("stale read not marked: %v", r.Header)
	}
	c.SetStale(false)
	// With no leader known a follower answers from its copy, marked stale.
	follower.set(func(f *fakeBackend) { f.leaderAPI = "" })
	r, _ = fe.raw(t, "GET", "/v1/servers", "", testAdminToken)
	if r.StatusCode != 200 || r.Header.Get(HeaderStale) != "true" {
		t.Fatalf("read without a leader: %d %v", r.StatusCode, r.Header)
	}
	follower.set(func(f *fakeBackend) { f.leaderAPI = leaderSrv.URL })

	// The follower checks the admin token itself, before forwarding.
	n := len(rec.seen)
	resp, _ := fe.raw(t, "POST", "/v1/servers", `{"name":"x"}`, "wrong")
	if resp.StatusCode != 401 || len(rec.seen) != n {
		t.Fatalf("unauthorized write: %d, forwarded %d", resp.StatusCode, len(rec.seen)-n)
	}
	// An oversize body is refused by the follower.
	resp, body := fe.raw(t, "POST", "/v1/servers", `{"name":"`+strings.Repeat("x", 10000)+`"}`, testAdminToken)
	if resp.StatusCode != 413 || errorOf(t, body).Code != CodeTooLarge || len(rec.seen) != n {
		t.Fatalf("oversize forwarded write: %d %s", resp.StatusCode, body)
	}
}

func TestForwardLoopGuard(t *testing.T) {
	// Two followers that each believe the other is the leader.
	f1 := newFakeBackend("ctl-1")
	f2 := newFakeBackend("ctl-2")
	e1 := newEnv(t, f1)
	e2 := newEnv(t, f2)
	f1.set(func(f *fakeBackend) { f.leader, f.leaderAPI = false, e2.srv.URL })
	f2.set(func(f *fakeBackend) { f.leader, f.leaderAPI = false, e1.srv.URL })

	_, err := e1.client.AddServer(context.Background(), "web-1")
	var ae *Error
	if !errors.As(err, &ae) || ae.StatusCode != 503 || ae.Code != state.CodeNotLeader {
		t.Fatalf("loop: %#v", err)
	}
	// A request already marked as forwarded is never forwarded again.
	resp, body := e1.raw(t, "POST", "/v1/servers", `{"name":"web-1"}`, testAdminToken, HeaderForwarded, "ctl-9")
	if ed := errorOf(t, body); resp.StatusCode != 503 || ed.Code != state.CodeNotLeader || !strings.Contains(ed.Message, "ctl-9") {
		t.Fatalf("marked request: %d %s", resp.StatusCode, body)
	}
	if f1.appliedCount()+f2.appliedCount() != 0 {
		t.Fatal("nothing may be applied")
	}
	// A marked request reaching the leader is served normally.
	leader := newFakeBackend("ctl-3")
	le := newEnv(t, leader)
	resp, body = le.raw(t, "POST", "/v1/servers", `{"name":"web-1"}`, testAdminToken, HeaderForwarded, "ctl-1")
	if resp.StatusCode != 201 {
		t.Fatalf("forwarded request on the leader: %d %s", resp.StatusCode, body)
	}
}

func TestForwardNoLeader(t *testing.T) {
	f := newFakeBackend("ctl-1")
	f.set(func(f *fakeBackend) { f.leader = false })
	e := newEnv(t, f)
	ctx := context.Background()

	_, err := e.client.AddServer(ctx, "web-1")
	var ae *Error
	if !errors.As(err, &ae) || ae.StatusCode != 503 || ae.Code != state.CodeUnavailable || !strings.Contains(ae.Message, "leader") {
		t.Fatalf("no leader: %#v", err)
	}

	// A leader that does not answer.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	f.set(func(f *fakeBackend) { f.leaderAPI = deadURL })
	_, err = e.client.SetPlan(ctx, "pro")
	if !errors.As(err, &ae) || ae.StatusCode != 503 || ae.Code != state.CodeUnavailable || !strings.Contains(ae.Message, deadURL) {
		t.Fatalf("unreachable leader: %#v", err)
	}

	// A leader that answers too slowly.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	e2 := newEnv(t, f, func(c *ServerConfig) { c.ForwardTimeout = 100 * time.Millisecond })
	f.set(func(f *fakeBackend) { f.leaderAPI = slow.URL })
	_, err = e2.client.SetPlan(ctx, "pro")
	if !errors.As(err, &ae) || ae.Code != state.CodeUnavailable || !strings.Contains(ae.Message, "did not answer") {
		t.Fatalf("slow leader: %#v", err)
	}

	// A nonsense leader address.
	f.set(func(f *fakeBackend) { f.leaderAPI = "ftp://x" })
	_, err = e.client.SetPlan(ctx, "pro")
	if !errors.As(err, &ae) || ae.Code != state.CodeUnavailable {
		t.Fatalf("bad leader address: %#v", err)
	}
}

func TestJoin(t *testing.T) {
	b := newFakeBackend("ctl-1")
	e := newEnv(t, b)
	ctx := context.Background()
	added := got(e.client.AddServer(ctx, "web-1")).ok(t)

	// No admin token needed: the server token is the credential.
	shield := got(NewClient(e.srv.URL, "")).ok(t)
	defer shield.CloseIdleConnections()
	req := signedJoin(t, added.Token, "node-a")
	resp := got(shield.Join(ctx, req)).ok(t)
	if resp.ServerID != added.Server.ID || resp.ServerName != "web-1" {
		t.Fatalf("join: %+v", resp)
	}
	// Only the token's holder can open the answer, and the token never
	// crossed the wire.
	secret, err := OpenJoin(added.Token, req, resp.Sealed)
	if err != nil || len(secret.GossipPeers) != 1 {
		t.Fatalf("open join answer: %+v %v", secret, err)
	}
	if _, err := OpenJoin("lmt_someoneelsesveryrandomtoken00", req, resp.Sealed); !errors.Is(err, ErrJoinProof) {
		t.Fatalf("answer opened with another token: %v", err)
	}
	if strings.Contains(jsonString(req), added.Token) {
		t.Fatal("the join request carries the token")
	}
	sv := got(e.client.Server(ctx, "web-1")).ok(t)
	if sv.NodeName != "node-a" || sv.IP != "10.0.0.7" {
		t.Fatalf("bound server: %+v", sv)
	}
	// An empty token is refused without reaching the backend.
	_, err = shield.Join(ctx, &JoinRequest{NodeName: "node-b"})
	var ae *Error
	if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Field != "token" {
		t.Fatalf("empty token: %#v", err)
	}
}

func TestJoinRateLimit(t *testing.T) {
	b := newFakeBackend("ctl-1")
	e := newEnv(t, b)
	ctx := context.Background()
	added := got(e.client.AddServer(ctx, "web-1")).ok(t)
	shield := got(NewClient(e.srv.URL, "")).ok(t)
	defer shield.CloseIdleConnections()

	good := signedJoin(t, added.Token, "node-a")
	bad := signedJoin(t, added.Token[:len(added.Token)-1]+"x", "node-x")
	// Successful joins cost nothing.
	for i := 0; i < 3*joinBurst; i++ {
		got(shield.Join(ctx, good)).ok(t)
	}
	// Failed ones drain the bucket: joinBurst failures, then 429.
	var ae *Error
	for i := 0; i < joinBurst; i++ {
		_, err := shield.Join(ctx, bad)
		if !errors.As(err, &ae) || ae.Code != state.CodeUnauthorized {
			t.Fatalf("attempt %d: %#v", i, err)
		}
	}
	_, err := shield.Join(ctx, bad)
	if !errors.As(err, &ae) || ae.StatusCode != 429 || ae.Code != CodeRateLimited {
		t.Fatalf("after %d failures: %#v", joinBurst, err)
	}
	// While limited even a good token waits; Retry-After says how long.
	r, body := e.raw(t, "POST", "/v1/join", jsonString(good), "")
	if r.StatusCode != 429 || r.Header.Get("Retry-After") != "6" {
		t.Fatalf("limited good join: %d %q %s", r.StatusCode, r.Header.Get("Retry-After"), body)
	}
	// The bucket refills with time.
	b.set(func(f *fakeBackend) { f.now = f.now.Add(joinRefill) })
	got(shield.Join(ctx, good)).ok(t)
	_, err = shield.Join(ctx, bad)
	if !errors.As(err, &ae) || ae.Code != state.CodeUnauthorized {
		t.Fatalf("after refill: %#v", err)
	}
	_, err = shield.Join(ctx, bad)
	if !errors.As(err, &ae) || ae.Code != CodeRateLimited {
		t.Fatalf("after refill and a failure: %#v", err)
	}
	// The admin API is not affected.
	got(e.client.Servers(ctx)).ok(t)
}

func TestJoinThroughFollower(t *testing.T) {
	leader := newFakeBackend("ctl-leader")
	le := newEnv(t, leader)
	added := got(le.client.AddServer(context.Background(), "web-1")).ok(t)

	follower := newFakeBackend("ctl-follower")
	follower.set(func(f *fakeBackend) { f.leader, f.leaderAPI = false, le.srv.URL })
	fe := newEnv(t, follower)
	shield := got(NewClient(fe.srv.URL, "")).ok(t)
	defer shield.CloseIdleConnections()
	resp := got(shield.Join(context.Background(), signedJoin(t, added.Token, "node-a"))).ok(t)
	if resp.ServerID != added.Server.ID {
		t.Fatalf("join via follower: %+v", resp)
	}
}

func TestClientIP(t *testing.T) {
	b := newFakeBackend("ctl-1")
	b.set(func(f *fakeBackend) {
		f.members = []mesh.Member{
			{Name: "ctl-2", Addr: "10.0.0.2", State: mesh.StateAlive, Meta: mesh.Meta{Control: true, Addr: "10.0.0.2"}},
			{Name: "ctl-3", Addr: "10.0.0.3", State: mesh.StateDead, Meta: mesh.Meta{Control: true}},
			{Name: "shield-1", Addr: "10.0.0.4", State: mesh.StateAlive, Meta: mesh.Meta{Shield: true}},
		}
	})
	s := &server{b: b}
	cases := []struct {
		remote, fwd, xff, want string
	}{
		{"203.0.113.9:5555", "", "", "203.0.113.9"},
		{"203.0.113.9:5555", "", "198.51.100.1", "203.0.113.9"},             // not forwarded: header ignored
		{"203.0.113.9:5555", "ctl-2", "198.51.100.1", "203.0.113.9"},        // not a control node: spoofed
		{"10.0.0.2:5555", "ctl-2", "198.51.100.1", "198.51.100.1"},          // trusted control node
		{"10.0.0.2:5555", "ctl-2", "1.1.1.1, 198.51.100.1", "198.51.100.1"}, // last hop counts
		{"10.0.0.3:5555", "ctl-3", "198.51.100.1", "10.0.0.3"},              // dead control node
		{"10.0.0.4:5555", "shield-1", "198.51.100.1", "10.0.0.4"},           // shields are not trusted
		{"10.0.0.2:5555", "ctl-2", "not-an-ip", "10.0.0.2"},                 // garbage
		{"[::ffff:10.0.0.2]:5555", "ctl-2", "2001:db8::5", "2001:db8::5"},   // mapped address
		{"10.0.0.2:5555", "ctl-2", "", "10.0.0.2"},                          // no client recorded
	}
	for _, tc := range cases {
		r := httptest.NewRequest("POST", "/v1/join", nil)
		r.RemoteAddr = tc.remote
		if tc.fwd != "" {
			r.Header.Set(HeaderForwarded, tc.fwd)
		}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := s.clientIP(r); got != tc.want {
			t.Errorf("remote %s fwd %q xff %q: got %s, want %s", tc.remote, tc.fwd, tc.xff, got, tc.want)
		}
	}
}

func TestFailLimiter(t *testing.T) {
	l := newFailLimiter(2, time.Second)
	now := testStart
	for i := 0; i < 2; i++ {
		if ok, _ := l.take("2001:db8::1", now); !ok {
			t.Fatal("burst refused")
		}
	}
	// Another address of the same /64 shares the bucket.
	if ok, wait := l.take("2001:db8::2", now); ok || wait != time.Second {
		t.Fatalf("same /64: ok %v wait %v", ok, wait)
	}
	if ok, _ := l.take("2001:db8:0:1::1", now); !ok {
		t.Fatal("another /64 must have its own bucket")
	}
	l.refund("2001:db8::1", now)
	if ok, _ := l.take("2001:db8::1", now); !ok {
		t.Fatal("refund must give the token back")
	}
	if ok, wait := l.take("2001:db8::1", now.Add(500*time.Millisecond)); ok || wait != 500*time.Millisecond {
		t.Fatalf("half refilled: ok %v wait %v", ok, wait)
	}
	if ok, _ := l.take("2001:db8::1", now.Add(time.Second)); !ok {
		t.Fatal("refilled token refused")
	}
	// Full buckets are forgotten.
	l.take("192.0.2.1", now)
	l.prune(now.Add(time.Hour))
	if len(l.buckets) != 0 {
		t.Fatalf("%d buckets after prune", len(l.buckets))
	}
	// Too many failing clients share one bucket instead of growing the map.
	for i := 0; i < joinMaxKeys+10; i++ {
		l.take(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), now)
	}
	if len(l.buckets) > joinMaxKeys+1 {
		t.Fatalf("%d buckets", len(l.buckets))
	}
}

func signedJoin(t *testing.T, token, node string) *JoinRequest {
	t.Helper()
	req, err := NewJoinRequest(token, time.Now(), node, "10.0.0.7", "10.0.0.7:7946", "10.0.0.7:7947", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
