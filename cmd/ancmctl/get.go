package main

import (
	"github.com/spf13/cobra"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func (c *cli) getCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get APP",
		Short: "Show an app's config and instances",
		Long: `Show one app: its state and why, its config as applied (every field, with
"(default)" for those left to the daemon's defaults), and each instance with
its state, pid, port, when it became ready, restarts, last exit and log file.`,
		Example: `  ancmctl get hello
  ancmctl get hello -o json | jq '.app.instances[].pid'`,
		Args:              exactArgs("APP"),
		ValidArgsFunction: c.completeApps,
		RunE: c.runE(func(cmd *cobra.Command, args []string) error {
			apps, err := c.apps()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd.Context())
			defer cancel()
			resp, err := apps.GetApp(ctx, &ancmv1.GetAppRequest{Name: args[0]})
			if err != nil {
				return err
			}
			p := c.printer()
			if p.json {
				return p.JSON(resp)
			}
			return p.App(resp.GetApp())
		}),
	}
}
