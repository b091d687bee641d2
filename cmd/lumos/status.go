package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lumos-mesh/lumos/api"
)

func (c *cli) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the cluster: leader, raft state, nodes, servers, domains, plan",
		Long: `Show the cluster as the answering control node sees it: the Raft leader,
term and log indexes, every node of the mesh (control nodes and shields,
with their gossip state, Raft suffrage and applied index), server counts by
status, domains and how many of them are failed over, and the plan.

A leader mark "*" flags the Raft leader. A node whose applied index lags
the commit index has not yet caught up with the log.`,
		Example: `  lumos status
  lumos status --addr http://10.0.0.2:7070
  lumos status -o json | jq .leader`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := call(c, cmd, func(ctx context.Context, cl *api.Client) (*api.StatusResponse, error) {
				return cl.Status(ctx)
			})
			if err != nil {
				return err
			}
			st.Nodes = orEmpty(st.Nodes)
			return c.emit(st, func() error { return c.printStatus(st) })
		},
	}
}

func (c *cli) printStatus(st *api.StatusResponse) error {
	kv := newKV(c.stdout)
	node := st.Node
	if st.Version != "" {
		node += " (version " + st.Version + ")"
	}
	kv.add("Node", node)
	leader := st.Leader
	if leader == "" {
		leader = "none (no quorum?)"
	} else if st.LeaderAPI != "" {
		leader += " (" + st.LeaderAPI + ")"
	}
	kv.add("Leader", leader)
	kv.add("Raft", fmt.Sprintf("%s, term %d, commit index %d, applied index %d",
		cell(st.RaftState), st.Term, st.CommitIndex, st.AppliedIndex))
	kv.add("Servers", serverCounts(st.Servers))
	domains := plural(st.Domains, "domain")
	if st.FailedOver > 0 {
		domains += fmt.Sprintf(", %d failed over", st.FailedOver)
	} else {
		domains += ", none failed over"
	}
	kv.add("Domains", domains)
	kv.add("Plan", planLine(st.Plan))
	if err := kv.flush(); err != nil {
		return err
	}

	fmt.Fprintln(c.stdout)
	if len(st.Nodes) == 0 {
		return c.say("No nodes.\n")
	}
	t := newTable(c.stdout, "NAME", "ROLE", "ADDR", "GOSSIP", "SUFFRAGE", "LEADER", "APPLIED", "HAPROXY", "CURRENT")
	for _, n := range st.Nodes {
		cur := "-"
		if n.Current != nil {
			cur = yesNo(*n.Current)
		}
		t.row(n.Name, nodeRole(n), n.Addr, n.GossipState, n.Suffrage, mark(n.Leader), strconv.FormatUint(n.Applied, 10), cell(n.Health), cur)
	}
	return t.flush()
}

// nodeRole names what a node does: control, shield or both.
func nodeRole(n api.NodeInfo) string {
	switch {
	case n.Control && n.Shield:
		return "control+shield"
	case n.Control:
		return "control"
	case n.Shield:
		return "shield"
	}
	return "-"
}

// serverCounts renders counts by status in a fixed order, then any other
// status the API reports.
func serverCounts(m map[string]int) string {
	order := []string{api.StatusOnline, api.StatusOffline, api.StatusError, api.StatusDecommissioned}
	total := 0
	var parts []string
	seen := map[string]bool{}
	for _, s := range order {
		seen[s] = true
		total += m[s]
		parts = append(parts, fmt.Sprintf("%d %s", m[s], s))
	}
	var extra []string
	for s := range m {
		if !seen[s] {
			extra = append(extra, s)
		}
	}
	sort.Strings(extra)
	for _, s := range extra {
		total += m[s]
		parts = append(parts, fmt.Sprintf("%d %s", m[s], s))
	}
	return fmt.Sprintf("%d total: %s", total, strings.Join(parts, ", "))
}

// planLine renders a plan with its usage.
func planLine(p api.PlanInfo) string {
	name := p.Name
	if name == "" {
		name = "-"
	}
	left := p.Limit - p.Used
	if left < 0 {
		left = 0
	}
	return fmt.Sprintf("%s: %d of %d servers in use, %d left", name, p.Used, p.Limit, left)
}
