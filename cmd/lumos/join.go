package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/node"
	"github.com/lumos-mesh/lumos/state"
)

// shieldMemoryLimit is the Go runtime's soft memory limit on a shield.
const shieldMemoryLimit = 60 << 20

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// addNodeCommands adds the commands that run a node: join and dev.
func addNodeCommands(root *cobra.Command) {
	root.AddCommand(newJoinCmd(), newDevCmd(), newUninstallCmd())
}

// nodeFlags are the flags shared by join and dev.
type nodeFlags struct {
	name, dataDir, bind, advertise, raftBind, httpAddr string
	gossipKeyFile, adminTokenFile, profile, logLevel   string
	readTokenFiles                                     []string
	decommissionGrace                                  time.Duration
}

func (f *nodeFlags) register(cmd *cobra.Command, defaults *node.Config) {
	fl := cmd.Flags()
	host, _ := os.Hostname()
	fl.StringVar(&f.name, "name", host, "unique node name (also its Raft ID)")
	fl.StringVar(&f.dataDir, "data-dir", defaults.DataDir, "directory for the node's Raft log, snapshots and identity")
	fl.StringVar(&f.bind, "bind", defaults.BindAddr, "gossip IP:PORT to listen on")
	fl.StringVar(&f.advertise, "advertise", "", "IP other members reach this node on (default: the bind IP, or a private IP of this machine)")
	fl.StringVar(&f.raftBind, "raft-bind", defaults.RaftBind, "Raft IP:PORT to listen on")
	fl.StringVar(&f.httpAddr, "http", defaults.HTTPAddr, "API IP:PORT to listen on (control nodes)")
	fl.StringVar(&f.gossipKeyFile, "gossip-key-file", "", "file holding the gossip encryption key (make one with 'lumos keygen')")
	fl.StringVar(&f.adminTokenFile, "admin-token-file", "", "file holding the admin token, or its hash as 'sha256:HEX' (control nodes)")
	fl.StringArrayVar(&f.readTokenFiles, "dashboard-token-file", nil, "file holding a read-only token (or 'sha256:HEX') that opens the dashboard at /ui and nothing else (repeatable; control nodes)")
	fl.StringVar(&f.profile, "profile", defaults.Profile, "gossip timing profile: lan, wan or local")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.DurationVar(&f.decommissionGrace, "decommission-grace", node.DefaultDecommissionGrace, "how long a decommissioned shield's node stays in the cluster before the leader removes it")
}

func (f *nodeFlags) apply(cmd *cobra.Command, cfg *node.Config) error {
	cfg.Name = f.name
	cfg.DataDir = f.dataDir
	cfg.BindAddr = f.bind
	cfg.AdvertiseIP = f.advertise
	cfg.RaftBind = f.raftBind
	cfg.HTTPAddr = f.httpAddr
	cfg.Profile = f.profile
	cfg.DecommissionGrace = f.decommissionGrace
	cfg.Version = version
	if f.gossipKeyFile != "" {
		k, err := mesh.ReadKeyFile(f.gossipKeyFile)
		if err != nil {
			return fmt.Errorf("--gossip-key-file: %w", err)
		}
		cfg.GossipKey = k
	}
	if f.adminTokenFile != "" {
		h, err := readTokenHash("admin-token-file", f.adminTokenFile)
		if err != nil {
			return err
		}
		cfg.AdminTokenHash = h
	}
	for _, p := range f.readTokenFiles {
		h, err := readTokenHash("dashboard-token-file", p)
		if err != nil {
			return err
		}
		cfg.ReadTokenHashes = append(cfg.ReadTokenHashes, h)
	}
	l, err := newLogger(cmd.ErrOrStderr(), f.logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = l
	return nil
}

// readTokenHash reads a token file (given by --flag): the token itself, or
// its hash written as "sha256:HEX". Only the hash is kept.
func readTokenHash(flag, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("--%s %s is empty", flag, path)
	}
	if h, ok := strings.CutPrefix(s, "sha256:"); ok {
		h = strings.ToLower(h)
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
			return "", fmt.Errorf("--%s %s: 'sha256:' must be followed by 64 hex characters", flag, path)
		}
		return h, nil
	}
	if len(s) < 16 {
		return "", fmt.Errorf("--%s %s: the token must be at least 16 characters", flag, path)
	}
	return state.HashToken(s), nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv})), nil
}

