package main

import (
	"github.com/spf13/cobra"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func (c *cli) rollbackCommand() *cobra.Command {
	var to uint64
	cmd := &cobra.Command{
		Use:   "rollback APP",
		Short: "Roll an app out with an earlier generation's spec",
		Long: `Roll out an earlier generation's spec as a new generation: by default the
last one that succeeded before the current one, with --to a given one (see
ancmctl history). ancmctl waits for the rollout and exits 5 if it failed;
the app then keeps running the generation it had. Apps of the config file
are changed in the file, not rolled back.`,
		Example: `  ancmctl rollback hello
  ancmctl rollback hello --to 3`,
		Args:              exactArgs("APP"),
		ValidArgsFunction: c.completeApps,
		RunE: c.runE(func(cmd *cobra.Command, args []string) error {
			apps, err := c.apps()
			if err != nil {
				return err
			}
			ctx, cancel := c.waitContext(cmd.Context())
			defer cancel()
			resp, err := apps.RollbackApp(ctx, &ancmv1.RollbackAppRequest{Name: args[0], ToGeneration: to})
			if err != nil {
				return err
			}
			return c.printer().Rollout(resp)
		}),
	}
	cmd.Flags().Uint64Var(&to, "to", 0, "generation to roll back to (default: the last successful one before the current)")
	return cmd
}
