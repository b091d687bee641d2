package node

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

// The node is the API's backend.
var _ api.Backend = (*Node)(nil)

// NodeName implements api.Backend.
func (n *Node) NodeName() string { return n.cfg.Name }

// View implements api.Backend.
func (n *Node) View(fn func(st *state.State)) { n.store.View(fn) }

// Subscribe delivers gossip membership events (failover.Cluster).
func (n *Node) Subscribe() (<-chan mesh.Event, func()) { return n.mesh.Subscribe() }

// Watch signals state changes (failover.Cluster).
func (n *Node) Watch() (<-chan uint64, func()) { return n.store.Watch() }

// Members implements api.Backend.
func (n *Node) Members() []mesh.Member { return n.mesh.Members() }

// IsLeader implements api.Backend.
func (n *Node) IsLeader() bool { return n.store.IsLeader() }

// Now implements api.Backend.
func (n *Node) Now() time.Time { return time.Now() }

// Apply implements api.Backend: it commits a command through Raft.
func (n *Node) Apply(ctx context.Context, cmd *state.Command) (any, error) {
	return n.store.Apply(ctx, cmd)
}

// LeaderAPI implements api.Backend: the leader's API base URL, from its
// gossip metadata.
func (n *Node) LeaderAPI() (string, error) {
	_, id := n.store.Leader()
	if id == "" {
		return "", errors.New("no leader is known: the cluster may be electing one or may have lost its majority")
	}
	if id == n.cfg.Name {
		return n.apiURL, nil
	}
	m, ok := n.mesh.Member(id)
	if !ok || m.Meta.APIAddr == "" {
		return "", fmt.Errorf("leader %s has no known API address", id)
	}
	return m.Meta.APIAddr, nil
}

// Status implements api.Backend: the Raft and membership part of
// /v1/status.
func (n *Node) Status() api.StatusResponse {
	stats := n.store.Stats()
	_, leader := n.store.Leader()
	st := api.StatusResponse{
		Node:         n.cfg.Name,
		Version:      n.cfg.Version,
		RaftState:    strings.ToLower(n.store.State().String()),
		Leader:       leader,
		Term:         parseUint(stats["term"]),
		CommitIndex:  parseUint(stats["commit_index"]),
		AppliedIndex: n.store.AppliedIndex(),
	}
	if url, err := n.LeaderAPI(); err == nil {
		st.LeaderAPI = url
	}
	conf, _ := n.store.Configuration()
	suffrage := map[string]string{}
	raftAddr := map[string]string{}
	for _, s := range conf {
		raftAddr[string(s.ID)] = string(s.Address)
		if s.Suffrage == raft.Voter {
			suffrage[string(s.ID)] = "voter"
		} else {
			suffrage[string(s.ID)] = "nonvoter"
		}
	}
	seen := map[string]bool{}
	for _, m := range n.mesh.Members() {
		seen[m.Name] = true
		ni := api.NodeInfo{
			Name:        m.Name,
			Addr:        joinHostPort(m.Addr, m.Port),
			RaftAddr:    m.Meta.RaftAddr,
			APIAddr:     m.Meta.APIAddr,
			GossipState: string(m.State),
			Suffrage:    suffrage[m.Name],
			Leader:      m.Name == leader,
			Control:     m.Meta.Control,
			Shield:      m.Meta.Shield,
			ServerID:    m.Meta.ServerID,
			Applied:     m.Meta.AppliedIndex,
			Health:      m.Meta.Health,
			Version:     m.Meta.Version,
		}
		if m.Name == n.cfg.Name {
			// This node's own figure, not its last gossip of it.
			ni.Applied = n.store.AppliedIndex()
		}
		if !m.LastSeen.IsZero() {
			t := m.LastSeen
			ni.LastSeen = &t
		}
		st.Nodes = append(st.Nodes, ni)
	}
	for id, addr := range raftAddr {
		if !seen[id] {
			st.Nodes = append(st.Nodes, api.NodeInfo{Name: id, RaftAddr: addr, Suffrage: suffrage[id], Leader: id == leader, GossipState: "unknown", Control: suffrage[id] == "voter"})
		}
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Name < st.Nodes[j].Name })
	return st
}

