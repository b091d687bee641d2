package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lumos-mesh/lumos/api"
)

func (c *cli) serverCmd() *cobra.Command {
	cmd := groupCmd("server",
		"Add, list, show, rename and decommission shield servers",
		`Manage shield servers.

A server is a record in the cluster state with a connection token. A shield
machine presents the token once with "lumos join --token" and is bound to
the record. A server is referred to by its ID or its name (names are
matched case-insensitively).

Statuses: online (gossip alive and HAProxy healthy), offline, error
(HAProxy failed to validate or reload its config) and decommissioned.`,
		`  lumos server add "edge fra 1"
  lumos server list
  lumos server show "edge fra 1"
  lumos server rename "edge fra 1" edge-fra-1
  lumos server decommission edge-fra-1 --yes
  lumos server sites edge-fra-1`)
	cmd.AddCommand(
		c.serverAddCmd(),
		c.serverListCmd(),
		c.serverShowCmd(),
		c.serverRenameCmd(),
		c.serverDecommissionCmd(),
		c.serverSitesCmd(),
	)
	return cmd
}

func (c *cli) serverAddCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "add NAME",
		Short: "Create a server and print its connection token (shown once)",
		Long: `Create a server record and print its connection token.

The token is shown this once and cannot be shown again: the cluster stores
only its SHA-256 hash and a short prefix. Copy it to the shield machine and run the printed
"lumos join" command there. A name with spaces must be quoted.

The plan limits how many servers (not decommissioned) may exist.`,
		Example: `  lumos server add edge-fra-1
  lumos server add "edge fra 1"
  lumos server add edge-ams-1 -o json | jq -r .token`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := call(c, cmd, func(ctx context.Context, cl *api.Client) (*api.AddServerResponse, error) {
				return cl.AddServer(ctx, args[0])
			})
			if err != nil {
				return err
			}
			normServer(&res.Server)
			return c.emit(res, func() error { return c.printAdded(res) })
		},
	}
}

func (c *cli) printAdded(res *api.AddServerResponse) error {
	w := c.stdout
	fmt.Fprintf(w, "Server %q added (id %s).\n\n", res.Server.Name, res.Server.ID)
	fmt.Fprintln(w, "Connection token (shown only this once: it cannot be shown again, only its hash is stored):")
	fmt.Fprintf(w, "\n    %s\n\n", res.Token)
	fmt.Fprintln(w, "On the shield machine, run:")
	fmt.Fprintf(w, "\n    lumos join --token %s %s\n\n", res.Token, c.addr)
	if isLoopbackURL(c.addr) {
		fmt.Fprintf(w, "(%s is a loopback address: use the control node address the shield can reach.)\n", c.addr)
	}
	return nil
}

// isLoopbackURL reports whether u points at localhost or a loopback IP.
func isLoopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	h := p.Hostname()
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (c *cli) serverListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List servers",
		Long: `List every server, decommissioned ones included.

LAST SEEN is how long ago gossip last heard from the shield; CURRENT says
whether the shield has applied every change that concerns it.`,
		Example: `  lumos server list
  lumos server list -o json | jq -r '.[] | select(.status=="offline") | .name'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			servers, err := call(c, cmd, func(ctx context.Context, cl *api.Client) ([]api.ServerInfo, error) {
				return cl.Servers(ctx)
			})
			if err != nil {
				return err
			}
			servers = normEach(servers, normServer)
			return c.emit(servers, func() error { return c.printServers(servers) })
		},
	}
}

// printServers prints servers as a table.
func (c *cli) printServers(servers []api.ServerInfo) error {
	if len(servers) == 0 {
		return c.say("No servers. Add one with: lumos server add NAME\n")
	}
	t := newTable(c.stdout, "ID", "NAME", "STATUS", "IP", "LAST SEEN", "UPTIME", "DOMAINS", "TOKEN", "CURRENT")
	for _, s := range servers {
		t.row(s.ID, s.Name, s.Status, s.IP, c.agoPtr(s.LastSeen), fmtUptime(s.UptimeSeconds),
			strconv.Itoa(len(s.Domains)), tokenPrefix(s.TokenPrefix), currentCell(s))
	}
	return t.flush()
}

// normServer makes nil lists empty so JSON shows [] rather than null.
func normServer(s *api.ServerInfo) *api.ServerInfo {
	s.Domains = orEmpty(s.Domains)
	return s
}

// tokenPrefix renders a stored token prefix as a visibly partial token.
func tokenPrefix(p string) string {
	if p == "" {
		return "-"
	}
	return p + "..."
}

func currentCell(s api.ServerInfo) string {
	if s.Decommissioned || s.Status == api.StatusDecommissioned || s.NodeName == "" {
		return "-"
	}
	return yesNo(s.Current)
}

func (c *cli) serverShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show SERVER",
		Short: "Show one server in full",
		Long: `Show every field of one server: identity, token prefix, the node bound
