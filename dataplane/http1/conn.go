package http1

import (
	"bufio"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// Connections to a server: HTTP/1.1 keep-alive, pooled per address, used
// by one exchange at a time and by no goroutine of their own.
const (
	dialTimeout = 5 * time.Second
	maxIdle     = 1024
	// MaxResponseHead bounds a response head; a longer one is
	// ErrBadResponse.
	MaxResponseHead = 64 << 10
	// ResponseReaderSize is the size of a pooled connection's reader.
	ResponseReaderSize = 16 << 10
)

var dialer = &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}

// Conn is one connection to a server. A request is written to BW; the
// response head is read with ReadHead into Head and its body from BR.
type Conn struct {
	NC     net.Conn
	BR     *bufio.Reader
	BW     *bufio.Writer // writes through a counter: see Sent
	Head   []byte        // the last response head read
	Reused bool          // taken from the pool rather than dialed

	probe  Prober    // for Get's idle check
	rdl    time.Time // the read deadline last set
	idleAt time.Time
	sent   sentCounter

	// FlushOnRead's state: the request in BW leaves on the first read.
	rd       connReader
	handed   int64 // sent.n when the connection was handed out
	await    bool  // the next read flushes BW and waits for readiness
	flushed  bool
	flushErr error
	awaitFn  func(uintptr) bool
}

// DeadlineWriter writes to a connection under a write timeout: every
// write must be taken within Timeout, so a peer that stops reading is
// dropped. The deadline is pushed out before a write when it would fall
// more than an eighth of the timeout (at most a second) short of
// now+Timeout, so a busy connection re-arms it about once a second, not
// on every write (setting it costs a timer update).
type DeadlineWriter struct {
	NC      net.Conn
	Timeout time.Duration
	dl      time.Time
}

func (w *DeadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); w.dl.Sub(now) < w.Timeout-min(w.Timeout/8, time.Second) {
		w.dl = now.Add(w.Timeout)
		_ = w.NC.SetWriteDeadline(w.dl)
	}
	return w.NC.Write(p)
}

// Forget makes the next write set the deadline again, after the
// connection's deadline was changed by other means.
func (w *DeadlineWriter) Forget() { w.dl = time.Time{} }

// sentCounter counts the bytes a connection's socket took, which tells a
// request that never reached its server from one that did.
type sentCounter struct {
	nc net.Conn
	n  int64
}

func (w *sentCounter) Write(p []byte) (int, error) {
	n, err := w.nc.Write(p)
	w.n += int64(n)
	return n, err
}

// Sent is the number of bytes the connection's socket took so far: a
// request whose writes left it unchanged never reached the server.
func (c *Conn) Sent() int64 { return c.sent.n }

// NewConn wraps a connection to a server as the pool does.
func NewConn(nc net.Conn) *Conn {
	c := &Conn{NC: nc}
	c.rd.c = c
	c.BR = bufio.NewReaderSize(&c.rd, ResponseReaderSize)
	c.sent.nc = nc
	c.BW = bufio.NewWriterSize(&c.sent, 8<<10)
	c.probe.Init(nc)
	c.awaitFn = c.flushThenWait
	return c
}

// FlushOnRead sends what BW holds, the end of a request, as part of the
// first read of its response, which then waits for the socket to be
// readable before it reads: the read that would find nothing (the
// server has not answered yet) and park the goroutine is not made: one
// of the seven or so system calls a proxied request costs
// (docs/benchmarks.md, "One read less per request").
//
// Waiting before reading is safe only when nothing the server sends in
// answer can have arrived before the wait began: Go's poller forgets
// readiness that came before a wait (internal/poll, prepareRead), and a
// socket holding an answer it was told about before would then wait for
// ever. So the flush is made inside the wait (syscall.RawConn.Read, after
// its prepare), and FlushOnRead defers it only when no byte of the
// request has reached the socket since the connection was handed out (a
// request that fits BW); otherwise, or on a connection that is not a
// socket, it flushes at once. What the server sent between Pool.Get's
// probe and the wait is the one thing the wait can miss: its end, if it
// closed the idle connection just then. A server that closed it whole
// answers the request with a reset, which the wait sees; one that only
// shut its writing half sends nothing more, and the wait lasts until the
// read deadline (the proxy's 250 ms client check), after which the next
// read finds the end.
//
// The flush's error, if any, is what the read returns, as Flush would
// have; Sent tells, after the read, whether the request left.
func (c *Conn) FlushOnRead() error {
	if c.probe.raw == nil || c.sent.n != c.handed || c.BW.Buffered() == 0 {
		return c.BW.Flush()
	}
	c.await = true
	return nil
}

