package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/lumos-mesh/lumos/haproxy"
	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

// HAProxyConfig configures the HAProxy a shield runs.
type HAProxyConfig struct {
	// ListenHTTP and ListenTLS are where HAProxy serves HTTP and TLS
	// passthrough (IP:PORT; ListenTLS may be empty).
	ListenHTTP string
	ListenTLS  string
	// Binary is the haproxy executable ("" = from PATH).
	Binary string
	// KeepRunning leaves HAProxy serving when the node stops, so a lumos
	// restart never drops traffic; the next start adopts it.
	KeepRunning bool
	// OriginalConfig is the HAProxy configuration found on the machine
	// (e.g. /etc/haproxy/haproxy.cfg): backed up and scanned for sites at
	// the first join. "" skips both.
	OriginalConfig string
	// StatsInterval is how often traffic figures are read (default 5s).
	StatsInterval time.Duration
	// RenderHook, when set, may change a rendering before it is applied
	// (tests use it to inject configurations HAProxy refuses).
	RenderHook func(*haproxy.Rendered)
}

// Directories inside a shield's data dir.
const (
	HAProxyDir  = "haproxy"  // lumos's own HAProxy config, maps, sockets
	OriginalDir = "original" // backup of the HAProxy config found at join
)

// shield is the HAProxy pipeline of a shield node: it renders the domains
// assigned to this server from the local copy of the state, applies them,
// and reports health, the config it serves and traffic in gossip.
type shield struct {
	n   *Node
	cfg *HAProxyConfig
	dir string
	mgr *haproxy.Manager

	mu       sync.Mutex
	served   string                       // hash of the rendering HAProxy serves
	index    uint64                       // state index that rendering came from
	stats    map[string]haproxy.SiteStats // by domain
	backends map[string]string            // backend name -> domain, of the served rendering
	health   haproxy.Health
	failed   bool // the last apply failed; retried periodically
}

// detectOriginal backs up and scans the HAProxy configuration found on the
// machine, once, at a shield's first join. Problems are logged, never
// fatal: a shield joins whatever it finds.
func (n *Node) detectOriginal() {
	hc := n.cfg.HAProxy
	if hc == nil || hc.OriginalConfig == "" {
		return
	}
	if _, err := haproxy.Backup(hc.OriginalConfig, filepath.Join(n.cfg.DataDir, OriginalDir)); err != nil {
		n.log.Warn("cannot back up the original HAProxy config", "path", hc.OriginalConfig, "err", err)
		return
	}
	if _, err := os.Stat(hc.OriginalConfig); err != nil {
		return
	}
	sites, err := haproxy.DetectFile(hc.OriginalConfig)
	if err != nil {
		n.log.Warn("cannot read sites from the original HAProxy config", "path", hc.OriginalConfig, "err", err)
		return
	}
	for _, s := range sites {
		n.detected = append(n.detected, state.Site{Domain: s.Domain, Mode: s.Mode, Origins: s.Origins, Backend: s.Backend, Frontend: s.Frontend, Unresolved: s.Unresolved})
	}
	n.log.Info("detected sites in the original HAProxy config", "path", hc.OriginalConfig, "sites", len(sites))
}

// startShield starts HAProxy with the configuration of the local state
// (or adopts the HAProxy a previous run left serving).
func (n *Node) startShield(ctx context.Context) error {
	hc := n.cfg.HAProxy
	if hc == nil {
		return nil
	}
	s := &shield{n: n, cfg: hc, dir: filepath.Join(n.cfg.DataDir, HAProxyDir)}
	mgr, err := haproxy.NewManager(haproxy.Config{
		Dir:         s.dir,
		Binary:      hc.Binary,
		KeepRunning: hc.KeepRunning,
		Logger:      n.log.With("subsystem", "haproxy"),
		OnEvent:     s.onEvent,
	})
	if err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	s.mgr = mgr
	r, sites, idx, err := s.render()
	if err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	// HAProxy may serve a config rendered from a newer state than this
	// node's copy holds right now (the last entries reach it from the
	// leader): then adopt what serves and never roll it back.
	if prev, ok := s.loadServed(); ok && prev.Index > idx {
		n.log.Info("HAProxy serves a newer config than the local state; keeping it until the state catches up", "served_index", prev.Index, "state_index", idx)
		if err := mgr.Start(ctx, nil); err != nil {
			return fmt.Errorf("haproxy: %w", err)
		}
		s.mu.Lock() // the manager's events may already publish
		s.served, s.index = mgr.Health().ConfigHash, prev.Index
		s.mu.Unlock()
	} else {
		if err := mgr.Start(ctx, r); err != nil {
			return fmt.Errorf("haproxy: %w", err)
		}
		s.setServed(r, sites, idx)
		if h := mgr.Health(); h.ConfigHash != r.Hash {
			// HAProxy fell back to the last good config: serve that,
			// report the error, and let the config loop retry.
			n.log.Error("HAProxy serves its last good config; the current one was refused", "err", h.Error)
			s.mu.Lock()
			s.served, s.failed = h.ConfigHash, true
			s.mu.Unlock()
		}
	}
	n.shield = s
	s.publish()
	n.goFn(s.configLoop)
	n.goFn(s.statsLoop)
	return nil
}

