package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/state"
)

func (c *cli) domainCmd() *cobra.Command {
	cmd := groupCmd("domain",
		"Add, assign, list, show and remove domains",
		`Manage the domains the shields serve.

A domain has one or more origins (IP:PORT, private addresses allowed), a
mode (http: reverse proxy routed by Host header; tcp: TLS passthrough routed
by SNI), DNS failover settings, and an ordered list of servers: the first
is the primary, the others are secondaries in order of preference. Every
assigned shield serves the full config, so a secondary takes traffic with
no cold start when DNS fails over to it.`,
		`  lumos domain add example.com --origin 10.0.0.5:80 --origin 10.0.0.6:80
  lumos domain assign example.com edge-fra-1 edge-ams-1
  lumos domain list
  lumos domain show example.com
  lumos domain remove example.com --yes`)
	cmd.AddCommand(
		c.domainImportCmd(),
		c.domainAddCmd(),
		c.domainSetCmd(),
		c.domainAssignCmd(),
		c.domainListCmd(),
		c.domainShowCmd(),
		c.domainRemoveCmd(),
	)
	return cmd
}

func (c *cli) domainAddCmd() *cobra.Command {
	var (
		origins     []string
		servers     []string
		mode        string
		dnsProvider string
		ttl         int
		failoverTTL int
	)
	cmd := &cobra.Command{
		Use:   "add DOMAIN --origin IP:PORT [--origin IP:PORT]...",
		Short: "Add a domain with its origins",
		Long: `Add a domain. At least one --origin is required; repeat the flag for
several origins. Origins may be public or private addresses (10/8,
172.16/12, 192.168/16, 127/8); non-routable ones (0.0.0.0/8, 169.254/16,
fe80::/10, multicast, broadcast, unspecified) are refused.

--dns picks how failover moves traffic: builtin (the control nodes' own
authoritative DNS, the default), cloudflare, or none (no DNS failover).
--ttl is the record TTL in normal operation, --failover-ttl the lower TTL
used while failed over (seconds; defaults 300 and 30).

Servers can be given here with --server (in order, first is primary) or
later with "lumos domain assign".`,
		Example: `  lumos domain add example.com --origin 10.0.0.5:80
  lumos domain add shop.example.com --origin 10.0.0.5:443 --origin 10.0.0.6:443 --mode tcp
  lumos domain add api.example.com --origin 192.168.1.10:8080 --dns cloudflare --ttl 120 --failover-ttl 30
  lumos domain add example.org --origin 10.0.0.7:80 --server edge-fra-1 --server edge-ams-1`,
		Args: exactArgs("DOMAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(origins) == 0 {
				return usageErr(fmt.Errorf("missing --origin IP:PORT (at least one origin is required)"))
			}
			m := strings.ToLower(strings.TrimSpace(mode))
			if m != state.ModeHTTP && m != state.ModeTCP {
				return usageErr(fmt.Errorf("invalid --mode %q: use http or tcp", mode))
			}
			p := strings.ToLower(strings.TrimSpace(dnsProvider))
			if p != state.DNSBuiltin && p != state.DNSCloudflare && p != state.DNSNone {
				return usageErr(fmt.Errorf("invalid --dns %q: use builtin, cloudflare or none", dnsProvider))
			}
			if ttl < 0 {
				return usageErr(fmt.Errorf("invalid --ttl %d: must be a positive number of seconds", ttl))
			}
			if failoverTTL < 0 {
				return usageErr(fmt.Errorf("invalid --failover-ttl %d: must be a positive number of seconds", failoverTTL))
			}
			req := &api.AddDomainRequest{
				Name:    args[0],
				Origins: origins,
				Mode:    m,
				DNS:     state.DNS{Provider: p, TTL: ttl, FailoverTTL: failoverTTL},
				Servers: servers,
			}
			d, err := call(c, cmd, func(ctx context.Context, cl *api.Client) (*api.DomainInfo, error) {
				return cl.AddDomain(ctx, req)
			})
			if err != nil {
				return err
			}
			return c.emit(normDomain(d), func() error {
				fmt.Fprintf(c.stdout, "Domain %s added (%s, origins %s).\n", d.Name, d.Mode, strings.Join(d.Origins, ", "))
				if len(d.Servers) == 0 {
					return c.say("It has no server yet: lumos domain assign %s SERVER [SERVER...]\n", d.Name)
				}
				return c.printOrder(d)
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&origins, "origin", nil, "origin `IP:PORT` (repeat for several; required)")
	f.StringVar(&mode, "mode", state.ModeHTTP, "domain mode: `http|tcp` (reverse proxy routed by Host, or TLS passthrough routed by SNI)")
	f.StringVar(&dnsProvider, "dns", state.DNSBuiltin, "DNS failover provider: `builtin|cloudflare|none`")
	f.IntVar(&ttl, "ttl", 0, "DNS record TTL in `seconds` (default 300)")
	f.IntVar(&failoverTTL, "failover-ttl", 0, "DNS record TTL while failed over, in `seconds` (default 30)")
	f.StringArrayVar(&servers, "server", nil, "assign a `SERVER` (ID or name; repeat, in order: first is primary)")
	return cmd
}

func (c *cli) domainSetCmd() *cobra.Command {
	var (
		origins     []string
		mode        string
		dnsProvider string
		ttl         int
		failoverTTL int
	)
	cmd := &cobra.Command{
		Use:   "set DOMAIN [--origin IP:PORT]... [--mode http|tcp] [--dns builtin|cloudflare|none] [--ttl SECONDS] [--failover-ttl SECONDS]",
		Short: "Change a domain's origins, mode or DNS failover settings",
		Long: `Change settings of an existing domain; flags not given keep their values.
--origin replaces the whole origin list (repeat it for several). DNS settings
take effect at the next DNS write (or at once for the built-in DNS); origins
and mode reach every assigned shield through the log.`,
		Example: `  lumos domain set example.com --dns cloudflare --ttl 120 --failover-ttl 30
  lumos domain set example.com --origin 10.0.0.5:80 --origin 10.0.0.8:80`,
		Args: exactArgs("DOMAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &api.SetDomainRequest{Origins: origins, TTL: ttl, FailoverTTL: failoverTTL}
			f := cmd.Flags()
			if !f.Changed("origin") && !f.Changed("mode") && !f.Changed("dns") && !f.Changed("ttl") && !f.Changed("failover-ttl") {
				return usageErr(fmt.Errorf("nothing to change: give --origin, --mode, --dns, --ttl or --failover-ttl"))
			}
			if f.Changed("mode") {
				m := strings.ToLower(strings.TrimSpace(mode))
				if m != state.ModeHTTP && m != state.ModeTCP {
					return usageErr(fmt.Errorf("invalid --mode %q: use http or tcp", mode))
				}
				req.Mode = m
			}
			if f.Changed("dns") {
				p := strings.ToLower(strings.TrimSpace(dnsProvider))
				if p != state.DNSBuiltin && p != state.DNSCloudflare && p != state.DNSNone {
					return usageErr(fmt.Errorf("invalid --dns %q: use builtin, cloudflare or none", dnsProvider))
				}
				req.DNS = p
			}
			if f.Changed("ttl") && ttl <= 0 {
				return usageErr(fmt.Errorf("invalid --ttl %d: must be a positive number of seconds", ttl))
			}
			if f.Changed("failover-ttl") && failoverTTL <= 0 {
				return usageErr(fmt.Errorf("invalid --failover-ttl %d: must be a positive number of seconds", failoverTTL))
			}
			if f.Changed("origin") && len(origins) == 0 {
				return usageErr(fmt.Errorf("--origin needs IP:PORT"))
			}
			d, err := call(c, cmd, func(ctx context.Context, cl *api.Client) (*api.DomainInfo, error) {
				return cl.SetDomain(ctx, args[0], req)
			})
			if err != nil {
				return err
			}
			return c.emit(normDomain(d), func() error {
				return c.say("Domain %s updated (%s, origins %s, dns %s, ttl %ds, failover ttl %ds).\n", d.Name, d.Mode, strings.Join(d.Origins, ", "), d.DNS.Provider, d.DNS.TTL, d.DNS.FailoverTTL)
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&origins, "origin", nil, "origin `IP:PORT` (repeat for several; replaces the list)")
	f.StringVar(&mode, "mode", "", "domain mode: `http|tcp`")
	f.StringVar(&dnsProvider, "dns", "", "DNS failover provider: `builtin|cloudflare|none`")
	f.IntVar(&ttl, "ttl", 0, "DNS record TTL in `seconds`")
	f.IntVar(&failoverTTL, "failover-ttl", 0, "DNS record TTL while failed over, in `seconds`")
	return cmd
}

func (c *cli) domainAssignCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "assign DOMAIN SERVER [SERVER...]",
		Short: "Set a domain's ordered server list (first is primary)",
		Long: `Set the servers of a domain, replacing the previous list. Order matters:
the first server is the primary, the others are secondaries tried in the
order given when the primary is down. SERVER is an ID or a name.

Every listed shield receives the domain's config; shields dropped from the
list stop serving it.`,
		Example: `  lumos domain assign example.com edge-fra-1
  lumos domain assign example.com edge-fra-1 edge-ams-1 edge-waw-1
  lumos domain assign example.com "edge fra 1" srv_7f3a9c`,
		Args: minArgs("DOMAIN", "SERVER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := call(c, cmd, func(ctx context.Context, cl *api.Client) (*api.DomainInfo, error) {
				return cl.AssignDomain(ctx, args[0], args[1:])
			})
			if err != nil {
				return err
			}
			return c.emit(normDomain(d), func() error { return c.printOrder(d) })
		},
	}
}

// printOrder prints a domain's servers in order, the primary marked.
func (c *cli) printOrder(d *api.DomainInfo) error {
	fmt.Fprintf(c.stdout, "%s is served by, in order:\n", d.Name)
	for i, s := range d.Servers {
		extra := ""
		if s.Active {
			extra = ", active"
		}
		fmt.Fprintf(c.stdout, "  %d. %s (%s, %s%s)\n", i+1, cell(serverLabel(s)), serverRole(i, s), cell(s.Status), extra)
	}
	return nil
}

// serverRole names the part the i-th server of a domain plays.
func serverRole(i int, s api.DomainServer) string {
	if i == 0 || s.Primary {
		return "primary"
	}
	return "secondary"
}

// serverLabel names a domain's server: its name, else its ID.
func serverLabel(s api.DomainServer) string {
	if s.Name != "" {
		return s.Name
	}
	return s.ID
}

// activeLabel names the server DNS points at, or "-".
func activeLabel(d *api.DomainInfo) string {
	for _, s := range d.Servers {
		if s.Active {
			return serverLabel(s)
		}
	}
	if d.ActiveServer != "" {
		return d.ActiveServer
	}
	return "-"
}

// normDomain makes nil lists empty so JSON shows [] rather than null.
func normDomain(d *api.DomainInfo) *api.DomainInfo {
	d.Origins = orEmpty(d.Origins)
	d.Servers = orEmpty(d.Servers)
	return d
}

func (c *cli) domainListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List domains",
		Long: `List every domain with its mode, origins, servers (in order, primary
first and marked "*"), failover status (active or failed_over) and the
server DNS currently points at.`,
		Example: `  lumos domain list
  lumos domain list -o json | jq -r '.[] | select(.failover_status=="failed_over") | .name'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			domains, err := call(c, cmd, func(ctx context.Context, cl *api.Client) ([]api.DomainInfo, error) {
				return cl.Domains(ctx)
			})
			if err != nil {
				return err
			}
			domains = normEach(domains, normDomain)
			return c.emit(domains, func() error { return c.printDomains(domains) })
		},
	}
}

// printDomains prints domains as a table, each primary marked "*".
func (c *cli) printDomains(domains []api.DomainInfo) error {
	if len(domains) == 0 {
		return c.say("No domains. Add one with: lumos domain add DOMAIN --origin IP:PORT\n")
	}
	t := newTable(c.stdout, "NAME", "MODE", "ORIGINS", "SERVERS", "STATUS", "ACTIVE")
	for i := range domains {
		d := &domains[i]
		names := make([]string, 0, len(d.Servers))
		for j, s := range d.Servers {
			n := serverLabel(s)
			if j == 0 {
				n += "*"
			}
			names = append(names, n)
		}
		t.row(d.Name, d.Mode, strings.Join(d.Origins, ","), strings.Join(names, ","), d.FailoverStatus, activeLabel(d))
	}
	return t.flush()
}

func (c *cli) domainShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show DOMAIN",
		Short: "Show one domain in full",
		Long: `Show every field of a domain: origins, mode, DNS settings, failover
status, and its ordered servers with their status and address.`,
		Example: `  lumos domain show example.com
  lumos domain show example.com -o json`,
		Args: exactArgs("DOMAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := call(c, cmd, func(ctx context.Context, cl *api.Client) (*api.DomainInfo, error) {
				return cl.Domain(ctx, args[0])
			})
			if err != nil {
				return err
			}
			return c.emit(normDomain(d), func() error { return c.printDomain(d) })
		},
	}
}

func (c *cli) printDomain(d *api.DomainInfo) error {
	kv := newKV(c.stdout)
	kv.add("Name", d.Name)
	kv.add("Mode", d.Mode)
	kv.add("Origins", strings.Join(d.Origins, ", "))
	dns := d.DNS.Provider
	if dns != "" && dns != state.DNSNone {
		dns += fmt.Sprintf(", ttl %ds, failover ttl %ds", d.DNS.TTL, d.DNS.FailoverTTL)
	} else if dns == state.DNSNone {
		dns += " (no DNS failover)"
	}
	kv.add("DNS", dns)
	kv.add("Failover", d.FailoverStatus)
	kv.add("Active server", activeLabel(d))
	if d.Record != nil {
		rec := fmt.Sprintf("A %s, ttl %ds", d.Record.IP, d.Record.TTL)
		if d.Record.Provider != state.DNSBuiltin {
			switch {
			case d.DNSSynced == nil:
				rec += " (not written to " + d.Record.Provider + " yet)"
			case d.DNSSynced.Same(d.Record):
				rec += " (in sync at " + d.Record.Provider + ")"
			default:
				rec += fmt.Sprintf(" (%s has A %s, ttl %ds: update pending)", d.Record.Provider, d.DNSSynced.IP, d.DNSSynced.TTL)
			}
		}
		kv.add("DNS record", rec)
	}
	if d.FailoverAt != nil {
		kv.add("Last switch", c.fmtTimeAgo(*d.FailoverAt))
	}
	kv.add("Version", strconv.FormatUint(d.Version, 10))
	kv.add("Created", c.fmtTimeAgo(d.CreatedAt))
	kv.add("Updated", c.fmtTimeAgo(d.UpdatedAt))
	kv.add("Servers", strconv.Itoa(len(d.Servers)))
	if err := kv.flush(); err != nil {
		return err
	}
	if len(d.Servers) == 0 {
		return c.say("  none: lumos domain assign %s SERVER [SERVER...]\n", d.Name)
	}
	t := newTable(c.stdout, "  #", "NAME", "ID", "ROLE", "STATUS", "IP", "ACTIVE")
	for i, s := range d.Servers {
		t.row("  "+strconv.Itoa(i+1), s.Name, s.ID, serverRole(i, s), s.Status, s.IP, mark(s.Active))
	}
	return t.flush()
}

func (c *cli) domainRemoveCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:     "remove DOMAIN",
		Aliases: []string{"rm"},
		Short:   "Remove a domain",
		Long: `Remove a domain: every shield stops serving it and its failover state
is dropped. Past events stay in the event log.

Asks for confirmation on a terminal; pass --yes in scripts.`,
		Example: `  lumos domain remove example.com
  lumos domain remove example.com --yes`,
		Args: exactArgs("DOMAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := c.confirmTarget(cmd, yes, target{
				ref:     args[0],
				refusal: fmt.Sprintf("remove domain %q", args[0]),
				what:    "remove domain",
				describe: func(ctx context.Context, cl *api.Client) (prompt, error) {
					d, err := cl.Domain(ctx, args[0])
					if err != nil {
						return prompt{}, err
					}
					q := fmt.Sprintf("Remove domain %s? %s will stop serving it.", d.Name, plural(len(d.Servers), "server"))
					return prompt{question: q, ref: d.Name}, nil
				},
			})
			if err != nil {
				return err
			}
			d, err := call(c, cmd, func(ctx context.Context, cl *api.Client) (*api.DomainInfo, error) {
				return cl.RemoveDomain(ctx, name)
			})
			if err != nil {
				return err
			}
			return c.emit(normDomain(d), func() error { return c.say("Domain %s removed.\n", d.Name) })
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func (c *cli) domainImportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import SERVER SITE [SITE...]",
		Short: "Turn sites detected on a server into managed domains",
		Long: `Import sites that lumos detected in a shield's original HAProxy config
(see "lumos server sites SERVER") as managed domains, with the origins and
mode found there, assigned to that server. All the named sites are imported,
or none. Name a site detected in both modes as DOMAIN/http or DOMAIN/tcp.`,
		Example: `  lumos domain import edge-fra-1 shop.example.com blog.example.com
  lumos domain import edge-fra-1 mail.example.com/tcp`,
		Args: minArgs("SERVER", "SITE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := call(c, cmd, func(ctx context.Context, cl *api.Client) ([]api.DomainInfo, error) {
				return cl.ImportSites(ctx, args[0], args[1:])
			})
			if err != nil {
				return err
			}
			out = normEach(orEmpty(out), normDomain)
			return c.emit(out, func() error {
				for _, d := range out {
					if err := c.say("Imported %s (%s, origins %s) on %s.\n", d.Name, d.Mode, strings.Join(d.Origins, ", "), args[0]); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}
