package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/lumos-mesh/lumos/api"
)

func (c *cli) planCmd() *cobra.Command {
	cmd := groupCmd("plan",
		"Show or set the plan (the limit on servers)",
		`The plan limits how many servers that are not decommissioned the cluster
may hold: free 1, pro 5, enterprise 20, or a custom number.`,
		`  lumos plan show
  lumos plan set pro
  lumos plan set 50`)
	cmd.AddCommand(c.planShowCmd(), c.planSetCmd())
	return cmd
}

func (c *cli) planShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Show the plan and how many servers it allows",
		Example: `  lumos plan show
  lumos plan show -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := call(c, cmd, func(ctx context.Context, cl *api.Client) (*api.PlanInfo, error) {
				return cl.Plan(ctx)
			})
			if err != nil {
				return err
			}
			return c.emit(p, func() error { return c.say("Plan %s\n", planLine(*p)) })
		},
	}
}

func (c *cli) planSetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "set free|pro|enterprise|N",
		Short: "Change the plan",
		Long: `Change the plan: free (1 server), pro (5), enterprise (20), or a number
for a custom limit. A limit below the number of servers in use is refused:
decommission servers first.`,
		Example: `  lumos plan set pro
  lumos plan set enterprise
  lumos plan set 50`,
		Args: exactArgs("PLAN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := call(c, cmd, func(ctx context.Context, cl *api.Client) (*api.PlanInfo, error) {
				return cl.SetPlan(ctx, args[0])
			})
			if err != nil {
				return err
			}
			return c.emit(p, func() error { return c.say("Plan set to %s\n", planLine(*p)) })
		},
	}
}
