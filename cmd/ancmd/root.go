package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ancm-dev/ancm/internal/buildinfo"
)

// Exit codes of ancmd.
const (
	exitOK    = 0
	exitError = 1 // could not start, stopped on an error, invalid config
	exitUsage = 2 // bad verb, flag or argument
)

// failure is an error that has been reported already (to the log or
// stderr) and ends ancmd with code.
type failure struct{ code int }

func (f failure) Error() string { return fmt.Sprintf("exit %d", f.code) }

// exitCode reports err, unless it was reported already, and maps it to an
// exit code. Errors that are not failures come from cobra: usage errors.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var f failure
	if errors.As(err, &f) {
		return f.code
	}
	fmt.Fprintf(stderr, "ancmd: %v\nRun 'ancmd --help' for usage.\n", err)
	return exitUsage
}

func rootCommand(stdout, stderr io.Writer) *cobra.Command {
	var path string
	root := &cobra.Command{
		Use:   "ancmd",
		Short: "Host web apps behind a supervising reverse proxy",
		Long: `ancmd starts each app of its config file on a loopback port it picks (on the
first request, or at once for eager apps), proxies HTTP to it, restarts it
when it crashes, stops it gracefully, captures its output, and serves the
ancm.v1 gRPC API that ancmctl talks to.

With no verb, ancmd runs "serve". SIGHUP re-reads the config file; SIGTERM
and SIGINT stop accepting, finish in-flight requests, stop every app
gracefully and exit 0.

Every key of the config file is in docs/configuration.md (installed by the
package as /usr/share/doc/ancm/configuration.md).

Exit codes: 0 success; 1 invalid config, could not start, or stopped on an
error; 2 usage error.`,
		Example: `  ancmd -c /etc/ancm/ancm.hcl
  ancmd validate -c /etc/ancm/ancm.hcl
  ancmd control -c /etc/ancm/control.hcl
  ancmd proxy --control unix:///var/lib/ancm/ancm.sock --listen 0.0.0.0:80`,
		Args:              cobra.NoArgs,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		Version:           buildinfo.Read().String(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd, path, true)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("ancmd {{.Version}}\n")
	configFlag(root, &path)
	root.AddCommand(
		serveCommand(),
		controlCommand(),
		proxyCommand(),
		validateCommand(),
		versionCommand(),
		manCommand(),
	)
	return root
}

// configFlag adds -c/--config to a command.
func configFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVarP(path, "config", "c", "", "config file (required); see docs/configuration.md")
}

func serveCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "serve -c FILE",
		Short: "Run the control plane and the proxy (the default)",
		Long: `Run the control plane (supervisor, store, ancm.v1 API on "control") and the
data-plane proxy (HTTP on "listen") in one process, as configured in FILE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd, path, true)
		},
	}
	configFlag(cmd, &path)
	return cmd
}

func controlCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "control -c FILE",
		Short: "Run the control plane alone",
		Long: `Run the control plane alone: apps, the store and the ancm.v1 API, with no
proxy. Data planes ("ancmd proxy") follow it through the API; "listen" in
FILE is not used.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd, path, false)
		},
	}
	configFlag(cmd, &path)
	return cmd
}

func validateCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate -c FILE",
		Short: "Check a config file",
		Long: `Check a config file without starting anything. Prints "FILE: ok (N apps)" and
exits 0, or prints every error as FILE:LINE:COL: app "NAME": KEY: message
and exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runValidate(cmd, path)
		},
	}
	configFlag(cmd, &path)
	return cmd
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS revision and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "ancmd", buildinfo.Read())
			return err
		},
	}
}

// requireConfig reports a missing -c as a usage error.
func requireConfig(path string) error {
	if path == "" {
		return errors.New("-c FILE is required")
	}
	return nil
}
