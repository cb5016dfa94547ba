package dataplane

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Server limits.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10 // larger heads get 431
	// shutdownTimeout bounds how long Serve waits for in-flight requests
	// once its context is done.
	shutdownTimeout = 30 * time.Second
)

// Serve answers HTTP on ln with an http.Server set up for a proxy facing
// clients: bounded header read time and size (431 beyond 64 KiB), idle
// keep-alive timeout, and requests with ambiguous framing refused with 400
// before they are parsed (see framing.go). When ctx is done it stops
// accepting, lets in-flight requests finish for up to 30s, closes what is
// left and returns nil.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          p.logger.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(&framingListener{Listener: ln, stats: &p.stats}) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		p.logger.Warn("shutdown timed out, closing connections", "error", err)
		_ = srv.Close()
	}
	<-errc
	return nil
}
