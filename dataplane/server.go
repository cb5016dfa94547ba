package dataplane

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

// Client connection timeouts (variables for tests).
var (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
)

// Server limits.
const (
	maxHeaderBytes = http1.MaxRequestHead // larger heads get 431
	// shutdownTimeout bounds how long Serve waits for in-flight requests
	// once its context is done.
	shutdownTimeout = 30 * time.Second
	// clientCheckInterval is how often a request waiting on its instance
	// checks that its client is still there.
	clientCheckInterval = 250 * time.Millisecond
	// sweepInterval is how often idle instance connections are reaped.
	sweepInterval = 30 * time.Second
)

// server is one Serve call: its connections and its shutdown.
type server struct {
	p       *Proxy
	closing atomic.Bool
	done    chan struct{} // closed when Serve stops accepting
	wg      sync.WaitGroup
	// slots holds a token per open client connection: max_connections,
	// the Proxy's, shared by all its listeners (plain and TLS).
	slots    chan struct{}
	lastFull time.Time // the last "limit reached" warning; accept loop only

	mu    sync.Mutex
	conns map[*clientConn]struct{}
}

// Serve answers HTTP/1.1 (and 1.0) on ln. It is the data plane's server
// and the only way requests reach the proxy: it reads and checks each
// request head itself (http1.ParseRequest; 431 beyond 64 KiB, 400 for
// ambiguous framing), bounds the time to read a head (10s) and keep-alive idleness
// (120s), and forwards over pooled connections to the instances
// (forward.go). When ctx is done it stops accepting, closes idle
// connections, lets in-flight requests finish for up to 30s, closes what
// is left and returns nil.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	s := &server{p: p, conns: map[*clientConn]struct{}{}, done: make(chan struct{}),
		slots: p.slots}
	errc := make(chan error, 1)
	go func() { errc <- s.accept(ln) }()
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	var seen map[*backend]bool
	var err error
loop:
	for {
		select {
		case err = <-errc:
			break loop
		case <-ctx.Done():
			break loop
		case <-sweep.C:
			seen = p.sweepPools(seen)
		}
	}
	s.closing.Store(true)
	close(s.done)
	_ = ln.Close()
	if err == nil {
		<-errc
	}
	s.closeIdle()
	// HTTP/2 connections get a GOAWAY and end when their streams do.
	p.h2.Shutdown()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownTimeout):
		p.logger.Warn("shutdown timed out, closing connections")
		s.closeAll()
		<-done
	}
	p.h2.Close() // its idle workers; a listener still serving starts its own
	return err
}

// accept runs the accept loop until the listener fails or is closed. It
// takes a slot before each accept, so that past max_connections new
// connections wait in the kernel's listen backlog instead of taking file
// descriptors the rest of the process needs.
func (s *server) accept(ln net.Listener) error {
	var backoff time.Duration
	for {
		if !s.takeSlot() {
			return nil
		}
		nc, err := ln.Accept()
		if err != nil {
			<-s.slots
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				(errors.As(err, &ne) && ne.Timeout()) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.p.logger.Warn("accept failed, retrying", "error", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := newClientConn(s, nc)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			<-s.slots
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// closeIdle closes the connections that wait for a request; the others
// see s.closing after their current request and close themselves.
func (s *server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(csIdle, csClosed) {
			c.nc.Close()
		}
	}
}

func (s *server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.state.Store(csClosed)
		c.nc.Close()
	}
}

func (s *server) remove(c *clientConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	<-s.slots
	s.wg.Done()
}

// fullWarnEvery bounds the "connection limit reached" warnings.
const fullWarnEvery = time.Minute

// takeSlot waits for a free connection slot, saying so in the log when
// the limit is reached. It reports false when Serve stops meanwhile.
func (s *server) takeSlot() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	if now := time.Now(); now.Sub(s.lastFull) >= fullWarnEvery {
		s.lastFull = now
		s.p.logger.Warn("connection limit reached, new connections wait", "max_connections", cap(s.slots))
	} else {
		s.p.logger.Debug("connection limit reached", "max_connections", cap(s.slots))
	}
	select {
	case s.slots <- struct{}{}:
		return true
	case <-s.done:
		return false
	}
}
