package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lumos-mesh/lumos/haproxy"
	"github.com/lumos-mesh/lumos/node"
)

func newUninstallCmd() *cobra.Command {
	var (
		dataDir, binary string
		yes             bool
	)
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Stop lumos managing HAProxy on this shield and restore the original config",
		Long: `Run on a shield, with lumos itself stopped: stop the HAProxy lumos runs,
and put back the HAProxy configuration that was on the machine when the
shield first joined, byte for byte, after checking it with "haproxy -c". If
there was none, nothing is restored.

The server record stays in the cluster: decommission it with
"lumos server decommission SERVER" from a machine that reaches the API.
Start your distribution's HAProxy again afterwards (systemctl enable --now
haproxy). The data dir is kept; delete it to forget this node.`,
		Example: `  systemctl stop lumos
  lumos uninstall --data-dir /var/lib/lumos --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return errors.New("uninstall stops HAProxy on this machine: pass --yes to go ahead")
			}
			ctx, cancel := context.WithTimeout(cmdCtx(cmd), 2*time.Minute)
			defer cancel()
			out := cmd.OutOrStdout()
			// The node holds the data dir lock while it runs.
			lock, err := os.OpenFile(filepath.Join(dataDir, "lock"), os.O_RDWR, 0)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s is not a lumos data dir (no lock file): pass --data-dir", dataDir)
			}
			if err != nil {
				return err
			}
			defer lock.Close()
			if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				return errors.New("lumos is running on this data dir: stop it first (systemctl stop lumos)")
			}
			// Check the original before stopping anything, so a config
			// HAProxy would refuse never leaves the machine without one.
			check := func(p string) error { return haproxy.CheckConfig(ctx, binary, p) }
			backup := filepath.Join(dataDir, node.OriginalDir, haproxy.BackupConfigFile)
			if _, err := os.Stat(backup); err == nil {
				if err := check(backup); err != nil {
					return fmt.Errorf("the original HAProxy config fails the check, so nothing was stopped or restored: %w", err)
				}
			}
			stopped, err := haproxy.StopServing(ctx, filepath.Join(dataDir, node.HAProxyDir), 30*time.Second)
			if err != nil {
				return fmt.Errorf("stop HAProxy: %w", err)
			}
			if stopped {
				fmt.Fprintln(out, "Stopped the HAProxy lumos was running.")
			}
			restored, err := haproxy.Restore(filepath.Join(dataDir, node.OriginalDir), check)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				fmt.Fprintln(out, "No original HAProxy config was backed up on this shield; nothing to restore.")
			case err != nil:
				return fmt.Errorf("restore the original HAProxy config: %w", err)
			case restored == "":
				fmt.Fprintln(out, "There was no HAProxy config on this machine when it joined; nothing to restore.")
			default:
				fmt.Fprintf(out, "Restored %s (checked with haproxy -c).\n", restored)
			}
			fmt.Fprintln(out, "Next: systemctl enable --now haproxy, and decommission this server: lumos server decommission SERVER")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data-dir", node.DefaultDataDir, "the shield's data dir")
	fl.StringVar(&binary, "haproxy", "", "haproxy executable used to check the restored config (default: from PATH)")
	fl.BoolVar(&yes, "yes", false, "do it without asking")
	return cmd
}
