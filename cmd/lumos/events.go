package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/state"
)

func (c *cli) eventsCmd() *cobra.Command {
	var (
		domain string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the event log: failovers, recoveries, server and domain changes",
		Long: `Show the replicated event log, newest first: servers added, joined,
down, recovered or in error, domains added, assigned or removed, failovers
(with the DNS record's old and new IP) and plan changes. The cluster keeps
the newest ` + strconv.Itoa(state.MaxEvents) + ` events.

SERVER shows the server's name when it is known, else its ID.`,
		Example: `  lumos events
  lumos events --domain example.com
  lumos events --limit 500 -o json | jq -r '.[] | select(.type=="failover_triggered") | .domain'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usageErr(fmt.Errorf("invalid --limit %d: use 0 for all events, or a positive number", limit))
			}
			n := limit
			if n == 0 || n > api.MaxEventLimit {
				n = api.MaxEventLimit
			}
			var names map[string]string
			events, err := call(c, cmd, func(ctx context.Context, cl *api.Client) ([]state.Event, error) {
				events, err := cl.Events(ctx, domain, n)
				if err == nil && len(events) > 0 && !c.jsonOut() {
					// Names for the table, best effort, within the same time limit.
					names = serverNames(ctx, cl)
				}
				return events, err
			})
			if err != nil {
				return err
			}
			return c.emit(orEmpty(events), func() error { return c.printEvents(events, names, domain) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&domain, "domain", "", "only events of this `DOMAIN`")
	f.IntVar(&limit, "limit", api.DefaultEventLimit, "show at most `N` events, newest first (0 for all that are kept)")
	return cmd
}

// printEvents prints the events of domain ("" for all) as a table, servers
// by name where names has them.
func (c *cli) printEvents(events []state.Event, names map[string]string, domain string) error {
	if len(events) == 0 {
		if domain != "" {
			return c.say("No events for %s.\n", domain)
		}
		return c.say("No events.\n")
	}
	t := newTable(c.stdout, "TIME", "TYPE", "DOMAIN", "SERVER", "FROM->TO", "MESSAGE")
	for _, e := range events {
		t.row(c.fmtTime(e.Time), e.Type, e.Domain, serverName(names, e.ServerID), fromTo(e), eventMessage(e))
	}
	return t.flush()
}

// serverNames maps server IDs to names for display. It is best effort: on
// any error the table shows IDs.
func serverNames(ctx context.Context, cl *api.Client) map[string]string {
	servers, err := cl.Servers(ctx)
	if err != nil {
		return nil
	}
	m := make(map[string]string, len(servers))
	for _, s := range servers {
		m[s.ID] = s.Name
	}
	return m
}

func serverName(names map[string]string, id string) string {
	if n, ok := names[id]; ok && n != "" {
		return n
	}
	return id
}

func fromTo(e state.Event) string {
	if e.FromIP == "" && e.ToIP == "" {
		return "-"
	}
	return cell(e.FromIP) + "->" + cell(e.ToIP)
}

func eventMessage(e state.Event) string {
	switch {
	case e.Message != "" && e.Reason != "" && e.Reason != e.Message:
		return e.Message + " (" + e.Reason + ")"
	case e.Message != "":
		return e.Message
	}
	return e.Reason
}
