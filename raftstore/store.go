package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/lumos-mesh/lumos/state"
)

// Errors returned by the Store. They are *state.Error values, so
// state.CodeOf gives the stable code an API answers with, and errors.Is
// matches them even when wrapped. Errors from raft are wrapped as well, so
// errors.Is(err, raft.ErrNotLeader) also works.
var (
	// ErrNotLeader (code not_leader): the operation needs the leader and
	// this node is not it (raft.ErrNotLeader), or it lost leadership while
	// the operation was in flight (raft.ErrLeadershipLost: the command may
	// or may not have been committed), or leadership is being transferred.
	// Retry on the leader.
	ErrNotLeader error = &state.Error{Code: state.CodeNotLeader, Message: "raftstore: not the leader"}
	// ErrAlreadyBootstrapped (code conflict): Bootstrap was called on a
	// node that already has raft state (wraps raft.ErrCantBootstrap).
	ErrAlreadyBootstrapped error = &state.Error{Code: state.CodeConflict, Message: "raftstore: already bootstrapped"}
	// ErrClosed (code unavailable): the store was closed, or raft shut down
	// (wraps raft.ErrRaftShutdown when it comes from raft).
	ErrClosed error = &state.Error{Code: state.CodeUnavailable, Message: "raftstore: closed"}
)

// Defaults for the fields of Config that raft does not default.
const (
	DefaultApplyTimeout     = 10 * time.Second
	DefaultMaxPool          = 3
	DefaultTransportTimeout = 10 * time.Second
	// SnapshotsRetained is how many snapshots are kept on disk.
	SnapshotsRetained = 3
)

// Config configures a Store.
type Config struct {
	// NodeID is the raft server ID: the node's unique name. Required.
	NodeID string
	// DataDir holds the raft files in DataDir/raft: raft.db (log and
	// stable store) and snapshots/. Required.
	DataDir string
	// BindAddr is the "IP:PORT" the raft TCP transport listens on. Port 0
	// picks a free port (Addr reports it). Required unless StreamLayer is
	// set.
	BindAddr string
	// AdvertiseAddr is the "IP:PORT" peers dial. Optional; it must be a
	// concrete IP. Required when BindAddr is an unspecified address
	// (0.0.0.0 or ::).
	AdvertiseAddr string
	// Logger receives the store's and raft's logs; nil discards them. The
	// store adds the "subsystem" attribute itself ("raft", and
	// "raft.snapshot", "raft.transport" for raft's parts), so pass a
	// logger without one.
	Logger *slog.Logger

	// Raft timings; zero means the raft default (heartbeat and election
	// 1s, leader lease 500ms, commit 50ms). When only HeartbeatTimeout is
	// set below the default lease, the lease follows it (raft requires
	// lease <= heartbeat <= election).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold, SnapshotInterval and TrailingLogs tune snapshots
	// and log compaction; zero means the raft default.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64

	// ApplyTimeout bounds Apply when its context has no deadline.
	ApplyTimeout time.Duration
	// MaxPool is the number of pooled connections per peer.
	MaxPool int
	// TransportTimeout is the I/O deadline of transport operations.
	TransportTimeout time.Duration

	// StreamLayer, when set, replaces the plain TCP listener and dialer
	// (for an encrypted transport); BindAddr and AdvertiseAddr are then
	// unused and the layer's Addr is advertised. The store closes it on
	// Close, and Open closes it when it fails.
	StreamLayer raft.StreamLayer
}

// DefaultConfig returns a Config with the store's own defaults filled in
// and raft timings left at zero (raft defaults). NodeID, DataDir and
// BindAddr must still be set.
func DefaultConfig() *Config {
	return &Config{
		ApplyTimeout:     DefaultApplyTimeout,
		MaxPool:          DefaultMaxPool,
		TransportTimeout: DefaultTransportTimeout,
	}
}

