// Command ancmctl is the admin CLI of ancmd. It talks to the control plane's
// gRPC API to list, apply, start, stop and inspect apps, and to follow their
// logs, lifecycle events and endpoints.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one ancmctl command line and returns its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, os.Stdin, stdout, stderr)
}

func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := newCLI(stdin, stdout, stderr)
	defer c.close()
	root := c.rootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if ctx.Err() != nil {
		// Interrupted, as by Ctrl-C on logs -f: the shell's convention.
		return exitInterrupted
	}
	if !c.ran {
		err = usageError{err: err}
	}
	c.printError(err, cmd)
	return exitCode(err)
}