to it, gossip and HAProxy health, last seen, uptime, the config it has
applied, and the domains assigned to it. SERVER is an ID or a name.`,
		Example: `  lumos server show edge-fra-1
  lumos server show srv_7f3a9c
  lumos server show "edge fra 1" -o json`,
		Args: exactArgs("SERVER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := call(c, cmd, func(ctx context.Context, cl *api.Client) (*api.ServerInfo, error) {
				return cl.Server(ctx, args[0])
			})
			if err != nil {
				return err
			}
			return c.emit(normServer(s), func() error { return c.printServer(s) })
		},
	}
}

func (c *cli) printServer(s *api.ServerInfo) error {
	kv := newKV(c.stdout)
	kv.add("ID", s.ID)
	kv.add("Name", s.Name)
	kv.add("Status", s.Status)
	health := s.Health
	if s.HealthError != "" {
		health = strings.TrimSpace(health + " (" + s.HealthError + ")")
	}
	kv.add("Health", health)
	if s.Down {
		down := "yes: " + s.DownReason
		if s.DownSince != nil {
			down += " (since " + c.fmtTimeAgo(*s.DownSince) + ")"
		}
		kv.add("Down", down)
	}
	kv.add("Token prefix", tokenPrefix(s.TokenPrefix))
	kv.add("Created", c.fmtTimeAgo(s.CreatedAt))
	if s.NodeName == "" && !s.Decommissioned {
		kv.add("Node", "not joined yet (run lumos join --token TOKEN on the shield)")
	} else {
		kv.add("Node", s.NodeName)
	}
	kv.add("IP", s.IP)
	kv.add("Raft address", s.RaftAddr)
	kv.add("Gossip", s.GossipState)
	if s.LastSeen != nil {
		kv.add("Last seen", c.fmtTimeAgo(*s.LastSeen))
	} else {
		kv.add("Last seen", "never")
	}
	kv.add("Uptime", fmtUptime(s.UptimeSeconds))
	kv.add("Version", s.Version)
	applied := strconv.FormatUint(s.AppliedIndex, 10)
	if s.NodeName != "" && !s.Decommissioned {
		if s.Current {
			applied += " (current)"
		} else {
			applied += " (catching up)"
		}
	}
	kv.add("Applied index", applied)
	if s.ConfigHash != "" || s.ConfigIndex != 0 {
		kv.add("HAProxy config", fmt.Sprintf("%s, rendered at index %d", shortHash(s.ConfigHash), s.ConfigIndex))
	}
	if s.ErrorType != "" {
		kv.add("Error", s.ErrorType)
	}
	if s.Restarts > 0 {
		kv.add("HAProxy restarts", strconv.Itoa(s.Restarts))
	}
	if t := s.Traffic; t != nil {
		kv.add("Traffic", fmt.Sprintf("%.1f req/s, %d requests, %s in, %s out, %d connections, %d 5xx (%s)",
			t.RequestsPerSec, t.Requests, fmtBytes(t.BytesIn), fmtBytes(t.BytesOut), t.Connections, t.Responses5xx, c.fmtTimeAgo(t.At)))
	}
	if s.Sites > 0 {
		kv.add("Detected sites", fmt.Sprintf("%d (lumos server sites %s)", s.Sites, s.Name))
	}
	if s.Decommissioned || s.DecommissionedAt != nil {
		at := "yes"
		if s.DecommissionedAt != nil {
			at = c.fmtTimeAgo(*s.DecommissionedAt)
		}
		kv.add("Decommissioned", at)
		kv.add("Node removed", yesNo(s.NodeRemoved))
	}
	kv.add("Domains", strconv.Itoa(len(s.Domains)))
	if err := kv.flush(); err != nil {
		return err
	}
	for _, d := range s.Domains {
		fmt.Fprintf(c.stdout, "  %s\n", cell(d))
	}
	return nil
}

func (c *cli) serverRenameCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rename SERVER NEW_NAME",
		Short: "Rename a server",
		Long: `Give a server a new name. The ID, token and domain assignments are
