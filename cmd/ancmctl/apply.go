package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

func (c *cli) applyCommand() *cobra.Command {
	var (
		file   string
		dryRun bool
		prune  bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Add or change apps from an HCL file",
		Long: `Read the app blocks of an HCL file (the config file's syntax; top-level
settings are ignored) and apply each app in turn. An unchanged app is left
alone; a change of how an app runs (command, args, dir, env, compat,
stdout_log) is rolled out as a new generation, instance by instance as its
rollout block says, and ancmctl waits for the rollout; other changes
(routing, timeouts) are made in place. Prints one line per app: added,
restarted (with the rollout), changed, unchanged, or with --prune removed.
A rollout that fails puts the app back on its previous generation and
exits 5 with the reason. With --dry-run
the daemon checks every app and reports what it would do, and changes
nothing.

The whole file is checked before anything is applied: an error in it exits
4 with every problem as FILE:LINE:COL, and no app is touched; then the
daemon checks every app of the file (a route taken by another app, a name
the config file uses) before it changes any. With --prune, apps applied
earlier through the API that the file no longer has are deleted, so the
file becomes the whole set of applied apps; apps of the daemon's config
file are never pruned. Relative
paths in the file are resolved against the file's directory. Applied apps
are stored in the daemon's state_dir and survive its restart. With -o json
each app's ApplyAppResponse is printed as one JSON object, in file order.`,
		Example: `  ancmctl apply -f hello.hcl
  ancmctl apply --dry-run -f apps.hcl
  ancmctl apply --prune -f all-apps.hcl
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
			apply := func(a config.App, dry bool) (*ancmv1.ApplyAppResponse, error) {
				// A change that needs new processes is rolled out before
				// the daemon answers.
				ctx, cancel := c.waitContext(cmd.Context())
				if dry {
					ctx, cancel = c.rpcContext(cmd.Context())
				}
				defer cancel()
				resp, err := apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: a.Proto(), DryRun: dry})
				return resp, withApp(a.Name, err)
			}
			// The daemon checks every app before any is changed, so that
			// a file it refuses leaves the running apps as they are.
			if !dryRun {
				for _, a := range parsed {
					if _, err := apply(a, true); err != nil {
						return err
					}
				}
			}
			p := c.printer()
			inFile := make(map[string]bool, len(parsed))
			for _, a := range parsed {
				inFile[a.Name] = true
				resp, err := apply(a, dryRun)
				if err != nil {
					return err
				}
				if err := p.Applied(resp, dryRun); err != nil {
					return err
				}
			}
			if !prune {
				return nil
			}
			ctx, cancel := c.rpcContext(cmd.Context())
			list, err := apps.ListApps(ctx, &ancmv1.ListAppsRequest{})
			cancel()
			if err != nil {
				return err
			}
			for _, app := range list.GetApps() {
				name := app.GetSpec().GetName()
				if inFile[name] || app.GetSource() != "api" {
					continue
				}
				ctx, cancel := c.waitContext(cmd.Context())
				resp, err := apps.DeleteApp(ctx, &ancmv1.DeleteAppRequest{Name: name, DryRun: dryRun})
				cancel()
				if err != nil {
					return withApp(name, err)
				}
				removed := &ancmv1.ApplyAppResponse{App: resp.GetApp(), Change: ancmv1.ApplyChange_APPLY_CHANGE_REMOVED}
				if err := p.Applied(removed, dryRun); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", `HCL file with app blocks, "-" for stdin`)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would change without changing it")
	cmd.Flags().BoolVar(&prune, "prune", false, "delete apps applied through the API that the file does not have")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagFilename("filename", "hcl")
	return cmd
}

// withApp prefixes the message of an RPC error with the app it was about,
// keeping its code and details, so that one line says which app of a file
// was refused.
func withApp(name string, err error) error {
	st, ok := status.FromError(err)
	if err == nil || !ok {
		return err
	}
	p := st.Proto()
	if !strings.Contains(p.GetMessage(), strconv.Quote(name)) {
		p.Message = fmt.Sprintf("app %q: %s", name, p.GetMessage())
	}
	return status.FromProto(p).Err()
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