// Validate checks the configuration without changing it.
func (c *Config) Validate() error {
	if c == nil {
		return errors.New("raftstore config: config is nil")
	}
	if c.NodeID == "" {
		return errors.New("raftstore config: NodeID is required")
	}
	if c.DataDir == "" {
		return errors.New("raftstore config: DataDir is required")
	}
	if c.StreamLayer == nil {
		if c.BindAddr == "" {
			return errors.New("raftstore config: BindAddr is required")
		}
		ap, err := parseAddrPort(c.BindAddr)
		if err != nil {
			return fmt.Errorf("raftstore config: BindAddr %q: %w", c.BindAddr, err)
		}
		if ap.Addr().IsUnspecified() && c.AdvertiseAddr == "" {
			return fmt.Errorf("raftstore config: BindAddr %q is not an address peers can dial: set AdvertiseAddr", c.BindAddr)
		}
		if c.AdvertiseAddr != "" {
			ap, err := parseAddrPort(c.AdvertiseAddr)
			if err != nil {
				return fmt.Errorf("raftstore config: AdvertiseAddr %q: %w", c.AdvertiseAddr, err)
			}
			if ap.Addr().IsUnspecified() {
				return fmt.Errorf("raftstore config: AdvertiseAddr %q must be a concrete IP address", c.AdvertiseAddr)
			}
			if ap.Port() == 0 {
				return fmt.Errorf("raftstore config: AdvertiseAddr %q needs a port", c.AdvertiseAddr)
			}
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HeartbeatTimeout", c.HeartbeatTimeout},
		{"ElectionTimeout", c.ElectionTimeout},
		{"LeaderLeaseTimeout", c.LeaderLeaseTimeout},
		{"CommitTimeout", c.CommitTimeout},
		{"SnapshotInterval", c.SnapshotInterval},
		{"ApplyTimeout", c.ApplyTimeout},
		{"TransportTimeout", c.TransportTimeout},
	} {
		if d.v < 0 {
			return fmt.Errorf("raftstore config: %s %s is negative", d.name, d.v)
		}
	}
	if c.MaxPool < 0 {
		return fmt.Errorf("raftstore config: MaxPool %d is negative", c.MaxPool)
	}
	if _, err := c.raftConfig(); err != nil {
		return fmt.Errorf("raftstore config: %w", err)
	}
	return nil
}

// parseAddrPort parses "IP:PORT" with a literal IP.
func parseAddrPort(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, errors.New("want IP:PORT")
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IP address", host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", port)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

// raftConfig builds the raft configuration (without logger and notify
// channel) and validates it with raft's own rules.
func (c *Config) raftConfig() (*raft.Config, error) {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	if c.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = c.HeartbeatTimeout
	}
	if c.ElectionTimeout > 0 {
		rc.ElectionTimeout = c.ElectionTimeout
	} else if rc.ElectionTimeout < rc.HeartbeatTimeout {
		rc.ElectionTimeout = rc.HeartbeatTimeout
	}
	if c.HeartbeatTimeout == 0 && rc.HeartbeatTimeout > rc.ElectionTimeout {
		rc.HeartbeatTimeout = rc.ElectionTimeout
	}
	if c.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	} else if rc.LeaderLeaseTimeout > rc.HeartbeatTimeout {
		rc.LeaderLeaseTimeout = rc.HeartbeatTimeout
	}
	if c.CommitTimeout > 0 {
		rc.CommitTimeout = c.CommitTimeout
	}
	if c.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = c.SnapshotThreshold
	}
	if c.SnapshotInterval > 0 {
		rc.SnapshotInterval = c.SnapshotInterval
	}
	if c.TrailingLogs > 0 {
		rc.TrailingLogs = c.TrailingLogs
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft: %w", err)
	}
	return rc, nil
}

// Store is a raft node whose FSM holds the lumos state. Voters and
// non-voters are both Stores; which one a node is depends only on the
// cluster configuration.
type Store struct {
	cfg    Config
	logger *slog.Logger

	raft *raft.Raft
	fsm  *FSM
	bolt *raftboltdb.BoltStore
	// commits persists the commit index (see commitTracking).
	commits *commitTracking
	// noCloseSnapshot makes Close skip its snapshot, so tests can see what
	// a crashed node recovers.
	noCloseSnapshot bool
	transport       *guardedTransport
	hadState        bool

	bootstrapped atomic.Bool
	leaderSubs   *broadcaster[bool]
	notifyCh     chan bool

	wg        sync.WaitGroup
	done      chan struct{} // closed after raft has shut down
	closeOnce sync.Once
	closed    chan struct{} // closed when Close has finished
	closing   atomic.Bool
	closeErr  error
}