// spec builds the HAProxy spec from the local state: the domains assigned
// to this node's server (none once it is decommissioned).
func (s *shield) spec() (*haproxy.Spec, uint64) {
	sp := &haproxy.Spec{Dir: s.dir, ListenHTTP: s.cfg.ListenHTTP, ListenTLS: s.cfg.ListenTLS}
	var idx uint64
	s.n.store.View(func(st *state.State) {
		idx = st.Index
		sv := st.ServerByNode(s.n.cfg.Name)
		if sv == nil || sv.Decommissioned {
			return
		}
		for _, name := range st.DomainsOf(sv.ID) {
			d := st.Domains[name]
			sp.Sites = append(sp.Sites, haproxy.Site{Domain: d.Name, Mode: d.Mode, Origins: append([]string(nil), d.Origins...)})
		}
	})
	sort.Slice(sp.Sites, func(i, j int) bool { return sp.Sites[i].Domain < sp.Sites[j].Domain })
	return sp, idx
}

func (s *shield) render() (*haproxy.Rendered, []haproxy.Site, uint64, error) {
	sp, idx := s.spec()
	r, err := haproxy.Render(sp)
	if err != nil {
		return nil, nil, 0, err
	}
	if s.cfg.RenderHook != nil {
		s.cfg.RenderHook(r)
	}
	return r, sp.Sites, idx, nil
}

func (s *shield) setServed(r *haproxy.Rendered, sites []haproxy.Site, idx uint64) {
	backends := make(map[string]string, len(sites))
	for _, site := range sites {
		backends[haproxy.BackendName(site.Domain)] = site.Domain
	}
	s.mu.Lock()
	changed := s.served != r.Hash || s.index != idx
	s.served, s.index, s.backends = r.Hash, idx, backends
	s.mu.Unlock()
	if changed {
		s.saveServed(servedRecord{Hash: r.Hash, Index: idx})
	}
}

// servedRecord is what HAProxy serves, kept beside the data dir so a
// restarted shield knows which state its running HAProxy reflects.
type servedRecord struct {
	Hash  string `json:"hash"`
	Index uint64 `json:"index"`
}

const servedFile = "haproxy-served.json"

func (s *shield) saveServed(r servedRecord) {
	b, _ := json.Marshal(r)
	p := filepath.Join(s.n.cfg.DataDir, servedFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		s.n.log.Warn("record the served config", "err", err)
		return
	}
	if err := os.Rename(tmp, p); err != nil {
		s.n.log.Warn("record the served config", "err", err)
	}
}

func (s *shield) loadServed() (servedRecord, bool) {
	var r servedRecord
	b, err := os.ReadFile(filepath.Join(s.n.cfg.DataDir, servedFile))
	if err != nil || json.Unmarshal(b, &r) != nil {
		return r, false
	}
	return r, true
}

// configLoop re-renders on every change of the local state and applies
// what changed. Changes are coalesced: the watch keeps only the newest
// index, so a burst of commits costs one apply, and Raft's apply path
// never waits for HAProxy.
func (s *shield) configLoop() {
	ch, cancel := s.n.store.Watch()
	defer cancel()
	retry := time.NewTicker(5 * time.Second)
	defer retry.Stop()
	for {
		select {
		case <-s.n.ctx.Done():
			return
		case <-ch:
		case <-retry.C:
			s.mu.Lock()
			failed := s.failed
			s.mu.Unlock()
			if !failed {
				continue
			}
		}
		s.sync()
	}
}

