package main

import (
	"github.com/spf13/cobra"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func (c *cli) historyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "history APP",
		Short: "List an app's generations",
		Long: `List the generations of an app, oldest first: when each was made, what
changed from the one before, and how its rollout went. The generation that
runs now is marked with *.`,
		Example:           `  ancmctl history hello`,
		Args:              exactArgs("APP"),
		ValidArgsFunction: c.completeApps,
		RunE: c.runE(func(cmd *cobra.Command, args []string) error {
			apps, err := c.apps()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd.Context())
			defer cancel()
			resp, err := apps.GetAppHistory(ctx, &ancmv1.GetAppHistoryRequest{Name: args[0]})
			if err != nil {
				return err
			}
			app, err := apps.GetApp(ctx, &ancmv1.GetAppRequest{Name: args[0]})
			if err != nil {
				return err
			}
			return c.printer().History(resp, app.GetApp().GetGeneration())
		}),
	}
}