// Open opens (creating if needed) the node's raft files, starts the
// transport and raft. It does not bootstrap: call Bootstrap on the first
// node of a new cluster, or have the leader add this node.
func Open(cfg *Config) (*Store, error) {
	s, layerClosed, err := openStore(cfg)
	if err != nil && !layerClosed && cfg != nil && cfg.StreamLayer != nil {
		// The store owns a given stream layer, also when Open fails.
		_ = cfg.StreamLayer.Close()
	}
	return s, err
}

// openStore does the work of Open; layerClosed reports whether a failed open
// already closed the stream layer (by closing the transport built on it).
func openStore(cfg *Config) (_ *Store, layerClosed bool, _ error) {
	if err := cfg.Validate(); err != nil {
		return nil, false, err
	}
	c := *cfg
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = DefaultApplyTimeout
	}
	if c.MaxPool == 0 {
		c.MaxPool = DefaultMaxPool
	}
	if c.TransportTimeout == 0 {
		c.TransportTimeout = DefaultTransportTimeout
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rc, err := c.raftConfig()
	if err != nil {
		return nil, false, fmt.Errorf("open raft store: %w", err)
	}

	dir := filepath.Join(c.DataDir, "raft")
	for _, d := range []string{c.DataDir, dir, filepath.Join(dir, "snapshots")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, false, fmt.Errorf("open raft store: %w", err)
		}
	}

	s := &Store{
		cfg:        c,
		logger:     logger.With(SubsystemKey, "raft"),
		fsm:        NewFSM(),
		leaderSubs: newBroadcaster[bool](),
		notifyCh:   make(chan bool, 1),
		done:       make(chan struct{}),
		closed:     make(chan struct{}),
	}
	s.leaderSubs.publish(false)
	hl := NewHCLogger(logger, "raft")

	var cleanup []func()
	fail := func(err error) (*Store, bool, error) {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
		return nil, layerClosed, fmt.Errorf("open raft store: %w", err)
	}

	s.bolt, err = raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second},
	})
	if err != nil {
		return fail(fmt.Errorf("open %s: %w", filepath.Join(dir, "raft.db"), err))
	}
	cleanup = append(cleanup, func() { _ = s.bolt.Close() })

	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, SnapshotsRetained, hl.Named("snapshot"))
	if err != nil {
		return fail(err)
	}
	cache, err := raft.NewLogCache(512, s.bolt)
	if err != nil {
		return fail(err)
	}
	logs := newCommitTracking(cache, s.bolt)
	s.commits = logs
	if metas, err := snaps.List(); err == nil && len(metas) > 0 {
		logs.floor = metas[0].Index
	}
	s.hadState, err = raft.HasExistingState(logs, s.bolt, snaps)
	if err != nil {
		return fail(err)
	}

	tcfg := &raft.NetworkTransportConfig{
		Logger:  hl.Named("transport"),
		MaxPool: c.MaxPool,
		Timeout: c.TransportTimeout,
	}
	var nt *raft.NetworkTransport
	if c.StreamLayer != nil {
		tcfg.Stream = c.StreamLayer
		nt = raft.NewNetworkTransportWithConfig(tcfg)
	} else {
		var adv net.Addr
		if c.AdvertiseAddr != "" {
			if adv, err = net.ResolveTCPAddr("tcp", c.AdvertiseAddr); err != nil {
				return fail(fmt.Errorf("advertise address: %w", err))
			}
		}
		if nt, err = raft.NewTCPTransportWithConfig(c.BindAddr, adv, tcfg); err != nil {
			return fail(fmt.Errorf("raft transport on %s: %w", c.BindAddr, err))
		}
	}
	s.transport = &guardedTransport{NetworkTransport: nt}
	cleanup = append(cleanup, func() {
		s.transport.stopHeartbeats()
		s.transport.CloseStreams()
		_ = s.transport.Close() // closes the stream layer too
		layerClosed = true
	})

	rc.Logger = hl
	rc.NotifyCh = s.notifyCh
	rc.RestoreCommittedLogs = true
	s.raft, err = raft.NewRaft(rc, s.fsm, logs, s.bolt, snaps, s.transport)
	if err != nil {
		return fail(err)
	}

	s.wg.Add(3)
	go s.watchLeadership()
	go s.snapshotOnConfigChange()
	go s.persistApplied()
	s.logger.Info("raft store open", "node_id", c.NodeID, "addr", s.Addr(), "existing_state", s.hadState)
	return s, false, nil
}

