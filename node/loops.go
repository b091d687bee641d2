package node

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/lumos-mesh/lumos/failover"
	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/raftstore"
	"github.com/lumos-mesh/lumos/state"
)

// sleepCtx waits for d or until ctx ends; it reports whether ctx is still
// live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// joinLoop joins the configured (or remembered) peers, retrying with
// backoff until at least one answers, then keeps a shield's list of control
// peers fresh on disk.
func (n *Node) joinLoop() {
	peers := append([]string(nil), n.cfg.Peers...)
	if n.id != nil {
		peers = append(peers, n.id.Peers...)
	}
	peers = dedupe(peers, n.mesh.LocalAddr())
	backoff := 200 * time.Millisecond
	for len(peers) > 0 {
		got, err := n.mesh.Join(peers)
		if got > 0 {
			n.log.Info("joined gossip mesh", "contacted", got)
			break
		}
		n.log.Warn("cannot reach gossip peers yet; retrying", "peers", peers, "err", err, "in", backoff)
		if !sleepCtx(n.ctx, backoff) {
			return
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
	if !(n.cfg.Shield && !n.cfg.Control) {
		return
	}
	// Remember the control nodes' gossip addresses for the next start.
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		n.savePeers()
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) savePeers() {
	var peers []string
	for _, m := range n.mesh.AliveMembers() {
		if m.Meta.Control {
			peers = append(peers, joinHostPort(m.Addr, m.Port))
		}
	}
	if len(peers) == 0 {
		return
	}
	sort.Strings(peers)
	if equalStrings(peers, n.id.Peers) {
		return
	}
	id := *n.id
	id.Peers = peers
	if err := id.save(n.cfg.DataDir); err != nil {
		n.log.Warn("cannot save peers", "err", err)
		return
	}
	n.id.Peers = peers
}

// metaLoop publishes the applied Raft index (and whether this node holds
// state) in its gossip metadata, at most every 100 ms.
func (n *Node) metaLoop() {
	ch, cancel := n.store.Watch()
	defer cancel()
	var last uint64
	for {
		var idx uint64
		select {
		case <-n.ctx.Done():
			return
		case idx = <-ch:
		}
		// The watch fires from the FSM before Raft counts the entry as
		// applied, so take the larger of the two.
		idx = max(idx, n.store.AppliedIndex())
		has := n.store.HasState()
		if idx != last || has != n.mesh.LocalMeta().Bootstrapped {
			last = idx
			sid := n.ServerID()
			if err := n.mesh.UpdateMeta(func(m *mesh.Meta) {
				m.AppliedIndex = idx
				m.Bootstrapped = has
				if sid != "" {
					m.ServerID = sid
				}
			}); err != nil {
				n.log.Warn("update gossip metadata", "err", err)
			}
		}
		if !sleepCtx(n.ctx, 100*time.Millisecond) {
			return
		}
	}
}

// bootstrapLoop bootstraps a new cluster once BootstrapExpect control nodes
// see each other through gossip and none of them already belongs to a
// cluster. Every one of them bootstraps with the same configuration, which
// Raft allows; a node with existing state never bootstraps again.
func (n *Node) bootstrapLoop() {
	events, cancel := n.mesh.Subscribe()
	defer cancel()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if n.store.HasState() {
			return
		}
		var controls []mesh.Member
		joined := false
		for _, m := range n.mesh.AliveMembers() {
			if !m.Meta.Control {
				continue
			}
			if m.Meta.Bootstrapped && m.Name != n.cfg.Name {
				joined = true
			}
			controls = append(controls, m)
		}
		if joined {
			n.log.Info("a cluster already exists; waiting for its leader to add this node")
			return
		}
		if len(controls) >= n.cfg.BootstrapExpect {
			servers := make([]raft.Server, 0, len(controls))
			for _, m := range controls {
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.Name), Address: raft.ServerAddress(m.Meta.RaftAddr)})
			}
			sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
			err := n.store.Bootstrap(servers)
			switch {
			case err == nil:
				n.log.Info("bootstrapped cluster", "voters", len(servers))
			case errors.Is(err, raftstore.ErrAlreadyBootstrapped):
			default:
				n.log.Error("bootstrap failed", "err", err)
			}
			return
		}
		select {
		case <-n.ctx.Done():
			return
		case <-events:
		case <-t.C:
		}
	}
}

// leaderLoop runs leader-only work under a context that is cancelled when
// leadership is lost. Leadership signals are hints: the state is re-checked
// every second as well.
func (n *Node) leaderLoop() {
	ch, cancel := n.store.LeadershipChanges()
	defer cancel()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lw *leaderWork
	defer func() { lw.stop() }()
	for {
		leader := n.store.IsLeader()
		if leader && lw == nil {
			lw = n.startLeaderWork()
		} else if !leader && lw != nil {
			lw.stop()
			lw = nil
		}
		select {
		case <-n.ctx.Done():
			return
		case <-ch:
		case <-t.C:
		}
	}
}

