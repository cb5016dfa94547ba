package main

import (
	"context"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ancm-dev/ancm/internal/metrics"
)

// listenMetrics opens the metrics listener; nil without an address.
func listenMetrics(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	return net.Listen("tcp", addr)
}

// serveMetrics serves the metrics of cs on ln until ctx ends; nothing
// without a listener.
func serveMetrics(ctx context.Context, log hclog.Logger, ln net.Listener, cs ...prometheus.Collector) error {
	if ln == nil {
		return nil
	}
	reg, err := metrics.NewRegistry(cs...)
	if err != nil {
		ln.Close()
		return err
	}
	log.Info("metrics listening", "metrics_listen", ln.Addr().String())
	go func() {
		if err := metrics.Serve(ctx, ln, reg); err != nil {
			log.Error("metrics listener stopped", "error", err)
		}
	}()
	return nil
}
