package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

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

// runProxy runs a data plane that follows a control plane elsewhere.
func runProxy(args []string) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	control := fs.String("control", "", "control plane address (unix:///path or tcp://host:port); default: $ANCM_ADDR, then the default socket")
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve HTTP on")
	node := fs.String("node", "", "name of this data plane in the control plane's logs (default: hostname and pid)")
	level := fs.String("log-level", "info", "trace|debug|info|warn|error")
	format := fs.String("log-format", "text", "text|json")
	accessLog := fs.Bool("access-log", false, "log one line per request")
	var files client.TLSFiles
	fs.StringVar(&files.CAFile, "cacert", "", "CA certificate to verify a tcp control plane")
	fs.StringVar(&files.CertFile, "cert", "", "client certificate for a tcp control plane")
	fs.StringVar(&files.KeyFile, "key", "", "client key for a tcp control plane")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := newLogger(*level, *format)
	addr := client.ResolveAddress(*control)
	conn, err := client.Dial(addr, files, grpc.WithConnectParams(reconnectParams))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ancmd proxy:", err)
		return 2
	}
	defer conn.Close()
	if *node == "" {
		h, _ := os.Hostname()
		*node = fmt.Sprintf("%s/%d", h, os.Getpid())
	}
	dp, err := dataplane.New(dataplane.Options{Logger: log, Conn: conn, Node: *node, AccessLog: *accessLog})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ancmd proxy:", err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ancmd proxy:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() { _ = dp.Run(ctx) }()
	waitSynced(log, dp)
	log.Info("proxy listening", "listen", ln.Addr().String(), "control", addr)
	if err := dp.Serve(ctx, ln); err != nil {
		log.Error("proxy stopped", "error", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