// leaderWork is one term of leader-only work.
type leaderWork struct {
	cancel context.CancelFunc
	done   chan struct{}
	log    interface{ Info(string, ...any) }
}

func (n *Node) startLeaderWork() *leaderWork {
	ctx, cancel := context.WithCancel(n.ctx)
	lw := &leaderWork{cancel: cancel, done: make(chan struct{}), log: n.log}
	go func() {
		defer close(lw.done)
		n.runLeader(ctx)
	}()
	return lw
}

func (lw *leaderWork) stop() {
	if lw == nil {
		return
	}
	lw.cancel()
	<-lw.done
	lw.log.Info("leader work stopped")
}

// runLeader is the leader's work: reconcile Raft membership with gossip and
// the replicated state, and run the leader hook.
func (n *Node) runLeader(ctx context.Context) {
	n.log.Info("leader work started")
	if err := n.store.Barrier(10 * time.Second); err != nil {
		n.log.Warn("barrier after election", "err", err)
	}
	var hooks sync.WaitGroup
	if n.cfg.LeaderHook != nil {
		hooks.Go(func() { n.cfg.LeaderHook(ctx, n) })
	}
	if n.failover != nil {
		hooks.Go(func() {
			if err := failover.Run(ctx, n.failover, n); err != nil {
				n.log.Error("failover controller", "err", err)
			}
		})
	}
	events, cancel := n.mesh.Subscribe()
	defer cancel()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		n.reconcile(ctx)
		select {
		case <-ctx.Done():
			hooks.Wait()
			return
		case <-events:
		case <-t.C:
		}
	}
}

// reconcile brings the Raft configuration in line with gossip and state:
// control nodes seen in gossip become voters; bound, live shields are
// non-voters; decommissioned shields are removed after the grace period.
func (n *Node) reconcile(ctx context.Context) {
	if ctx.Err() != nil || !n.store.IsLeader() {
		return
	}
	conf, err := n.store.Configuration()
	if err != nil {
		n.log.Warn("read raft configuration", "err", err)
		return
	}
	inConf := map[string]raft.Server{}
	for _, s := range conf {
		inConf[string(s.ID)] = s
	}
	for _, m := range n.mesh.AliveMembers() {
		if !m.Meta.Control || m.Meta.RaftAddr == "" {
			continue
		}
		if s, ok := inConf[m.Name]; ok && s.Suffrage == raft.Voter && string(s.Address) == m.Meta.RaftAddr {
			continue
		}
		n.log.Info("adding control node as voter", "node", m.Name, "raft", m.Meta.RaftAddr)
		if err := n.store.AddVoter(m.Name, m.Meta.RaftAddr, 10*time.Second); err != nil {
			n.log.Warn("add voter", "node", m.Name, "err", err)
		}
	}

	if n.cfg.Shield {
		n.ensureSelfServer(ctx)
	}
	n.reconcileHealth(ctx)

	now := time.Now()
	var toAdd, toRemove []*state.Server
	n.store.View(func(st *state.State) {
		for _, sv := range st.SortedServers() {
			if sv.NodeName == "" || sv.NodeName == n.cfg.Name {
				continue
			}
			s, in := inConf[sv.NodeName]
			switch {
			case !sv.Decommissioned && sv.RaftAddr != "" && (!in || string(s.Address) != sv.RaftAddr):
				v := *sv
				toAdd = append(toAdd, &v)
			case sv.Decommissioned && !sv.NodeRemoved && now.Sub(sv.DecommissionedAt) >= n.cfg.DecommissionGrace:
				v := *sv
				toRemove = append(toRemove, &v)
			}
		}
	})
	for _, sv := range toAdd {
		if s, in := inConf[sv.NodeName]; in && s.Suffrage == raft.Voter {
			continue // a node that is also a control node stays a voter
		}
		if err := n.store.AddNonvoter(sv.NodeName, sv.RaftAddr, 10*time.Second); err != nil {
			n.log.Warn("add shield as non-voter", "node", sv.NodeName, "err", err)
		}
	}
	for _, sv := range toRemove {
		if _, in := inConf[sv.NodeName]; in {
			if err := n.store.RemoveServer(sv.NodeName, 10*time.Second); err != nil {
				n.log.Warn("remove decommissioned node", "node", sv.NodeName, "err", err)
				continue
			}
		}
		n.mesh.ForgetMember(sv.NodeName)
		if _, err := n.store.Apply(ctx, state.MustCommand(time.Now(), &state.ServerNodeRemoved{ID: sv.ID})); err != nil {
			n.log.Warn("record node removal", "server", sv.ID, "err", err)
			continue
		}
		n.log.Info("removed decommissioned node after grace period", "node", sv.NodeName, "server", sv.ID)
	}
}

