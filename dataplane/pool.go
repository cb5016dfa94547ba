package dataplane

import (
	"bufio"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Connections to instances: HTTP/1.1 keep-alive on loopback, pooled per
// backend, used by one request at a time and by no goroutine of their own.
const (
	dialTimeout       = 5 * time.Second
	maxIdlePerBackend = 1024
	idleConnTimeout   = 90 * time.Second
	maxResponseHead   = 64 << 10
)

var errBadResponse = errors.New("malformed response from instance")

var dialer = &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}

// bconn is one connection to an instance.
type bconn struct {
	nc     net.Conn
	probe  prober // for idleClean
	br     *bufio.Reader
	bw     *bufio.Writer
	head   []byte    // the last response head read
	rdl    time.Time // the read deadline last set
	idleAt time.Time
	reused bool        // taken from the pool rather than dialed
	sent   sentCounter // bw writes through it
}

// sentCounter counts the bytes a connection's socket took, which tells a
// request that never reached its instance from one that did.
type sentCounter struct {
	nc net.Conn
	n  int64
}

func (w *sentCounter) Write(p []byte) (int, error) {
	n, err := w.nc.Write(p)
	w.n += int64(n)
	return n, err
}

// connPool holds a backend's idle connections, most recently used last.
type connPool struct {
	mu   sync.Mutex
	idle []*bconn
}

// getConn takes an idle connection to b, or dials one. An idle
// connection with something to read (bytes the instance sent after its
// last response, or its end) is closed, never used: whatever it holds
// would be read as the next request's response.
func (b *backend) getConn() (*bconn, error) {
	pl := &b.pool
	for {
		pl.mu.Lock()
		n := len(pl.idle)
		if n == 0 {
			pl.mu.Unlock()
			return b.dial()
		}
		c := pl.idle[n-1]
		pl.idle[n-1] = nil
		pl.idle = pl.idle[:n-1]
		pl.mu.Unlock()
		if !c.idleClean() {
			c.nc.Close()
			continue
		}
		c.reused = true
		return c, nil
	}
}

// idleClean reports whether an idle connection has nothing to read, with
// one non-blocking peek at the socket.
func (c *bconn) idleClean() bool {
	return c.br.Buffered() == 0 && c.probe.probe() == probeEmpty
}

// dial opens a new connection to b.
func (b *backend) dial() (*bconn, error) {
	nc, err := dialer.Dial("tcp", b.addr)
	if err != nil {
		return nil, err
	}
	c := &bconn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10)}
	c.sent.nc = nc
	c.bw = bufio.NewWriterSize(&c.sent, 8<<10)
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.probe.init(raw)
		}
	}
	return c, nil
}

// putConn returns a connection whose exchange completed to the pool,
// unless the instance sent more than the response.
func (b *backend) putConn(c *bconn, now time.Time) {
	if c.br.Buffered() > 0 {
		c.nc.Close()
		return
	}
	c.idleAt = now
	pl := &b.pool
	pl.mu.Lock()
	if len(pl.idle) >= maxIdlePerBackend {
		pl.mu.Unlock()
		c.nc.Close()
		return
	}
	pl.idle = append(pl.idle, c)
	pl.mu.Unlock()
}

// closeIdle closes the connections that have been idle since before
// before (all of them for a time in the future).
func (b *backend) closeIdle(before time.Time) {
	pl := &b.pool
	pl.mu.Lock()
	var stale []*bconn
	keep := pl.idle[:0]
	for _, c := range pl.idle {
		if c.idleAt.Before(before) {
			stale = append(stale, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(pl.idle[len(keep):])
	pl.idle = keep
	pl.mu.Unlock()
	for _, c := range stale {
		c.nc.Close()
	}
}

// readHead reads a response head into c.head (head.go). A read that
// times out calls wait, which re-arms the deadline and returns nil to go
// on waiting, or the error that ends the exchange. A connection that
// closes before any byte of the head gives io.EOF, one that closes inside
// it io.ErrUnexpectedEOF; a head beyond maxResponseHead is errBadResponse.
func (c *bconn) readHead(wait func() error) error {
	var err error
	c.head, err = readHead(c.br, c.head, maxResponseHead, wait)
	if err == errLineTooLong {
		return errBadResponse
	}
	return err
}

// setReadDeadline sets the read deadline.
func (c *bconn) setReadDeadline(t time.Time) {
	c.rdl = t
	_ = c.nc.SetReadDeadline(t)
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// sweepPools closes connections idle for longer than idleConnTimeout, and
// every idle connection of backends that left the table. seen holds the
// backends of the last sweep; the new set is returned.
func (p *Proxy) sweepPools(seen map[*backend]bool) map[*backend]bool {
	now := time.Now()
	cur := map[*backend]bool{}
	for _, a := range p.table.Load().apps {
		for _, b := range a.endpoints {
			cur[b] = true
			b.closeIdle(now.Add(-idleConnTimeout))
		}
	}
	for b := range seen {
		if !cur[b] {
			b.closeIdle(now.Add(time.Hour))
		}
	}
	return cur
}
