package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lumos-mesh/lumos/mesh"
)

func (c *cli) keygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new gossip encryption key",
		Long: `Print a new random 32-byte gossip encryption key (AES-256-GCM), base64
encoded, on stdout. Nothing is contacted and nothing is stored.

Write it to a file readable only by lumos on every control node and pass
that file with --gossip-key-file to "lumos join --control". Shields receive
the key when they join with their token.`,
		Example: `  lumos keygen > /etc/lumos/gossip.key && chmod 600 /etc/lumos/gossip.key
  lumos join --control --gossip-key-file /etc/lumos/gossip.key`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := mesh.GenerateKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, key)
			fmt.Fprintln(c.stderr, "Save this key to a file (mode 600) on every control node and pass it with --gossip-key-file.")
			return nil
		},
	}
}
