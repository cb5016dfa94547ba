package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func (c *cli) endpointsCommand() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "endpoints [-f]",
		Short: "Show the endpoint table the data plane routes by",
		Long: `Show what the control plane publishes to data planes: each app with its
state, hosts and path prefix, and each of its endpoints with address,
readiness and draining. With -f keep following: the table is printed again,
under its revision, after every change. With -o json each response of the
WatchEndpoints stream is one JSON object on its own line.`,
		Example: `  ancmctl endpoints
  ancmctl endpoints -f
  ancmctl endpoints -o json | jq '.apps[] | {app, endpoints}'`,
		Args: exactArgs(),
		RunE: c.runE(func(cmd *cobra.Command, _ []string) error {
			conn, err := c.dial()
			if err != nil {
				return err
			}
			stream, err := ancmv1.NewEndpointServiceClient(conn).WatchEndpoints(cmd.Context(),
				&ancmv1.WatchEndpointsRequest{Node: "ancmctl"})
			if err != nil {
				return err
			}
			p := c.printer()
			var table endpointTable
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
				if !table.apply(resp) {
					continue // wait for the first full table
				}
				if p.json {
					err = p.JSONLine(resp)
				} else {
					if follow {
						fmt.Fprintf(p.w, "# epoch %s revision %d\n", resp.GetEpoch(), resp.GetRevision())
					}
					err = p.Endpoints(table.routes())
				}
				if err != nil || !follow {
					return err
				}
				if !p.json {
					fmt.Fprintln(p.w)
				}
			}
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep following changes")
	return cmd
}

// endpointTable is the client's copy of the endpoint table.
type endpointTable struct {
	apps map[string]*ancmv1.AppRoute
}

// apply applies one message of the stream. It reports false until the
// table has been received in full.
func (t *endpointTable) apply(resp *ancmv1.WatchEndpointsResponse) bool {
	if resp.GetFull() {
		t.apps = make(map[string]*ancmv1.AppRoute, len(resp.GetApps()))
	}
	if t.apps == nil {
		return false
	}
	for _, name := range resp.GetRemoved() {
		delete(t.apps, name)
	}
	for _, r := range resp.GetApps() {
		t.apps[r.GetApp()] = r
	}
	return true
}

// routes lists the table's apps by name.
func (t *endpointTable) routes() []*ancmv1.AppRoute {
	return slices.SortedFunc(maps.Values(t.apps), func(a, b *ancmv1.AppRoute) int {
		return strings.Compare(a.GetApp(), b.GetApp())
	})
}
