package main

import (
	"runtime/debug"

	"github.com/spf13/cobra"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
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

// clientVersion is the version set with -ldflags, else the module version
// from the build info, with the VCS revision when it was recorded.
func clientVersion() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" && v == "dev" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " (" + rev + dirty + ")"
	}
	return v
}
