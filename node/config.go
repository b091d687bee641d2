package node

import (
	"context"

	"errors"
	"fmt"
	"github.com/lumos-mesh/lumos/failover"
	"github.com/lumos-mesh/lumos/failover/notify"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"
)

// Default addresses and timings.
const (
	DefaultGossipPort        = 7946
	DefaultRaftPort          = 7947
	DefaultHTTPAddr          = "127.0.0.1:7070"
	DefaultDataDir           = "/var/lib/lumos"
	DefaultDecommissionGrace = time.Hour
	DefaultHeartbeatInterval = 3 * time.Second
)

// Config describes one node. Build it with DefaultConfig or DevConfig, then
// set fields from a file or flags; New validates it.
type Config struct {
	Name    string // unique node name; also the Raft server ID
	DataDir string

	Control bool // Raft voter + HTTP API
	Shield  bool // serves domains (HAProxy)

	// BootstrapExpect (control) bootstraps a new cluster once this many
	// control nodes see each other through gossip. 0 joins an existing
	// cluster instead.
	BootstrapExpect int
	// Peers are gossip addresses (IP:PORT) of other members to join.
	Peers []string

	// ControlURL and Token are used by a shield's first join.
	ControlURL string
	Token      string

	BindAddr    string // gossip IP:PORT
	AdvertiseIP string // IP other members reach this node on
	RaftBind    string // raft IP:PORT
	HTTPAddr    string // API listen IP:PORT (control)
	DNSListen   string // built-in DNS listen IP:PORT (control; "" = none)

	GossipKey      []byte // 32 bytes; required unless AllowPlaintext
	AllowPlaintext bool   // dev only
	Profile        string // gossip profile: lan, wan, local

	// AdminTokenHash is the SHA-256 hex of the admin token (control).
	AdminTokenHash string
	// ReadTokenHashes are SHA-256 hexes of read-only tokens: they open the
	// dashboard (control), nothing else.
	ReadTokenHashes []string

	DecommissionGrace time.Duration

	// Raft timings; zero means the raftstore defaults.
	RaftHeartbeatTimeout  time.Duration
	RaftElectionTimeout   time.Duration
	RaftLeaderLease       time.Duration
	RaftSnapshotThreshold uint64
	RaftTrailingLogs      uint64

	// HAProxy configures the HAProxy a shield runs; nil runs a shield
	// without HAProxy (control-plane tests).
	HAProxy *HAProxyConfig
	// MetricsAddr is where a shield serves /metrics (IP:PORT; "" = none).
	// Control nodes serve /metrics on their API address.
	MetricsAddr string

	// Failover configures the failover controller the leader runs (control
	// nodes); nil runs none.
	Failover *failover.Config
	// Notify are the notification targets the leader delivers events to
	// (control nodes with failover enabled).
	Notify []notify.Target
	// HeartbeatInterval is how often a shield bumps the heartbeat in its
	// gossip metadata (default 3 s); the leader marks a shield whose
	// heartbeat stops moving down after failover.Config.StaleAfter.
	HeartbeatInterval time.Duration

	// LeaderHook, when set, runs on the leader with a context cancelled when
	// leadership is lost. The failover controller plugs in here.
	LeaderHook func(ctx context.Context, n *Node)

	Version string
	Logger  *slog.Logger
}

// DefaultConfig returns production defaults.
func DefaultConfig() *Config {
	return &Config{
		DataDir:           DefaultDataDir,
		BindAddr:          net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultGossipPort)),
		RaftBind:          net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultRaftPort)),
		HTTPAddr:          DefaultHTTPAddr,
		Profile:           "lan",
		DecommissionGrace: DefaultDecommissionGrace,
		Version:           "dev",
	}
}

// DevConfig returns the embedded defaults of `lumos dev`: one process,
// control and shield, everything on loopback, no gossip encryption.
func DevConfig(dataDir string) *Config {
	c := DefaultConfig()
	c.Name = "dev"
	c.DataDir = dataDir
	c.Control, c.Shield = true, true
	c.BootstrapExpect = 1
	c.BindAddr = "127.0.0.1:7946"
	c.AdvertiseIP = "127.0.0.1"
	c.RaftBind = "127.0.0.1:7947"
	c.HTTPAddr = DefaultHTTPAddr
	c.AllowPlaintext = true
	c.Profile = "local"
	// One voter on loopback: elect it quickly.
	c.RaftHeartbeatTimeout = 500 * time.Millisecond
	c.RaftElectionTimeout = 500 * time.Millisecond
	c.RaftLeaderLease = 250 * time.Millisecond
	return c
}