// watchLeadership forwards raft's leadership notifications to the
// LeadershipChanges subscribers. Raft blocks on NotifyCh, so this loop
// runs until raft has shut down.
func (s *Store) watchLeadership() {
	defer s.wg.Done()
	for {
		select {
		case v := <-s.notifyCh:
			if last, _ := s.leaderSubs.latest(); last != v {
				s.logger.Info("raft leadership changed", "node_id", s.cfg.NodeID, "leader", v)
				s.leaderSubs.publish(v)
			}
		case <-s.done:
			return
		}
	}
}

// Close shuts raft down, then closes the transport and the log store. It
// is safe to call more than once and from several goroutines; a later call
// returns the first call's result. If ctx ends first, Close returns its
// error and the shutdown finishes in the background.
func (s *Store) Close(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		go func() {
			s.closeErr = s.shutdown()
			close(s.closed)
		}()
	})
	select {
	case <-s.closed:
		return s.closeErr
	case <-ctx.Done():
		return fmt.Errorf("close raft store: %w", ctx.Err())
	}
}

func (s *Store) shutdown() error {
	var errs []error
	// A snapshot at a clean stop lets the next start restore the whole
	// state at once, without waiting for a leader.
	if !s.noCloseSnapshot {
		if err := s.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			s.logger.Debug("snapshot at close", "err", err)
		}
	}
	if err := s.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
	}
	close(s.done)
	s.wg.Wait()
	if err := s.commits.noteApplied(s.fsm.Index()); err != nil {
		s.logger.Debug("record applied index", "err", err)
	}
	// Raft's heartbeat fast path runs on transport goroutines that
	// Shutdown does not wait for: make sure none is inside raft before the
	// log store goes away (raft panics when it cannot persist the term).
	s.transport.stopHeartbeats()
	s.transport.CloseStreams()
	if err := s.transport.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close transport: %w", err))
	}
	if err := s.bolt.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close log store: %w", err))
	}
	s.leaderSubs.publish(false)
	s.leaderSubs.close()
	s.fsm.watch.close()
	s.logger.Info("raft store closed", "node_id", s.cfg.NodeID)
	if len(errs) > 0 {
		return fmt.Errorf("close raft store: %w", errors.Join(errs...))
	}
	return nil
}

// ID returns the node's raft server ID.
func (s *Store) ID() string { return s.cfg.NodeID }

// Addr returns the raft address this node advertises to peers.
func (s *Store) Addr() string { return string(s.transport.LocalAddr()) }

// HasState reports whether the node had raft state when it was opened, or
// has bootstrapped, received log entries or applied anything since. A
// node without state must be bootstrapped or added by a leader.
func (s *Store) HasState() bool {
	return s.hadState || s.bootstrapped.Load() || s.fsm.applied.Load() || s.raft.LastIndex() > 0
}

// Bootstrap starts a new cluster with the given servers (nil or empty:
// this node alone, as a voter). Every node bootstrapped must be given the
// same configuration; usually only the first node is bootstrapped and the
// others are added by the leader. A node that already has state returns
// ErrAlreadyBootstrapped.
func (s *Store) Bootstrap(servers []raft.Server) error {
	if s.closing.Load() {
		return ErrClosed
	}
	if len(servers) == 0 {
		servers = []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(s.cfg.NodeID), Address: raft.ServerAddress(s.Addr())}}
	}
	err := s.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w: %w", ErrAlreadyBootstrapped, err)
	}
	if err != nil {
		return fmt.Errorf("bootstrap: %w", mapErr(err))
	}
	s.bootstrapped.Store(true)
	return nil
}