// Join implements api.Backend: the leader admits a shield that presents a
// valid server token. It binds the server record to the node, adds the
// node as a Raft non-voter and hands back the gossip key and peers.
func (n *Node) Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	if !validNodeName(req.NodeName) {
		return nil, &state.Error{Code: state.CodeInvalid, Field: "node_name", Message: fmt.Sprintf("node name %q: use 1-64 letters, digits, '.', '-' or '_'", req.NodeName)}
	}
	if ip := net.ParseIP(req.Addr); ip == nil || ip.IsUnspecified() {
		return nil, &state.Error{Code: state.CodeInvalid, Field: "addr", Message: fmt.Sprintf("advertise address %q is not a usable IP", req.Addr)}
	}
	if h, _, err := splitHostPort(req.RaftAddr); err != nil || net.ParseIP(h) == nil || net.ParseIP(h).IsUnspecified() {
		return nil, &state.Error{Code: state.CodeInvalid, Field: "raft_addr", Message: fmt.Sprintf("raft address %q is not a usable IP:PORT", req.RaftAddr)}
	}
	if err := req.CheckTime(time.Now()); err != nil {
		return nil, &state.Error{Code: state.CodeUnauthorized, Field: "time", Message: err.Error()}
	}
	var sv *state.Server
	n.store.View(func(st *state.State) {
		for _, s := range st.SortedServers() {
			if s.TokenPrefix == req.TokenPrefix && req.Verify(s.TokenHash) {
				v := *s
				sv = &v
				return
			}
		}
	})
	if sv == nil {
		return nil, &state.Error{Code: state.CodeUnauthorized, Field: "token", Message: "the token is not valid for any server: check it, or create a server with 'lumos server add'"}
	}
	if !n.joinNonces.add(req.Nonce, time.Now()) {
		return nil, &state.Error{Code: state.CodeUnauthorized, Field: "nonce", Message: "this join request was already used: a new one is signed at every attempt"}
	}
	if sv.Decommissioned {
		return nil, &state.Error{Code: state.CodeDecommissioned, Field: "token", Message: fmt.Sprintf("server %q was decommissioned: its token can never reconnect", sv.Name)}
	}
	if m, ok := n.mesh.Member(req.NodeName); ok && m.Meta.Control && (m.State == mesh.StateAlive || m.State == mesh.StateSuspect) {
		return nil, &state.Error{Code: state.CodeConflict, Field: "node_name", Message: fmt.Sprintf("node name %q is used by a control node: pass another --name", req.NodeName)}
	}
	rebind := false
	if sv.NodeName != "" && sv.NodeName != req.NodeName {
		if m, ok := n.mesh.Member(sv.NodeName); ok && (m.State == mesh.StateAlive || m.State == mesh.StateSuspect) {
			return nil, &state.Error{Code: state.CodeConflict, Field: "token", Message: fmt.Sprintf("the token of server %q is already in use by live node %q", sv.Name, sv.NodeName)}
		}
		rebind = true
	}
	cmd := state.MustCommand(time.Now(), &state.ServerBind{ID: sv.ID, NodeName: req.NodeName, Addr: req.Addr, RaftAddr: req.RaftAddr, Rebind: rebind, Sites: req.Sites})
	if _, err := n.store.Apply(ctx, cmd); err != nil {
		return nil, err
	}
	if rebind {
		if err := n.store.RemoveServer(sv.NodeName, 10*time.Second); err != nil {
			n.log.Warn("remove previous node of server", "node", sv.NodeName, "err", err)
		}
	}
	if err := n.store.AddNonvoter(req.NodeName, req.RaftAddr, 10*time.Second); err != nil {
		// The bind is committed; the leader's reconcile loop retries.
		n.log.Warn("add shield as non-voter", "node", req.NodeName, "err", err)
	}
	secret := &api.JoinSecret{GossipKey: encodeKey(n.cfg.GossipKey), Profile: n.cfg.meshProfile()}
	for _, m := range n.mesh.AliveMembers() {
		if m.Meta.Control {
			secret.GossipPeers = append(secret.GossipPeers, joinHostPort(m.Addr, m.Port))
		}
	}
	sort.Strings(secret.GossipPeers)
	sealed, err := api.SealJoin(sv.TokenHash, req, secret)
	if err != nil {
		return nil, err
	}
	resp := &api.JoinResponse{ServerID: sv.ID, ServerName: sv.Name, Sealed: sealed}
	n.log.Info("shield joined", "server", sv.ID, "name", sv.Name, "node", req.NodeName, "addr", req.Addr)
	return resp, nil
}

