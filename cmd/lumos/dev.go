package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lumos-mesh/lumos/node"
	"github.com/lumos-mesh/lumos/state"
)

func defaultDevDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "lumos", "dev")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "lumos", "dev")
	}
	return filepath.Join(os.TempDir(), "lumos-dev")
}

func newDevCmd() *cobra.Command {
	var (
		dataDir, httpAddr, bind, raftBind, logLevel string
		listenHTTP, listenTLS, metrics              string
		fresh                                       bool
		ff                                          failoverFlags
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a one-process cluster (control + shield) on loopback for trying lumos",
		Long: `Run one lumos process that is both a control node and a shield, on
loopback, with embedded defaults and no gossip encryption. It prints the API
address, the admin token and a few commands to try. The admin token is taken
from LUMOS_ADMIN_TOKEN when set, else a new one is made at every start. State
is kept in --data-dir between runs (--fresh starts over).`,
		Example: `  lumos dev
  lumos dev --fresh --http 127.0.0.1:9070`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if fresh {
				if err := os.RemoveAll(dataDir); err != nil {
					return fmt.Errorf("--fresh: %w", err)
				}
			}
			cfg := node.DevConfig(dataDir)
			cfg.HTTPAddr, cfg.BindAddr, cfg.RaftBind = httpAddr, bind, raftBind
			cfg.Version = version
			haproxyNote := ""
			if bin, err := exec.LookPath("haproxy"); err == nil {
				cfg.HAProxy = &node.HAProxyConfig{ListenHTTP: listenHTTP, ListenTLS: listenTLS, Binary: bin}
				cfg.MetricsAddr = metrics
			} else {
				haproxyNote = "haproxy is not installed, so the shield serves nothing (apt-get install haproxy, or run make dev as root)"
			}
			tok := strings.TrimSpace(os.Getenv("LUMOS_ADMIN_TOKEN"))
			generated := tok == ""
			if generated {
				t, err := newAdminToken()
				if err != nil {
					return err
				}
				tok = t
			}
			cfg.AdminTokenHash = state.HashToken(tok)
			l, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = l
			if err := ff.apply(cfg); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			return runNode(cmd, cfg, func(n *node.Node) {
				fmt.Fprintf(out, "\nlumos dev is running (control + shield %q, data in %s)\n\n", n.Name(), dataDir)
				fmt.Fprintf(out, "  API:          %s\n", n.APIURL())
				fmt.Fprintf(out, "  dashboard:    %s/ui/   (read-only; any user name, the admin token as password)\n", n.APIURL())
				if cfg.HAProxy != nil {
					fmt.Fprintf(out, "  HTTP:         http://%s   (HAProxy, routed by Host header)\n", listenHTTP)
					fmt.Fprintf(out, "  TLS:          %s   (HAProxy, TLS passthrough by SNI)\n", listenTLS)
					fmt.Fprintf(out, "  metrics:      http://%s/metrics\n", metrics)
				}
				if a := n.DNSAddr(); a != "" {
					fmt.Fprintf(out, "  DNS:          %s   (built-in authoritative DNS, UDP and TCP)\n", a)
				}
				if cfg.HAProxy == nil {
					fmt.Fprintf(out, "  note:         %s\n", haproxyNote)
				}
				if generated {
					fmt.Fprintf(out, "  admin token:  %s   (new at every start; set LUMOS_ADMIN_TOKEN to keep one)\n", tok)
				} else {
					fmt.Fprintf(out, "  admin token:  from LUMOS_ADMIN_TOKEN\n")
				}
				fmt.Fprintf(out, "\nTry, in another terminal:\n\n")
				fmt.Fprintf(out, "  export LUMOS_ADDR=%s\n", n.APIURL())
				if generated {
					fmt.Fprintf(out, "  export LUMOS_ADMIN_TOKEN=%s\n", tok)
				}
				exe := invokedAs()
				fmt.Fprintf(out, "  %s status\n", exe)
				fmt.Fprintf(out, "  %s server list\n", exe)
				fmt.Fprintf(out, "  %s domain add example.test --origin 127.0.0.1:9000\n", exe)
				fmt.Fprintf(out, "  %s domain assign example.test %s\n", exe, n.Name())
				fmt.Fprintf(out, "  %s domain show example.test\n", exe)
				if cfg.HAProxy != nil {
					fmt.Fprintf(out, "  curl -H 'Host: example.test' http://%s/   # your origin on 127.0.0.1:9000 answers\n", listenHTTP)
				}
				if a := n.DNSAddr(); a != "" {
					host, port, _ := net.SplitHostPort(a)
					fmt.Fprintf(out, "  dig @%s -p %s example.test   # the active shield's IP\n", host, port)
				}
				fmt.Fprintln(out)
				fmt.Fprintf(out, "Stop with Ctrl-C.\n\n")
			})
		},
	}
	dc := node.DevConfig("")
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data-dir", defaultDevDir(), "where the dev node keeps its state")
	fl.StringVar(&httpAddr, "http", dc.HTTPAddr, "API IP:PORT")
	fl.StringVar(&bind, "bind", dc.BindAddr, "gossip IP:PORT")
	fl.StringVar(&raftBind, "raft-bind", dc.RaftBind, "Raft IP:PORT")
	fl.StringVar(&logLevel, "log-level", "error", "log level: debug, info, warn or error")
	fl.BoolVar(&fresh, "fresh", false, "delete the dev data dir first")
	fl.StringVar(&listenHTTP, "listen-http", "127.0.0.1:8080", "IP:PORT HAProxy serves HTTP on")
	fl.StringVar(&listenTLS, "listen-tls", "127.0.0.1:8443", "IP:PORT HAProxy serves TLS passthrough on")
	fl.StringVar(&metrics, "metrics", "127.0.0.1:7071", "IP:PORT for the shield's Prometheus /metrics")
	ff.register(cmd, "127.0.0.1:5353")
	return cmd
}

// invokedAs is how to run this binary again from the same shell: its path
// when it was started by one (./bin/lumos), else just "lumos".
func invokedAs() string {
	exe := os.Args[0]
	if filepath.Base(exe) == exe {
		return "lumos"
	}
	return exe
}
