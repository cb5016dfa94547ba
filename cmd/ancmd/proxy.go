package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/ancm-dev/ancm/api/client"
	"github.com/ancm-dev/ancm/dataplane"
)

// reconnectParams make a proxy whose control plane went away try again at
// least every second (800ms ± 20%), however long it was gone (gRPC's
// default backoff grows to two minutes).
var reconnectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 800 * time.Millisecond},
	MinConnectTimeout: time.Second,
}

// proxyFlags are the settings of a data plane run alone.
type proxyFlags struct {
	control, listen, node, level, format string
	accessLogFormat, metricsListen       string
	accessLog                            bool
	maxConns                             int
	sendTimeout                          time.Duration
	files                                client.TLSFiles
}

func proxyCommand() *cobra.Command {
	var pf proxyFlags
	cmd := &cobra.Command{
		Use:   "proxy [--control ADDR] [--listen ADDR]",
		Short: "Run a data plane alone",
		Long: `Run a data plane that follows a control plane elsewhere ("ancmd control" or
"ancmd serve") through the ancm.v1 API, and proxies HTTP on --listen to the
apps it publishes. It takes no config file. Several proxies can follow one
control plane.`,
		Example: `  ancmd proxy --control unix:///var/lib/ancm/ancm.sock --listen 0.0.0.0:80
  ancmd proxy --control tcp://10.0.0.5:7070 --cacert ca.pem --cert proxy.pem --key proxy.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProxy(cmd, pf)
		},
	}
	f := cmd.Flags()
	f.StringVar(&pf.control, "control", "", "control plane address (unix:///path or tcp://host:port); default: $ANCM_ADDR, then the default socket")
	f.StringVar(&pf.listen, "listen", "127.0.0.1:8080", "address to serve HTTP on")
	f.StringVar(&pf.node, "node", "", "name of this data plane in the control plane's logs (default: hostname and pid)")
	f.StringVar(&pf.level, "log-level", "info", "trace|debug|info|warn|error")
	f.StringVar(&pf.format, "log-format", "text", "text|json")
	f.BoolVar(&pf.accessLog, "access-log", false, "log one line per request")
	f.StringVar(&pf.accessLogFormat, "access-log-format", "", "text|json (default: --log-format's)")
	f.StringVar(&pf.metricsListen, "metrics-listen", "", "HOST:PORT to serve Prometheus metrics on at /metrics (default: none)")
	f.IntVar(&pf.maxConns, "max-connections", dataplane.DefaultMaxConnections, "client connections held at once; past it, new ones wait")
	f.DurationVar(&pf.sendTimeout, "send-timeout", dataplane.DefaultSendTimeout, "a client that takes no bytes of its answer this long is dropped")
	f.StringVar(&pf.files.CAFile, "cacert", "", "CA certificate to verify a tcp control plane")
	f.StringVar(&pf.files.CertFile, "cert", "", "client certificate for a tcp control plane")
	f.StringVar(&pf.files.KeyFile, "key", "", "client key for a tcp control plane")
	return cmd
}

// runProxy runs a data plane that follows a control plane elsewhere.
func runProxy(cmd *cobra.Command, pf proxyFlags) error {
	stderr := cmd.ErrOrStderr()
	if pf.maxConns < 1 || pf.sendTimeout <= 0 {
		return errors.New("--max-connections and --send-timeout must be positive")
	}
	if pf.accessLogFormat != "" && pf.accessLogFormat != "text" && pf.accessLogFormat != "json" {
		return errors.New("--access-log-format must be text or json")
	}
	quietSysmon()
	log, _ := newLogger(pf.level, pf.format)
	logSysmon(log)
	raiseFileLimit(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// A proxy has no config file: SIGHUP (systemctl reload) is noted, not
	// taken for its default action, which would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP ignored: ancmd proxy has no config file; it follows the control plane")
			}
		}
	}()
	addr := client.ResolveAddress(pf.control)
	conn, err := client.Dial(addr, pf.files, grpc.WithConnectParams(reconnectParams))
	if err != nil {
		return fmt.Errorf("--control: %w", err)
	}
	defer conn.Close()
	if pf.node == "" {
		h, _ := os.Hostname()
		pf.node = fmt.Sprintf("%s/%d", h, os.Getpid())
	}
	dp, err := dataplane.New(dataplane.Options{Logger: log, Conn: conn, Node: pf.node, AccessLog: pf.accessLog,
		AccessLogger:   newAccessLogger(pf.accessLogFormat, pf.format),
		MaxConnections: pf.maxConns, SendTimeout: pf.sendTimeout})
	if err != nil {
		fmt.Fprintln(stderr, "ancmd proxy:", err)
		return failure{exitError}
	}
	ln, err := net.Listen("tcp", pf.listen)
	if err != nil {
		fmt.Fprintln(stderr, "ancmd proxy:", err)
		return failure{exitError}
	}
	metricsLn, err := listenMetrics(pf.metricsListen)
	if err != nil {
		ln.Close()
		fmt.Fprintln(stderr, "ancmd proxy: --metrics-listen:", err)
		return failure{exitError}
	}
	if err := serveMetrics(ctx, log, metricsLn, dp.Collector()); err != nil {
		ln.Close()
		fmt.Fprintln(stderr, "ancmd proxy:", err)
		return failure{exitError}
	}
	go func() { _ = dp.Run(ctx) }()
	waitSynced(log, dp)
	log.Info("proxy listening", "listen", ln.Addr().String(), "control", addr)
	notify := notifier{log: log}
	notify.ready("proxying on " + ln.Addr().String())
	go notify.watchdog(ctx, func() bool { return true })
	go func() {
		<-ctx.Done()
		notify.stopping()
	}()
	if err := dp.Serve(ctx, ln); err != nil {
		log.Error("proxy stopped", "error", err)
		return failure{exitError}
	}
	log.Info("stopped")
	return nil
}
