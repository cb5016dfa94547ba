package main

import (
	"context"

	"github.com/spf13/cobra"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func (c *cli) stopCommand() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "stop APP",
		Short: "Stop an app until it is started again",
		Long: `Stop every instance of an app gracefully: its stop_signal, then SIGKILL
after shutdown_timeout. The app stays STOPPED, and requests for it get 503,
until 'ancmctl start'. With --wait ancmctl returns once every instance has
exited.`,
		Example: `  ancmctl stop hello
  ancmctl stop --wait hello && cp -r build/* /srv/hello/`,
		Args:              exactArgs("APP"),
		ValidArgsFunction: c.completeApps,
		RunE: c.runE(func(cmd *cobra.Command, args []string) error {
			return c.lifecycle(cmd.Context(), wait, func(ctx context.Context, apps ancmv1.AppServiceClient) (appResponse, error) {
				return apps.StopApp(ctx, &ancmv1.StopAppRequest{Name: args[0], Wait: wait})
			})
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every instance has exited")
	return cmd
}