func newJoinCmd() *cobra.Command {
	var (
		nf              nodeFlags
		control         bool
		bootstrapExpect int
		token           string
		hf              haproxyFlags
		ff              failoverFlags
	)
	defaults := node.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "join (--control [--bootstrap-expect N] [PEER...] | --token TOKEN CONTROL_URL)",
		Short: "Run this machine as a control node or a shield",
		Long: `Run a lumos node in the foreground until it is stopped (SIGINT/SIGTERM).

A control node (--control) is a Raft voter that serves the HTTP API. Start the
first cluster with --bootstrap-expect N on each of N control nodes, each given
the gossip address (IP:PORT) of at least one other as PEER; the cluster
bootstraps once N of them see each other. A control node started later with
PEERs and no --bootstrap-expect joins the existing cluster. Every control node
needs the same --gossip-key-file and --admin-token-file.

A shield presents the connection token that 'lumos server add' printed (from
--token or LUMOS_TOKEN) to any control node's API (CONTROL_URL), and gets the
gossip key and peers in return. A shield restarted on the same data dir
rejoins without the token.`,
		Example: `  # three control nodes
  lumos join --control --bootstrap-expect 3 --name c1 --data-dir /var/lib/lumos \
    --bind 10.0.0.1:7946 --raft-bind 10.0.0.1:7947 --http 10.0.0.1:7070 \
    --gossip-key-file /etc/lumos/gossip.key --admin-token-file /etc/lumos/admin.token \
    10.0.0.2:7946 10.0.0.3:7946

  # a shield
  LUMOS_TOKEN=lmt_... lumos join --name eu-fra-1 --advertise 203.0.113.7 http://10.0.0.1:7070`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := node.DefaultConfig()
			if err := nf.apply(cmd, cfg); err != nil {
				return err
			}
			if token == "" {
				token = os.Getenv("LUMOS_TOKEN")
			}
			if control {
				if token != "" {
					return errors.New("--token is for shields; a control node takes --control")
				}
				cfg.Control = true
				cfg.BootstrapExpect = bootstrapExpect
				cfg.Peers = args
				if err := ff.apply(cfg); err != nil {
					return err
				}
			} else {
				if bootstrapExpect != 0 {
					return errors.New("--bootstrap-expect needs --control")
				}
				if len(args) > 1 {
					return fmt.Errorf("a shield takes one CONTROL_URL, got %d arguments", len(args))
				}
				cfg.Shield = true
				cfg.Token = token
				hc, err := hf.config()
				if err != nil {
					return err
				}
				cfg.HAProxy = hc
				cfg.MetricsAddr = hf.metrics
				// A shield is a small agent beside HAProxy: keep the Go
				// heap's headroom in check (GOMEMLIMIT overrides).
				if os.Getenv("GOMEMLIMIT") == "" {
					debug.SetMemoryLimit(shieldMemoryLimit)
				}
				if len(args) == 1 {
					cfg.ControlURL = args[0]
				}
				if !hasIdentity(cfg.DataDir) && (token == "" || cfg.ControlURL == "") {
					return errors.New("a shield's first join needs --token TOKEN (or LUMOS_TOKEN) and CONTROL_URL; for a control node pass --control")
				}
			}
			return runNode(cmd, cfg, nil)
		},
	}
	nf.register(cmd, defaults)
	cmd.Flags().BoolVar(&control, "control", false, "run a control node (Raft voter + HTTP API)")
	cmd.Flags().IntVar(&bootstrapExpect, "bootstrap-expect", 0, "bootstrap a new cluster once this many control nodes see each other")
	cmd.Flags().StringVar(&token, "token", "", "server connection token for a shield's first join (or LUMOS_TOKEN)")
	hf.register(cmd)
	ff.register(cmd, "")
	return cmd
}

// haproxyFlags are a shield's HAProxy settings.
type haproxyFlags struct {
	listenHTTP, listenTLS, original, binary, metrics string
	stopOnExit                                       bool
}

func (f *haproxyFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.listenHTTP, "listen-http", "0.0.0.0:80", "shield: IP:PORT HAProxy serves HTTP on")
	fl.StringVar(&f.listenTLS, "listen-tls", "0.0.0.0:443", "shield: IP:PORT HAProxy serves TLS passthrough on (empty: none)")
	fl.StringVar(&f.original, "haproxy-config", "/etc/haproxy/haproxy.cfg", "shield: the HAProxy config found on this machine, backed up and scanned for sites at the first join (empty: none)")
	fl.StringVar(&f.binary, "haproxy", "", "shield: haproxy executable (default: from PATH)")
	fl.StringVar(&f.metrics, "metrics", "127.0.0.1:7071", "shield: IP:PORT to serve Prometheus /metrics on (empty: none)")
	fl.BoolVar(&f.stopOnExit, "stop-haproxy-on-exit", false, "shield: stop HAProxy when lumos stops (by default it keeps serving, and the next start adopts it)")
}

func (f *haproxyFlags) config() (*node.HAProxyConfig, error) {
	bin := f.binary
	if bin == "" {
		p, err := exec.LookPath("haproxy")
		if err != nil {
			return nil, errors.New("haproxy is not installed (apt-get install haproxy), or pass --haproxy PATH")
		}
		bin = p
	}
	return &node.HAProxyConfig{
		ListenHTTP:     f.listenHTTP,
		ListenTLS:      f.listenTLS,
		Binary:         bin,
		KeepRunning:    !f.stopOnExit,
		OriginalConfig: f.original,
	}, nil
}

func hasIdentity(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "node.json"))
	return err == nil
}

// runNode starts a node and waits for a signal or for the node to stop by
// itself. started, if set, is called once the node is up.
func runNode(cmd *cobra.Command, cfg *node.Config, started func(*node.Node)) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.New(ctx, cfg)
	if err != nil {
		return err
	}
	if started != nil {
		started(n)
	}
	select {
	case <-ctx.Done():
		cfg.Logger.Info("stopping")
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		return n.Close(sctx)
	case <-n.Done():
		if err := n.StopReason(); err != nil {
			if errors.Is(err, node.ErrDecommissioned) {
				fmt.Fprintln(cmd.ErrOrStderr(), "lumos: this server was decommissioned; the node has left the mesh")
				return nil
			}
			return err
		}
		return nil
	}
}

// newAdminToken returns a random admin token.
func newAdminToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "lma_" + hex.EncodeToString(b), nil
}
