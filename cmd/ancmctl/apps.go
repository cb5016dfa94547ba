package main

import (
	"github.com/spf13/cobra"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func (c *cli) appsCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "apps",
		Aliases: []string{"ls"},
		Short:   "List apps with their state",
		Long: `List every app the daemon knows with its source (config: from the config
file, change it there and reload; api: applied with "ancmctl apply"), state,
ready instances out of those wanted, process ids, ports, restarts, the
uptime of its oldest running instance and the last exit of any instance.`,
		Example: `  ancmctl apps
  ancmctl ls -o json | jq -r '.apps[] | select(.state == "APP_STATE_FAILED") | .spec.name'`,
		Args: exactArgs(),
		RunE: c.runE(func(cmd *cobra.Command, _ []string) error {
			apps, err := c.apps()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd.Context())
			defer cancel()
			resp, err := apps.ListApps(ctx, &ancmv1.ListAppsRequest{})
			if err != nil {
				return err
			}
			p := c.printer()
			if p.json {
				return p.JSON(resp)
			}
			return p.Apps(resp.GetApps())
		}),
	}
}
