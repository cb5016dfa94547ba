package main

import (
	"context"

	"github.com/spf13/cobra"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func (c *cli) restartCommand() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "restart APP",
		Short: "Roll every instance of an app over to new processes",
		Long: `Restart an app as a rollout to a new generation with the same spec: new
instances start and take traffic before old ones drain and stop (or, with
rollout strategy "recreate", old ones stop first while requests wait), so
no request fails. An app with nothing running is started. With --wait (the
default) ancmctl returns once the rollout has ended, and exits 5 if it
failed; the old generation then keeps serving.`,
		Example: `  ancmctl restart hello
  ancmctl restart --wait=false hello`,
		Args:              exactArgs("APP"),
		ValidArgsFunction: c.completeApps,
		RunE: c.runE(func(cmd *cobra.Command, args []string) error {
			return c.lifecycle(cmd.Context(), wait, func(ctx context.Context, apps ancmv1.AppServiceClient) (appResponse, error) {
				return apps.RestartApp(ctx, &ancmv1.RestartAppRequest{Name: args[0], Wait: wait})
			})
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", true, "wait until the app has a ready instance or has failed")
	return cmd
}
