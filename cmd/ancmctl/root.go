package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/ancm-dev/ancm/api/client"
	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

// defaultTimeout bounds each RPC, except streams and waits.
const defaultTimeout = 10 * time.Second

// waitTimeout bounds an RPC that waits (start, stop, restart with --wait)
// unless --timeout is given: long enough for a slow startup_timeout.
const waitTimeout = 5 * time.Minute

// cli holds the global flags and the connection of one ancmctl run.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time

	addr    string
	tls     client.TLSFiles
	timeout time.Duration
	output  string

	root *cobra.Command
	// ran is set once a command's RunE starts: any error before that is a
	// usage error.
	ran  bool
	conn *grpc.ClientConn
}

func newCLI(stdin io.Reader, stdout, stderr io.Writer) *cli {
	return &cli{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "ancmctl",
		Short: "Control the apps that ancmd hosts",
		Long: `ancmctl talks to the control plane of ancmd over gRPC: it lists, applies,
starts, stops and deletes apps, and shows their logs, lifecycle events and
endpoints.

The control address is --addr, else $ANCM_ADDR, else the socket of a daemon
started with default settings (` + client.DefaultAddress() + `).
A tcp:// address takes TLS files with --cacert, --cert and --key.

Every command prints a table for humans, or with -o json the API's response
as JSON (streams: one JSON object per line).

` + exitCodeHelp,
		Example: `  ancmctl apps
  ancmctl apply -f ancm.hcl
  ancmctl --addr tcp://10.0.0.5:7070 --cacert ca.pem --cert me.pem --key me-key.pem get hello
  ANCM_ADDR=unix:///run/ancm/ancm.sock ancmctl logs -f hello`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: c.checkGlobalFlags,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetIn(c.stdin)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err: err} })

	f := root.PersistentFlags()
	f.StringVar(&c.addr, "addr", "", "control address, unix:///path or tcp://host:port (env "+client.EnvAddr+"; default "+client.DefaultAddress()+")")
	f.StringVar(&c.tls.CAFile, "cacert", "", "CA certificate (PEM) that signed the daemon's certificate, for tcp://")
	f.StringVar(&c.tls.CertFile, "cert", "", "client certificate (PEM), for tcp://")
	f.StringVar(&c.tls.KeyFile, "key", "", "client key (PEM), for tcp://")
	f.DurationVar(&c.timeout, "timeout", defaultTimeout, "time limit of each request; delete and a --wait allow 5m unless it is set; streams have none")
	f.StringVarP(&c.output, "output", "o", "table", "output format: table or json")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(
		c.appsCommand(),
		c.getCommand(),
		c.applyCommand(),
		c.deleteCommand(),
		c.startCommand(),
		c.stopCommand(),
		c.restartCommand(),
		c.historyCommand(),
		c.rollbackCommand(),
		c.logsCommand(),
		c.eventsCommand(),
		c.endpointsCommand(),
		c.topCommand(),
		c.versionCommand(),
		c.completionCommand(),
		c.manCommand(),
	)
	c.root = root
	return root
}

func (c *cli) checkGlobalFlags(*cobra.Command, []string) error {
	switch c.output {
	case "table", "json":
	default:
		return usageErrorf("--output %q: want table or json", c.output)
	}
	if c.timeout <= 0 {
		return usageErrorf("--timeout %s: want a positive duration", c.timeout)
	}
	return nil
}

// runE marks the start of a command's work, after flags and arguments were
// accepted, so that later errors are not taken for usage errors.
func (c *cli) runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c.ran = true
		return fn(cmd, args)
	}
}

// address is the control address in use: --addr, $ANCM_ADDR or the default.
func (c *cli) address() string { return client.ResolveAddress(c.addr) }

// dial connects to the control plane once per run.
func (c *cli) dial() (*grpc.ClientConn, error) {
	if c.conn != nil {
		return c.conn, nil
	}
	conn, err := client.Dial(c.address(), c.tls)
	if errors.Is(err, client.ErrBadAddress) {
		from := "--addr"
		if c.addr == "" {
			from = "$" + client.EnvAddr
		}
		return nil, usageError{err: fmt.Errorf("%s: %w", from, err)}
	}
	if err != nil {
		return nil, err
	}
	c.conn = conn
	return conn, nil
}

func (c *cli) close() {
	if c.conn != nil {
		_ = c.conn.Close()
	}
}

func (c *cli) apps() (ancmv1.AppServiceClient, error) {
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	return ancmv1.NewAppServiceClient(conn), nil
}

// rpcContext bounds one RPC with --timeout.
func (c *cli) rpcContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// waitContext bounds an RPC that waits for a state: --timeout if given,
// else waitTimeout.
func (c *cli) waitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.root.PersistentFlags().Changed("timeout") {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithTimeout(ctx, waitTimeout)
}

func (c *cli) printer() *printer {
	return &printer{w: c.stdout, json: c.output == "json", now: c.now, loc: time.Local}
}

func (c *cli) printError(err error, cmd *cobra.Command) {
	path := "ancmctl"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	var cfgErr *config.Error
	if errors.As(err, &cfgErr) {
		// Every problem in an apply file, each on its own line.
		for _, d := range cfgErr.Diagnostics {
			fmt.Fprintf(c.stderr, "ancmctl: %s\n", d)
		}
		return
	}
	fmt.Fprintf(c.stderr, "ancmctl: %s\n", errorMessage(err, c.address(), path))
}

// exactArgs wants n arguments, named in the message.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		if len(args) < len(names) {
			return usageErrorf("missing %s", names[len(args)])
		}
		return usageErrorf("too many arguments: %q", args[len(names):])
	}
}

// completeApps completes an app name from the daemon's list.
func (c *cli) completeApps(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	apps, err := c.apps()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
	defer cancel()
	resp, err := apps.ListApps(ctx, &ancmv1.ListAppsRequest{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]cobra.Completion, 0, len(resp.GetApps()))
	for _, a := range resp.GetApps() {
		names = append(names, a.GetSpec().GetName())
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
