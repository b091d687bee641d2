package node

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/dashboard"
	"github.com/lumos-mesh/lumos/failover"
	"github.com/lumos-mesh/lumos/failover/builtindns"
	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/raftstore"
	"github.com/lumos-mesh/lumos/state"
)

// Node is one running lumos process.
type Node struct {
	cfg     *Config
	log     *slog.Logger
	id      *identity
	store   *raftstore.Store
	mesh    *mesh.Mesh
	lockF   *os.File
	raftLn  net.Listener
	started time.Time

	advertiseIP string
	httpLn      net.Listener
	httpSrv     *http.Server
	apiURL      string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}

	mu         sync.Mutex
	stopReason error
	joinNonces nonceCache
	// detected are the sites of the HAProxy config found at first join.
	detected   []state.Site
	mux        *http.ServeMux
	shield     *shield
	metrics    *metrics
	metricsSrv *http.Server
	metricsLn  net.Listener
	// failover is this node's copy of the failover controller's config
	// (control nodes with failover enabled).
	failover *failover.Config
	dns      *builtindns.Server
}

// New starts a node: it opens the data dir, the Raft store, the gossip mesh
// and (on control nodes) the HTTP API, and starts the background work. A
// shield's first start presents its token to the control plane; later starts
// rejoin from the data dir without it. New returns once everything listens;
// joining the cluster and electing a leader happen in the background.
func New(ctx context.Context, cfg *Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, started: time.Now(), done: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.abortOpen()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := n.lockDataDir(); err != nil {
		return nil, err
	}
	if n.id, err = loadIdentity(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := n.checkIdentity(); err != nil {
		return nil, err
	}
	if n.advertiseIP, err = advertiseIP(cfg); err != nil {
		return nil, err
	}

	// The Raft listener comes first: a shield's first join tells the leader
	// where to reach it, and the leader dials it as soon as it is admitted.
	if n.raftLn, err = net.Listen("tcp", cfg.RaftBind); err != nil {
		return nil, fmt.Errorf("raft listen %s: %w", cfg.RaftBind, err)
	}
	raftAdvertise, err := advertiseAddr(n.raftLn.Addr().String(), n.advertiseIP)
	if err != nil {
		return nil, err
	}
	shieldOnly := cfg.Shield && !cfg.Control
	if shieldOnly && n.id == nil {
		n.detectOriginal()
		if err := n.firstJoin(ctx, raftAdvertise); err != nil {
			return nil, err
		}
	} else if n.id == nil {
		n.id = &identity{Name: cfg.Name, Control: cfg.Control, Shield: cfg.Shield, Profile: cfg.meshProfile(), CreatedAt: time.Now().UTC()}
		if err := n.id.save(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	key, err := n.clusterKey()
	if err != nil {
		return nil, err
	}

	rc := raftstore.DefaultConfig()
	rc.NodeID = cfg.Name
	rc.DataDir = cfg.DataDir
	adv, err := net.ResolveTCPAddr("tcp", raftAdvertise)
	if err != nil {
		return nil, fmt.Errorf("raft address %s: %w", raftAdvertise, err)
	}
	if len(key) > 0 {
		if rc.StreamLayer, err = raftstore.NewTLSStreamLayer(n.raftLn, adv, key); err != nil {
			return nil, err
		}
	} else {
		rc.StreamLayer = raftstore.NewPlainStreamLayer(n.raftLn, adv)
	}
	rc.Logger = n.log
	if cfg.RaftHeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = cfg.RaftHeartbeatTimeout
	}
	if cfg.RaftElectionTimeout > 0 {
		rc.ElectionTimeout = cfg.RaftElectionTimeout
	}
	if cfg.RaftLeaderLease > 0 {
		rc.LeaderLeaseTimeout = cfg.RaftLeaderLease
	}
	if cfg.RaftSnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.RaftSnapshotThreshold
	}
	if cfg.RaftTrailingLogs > 0 {
		rc.TrailingLogs = cfg.RaftTrailingLogs
	}
	n.store, err = raftstore.Open(rc)
	n.raftLn = nil // owned by the store from here on, even when Open fails
	if err != nil {
		return nil, fmt.Errorf("open raft: %w", err)
	}
	if shieldOnly {
		if err := n.checkNotDecommissioned(); err != nil {
			return nil, err
		}
	}

	if cfg.Control {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("http listen %s: %w", cfg.HTTPAddr, err)
		}
		n.httpLn = ln
		u, err := advertiseAddr(ln.Addr().String(), n.advertiseIP)
		if err != nil {
			return nil, err
		}
		n.apiURL = "http://" + u
	}

	if err := n.openMesh(); err != nil {
		return nil, err
	}
	n.metrics = newMetrics(n)
	if cfg.Control && cfg.Failover != nil {
		fc := *cfg.Failover
		fc.Metrics = failover.NewMetrics(n.metrics.registerer())
		fc.Logger = n.log.With("subsystem", "failover")
		if err := fc.Validate(); err != nil {
			return nil, err
		}
		n.failover = &fc
		if fc.Notify, err = n.notifier(); err != nil {
			return nil, err
		}
	}
	if cfg.Shield {
		if err := n.startShield(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.MetricsAddr != "" {
		if err := n.serveMetrics(cfg.MetricsAddr); err != nil {
			return nil, fmt.Errorf("metrics listen %s: %w", cfg.MetricsAddr, err)
		}
	}

	if cfg.Control {
		h, err := api.NewHandler(n, api.ServerConfig{AdminTokenHash: cfg.AdminTokenHash, Logger: n.log.With("subsystem", "api")})
		if err != nil {
			return nil, err
		}
		dh, err := dashboard.New(dashboard.Config{Source: n, AdminTokenHash: cfg.AdminTokenHash, ReadTokenHashes: cfg.ReadTokenHashes, Logger: n.log.With("subsystem", "dashboard")})
		if err != nil {
			return nil, err
		}
		n.mux = http.NewServeMux()
		n.mux.Handle("/v1/", h)
		n.mux.Handle("/ui", dh)
		n.mux.Handle("/ui/", dh)
		n.mux.Handle("GET /metrics", n.metrics.handler())
		n.httpSrv = &http.Server{Handler: n.mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slogStd(n.log.With("subsystem", "http"))}
		n.goFn(func() {
			if err := n.httpSrv.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("http server stopped", "err", err)
			}
		})
	}

	if cfg.Control && cfg.DNSListen != "" {
		if err := n.startDNS(); err != nil {
			return nil, err
		}
	}

	n.goFn(n.joinLoop)
	n.goFn(n.metaLoop)
	n.goFn(n.forgetLoop)
	if cfg.Control {
		if cfg.BootstrapExpect > 0 && !n.store.HasState() {
			n.goFn(n.bootstrapLoop)
		}
		n.goFn(n.leaderLoop)
	}
	if cfg.Shield {
		n.goFn(n.shieldLoop)
		n.goFn(n.heartbeatLoop)
	}
	n.log.Info("node started", "name", cfg.Name, "control", cfg.Control, "shield", cfg.Shield,
		"gossip", n.mesh.LocalAddr(), "raft", n.store.Addr(), "api", n.apiURL)
	return n, nil
}

func (n *Node) goFn(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// checkIdentity makes sure the data dir belongs to this node and role.
func (n *Node) checkIdentity() error {
	id := n.id
	if id == nil {
		return nil
	}
	if id.Decommissioned {
		return fmt.Errorf("%w: server %s of this data dir was decommissioned; this node will not rejoin", ErrDecommissioned, id.ServerID)
	}
	if id.Name != n.cfg.Name {
		return cfgErr("data dir %s belongs to node %q, not %q", n.cfg.DataDir, id.Name, n.cfg.Name)
	}
	if id.Control != n.cfg.Control || id.Shield != n.cfg.Shield {
		return cfgErr("data dir %s was created for a %s, not a %s", n.cfg.DataDir, roleName(id.Control, id.Shield), roleName(n.cfg.Control, n.cfg.Shield))
	}
	return nil
}

func roleName(control, shield bool) string {
	switch {
	case control && shield:
		return "control node and shield"
	case control:
		return "control node"
	default:
		return "shield"
	}
}

// lockDataDir takes an exclusive lock so two processes never share a data
// dir.
func (n *Node) lockDataDir() error {
	f, err := os.OpenFile(filepath.Join(n.cfg.DataDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("data dir %s is in use by another lumos process", n.cfg.DataDir)
	}
	n.lockF = f
	return nil
}

func (n *Node) openMesh() error {
	mc := mesh.DefaultConfig()
	mc.Name = n.cfg.Name
	host, port, _ := splitHostPort(n.cfg.BindAddr)
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr = n.advertiseIP
	if port != 0 {
		mc.AdvertisePort = port
	}
	mc.Profile = n.cfg.meshProfile()
	if n.id != nil && n.id.Profile != "" && n.cfg.Shield && !n.cfg.Control {
		mc.Profile = n.id.Profile
	}
	key, err := n.clusterKey()
	if err != nil {
		return err
	}
	mc.SecretKey = key
	mc.AllowPlaintext = n.cfg.AllowPlaintext || len(key) == 0 && n.cfg.Shield && !n.cfg.Control
	mc.Logger = n.log.With("subsystem", "gossip")
	mc.Meta = mesh.Meta{
		Control:      n.cfg.Control,
		Shield:       n.cfg.Shield,
		Addr:         n.advertiseIP,
		RaftAddr:     n.store.Addr(),
		APIAddr:      n.apiURL,
		AppliedIndex: n.store.AppliedIndex(),
		Version:      n.cfg.Version,
		Started:      n.started.Unix(),
		Bootstrapped: n.store.HasState(),
	}
	if n.id != nil {
		mc.Meta.ServerID = n.id.ServerID
	}
	m, err := mesh.New(mc)
	if err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	n.mesh = m
	return nil
}

// abortOpen releases whatever New managed to open before failing.
func (n *Node) abortOpen() {
	n.cancel()
	n.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n.httpSrv != nil {
		n.httpSrv.Close()
	} else if n.httpLn != nil {
		n.httpLn.Close()
	}
	if n.metricsSrv != nil {
		n.metricsSrv.Close()
	}
	n.closeDNS(ctx)
	if n.shield != nil {
		n.shield.close(ctx)
	}
	if n.mesh != nil {
		n.mesh.Close(ctx)
	}
	if n.store != nil {
		n.store.Close(ctx)
	}
	if n.raftLn != nil {
		n.raftLn.Close()
	}
	if n.lockF != nil {
		n.lockF.Close()
	}
	close(n.done)
}

// Close stops the node gracefully: it leaves the gossip mesh (so others see
// a clean leave at once), stops the API and Raft, and waits for every
// goroutine. Safe to call more than once.
func (n *Node) Close(ctx context.Context) error { return n.shutdown(ctx, true) }

// Kill stops the node without leaving the mesh, as a crash would look to
// the others (for tests).
func (n *Node) Kill() error { return n.shutdown(context.Background(), false) }

func (n *Node) shutdown(ctx context.Context, leave bool) error {
	n.closeOnce.Do(func() {
		var errs []error
		n.cancel()
		if leave && n.mesh != nil {
			if err := n.mesh.Leave(time.Second); err != nil {
				n.log.Debug("gossip leave", "err", err)
			}
		}
		if n.httpSrv != nil {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := n.httpSrv.Shutdown(sctx); err != nil {
				n.httpSrv.Close()
			}
			cancel()
		}
		if n.metricsSrv != nil {
			n.metricsSrv.Close()
		}
		errs = append(errs, n.closeDNS(ctx))
		n.wg.Wait()
		if n.shield != nil {
			errs = append(errs, n.shield.close(ctx))
		}
		if n.mesh != nil {
			errs = append(errs, n.mesh.Close(ctx))
		}
		if n.store != nil {
			errs = append(errs, n.store.Close(ctx))
		}
		if n.lockF != nil {
			n.lockF.Close()
		}
		n.closeErr = errors.Join(errs...)
		close(n.done)
	})
	<-n.done
	return n.closeErr
}

// Done is closed when the node has stopped, by Close or by itself (a
// decommissioned shield stops on its own).
func (n *Node) Done() <-chan struct{} { return n.done }

// StopReason tells why a node stopped by itself, or nil.
func (n *Node) StopReason() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopReason
}

// stopSelf shuts the node down from one of its own goroutines.
func (n *Node) stopSelf(reason error) {
	if errors.Is(reason, ErrDecommissioned) && n.id != nil {
		id := *n.id
		id.Decommissioned = true
		if err := id.save(n.cfg.DataDir); err != nil {
			n.log.Warn("cannot record decommission in the data dir", "err", err)
		}
	}
	n.mu.Lock()
	if n.stopReason == nil {
		n.stopReason = reason
	}
	n.mu.Unlock()
	go n.shutdown(context.Background(), true)
}

// Name returns the node name.
func (n *Node) Name() string { return n.cfg.Name }

// APIURL is the base URL of this node's HTTP API ("" on shields).
func (n *Node) APIURL() string { return n.apiURL }

// GossipAddr is the IP:PORT the mesh listens on.
func (n *Node) GossipAddr() string { return n.mesh.LocalAddr() }

// RaftAddr is the advertised Raft address.
func (n *Node) RaftAddr() string { return n.store.Addr() }

// Store exposes the Raft store (leader hooks, tests).
func (n *Node) Store() *raftstore.Store { return n.store }

// Mesh exposes the gossip mesh (leader hooks, tests).
func (n *Node) Mesh() *mesh.Mesh { return n.mesh }

// Handle mounts an extra handler on the node's HTTP server (dashboard,
// metrics). Only on control nodes.
func (n *Node) Handle(pattern string, h http.Handler) {
	if n.mux != nil {
		n.mux.Handle(pattern, h)
	}
}

// ServerID is the server record this node serves as a shield ("" if none
// yet).
func (n *Node) ServerID() string {
	if sv := n.ownServer(); sv != nil {
		return sv.ID
	}
	return ""
}

func (n *Node) ownServer() *state.Server {
	var out *state.Server
	n.store.View(func(st *state.State) {
		if sv := st.ServerByNode(n.cfg.Name); sv != nil {
			v := *sv
			out = &v
		}
	})
	return out
}

func (n *Node) checkNotDecommissioned() error {
	if sv := n.ownServer(); sv != nil && sv.Decommissioned {
		return fmt.Errorf("%w: server %q (%s) was decommissioned on %s; this node will not rejoin", ErrDecommissioned, sv.Name, sv.ID, sv.DecommissionedAt.Format(time.RFC3339))
	}
	return nil
}

// advertiseIP picks the IP other members reach this node on.
func advertiseIP(cfg *Config) (string, error) {
	if cfg.AdvertiseIP != "" {
		return cfg.AdvertiseIP, nil
	}
	host, _, _ := splitHostPort(cfg.BindAddr)
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return host, nil
	}
	ip, err := privateIP()
	if err != nil {
		return "", cfgErr("cannot pick an address to advertise (%v): pass --advertise", err)
	}
	return ip, nil
}

// advertiseAddr turns a bind address into one others can dial.
func advertiseAddr(bind, ip string) (string, error) {
	host, port, err := splitHostPort(bind)
	if err != nil {
		return "", cfgErr("address %q: %v", bind, err)
	}
	if p := net.ParseIP(host); p == nil || p.IsUnspecified() {
		host = ip
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

func privateIP() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	var fallback string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		if ipn.IP.IsPrivate() {
			return ipn.IP.String(), nil
		}
		if fallback == "" {
			fallback = ipn.IP.String()
		}
	}
	if fallback != "" {
		return fallback, nil
	}
	return "", errors.New("no usable IPv4 address found")
}

// clusterKey is the gossip key: from the config on control nodes, from the
// identity a shield saved at join otherwise. It also keys the Raft
// transport's TLS.
func (n *Node) clusterKey() ([]byte, error) {
	if len(n.cfg.GossipKey) > 0 {
		return n.cfg.GossipKey, nil
	}
	if n.id == nil {
		return nil, nil
	}
	k, err := n.id.key()
	if err != nil {
		return nil, fmt.Errorf("gossip key in %s: %w", identityFile, err)
	}
	return k, nil
}

func encodeKey(k []byte) string {
	if len(k) == 0 {
		return ""
	}
	return base64.StdEncoding.EncodeToString(k)
}
