package main

import (
	"context"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func (c *cli) startCommand() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "start APP",
		Short: "Start a stopped, failed or idle app",
		Long: `Start an app and clear its failures. With --wait (the default) ancmctl
returns once the app has a ready instance, an instance has failed to start,
or the app is FAILED, and prints the app as it is then. It exits 5 when the
start failed (an instance that exited, or was not ready within
startup_timeout, with the last readiness answer as the reason).`,
		Example: `  ancmctl start hello
  ancmctl start --wait=false hello`,
		Args:              exactArgs("APP"),
		ValidArgsFunction: c.completeApps,
		RunE: c.runE(func(cmd *cobra.Command, args []string) error {
			return c.lifecycle(cmd.Context(), wait, func(ctx context.Context, apps ancmv1.AppServiceClient) (appResponse, error) {
				return apps.StartApp(ctx, &ancmv1.StartAppRequest{Name: args[0], Wait: wait})
			})
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", true, "wait until the app has a ready instance or has failed")
	return cmd
}

// appResponse is the answer of StartApp, StopApp and RestartApp.
type appResponse interface {
	proto.Message
	GetApp() *ancmv1.App
}

// lifecycle runs a start, stop or restart and prints the app as it is
// afterwards. An app that ends up FAILED after a waited start is an error.
func (c *cli) lifecycle(ctx context.Context, wait bool, call func(context.Context, ancmv1.AppServiceClient) (appResponse, error)) error {
	apps, err := c.apps()
	if err != nil {
		return err
	}
	var cancel context.CancelFunc
	if wait {
		ctx, cancel = c.waitContext(ctx)
	} else {
		ctx, cancel = c.rpcContext(ctx)
	}
	defer cancel()
	resp, err := call(ctx, apps)
	if err != nil {
		return err
	}
	p := c.printer()
	if p.json {
		err = p.JSON(resp)
	} else {
		err = p.Apps([]*ancmv1.App{resp.GetApp()})
	}
	if err != nil {
		return err
	}
	if a := resp.GetApp(); wait && a.GetState() == ancmv1.AppState_APP_STATE_FAILED {
		msg := "app " + a.GetSpec().GetName() + " failed to start"
		if a.GetStateReason() != "" {
			msg += ": " + a.GetStateReason()
		}
		return status.Error(codes.FailedPrecondition, msg)
	}
	return nil
}