unchanged. SERVER is an ID or the current name; quote names with spaces.`,
		Example: `  lumos server rename edge-fra-1 "edge fra 1"
  lumos server rename srv_7f3a9c edge-fra-2`,
		Args: exactArgs("SERVER", "NEW_NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := call(c, cmd, func(ctx context.Context, cl *api.Client) (*api.ServerInfo, error) {
				return cl.RenameServer(ctx, args[0], args[1])
			})
			if err != nil {
				return err
			}
			return c.emit(normServer(s), func() error { return c.say("Server %s renamed to %q.\n", s.ID, s.Name) })
		},
	}
}

func (c *cli) serverDecommissionCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "decommission SERVER",
		Short: "Retire a server for good (soft delete)",
		Long: `Decommission a server: its status becomes decommissioned, it is removed
from every domain it serves, the shield is told to stop and leave, and its
token can never connect again. The record stays for history; the node is
removed from the mesh after a grace period.

A domain whose only server this was is left with no server: it is named in
a warning, and is not served until you assign it a server again.

Asks for confirmation on a terminal; pass --yes in scripts.`,
		Example: `  lumos server decommission edge-fra-1
  lumos server decommission srv_7f3a9c --yes`,
		Args: exactArgs("SERVER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := c.confirmTarget(cmd, yes, target{
				ref:     args[0],
				refusal: fmt.Sprintf("decommission server %q", args[0]),
				what:    "decommission",
				describe: func(ctx context.Context, cl *api.Client) (prompt, error) {
					s, err := cl.Server(ctx, args[0])
					if err != nil {
						return prompt{}, err
					}
					q := fmt.Sprintf("Decommission server %q (%s)? It will be removed from %s and can never reconnect.",
						s.Name, s.ID, plural(len(s.Domains), "domain"))
					return prompt{question: q, ref: s.ID}, nil
				},
			})
			if err != nil {
				return err
			}
			res, err := call(c, cmd, func(ctx context.Context, cl *api.Client) (*api.DecommissionResponse, error) {
				return cl.DecommissionServer(ctx, ref)
			})
			if err != nil {
				return err
			}
			normServer(&res.Server)
			res.Unassigned = orEmpty(res.Unassigned)
			res.Orphaned = orEmpty(res.Orphaned)
			err = c.emit(res, func() error {
				fmt.Fprintf(c.stdout, "Server %q (%s) decommissioned.\n", res.Server.Name, res.Server.ID)
				if len(res.Unassigned) > 0 {
					fmt.Fprintf(c.stdout, "Removed from %s: %s\n", plural(len(res.Unassigned), "domain"), strings.Join(res.Unassigned, ", "))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, d := range res.Orphaned {
				fmt.Fprintf(c.stderr, "lumos: WARNING: domain %s has no server left; assign one with: lumos domain assign %s SERVER\n", d, d)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func (c *cli) serverSitesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sites SERVER",
		Short: "List the sites found in a server's original HAProxy config",
		Long: `List the sites lumos detected in the HAProxy configuration a shield had
before it joined: HTTP host routing (ACL + backend pairs, map files) and TLS
passthrough by SNI. MANAGED marks sites already managed as domains. Import
the others with "lumos domain import SERVER SITE...".`,
		Example: `  lumos server sites edge-fra-1
  lumos server sites edge-fra-1 -o json`,
		Args: exactArgs("SERVER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sites, err := call(c, cmd, func(ctx context.Context, cl *api.Client) ([]api.SiteInfo, error) {
				return cl.ServerSites(ctx, args[0])
			})
			if err != nil {
				return err
			}
			sites = orEmpty(sites)
			return c.emit(sites, func() error {
				if len(sites) == 0 {
					return c.say("No sites were detected on %s.\n", args[0])
				}
				t := newTable(c.stdout, "SITE", "MODE", "ORIGINS", "BACKEND", "MANAGED")
				for _, st := range sites {
					origins := strings.Join(st.Origins, ", ")
					if len(st.Unresolved) > 0 {
						origins = strings.TrimPrefix(origins+", unresolved: "+strings.Join(st.Unresolved, ", "), ", ")
					}
					t.row(st.Domain, st.Mode, cell(origins), cell(st.Backend), yesNo(st.Managed))
				}
				return t.flush()
			})
		},
	}
}

// shortHash shortens a config hash for display.
func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "-"
	}
	return h
}

// fmtBytes renders a byte count in binary units.
func fmtBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