// mapErr wraps raft's leadership and shutdown errors in the package's.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader),
		errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// Apply commits cmd through raft and returns what state.Apply returned on
// this node. A validation failure comes back as the *state.Error itself
// (not wrapped). The wait is bounded by ctx's deadline, or ApplyTimeout
// when ctx has none. ErrNotLeader means the command must be sent to the
// leader; after ErrNotLeader wrapping raft.ErrLeadershipLost, or a context
// error, the command may still be committed later.
func (s *Store) Apply(ctx context.Context, cmd *state.Command) (any, error) {
	if cmd == nil {
		return nil, &state.Error{Code: state.CodeInvalid, Field: "command", Message: "empty command"}
	}
	if s.closing.Load() {
		return nil, ErrClosed
	}
	data, err := cmd.Encode()
	if err != nil {
		return nil, fmt.Errorf("apply %s: encode: %w", cmd.Type, err)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apply %s: %w", cmd.Type, err)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("apply %s: %w", cmd.Type, context.DeadlineExceeded)
	}

	f := s.raft.Apply(data, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("apply %s: %w", cmd.Type, ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", cmd.Type, mapErr(err))
	}
	switch r := f.Response().(type) {
	case ApplyResult:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Value, nil
	default:
		return nil, fmt.Errorf("apply %s: unexpected response %T", cmd.Type, r)
	}
}

// IsLeader reports whether this node is the leader right now.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// State returns the node's raft state.
func (s *Store) State() raft.RaftState { return s.raft.State() }

// Leader returns the current leader's address and ID, or empty strings
// when no leader is known.
func (s *Store) Leader() (addr string, id string) {
	a, i := s.raft.LeaderWithID()
	return string(a), string(i)
}

// LeaderCh is raft's LeaderCh: a hint that may drop intermediate values.
// It is shared by all callers; prefer LeadershipChanges and re-check
// IsLeader before acting.
func (s *Store) LeaderCh() <-chan bool { return s.raft.LeaderCh() }

// LeadershipChanges subscribes to this node's leadership. The channel
// receives the current value at once and then every change (true: this
// node became the leader; false: it stopped being the leader). It has one
// slot and the latest value wins, so raft is never blocked and a slow
// reader still ends up with the current value. cancel closes the channel
// and is idempotent; Close closes all subscriptions.
func (s *Store) LeadershipChanges() (<-chan bool, func()) { return s.leaderSubs.subscribe(true) }

// AddVoter adds (or promotes) a voting member. Only the leader can.
func (s *Store) AddVoter(id, addr string, timeout time.Duration) error {
	if err := s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout).Error(); err != nil {
		return fmt.Errorf("add voter %s at %s: %w", id, addr, mapErr(err))
	}
	return nil
}

// AddNonvoter adds a non-voting member (a shield) that receives the log
// but never votes. If id is already a voter it stays one. Only the leader
// can.
func (s *Store) AddNonvoter(id, addr string, timeout time.Duration) error {
	if err := s.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout).Error(); err != nil {
		return fmt.Errorf("add nonvoter %s at %s: %w", id, addr, mapErr(err))
	}
	return nil
}

// RemoveServer removes a member. Only the leader can.
func (s *Store) RemoveServer(id string, timeout time.Duration) error {
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, timeout).Error(); err != nil {
		return fmt.Errorf("remove server %s: %w", id, mapErr(err))
	}
	return nil
}

// Configuration returns the latest cluster configuration this node knows.
func (s *Store) Configuration() ([]raft.Server, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", mapErr(err))
	}
	return f.Configuration().Servers, nil
}

// Barrier waits until every command committed before it is applied on the
// leader's FSM. Only the leader can.
func (s *Store) Barrier(timeout time.Duration) error {
	if err := s.raft.Barrier(timeout).Error(); err != nil {
		return fmt.Errorf("barrier: %w", mapErr(err))
	}
	return nil
}

// View calls fn with the current state under the FSM's read lock. fn must
// be quick, must not retain or modify st, and must not call Apply.
func (s *Store) View(fn func(st *state.State)) { s.fsm.View(fn) }

