package main

import (
	"github.com/spf13/cobra"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/internal/buildinfo"
)

func (c *cli) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the versions of ancmctl and ancmd",
		Long: `Show the version of ancmctl and, from the daemon, its version, epoch
(changes with every start), start time, pid, state_dir and data-plane
listener. If the daemon cannot be reached the client's version is still
printed, and ancmctl exits non-zero.`,
		Example: `  ancmctl version
  ancmctl version -o json | jq -r .server.epoch`,
		Args: exactArgs(),
		RunE: c.runE(func(cmd *cobra.Command, _ []string) error {
			p := c.printer()
			conn, err := c.dial()
			if err != nil {
				_ = p.Version(clientVersion(), c.address(), nil)
				return err
			}
			ctx, cancel := c.rpcContext(cmd.Context())
			defer cancel()
			info, err := ancmv1.NewSystemServiceClient(conn).GetInfo(ctx, &ancmv1.GetInfoRequest{})
			if perr := p.Version(clientVersion(), c.address(), info); err == nil {
				err = perr
			}
			return err
		}),
	}
}

// clientVersion is the client's build: version (from -ldflags or the
// module), VCS revision, time and dirty flag, Go version and platform.
func clientVersion() string { return buildinfo.Read().String() }
