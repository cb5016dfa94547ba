package main

import (
	"errors"
	"io"

	"github.com/spf13/cobra"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func (c *cli) eventsCommand() *cobra.Command {
	var (
		follow bool
		app    string
	)
	cmd := &cobra.Command{
		Use:   "events [-f] [--app APP]",
		Short: "Show lifecycle events",
		Long: `Show the recent lifecycle events the daemon keeps in memory (started, ready,
exited, restarted, failed, offline, ...), one per line: time, app, instance,
type, state, pid, exit and message. With -f keep printing new events until
interrupted; when the daemon ends the stream (it shuts down) ancmctl says
so and exits 6. With -o json each event is one JSON object on its own line.`,
		Example: `  ancmctl events
  ancmctl events -f --app hello
  ancmctl events -f -o json | jq -c 'select(.event.type == "EVENT_TYPE_FAILED")'`,
		Args: exactArgs(),
		RunE: c.runE(func(cmd *cobra.Command, _ []string) error {
			conn, err := c.dial()
			if err != nil {
				return err
			}
			req := &ancmv1.WatchEventsRequest{App: app, Follow: follow}
			stream, err := ancmv1.NewEventServiceClient(conn).WatchEvents(cmd.Context(), req)
			if err != nil {
				return err
			}
			p := c.printer()
			header := false
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					if follow {
						return errStreamEnded
					}
					if !header {
						return p.EventHeader()
					}
					return nil
				}
				if err != nil {
					return err
				}
				if !header {
					header = true
					if err := p.EventHeader(); err != nil {
						return err
					}
				}
				if err := p.Event(resp); err != nil {
					return err
				}
			}
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	cmd.Flags().StringVar(&app, "app", "", "only events of this app")
	_ = cmd.RegisterFlagCompletionFunc("app", c.completeApps)
	return cmd
}