// Snapshot returns a deep copy of the current state.
func (s *Store) Snapshot() *state.State { return s.fsm.Clone() }

// AppliedIndex returns raft's applied index: the last log entry of any
// type handed to the FSM. It is recorded by raft's main loop, so right after
// an Apply returns it may briefly lag (or, counting configuration entries,
// lead) the state's Index; use Watch or View for the state itself.
func (s *Store) AppliedIndex() uint64 { return s.raft.AppliedIndex() }

// Watch subscribes to state changes: the channel receives the new
// state.Index after every applied command (batch) or snapshot restore,
// coalesced into one slot where the latest value wins; Apply never
// blocks on it. cancel closes the channel and is idempotent; Close closes
// all subscriptions.
func (s *Store) Watch() (<-chan uint64, func()) { return s.fsm.Watch() }

// Stats returns raft's stats plus the node's ID and address, the state's
// index (fsm_index) and the number of snapshot restores (fsm_restores).
func (s *Store) Stats() map[string]string {
	m := s.raft.Stats()
	m["node_id"] = s.cfg.NodeID
	m["addr"] = s.Addr()
	m["fsm_index"] = strconv.FormatUint(s.fsm.Index(), 10)
	m["fsm_restores"] = strconv.FormatUint(s.fsm.Restores(), 10)
	return m
}

// TakeSnapshot makes raft take a snapshot now and compact the log (a no-op
// when nothing was applied since the last one).
func (s *Store) TakeSnapshot() error {
	if err := s.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("snapshot: %w", mapErr(err))
	}
	return nil
}

// Raft returns the underlying raft node, for tests and diagnostics.
func (s *Store) Raft() *raft.Raft { return s.raft }

// LastContact returns when this node last heard from the leader (the time
// it stepped down, on a former leader; zero if never).
func (s *Store) LastContact() time.Time { return s.raft.LastContact() }

// guardedTransport is a NetworkTransport whose heartbeat handler can be
// switched off and waited for. Raft calls the handler directly from the
// transport's connection goroutines, which raft.Shutdown neither stops nor
// waits for; without the guard a heartbeat arriving during Close could
// reach raft after its stores were closed.
type guardedTransport struct {
	*raft.NetworkTransport

	mu      sync.RWMutex // held for reading while a heartbeat is handled
	stopped bool
}

var (
	_ raft.Transport   = (*guardedTransport)(nil)
	_ raft.WithClose   = (*guardedTransport)(nil)
	_ raft.WithPreVote = (*guardedTransport)(nil)
)

// SetHeartbeatHandler installs cb behind the guard.
func (t *guardedTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		t.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	t.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		t.mu.RLock()
		defer t.mu.RUnlock()
		if t.stopped {
			rpc.Respond(nil, raft.ErrRaftShutdown)
			return
		}
		cb(rpc)
	})
}

// stopHeartbeats waits for a heartbeat being handled and refuses later
// ones.
func (t *guardedTransport) stopHeartbeats() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
}

// snapshotOnConfigChange takes a snapshot shortly after a configuration
// entry is committed. Committed entries past the last snapshot are replayed
// at open only up to the first configuration entry (see commitTracking), so
// moving the snapshot past each one keeps the whole log replayable.
func (s *Store) snapshotOnConfigChange() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case <-s.fsm.confChanged:
		}
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-s.done:
			t.Stop()
			return
		case <-t.C:
		}
		if err := s.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			s.logger.Debug("snapshot after configuration change", "err", err)
		}
	}
}

// persistApplied records the FSM's applied index as committed (at most
// every 100 ms), so that a restart replays every entry this node applied.
func (s *Store) persistApplied() {
	defer s.wg.Done()
	ch, cancel := s.fsm.watch.subscribe(false)
	defer cancel()
	for {
		select {
		case <-s.done:
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
		}
		if err := s.commits.noteApplied(s.fsm.Index()); err != nil {
			s.logger.Debug("record applied index", "err", err)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-s.done:
			t.Stop()
			return
		case <-t.C:
		}
	}
}
