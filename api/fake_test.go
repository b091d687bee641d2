package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

const testAdminToken = "admin-secret-token"

var testStart = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeBackend holds a real state.State and applies commands to it directly,
// standing in for a node with raft.
type fakeBackend struct {
	name string

	mu        sync.RWMutex
	st        *state.State
	members   []mesh.Member
	leader    bool
	leaderAPI string
	leaderErr error
	now       time.Time
	applyErr  error // returned by Apply instead of applying, when set
	applied   int   // commands committed through Apply
}

func newFakeBackend(name string) *fakeBackend {
	return &fakeBackend{name: name, st: state.New(), leader: true, now: testStart}
}

func (f *fakeBackend) NodeName() string { return f.name }

func (f *fakeBackend) View(fn func(st *state.State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.st)
}

func (f *fakeBackend) Members() []mesh.Member {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]mesh.Member(nil), f.members...)
}

func (f *fakeBackend) Status() StatusResponse {
	f.mu.RLock()
	defer f.mu.RUnlock()
	rs := "Follower"
	if f.leader {
		rs = "Leader"
	}
	nodes := []NodeInfo{{Name: f.name, Addr: "127.0.0.1:7946", GossipState: "alive", Control: true, Leader: f.leader}}
	for _, m := range f.members {
		if m.Name != f.name {
			nodes = append(nodes, NodeInfo{Name: m.Name, GossipState: string(m.State), Shield: m.Meta.Shield, Health: m.Meta.Health})
		}
	}
	return StatusResponse{
		Node: f.name, Version: "test", RaftState: rs, Leader: "leader-node", LeaderAPI: f.leaderAPI,
		Term: 3, CommitIndex: f.st.Index, AppliedIndex: f.st.Index,
		Nodes: nodes,
	}
}

func (f *fakeBackend) IsLeader() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.leader
}

func (f *fakeBackend) LeaderAPI() (string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.leaderErr != nil {
		return "", f.leaderErr
	}
	if f.leaderAPI == "" {
		return "", ErrNoLeader
	}
	return f.leaderAPI, nil
}

func (f *fakeBackend) Apply(ctx context.Context, cmd *state.Command) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return nil, ErrNotLeader
	}
	if f.applyErr != nil {
		return nil, f.applyErr
	}
	// Go through the log encoding, as raft would.
	b, err := cmd.Encode()
	if err != nil {
		return nil, err
	}
	c, err := state.DecodeCommand(b)
	if err != nil {
		return nil, err
	}
	res, err := f.st.Apply(f.st.Index+1, c)
	if err == nil {
		f.applied++
	}
	return res, err
}

func (f *fakeBackend) Join(ctx context.Context, req *JoinRequest) (*JoinResponse, error) {
	var sv *state.Server
	f.View(func(st *state.State) {
		for _, s := range st.Servers {
			if s.TokenPrefix == req.TokenPrefix && req.Verify(s.TokenHash) {
				v := *s
				sv = &v
			}
		}
	})
	if sv == nil {
		return nil, &state.Error{Code: state.CodeUnauthorized, Field: "token", Message: "server token is not valid"}
	}
	cmd := state.MustCommand(f.Now(), &state.ServerBind{ID: sv.ID, NodeName: req.NodeName, Addr: req.Addr, RaftAddr: req.RaftAddr})
	if _, err := f.Apply(ctx, cmd); err != nil {
		return nil, err
	}
	sealed, err := SealJoin(sv.TokenHash, req, &JoinSecret{GossipPeers: []string{"127.0.0.1:7946"}, Profile: "local"})
	if err != nil {
		return nil, err
	}
	return &JoinResponse{ServerID: sv.ID, ServerName: sv.Name, Sealed: sealed}, nil
}

func (f *fakeBackend) Now() time.Time {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.now
}

// appliedCount is the number of commands committed through Apply.
func (f *fakeBackend) appliedCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// set changes the fake under its lock.
func (f *fakeBackend) set(fn func(f *fakeBackend)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// mustApply applies a command directly to the state, as if replicated.
func (f *fakeBackend) mustApply(t testing.TB, payload any) any {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	res, err := f.st.Apply(f.st.Index+1, state.MustCommand(f.now, payload))
	if err != nil {
		t.Fatalf("apply %T: %v", payload, err)
	}
	return res
}

// addServer creates a server record directly and returns its ID and token.
func (f *fakeBackend) addServer(t testing.TB, name string) (id, token string) {
	t.Helper()
	token, hash, prefix, err := state.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	id = "srv-" + name
	f.mustApply(t, &state.ServerAdd{ID: id, Name: name, TokenHash: hash, TokenPrefix: prefix})
	return id, token
}

// snapshot is the JSON encoding of the whole state.
func (f *fakeBackend) snapshot(t testing.TB) string {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testEnv is an API handler under test with a client.
type testEnv struct {
	b      *fakeBackend
	srv    *httptest.Server
	client *Client
}

func newEnv(t *testing.T, b *fakeBackend, mutate ...func(*ServerConfig)) *testEnv {
	t.Helper()
	cfg := ServerConfig{AdminTokenHash: state.HashToken(testAdminToken), MaxBodyBytes: 8 << 10}
	for _, m := range mutate {
		m(&cfg)
	}
	h, err := NewHandler(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	c, err := NewClient(srv.URL, testAdminToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.CloseIdleConnections()
		srv.Close()
		if s, ok := h.(*server); ok {
			s.transport.CloseIdleConnections()
		}
	})
	return &testEnv{b: b, srv: srv, client: c}
}

// raw sends a request with an optional raw body and admin token.
func (e *testEnv) raw(t *testing.T, method, path, body, token string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return rawRequest(t, e.srv.URL, method, path, body, token, hdr...)
}

func rawRequest(t *testing.T, base, method, path, body, token string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := testHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

// testHTTP is the plain client of raw requests; it keeps no connections.
var testHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}

// errorOf decodes an ErrorBody.
func errorOf(t *testing.T, body []byte) ErrorDetail {
	t.Helper()
	var eb ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return eb.Error
}

func alive(node, serverID string, applied uint64, health string) mesh.Member {
	return mesh.Member{
		Name: node, Addr: "10.0.0.9", Port: 7946, State: mesh.StateAlive,
		// A shield that runs HAProxy serves the config of what it applied.
		Meta: mesh.Meta{Shield: true, ServerID: serverID, Addr: "10.0.0.9", AppliedIndex: applied, ConfigIndex: applied, Health: health,
			Started: testStart.Add(-time.Hour).Unix(), Version: "test"},
		LastSeen: testStart, Since: testStart.Add(-time.Hour),
	}
}

// result carries a call's value and error until a test checks it:
// got(c.Status(ctx)).ok(t).
type result[T any] struct {
	v   T
	err error
}

func got[T any](v T, err error) result[T] { return result[T]{v, err} }

// ok fails the test on an error and returns the value.
func (r result[T]) ok(t testing.TB) T {
	t.Helper()
	if r.err != nil {
		t.Fatalf("unexpected error: %v", r.err)
	}
	return r.v
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return string(b)
}