// sync renders the current state and applies it if it differs from what
// HAProxy serves.
func (s *shield) sync() {
	r, sites, idx, err := s.render()
	if err != nil {
		s.n.log.Error("render HAProxy config", "err", err)
		return
	}
	s.mu.Lock()
	same := r.Hash == s.served
	stale := idx < s.index
	s.mu.Unlock()
	if stale {
		// HAProxy serves a rendering of a newer state; wait for it.
		return
	}
	if same {
		s.setServed(r, sites, idx)
		s.publish()
		return
	}
	ctx, cancel := context.WithTimeout(s.n.ctx, 60*time.Second)
	res, err := s.mgr.Apply(ctx, r)
	s.n.metrics.observeApply(res, err)
	cancel()
	if err != nil {
		s.n.log.Error("apply HAProxy config; still serving the last good one", "err", err)
		s.mu.Lock()
		s.failed = true
		s.mu.Unlock()
		s.publish()
		return
	}
	s.mu.Lock()
	s.failed = false
	s.mu.Unlock()
	s.setServed(r, sites, idx)
	s.n.log.Info("HAProxy config applied", "index", idx, "reloaded", res.Reloaded, "runtime_only", res.RuntimeOnly, "took", res.Took)
	s.publish()
}

func (s *shield) onEvent(e haproxy.Event) {
	switch e.Type {
	case "exited", "restarted", "started", "adopted":
		s.n.log.Info("haproxy "+e.Type, "detail", e.Detail, "pid", e.PID)
		// Publishing calls into the mesh; never from the manager's goroutine.
		go s.publish()
	}
}

// publish puts HAProxy's health, the config it serves and the state index
// it was rendered from into this node's gossip metadata.
func (s *shield) publish() {
	if s.n.ctx.Err() != nil {
		return
	}
	h := s.mgr.Health()
	s.mu.Lock()
	idx := s.index
	s.health = h
	s.mu.Unlock()
	err := s.n.mesh.UpdateMeta(func(m *mesh.Meta) {
		m.ConfigHash = h.ConfigHash
		m.ConfigIndex = idx
		m.Restarts = h.Restarts
		if h.OK {
			m.Health, m.ErrorType, m.HealthError = "ok", "", ""
		} else {
			m.Health, m.ErrorType, m.HealthError = "error", h.ErrorType, h.Error
			if m.ErrorType == "" {
				m.ErrorType = "haproxy_down"
			}
			if m.HealthError == "" {
				m.HealthError = "HAProxy is not running"
			}
		}
	})
	if err != nil && !errors.Is(err, mesh.ErrClosed) && !errors.Is(err, mesh.ErrLeft) {
		s.n.log.Warn("publish HAProxy health", "err", err)
	}
}

// statsLoop reads HAProxy's traffic figures and gossips their totals.
func (s *shield) statsLoop() {
	every := s.cfg.StatsInterval
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.n.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.n.ctx, every)
		stats, err := s.mgr.Stats(ctx)
		cancel()
		if err != nil {
			s.n.log.Debug("read HAProxy stats", "err", err)
			continue
		}
		var tr mesh.Traffic
		byDomain := map[string]haproxy.SiteStats{}
		s.mu.Lock()
		backends := s.backends
		s.mu.Unlock()
		for _, st := range stats {
			domain, ok := backends[st.Backend]
			if !ok {
				continue // a backend of a site no longer served
			}
			byDomain[domain] = st
			tr.RequestsPerSec += st.RequestsPerSec
			tr.Requests += st.Requests
			tr.BytesIn += st.BytesIn
			tr.BytesOut += st.BytesOut
			tr.Connections += st.CurrentConns
			tr.Responses5xx += st.Responses5xx
		}
		tr.At = time.Now().Unix()
		s.mu.Lock()
		s.stats = byDomain
		s.mu.Unlock()
		if err := s.n.mesh.UpdateMeta(func(m *mesh.Meta) { m.Traffic = &tr }); err != nil && !errors.Is(err, mesh.ErrClosed) && !errors.Is(err, mesh.ErrLeft) {
			s.n.log.Warn("publish traffic", "err", err)
		}
	}
}

// close stops the pipeline: HAProxy keeps serving when KeepRunning.
func (s *shield) close(ctx context.Context) error {
	return s.mgr.Close(ctx)
}

// stop stops HAProxy (decommission).
func (s *shield) stop(ctx context.Context) error {
	return s.mgr.Stop(ctx)
}