// connReader is what BR reads: the socket, after FlushOnRead's flush and
// wait when one is due.
type connReader struct{ c *Conn }

func (r *connReader) Read(p []byte) (int, error) {
	c := r.c
	if c.await {
		c.await = false
		if err := c.flushAndWait(); err != nil {
			return 0, err
		}
	}
	return c.NC.Read(p)
}

// flushAndWait flushes BW and waits until the socket is readable (or the
// read deadline passes, or the connection breaks).
func (c *Conn) flushAndWait() error {
	c.flushed, c.flushErr = false, nil
	err := c.probe.raw.Read(c.awaitFn)
	if !c.flushed { // the wait could not begin (a deadline already past)
		c.flushErr = c.BW.Flush()
	}
	if c.flushErr != nil {
		return c.flushErr
	}
	return err
}

// flushThenWait is flushAndWait's callback: the first call flushes and
// asks to wait (false), unless the flush failed; the next, made once the
// socket is readable, ends the wait.
func (c *Conn) flushThenWait(uintptr) bool {
	if c.flushed {
		return true
	}
	c.flushed = true
	c.flushErr = c.BW.Flush()
	return c.flushErr != nil
}

// ReadHead reads a response head into c.Head (head.go). A read that
// times out calls wait, which re-arms the deadline and returns nil to go
// on waiting, or the error that ends the exchange. A connection that
// closes before any byte of the head gives io.EOF, one that closes inside
// it io.ErrUnexpectedEOF; a head beyond MaxResponseHead is ErrBadResponse.
func (c *Conn) ReadHead(wait func() error) error {
	var err error
	c.Head, err = ReadHead(c.BR, c.Head, MaxResponseHead, wait)
	if err == ErrLineTooLong {
		return ErrBadResponse
	}
	return err
}

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) {
	c.rdl = t
	_ = c.NC.SetReadDeadline(t)
}

// ReadDeadline is the read deadline last set.
func (c *Conn) ReadDeadline() time.Time { return c.rdl }

// Close closes the connection.
func (c *Conn) Close() { c.NC.Close() }

// idleClean reports whether an idle connection has nothing to read, with
// one non-blocking peek at the socket.
func (c *Conn) idleClean() bool {
	return c.BR.Buffered() == 0 && c.probe.Probe() == ProbeEmpty
}

// IsTimeout reports whether err is a deadline passing.
func IsTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// Pool holds the idle connections to one server address, most recently
// used last. Its zero value with Addr set is ready for use.
type Pool struct {
	Addr string // host:port, over TCP

	mu   sync.Mutex
	idle []*Conn
}

// Get takes an idle connection, or dials one. An idle connection with
// something to read (bytes the server sent after its last response, or
// its end) is closed, never used: whatever it holds would be read as the
// next request's response.
func (p *Pool) Get() (*Conn, error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return p.Dial()
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if !c.idleClean() {
			c.Close()
			continue
		}
		c.Reused = true
		c.handed = c.sent.n
		return c, nil
	}
}

// Dial opens a new connection to the pool's address.
func (p *Pool) Dial() (*Conn, error) {
	nc, err := dialer.Dial("tcp", p.Addr)
	if err != nil {
		return nil, err
	}
	return NewConn(nc), nil
}

// Put returns a connection whose exchange completed, at now, unless the
// server sent more than the response.
func (p *Pool) Put(c *Conn, now time.Time) {
	if c.BR.Buffered() > 0 {
		c.Close()
		return
	}
	c.idleAt = now
	p.mu.Lock()
	if len(p.idle) >= maxIdle {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// CloseIdle closes the connections that have been idle since before
// before (all of them for a time in the future).
func (p *Pool) CloseIdle(before time.Time) {
	p.mu.Lock()
	var stale []*Conn
	keep := p.idle[:0]
	for _, c := range p.idle {
		if c.idleAt.Before(before) {
			stale = append(stale, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.mu.Unlock()
	for _, c := range stale {
		c.Close()
	}
}