// reconcileHealth records in the state the HAProxy errors shields gossip
// (and their clearing), so they reach events, notifications and every
// control node. It compares gossip with the replicated record, so a new
// leader neither repeats nor misses a change.
func (n *Node) reconcileHealth(ctx context.Context) {
	type change struct{ id, typ, msg string }
	var changes []change
	members := map[string]mesh.Member{}
	for _, m := range n.mesh.AliveMembers() {
		members[m.Name] = m
	}
	n.store.View(func(st *state.State) {
		for _, sv := range st.SortedServers() {
			m, ok := members[sv.NodeName]
			if sv.Decommissioned || sv.NodeName == "" || !ok || !m.Meta.Shield || m.Meta.Health == "" {
				continue
			}
			typ, msg := "", ""
			if m.Meta.Health == "error" {
				typ, msg = m.Meta.ErrorType, m.Meta.HealthError
				if typ == "" {
					typ = "haproxy_error"
				}
				if msg == "" {
					msg = typ
				}
			}
			if typ != sv.ErrorType || (typ != "" && msg != sv.Error) {
				changes = append(changes, change{sv.ID, typ, msg})
			}
		}
	})
	for _, c := range changes {
		if _, err := n.store.Apply(ctx, state.MustCommand(time.Now(), &state.ServerHealth{ID: c.id, ErrorType: c.typ, Error: c.msg})); err != nil {
			n.log.Warn("record shield health", "server", c.id, "err", err)
		}
	}
}

// ensureSelfServer gives a node that is both control and shield (lumos dev)
// a server record bound to itself.
func (n *Node) ensureSelfServer(ctx context.Context) {
	if n.ownServer() != nil {
		return
	}
	id, err := state.NewID("srv-")
	if err != nil {
		return
	}
	_, hash, prefix, err := state.NewToken()
	if err != nil {
		return
	}
	if _, err := n.store.Apply(ctx, state.MustCommand(time.Now(), &state.ServerAdd{ID: id, Name: n.cfg.Name, TokenHash: hash, TokenPrefix: prefix})); err != nil {
		n.log.Warn("create this node's server record", "err", err)
		return
	}
	if _, err := n.store.Apply(ctx, state.MustCommand(time.Now(), &state.ServerBind{ID: id, NodeName: n.cfg.Name, Addr: n.advertiseIP, RaftAddr: n.store.Addr()})); err != nil {
		n.log.Warn("bind this node's server record", "err", err)
	}
}

// forgetLoop drops the nodes of decommissioned servers from this node's
// member table once the leader has removed them from the cluster.
func (n *Node) forgetLoop() {
	ch, cancel := n.store.Watch()
	defer cancel()
	forgotten := map[string]bool{}
	for {
		var names []string
		n.store.View(func(st *state.State) {
			for _, sv := range st.Servers {
				if sv.NodeRemoved && sv.NodeName != "" && !forgotten[sv.NodeName] && st.ServerByNode(sv.NodeName) == sv {
					names = append(names, sv.NodeName)
				}
			}
		})
		for _, name := range names {
			if m, ok := n.mesh.Member(name); !ok || m.State == mesh.StateDead || m.State == mesh.StateLeft {
				n.mesh.ForgetMember(name)
				forgotten[name] = true
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-ch:
		}
	}
}

// heartbeatLoop bumps this shield's gossip heartbeat, so the leader can
// tell a hung agent from a live one.
func (n *Node) heartbeatLoop() {
	every := n.cfg.HeartbeatInterval
	if every <= 0 {
		every = DefaultHeartbeatInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := n.mesh.UpdateMeta(func(m *mesh.Meta) { m.Heartbeat++ }); err != nil {
			if errors.Is(err, mesh.ErrClosed) || errors.Is(err, mesh.ErrLeft) {
				return
			}
			n.log.Warn("publish heartbeat", "err", err)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// shieldLoop watches this shield's server record. A shield-only node whose
// server is decommissioned stops serving, leaves the mesh and stops.
func (n *Node) shieldLoop() {
	ch, cancel := n.store.Watch()
	defer cancel()
	for {
		if sv := n.ownServer(); sv != nil && sv.Decommissioned && !n.cfg.Control {
			n.log.Warn("this server was decommissioned: stopping HAProxy, leaving the mesh and stopping", "server", sv.ID)
			if n.shield != nil {
				ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
				if err := n.shield.stop(ctx); err != nil {
					n.log.Warn("stop HAProxy", "err", err)
				}
				cancel()
			}
			n.stopSelf(ErrDecommissioned)
			return
		}
		select {
		case <-n.ctx.Done():
			return
		case <-ch:
		}
	}
}

func dedupe(list []string, self string) []string {
	seen := map[string]bool{self: true}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
