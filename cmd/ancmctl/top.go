package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func (c *cli) topCommand() *cobra.Command {
	var (
		interval   time.Duration
		window     time.Duration
		iterations int
	)
	cmd := &cobra.Command{
		Use:   "top [--interval 1s] [--window 10s] [-n N]",
		Short: "Show the apps' live traffic",
		Long: `Show per app the traffic every data plane reported to the control plane
over the last --window: requests per second, the median and 99th
percentile latency (estimated from latency buckets), the share of 5xx
answers, the requests in flight and the ready instances, refreshed every
--interval until interrupted (or -n times), like top. Row "(none)" counts
the requests no app matched. With -o json it prints the TrafficService's
answer once and exits.`,
		Example: `  ancmctl top
  ancmctl top --window 60s -n 1
  ancmctl top -o json | jq '.apps[] | select(.share_5xx > 0.01) | .app'`,
		Args: exactArgs(),
		RunE: c.runE(func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 || window < time.Second || window > time.Minute {
				return usageErrorf("--interval must be positive and --window from 1s to 1m")
			}
			conn, err := c.dial()
			if err != nil {
				return err
			}
			traffic := ancmv1.NewTrafficServiceClient(conn)
			p := c.printer()
			clear := !p.json && isTerminal(c.stdout)
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for i := 0; ; i++ {
				ctx, cancel := c.rpcContext(cmd.Context())
				resp, err := traffic.GetTraffic(ctx, &ancmv1.GetTrafficRequest{WindowSeconds: uint32(window / time.Second)})
				cancel()
				if err != nil {
					return err
				}
				if p.json {
					return p.JSON(resp)
				}
				if clear {
					_, _ = c.stdout.Write([]byte("\x1b[H\x1b[2J"))
				}
				if err := p.Traffic(resp); err != nil {
					return err
				}
				if iterations > 0 && i+1 >= iterations {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-tick.C:
				}
			}
		}),
	}
	f := cmd.Flags()
	f.DurationVar(&interval, "interval", time.Second, "time between refreshes")
	f.DurationVar(&window, "window", 10*time.Second, "how far back rates and percentiles look (1s..1m)")
	f.IntVarP(&iterations, "iterations", "n", 0, "refreshes before exiting; 0: until interrupted")
	return cmd
}

// isTerminal reports whether w is a terminal, which top clears between
// refreshes.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
