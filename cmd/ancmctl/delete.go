package main

import (
	"github.com/spf13/cobra"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func (c *cli) deleteCommand() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "delete APP",
		Short: "Stop an app and forget it",
		Long: `Stop every instance of an app gracefully and remove the app from the
daemon's state. An app from the config file comes back when the daemon
re-reads it; remove it from the file as well.`,
		Example: `  ancmctl delete hello
  ancmctl delete --dry-run hello`,
		Args:              exactArgs("APP"),
		ValidArgsFunction: c.completeApps,
		RunE: c.runE(func(cmd *cobra.Command, args []string) error {
			apps, err := c.apps()
			if err != nil {
				return err
			}
			ctx, cancel := c.waitContext(cmd.Context())
			defer cancel()
			resp, err := apps.DeleteApp(ctx, &ancmv1.DeleteAppRequest{Name: args[0], DryRun: dryRun})
			if err != nil {
				return err
			}
			return c.printer().Deleted(args[0], resp, dryRun)
		}),
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check that the app exists without deleting it")
	return cmd
}