// Errors returned by New and the join flow.
var (
	ErrConfig         = errors.New("invalid node config")
	ErrNotJoined      = errors.New("this data dir has not joined a cluster")
	ErrDecommissioned = errors.New("this server was decommissioned")
)

func cfgErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// Validate checks the config and fills derived defaults.
func (c *Config) Validate() error {
	if c.Name == "" {
		return cfgErr("--name is required")
	}
	if !validNodeName(c.Name) {
		return cfgErr("--name %q: use 1-64 letters, digits, '.', '-' or '_'", c.Name)
	}
	if c.DataDir == "" {
		return cfgErr("--data-dir is required")
	}
	if !c.Control && !c.Shield {
		return cfgErr("a node must be a control node, a shield, or both")
	}
	if c.BootstrapExpect < 0 || c.BootstrapExpect > 7 {
		return cfgErr("--bootstrap-expect %d: want 1 to 7 (use 1, 3 or 5)", c.BootstrapExpect)
	}
	if c.BootstrapExpect > 0 && !c.Control {
		return cfgErr("--bootstrap-expect is only for control nodes")
	}
	for _, a := range []struct{ flag, v string }{{"--bind", c.BindAddr}, {"--raft-bind", c.RaftBind}} {
		if _, _, err := splitHostPort(a.v); err != nil {
			return cfgErr("%s %q: %v", a.flag, a.v, err)
		}
	}
	if c.Control {
		if _, _, err := splitHostPort(c.HTTPAddr); err != nil {
			return cfgErr("--http %q: %v", c.HTTPAddr, err)
		}
		if c.AdminTokenHash == "" {
			return cfgErr("an admin token is required on control nodes (--admin-token-file)")
		}
	}
	if c.HAProxy != nil {
		if !c.Shield {
			return cfgErr("HAProxy settings are only for shields")
		}
		if _, _, err := splitHostPort(c.HAProxy.ListenHTTP); err != nil {
			return cfgErr("--listen-http %q: %v", c.HAProxy.ListenHTTP, err)
		}
		if c.HAProxy.ListenTLS != "" {
			if _, _, err := splitHostPort(c.HAProxy.ListenTLS); err != nil {
				return cfgErr("--listen-tls %q: %v", c.HAProxy.ListenTLS, err)
			}
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := splitHostPort(c.MetricsAddr); err != nil {
			return cfgErr("--metrics %q: %v", c.MetricsAddr, err)
		}
	}
	for _, p := range c.Peers {
		if _, _, err := splitHostPort(p); err != nil {
			return cfgErr("peer %q: %v", p, err)
		}
	}
	if c.AdvertiseIP != "" {
		ip := net.ParseIP(c.AdvertiseIP)
		if ip == nil || ip.IsUnspecified() {
			return cfgErr("--advertise %q is not a usable IP address", c.AdvertiseIP)
		}
	}
	if c.ControlURL != "" {
		u, err := url.Parse(c.ControlURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfgErr("control URL %q: want http://IP:PORT or https://HOST:PORT", c.ControlURL)
		}
	}
	if c.Control && len(c.GossipKey) == 0 && !c.AllowPlaintext {
		return cfgErr("gossip encryption is required: pass --gossip-key-file (make one with 'lumos keygen')")
	}
	if len(c.GossipKey) != 0 && len(c.GossipKey) != 32 {
		return cfgErr("gossip key must be 32 bytes, got %d", len(c.GossipKey))
	}
	switch c.Profile {
	case "", "lan", "wan", "local":
	default:
		return cfgErr("gossip profile %q: want lan, wan or local", c.Profile)
	}
	if c.DecommissionGrace <= 0 {
		c.DecommissionGrace = DefaultDecommissionGrace
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return nil
}

func validNodeName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("want IP:PORT")
	}
	if h != "" && net.ParseIP(h) == nil {
		return "", 0, fmt.Errorf("%q is not an IP address", h)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, n, nil
}

// meshProfile maps the config profile to the mesh one.
func (c *Config) meshProfile() string {
	if c.Profile == "" {
		return "lan"
	}
	return c.Profile
}
