package main

import (
	"errors"
	"io"

	"github.com/spf13/cobra"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func (c *cli) logsCommand() *cobra.Command {
	var (
		follow   bool
		tail     uint32
		instance uint32
	)
	cmd := &cobra.Command{
		Use:   "logs [-f] [--tail N] [--instance I] APP",
		Short: "Show an app's captured output",
		Long: `Show the last lines of an app's captured stdout and stderr, each as
"[INSTANCE] text": --tail lines in all (default 10; 0 for none, so that
-f --tail 0 shows only new lines), of all instances together in time
order, or of --instance I. With -f keep
printing new lines until interrupted; when the daemon ends the stream (it
shuts down) ancmctl says so and exits 6. With -o json each response of the
stream is one JSON object on its own line.`,
		Example: `  ancmctl logs hello
  ancmctl logs -f --tail 100 hello
  ancmctl logs --instance 1 hello
  ancmctl logs -o json hello | jq -r '.lines[] | select(.stream == "stderr") | .text'`,
		Args:              exactArgs("APP"),
		ValidArgsFunction: c.completeApps,
		RunE: c.runE(func(cmd *cobra.Command, args []string) error {
			conn, err := c.dial()
			if err != nil {
				return err
			}
			req := &ancmv1.TailLogsRequest{App: args[0], Tail: &tail, Follow: follow}
			if cmd.Flags().Changed("instance") {
				req.Instance = &instance
			}
			stream, err := ancmv1.NewLogServiceClient(conn).TailLogs(cmd.Context(), req)
			if err != nil {
				return err
			}
			p := c.printer()
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					if follow {
						return errStreamEnded
					}
					return nil
				}
				if err != nil {
					return err
				}
				if err := p.LogLines(resp); err != nil {
					return err
				}
			}
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().Uint32Var(&tail, "tail", 10, "lines from the end to show first (at most 100000)")
	cmd.Flags().Uint32Var(&instance, "instance", 0, "only this instance (0-based); default all")
	return cmd
}