// firstJoin presents the token to the control plane, retrying while it is
// unreachable or electing a leader, and saves what it answers.
func (n *Node) firstJoin(ctx context.Context, raftAddr string) error {
	if n.cfg.Token == "" || n.cfg.ControlURL == "" {
		return fmt.Errorf("%w: a shield's first start needs --token TOKEN and the control node URL", ErrNotJoined)
	}
	client, err := api.NewClient(n.cfg.ControlURL, "")
	if err != nil {
		return err
	}
	gossip, err := advertiseAddr(n.cfg.BindAddr, n.advertiseIP)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	backoff := 250 * time.Millisecond
	for {
		// A fresh signature (time and nonce) at every attempt.
		req, err := api.NewJoinRequest(n.cfg.Token, time.Now(), n.cfg.Name, n.advertiseIP, gossip, raftAddr, n.cfg.Version, n.detected)
		if err != nil {
			return fmt.Errorf("join: %w", err)
		}
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		resp, err := client.Join(rctx, req)
		cancel()
		if err == nil {
			secret, err := api.OpenJoin(n.cfg.Token, req, resp.Sealed)
			if err != nil {
				return fmt.Errorf("join: the answer from %s could not be verified with this token: is it a lumos control node of this cluster?", n.cfg.ControlURL)
			}
			key := []byte(nil)
			if secret.GossipKey != "" {
				if key, err = mesh.ParseKey(secret.GossipKey); err != nil {
					return fmt.Errorf("join: gossip key from control plane: %w", err)
				}
			}
			n.id = &identity{Name: n.cfg.Name, Shield: true, ServerID: resp.ServerID, GossipKey: encodeKey(key), Peers: secret.GossipPeers, Profile: secret.Profile, CreatedAt: time.Now().UTC()}
			if err := n.id.save(n.cfg.DataDir); err != nil {
				return err
			}
			n.log.Info("joined as shield", "server", resp.ServerID, "name", resp.ServerName)
			return nil
		}
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code != state.CodeNotLeader && ae.Code != state.CodeUnavailable && ae.StatusCode < 500 {
			return fmt.Errorf("join refused: %s", ae.Message)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("join: %w", err)
		}
		n.log.Warn("control plane not ready; retrying join", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		if backoff < 4*time.Second {
			backoff *= 2
		}
	}
}

func parseUint(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

func joinHostPort(h string, p int) string { return net.JoinHostPort(h, strconv.Itoa(p)) }

// slogStd adapts slog for the std loggers net/http wants.
func slogStd(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelWarn)
}

// nonceCache remembers join nonces for twice the allowed clock skew, so a
// captured request cannot be replayed.
type nonceCache struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// add records nonce and reports whether it was new.
func (c *nonceCache) add(nonce string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	for k, t := range c.seen {
		if now.Sub(t) > 2*api.JoinMaxSkew {
			delete(c.seen, k)
		}
	}
	if _, ok := c.seen[nonce]; ok {
		return false
	}
	c.seen[nonce] = now
	return true
}
