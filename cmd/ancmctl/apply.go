package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

func (c *cli) applyCommand() *cobra.Command {
	var (
		file   string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Add or change apps from an HCL file",
		Long: `Read the app blocks of an HCL file (the config file's syntax; top-level
settings are ignored) and apply each app in turn. An unchanged app is left
alone, a changed one is restarted with its new config. Prints one line per
app: added, restarted or unchanged. With --dry-run the daemon checks every
app and reports what it would do, and changes nothing.

The whole file is checked before anything is applied: an error in it exits
4 with every problem as FILE:LINE:COL, and no app is touched. Relative
paths in the file are resolved against the file's directory. Applied apps
are stored in the daemon's state_dir and survive its restart. With -o json
each app's ApplyAppResponse is printed as one JSON object, in file order.`,
		Example: `  ancmctl apply -f hello.hcl
  ancmctl apply --dry-run -f apps.hcl
  generate-apps | ancmctl apply -f -`,
		Args: exactArgs(),
		RunE: c.runE(func(cmd *cobra.Command, _ []string) error {
			src, name, err := readApplyFile(file, cmd.InOrStdin())
			if err != nil {
				return codedError{code: codes.InvalidArgument, err: err}
			}
			parsed, err := config.ParseApps(src, name)
			if err != nil {
				return codedError{code: codes.InvalidArgument, err: err}
			}
			apps, err := c.apps()
			if err != nil {
				return err
			}
			p := c.printer()
			for _, a := range parsed {
				ctx, cancel := c.rpcContext(cmd.Context())
				resp, err := apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: a.Proto(), DryRun: dryRun})
				cancel()
				if err != nil {
					return err
				}
				if err := p.Applied(resp, dryRun); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", `HCL file with app blocks, "-" for stdin`)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would change without changing it")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagFilename("filename", "hcl")
	return cmd
}

// readApplyFile reads the file of apply -f, or stdin for "-".
func readApplyFile(file string, stdin io.Reader) (src []byte, name string, err error) {
	if file == "-" {
		src, err = io.ReadAll(stdin)
		if err != nil {
			return nil, "", fmt.Errorf("read stdin: %w", err)
		}
		return src, "<stdin>", nil
	}
	src, err = os.ReadFile(file)
	return src, file, err
}
