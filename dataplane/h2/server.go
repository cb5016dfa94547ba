// Package h2 serves HTTP/2 (RFC 9113) on connections clients opened: the
// frame loop, stream states, flow control both ways and the HPACK
// contexts. It reads frames with golang.org/x/net/http2's Framer and
// codes fields with its hpack package; what it does not take from x/net
// is the server, whose hand-offs between four goroutines a request (the
// frame reader, the serve loop, the handler, and one started for every
// flush) cost more CPU than the proxying itself.
//
// Here a connection has one goroutine that reads frames and answers the
// ones about the connection (SETTINGS, PING, WINDOW_UPDATE), and each
// stream's handler runs in a goroutine of its own that writes its frames
// to the connection itself, under a lock, with no goroutine between it
// and the socket. Writes coalesce: a writer that leaves the lock while
// another waits for it leaves the flush to that one, so concurrent
// answers share a system call and an answer that fits in a frame leaves
// in one.
//
// What a client cannot make it do, by design:
//   - run more than MaxConcurrentStreams handlers at once on a connection
//     (streams past that wait, and a client that opens and resets streams
//     faster than handlers finish, the rapid-reset attack, gets GOAWAY
//     ENHANCE_YOUR_CALM once 4 × MaxConcurrentStreams wait);
//   - make it buffer more than the windows it advertised (request bodies)
//     or queue frames it does not read (control answers are written as they
//     are due, so a client that does not read stops being read);
//   - hold a handler waiting for a window or a write for longer than
//     WriteTimeout.
package h2

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

// Defaults of a zero Config.
const (
	DefaultMaxConcurrentStreams = 250
	DefaultMaxHeaderListSize    = 64 << 10
	DefaultStreamWindow         = 1 << 20
	DefaultConnWindow           = 1 << 20
	DefaultIdleTimeout          = 2 * time.Minute
	DefaultWriteTimeout         = 30 * time.Second
)

const (
	initialWindow   = 65535     // RFC 9113 §6.9.2
	maxWindow       = 1<<31 - 1 // RFC 9113 §6.9.1
	minMaxFrameSize = 16384     // RFC 9113 §4.2
	maxTableSize    = 4096      // SETTINGS_HEADER_TABLE_SIZE, ours
	prefaceTimeout  = 10 * time.Second
	goAwayLinger    = time.Second // after a final GOAWAY, for the client to read it
	readBufferSize  = 16 << 10
	writeBufferSize = 16 << 10
)

// Config sets a Server's limits.
type Config struct {
	// MaxConcurrentStreams is advertised, and bounds the handlers running
	// at once on one connection.
	MaxConcurrentStreams uint32
	// MaxHeaderListSize bounds a request's header list (RFC 9113 §6.5.2);
	// a larger one reaches the handler with Stream.HeadTooLarge set.
	MaxHeaderListSize uint32
	// StreamWindow and ConnWindow are the receive windows advertised for
	// each stream and for the connection: what a client may send that no
	// handler read yet.
	StreamWindow, ConnWindow uint32
	// IdleTimeout closes a connection with no stream for that long.
	IdleTimeout time.Duration
	// WriteTimeout bounds a write to the client, and a handler's wait for
	// the client to open a flow-control window.
	WriteTimeout time.Duration
	// Logger gets what goes wrong with a connection, at debug; a handler
	// that panicked, at error.
	Logger hclog.Logger
}

// A Handler answers a stream. The stream is the handler's until it
// returns; a handler that returns without End resets the stream.
type Handler func(*Stream)

// Server serves HTTP/2 connections.
type Server struct {
	cfg      Config
	log      hclog.Logger
	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutdown bool
	// Idle workers (worker) wait on work; done ends them.
	work     chan *Stream
	idle     atomic.Int32
	done     chan struct{}
	doneOnce sync.Once
}

// NewServer makes a Server; zero fields of cfg take the defaults.
func NewServer(cfg Config) *Server {
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if cfg.MaxHeaderListSize == 0 {
		cfg.MaxHeaderListSize = DefaultMaxHeaderListSize
	}
	if cfg.StreamWindow == 0 {
		cfg.StreamWindow = DefaultStreamWindow
	}
	if cfg.ConnWindow == 0 {
		cfg.ConnWindow = DefaultConnWindow
	}
	cfg.StreamWindow = min(cfg.StreamWindow, maxWindow)
	cfg.ConnWindow = min(max(cfg.ConnWindow, initialWindow), maxWindow)
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Server{cfg: cfg, log: log, conns: map[*conn]struct{}{}, work: make(chan *Stream), done: make(chan struct{})}
}

// ServeConn serves a connection whose client chose HTTP/2 (by ALPN, or
// with prior knowledge) until it ends, and closes it. Handlers of its
// streams may still be running when it returns; their writes fail.
func (s *Server) ServeConn(nc net.Conn, h Handler) {
	c := newConn(s, nc, h)
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		c.refuse()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.serve()
}

// Close ends the Server's idle workers; streams still running finish.
func (s *Server) Close() {
	s.doneOnce.Do(func() { close(s.done) })
}

// Shutdown sends every connection a GOAWAY: no stream is taken after the
// ones the client already opened, and a connection closes once those
// end. New connections are refused the same way. It does not wait.
func (s *Server) Shutdown() {
	s.mu.Lock()
	s.shutdown = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		go c.goAway(http2.ErrCodeNo, false) // its write may wait for a client that does not read
	}
}

// Errors a handler sees.
var (
	// ErrStreamReset: the stream was reset, by the client or for an error
	// of its own (a body longer or shorter than its content-length).
	ErrStreamReset = errors.New("http2: stream reset")
	// ErrConnClosed: the connection ended under the stream.
	ErrConnClosed = errors.New("http2: connection closed")
	// ErrWindowTimeout: the client kept a flow-control window shut for
	// longer than WriteTimeout.
	ErrWindowTimeout = errors.New("http2: flow-control window stayed shut")
	// ErrReadTimeout: no body bytes came before the read deadline.
	ErrReadTimeout = errors.New("http2: request body read timed out")
	errNoHead      = errors.New("http2: body written before the response head")
	errWriteClosed = errors.New("http2: connection closing after GOAWAY")
	errEnded       = errors.New("http2: write after the end of the stream")
)

// conn is one client connection.
type conn struct {
	srv     *Server
	cfg     *Config
	log     hclog.Logger
	nc      net.Conn
	handler Handler
	br      *bufio.Reader
	fr      *http2.Framer

	// The write side: frames are written to bw under wmu, by the reader
	// and by handlers. Lock order: wmu, then mu; never mu, then wmu. waiting counts the writers queued for wmu; the last
	// one out flushes (flushDue marks bytes not flushed yet).
	wmu      sync.Mutex
	waiting  atomic.Int32
	flushDue atomic.Bool
	bw       *bufio.Writer
	// flushWanted: a writer asked for a flush that is not done yet.
	flushWanted bool
	henc        *hpack.Encoder
	fh          [frameHeaderLen]byte // a frame header being written
	hdec        *hpack.Decoder       // the client's HPACK context; the reader's
	hb          block                // the header block being decoded
	hbuf        bytes.Buffer
	werr        error // the first write error; every later write fails with it

	lingering atomic.Bool // a final GOAWAY went out: drain, then close

	peerMaxFrame atomic.Uint32 // the client's SETTINGS_MAX_FRAME_SIZE

	// The connection's state, under mu.
	mu          sync.Mutex
	streams     map[uint32]*Stream // open and half-closed streams
	maxID       uint32             // the highest stream the client opened
	running     int                // handlers running
	queue       []*Stream          // streams waiting for a handler
	sendWin     int64              // what we may send on the connection
	peerInitWin int64              // the client's SETTINGS_INITIAL_WINDOW_SIZE
	recvWin     int64              // what the client may still send on the connection
	recvUnacked int64              // read or dropped, not yet given back
	creditDue   int64              // given back, the WINDOW_UPDATE not sent yet
	flowWaiters int                // handlers waiting for a send window
	goingAway   bool               // GOAWAY sent: no new stream
	closed      bool               // the connection is over
	ended       chan struct{}      // closed once torn down
	inlineRun   *Stream            // the stream run inline by the reader, not taken over
	noInline    bool               // the client multiplexes: no stream runs inline
	// inline: the stream the reader is to run itself (processHeaders
	// sets it; the reader's own).
	inline    *Stream
	idleSince time.Time
	idleTimer *time.Timer
}

func newConn(s *Server, nc net.Conn, h Handler) *conn {
	c := &conn{
		srv: s, cfg: &s.cfg, log: s.log, nc: nc, handler: h,
		br:          bufio.NewReaderSize(nc, readBufferSize),
		streams:     map[uint32]*Stream{},
		sendWin:     initialWindow,
		peerInitWin: initialWindow,
		recvWin:     int64(s.cfg.ConnWindow),
		ended:       make(chan struct{}),
	}
	c.bw = bufio.NewWriterSize(&http1.DeadlineWriter{NC: nc, Timeout: s.cfg.WriteTimeout}, writeBufferSize)
	c.henc = hpack.NewEncoder(&c.hbuf)
	c.peerMaxFrame.Store(minMaxFrameSize)
	c.fr = http2.NewFramer(nil, c.br)
	c.hdec = hpack.NewDecoder(maxTableSize, c.emit)
	c.hdec.SetMaxStringLength(int(s.cfg.MaxHeaderListSize))
	c.fr.SetMaxReadFrameSize(minMaxFrameSize)
	c.fr.SetReuseFrames()
	return c
}

// refuse answers a connection made during shutdown with a GOAWAY.
func (c *conn) refuse() {
	c.writeSettings()
	c.lockWrite()
	c.writeGoAway(0, http2.ErrCodeNo)
	c.unlockWrite(true)
	c.closeSoon()
	c.drain()
	c.nc.Close()
}

// closeSoon ends the writing half of the connection after a final GOAWAY
// and gives the client goAwayLinger to close its own: the reader drains
// what still comes meanwhile, so that closing with unread bytes does not
// reset the connection before the client read the GOAWAY. It flushes
// first, under the write lock: a flush that the GOAWAY's writer left to
// a writer waiting behind it would otherwise meet a closed half and be
// lost, GOAWAY and all. Later writes are dropped (errWriteClosed). Any
// goroutine may call it, but not under mu (the flush may wait for the
// client).
func (c *conn) closeSoon() {
	c.lingering.Store(true)
	c.lockWrite()
	if c.werr == nil {
		if err := c.bw.Flush(); err != nil {
			c.writeFailed(err)
		} else {
			c.werr = errWriteClosed
			if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
		}
	}
	c.flushWanted = false
	c.wmu.Unlock()
	_ = c.nc.SetReadDeadline(time.Now().Add(goAwayLinger))
}

// drain reads and drops what the client sends until it closes or the
// linger ends; the reader's goroutine only.
func (c *conn) drain() {
	_, _ = io.Copy(io.Discard, c.br)
}

// serve reads frames until the connection ends, and returns once it
// has ended (the goroutine reading last tears it down).
func (c *conn) serve() {
	if f := c.start(); f != nil {
		c.readLoop(f)
	} else {
		c.teardown()
	}
	<-c.ended
}

// start sends the server's preface and reads the client's, and returns
// its SETTINGS frame; nil when the connection cannot go on.
func (c *conn) start() http2.Frame {
	c.writeSettings()
	_ = c.nc.SetReadDeadline(time.Now().Add(prefaceTimeout))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		c.log.Debug("no client preface", "error", err)
		return nil
	}
	f, err := c.fr.ReadFrame()
	if err != nil {
		c.readFailed(err)
		return nil
	}
	if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
		c.connError(http2.ConnectionError(http2.ErrCodeProtocol), "first frame not SETTINGS")
		return nil
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	c.mu.Lock()
	c.idleSince = time.Now()
	c.idleTimer = time.AfterFunc(c.cfg.IdleTimeout, c.idleCheck)
	c.mu.Unlock()
	return f
}

// readLoop reads and handles frames, starting with f (when not nil),
// until the connection ends, and then tears it down; or until another
// goroutine took the reading over while this one ran a stream inline
// (inline.go).
func (c *conn) readLoop(f http2.Frame) {
	var r reader
	defer r.stop()
	for {
		if f != nil {
			if err := c.process(f); err != nil {
				var se http2.StreamError
				if !errors.As(err, &se) {
					c.connError(err, "")
					c.teardown()
					return
				}
				c.streamError(se)
			}
		}
		if c.flushDue.Load() && !c.frameBuffered() {
			c.lockWrite()
			c.unlockWrite(true)
		}
		if st := c.inline; st != nil {
			c.inline = nil
			if !c.runInline(&r, st) {
				return
			}
		}
		var err error
		if f, err = c.fr.ReadFrame(); err != nil {
			if !c.readFailed(err) {
				c.teardown()
				return
			}
		}
	}
}

// readFailed handles an error of ReadFrame; it reports whether reading
// goes on (a stream error: the stream is reset).
func (c *conn) readFailed(err error) bool {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &se):
		c.mu.Lock()
		if se.StreamID > c.maxID && se.StreamID%2 == 1 {
			c.maxID = se.StreamID // a malformed request still opened its stream
		}
		c.mu.Unlock()
		c.streamError(se)
		return true
	case errors.As(err, &ce):
		c.connError(ce, "")
	case errors.Is(err, http2.ErrFrameTooLarge):
		c.connError(http2.ConnectionError(http2.ErrCodeFrameSize), "")
	default:
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			c.log.Debug("connection read failed", "error", err)
		}
	}
	return false
}

// connError ends the connection with a GOAWAY for err.
func (c *conn) connError(err error, why string) {
	code := http2.ErrCodeInternal
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		code = http2.ErrCode(ce)
	}
	if why == "" {
		if d := c.fr.ErrorDetail(); d != nil {
			why = d.Error()
		}
	}
	c.log.Debug("connection error", "code", code, "detail", why, "error", err)
	c.goAway(code, true)
}

// goAway sends a GOAWAY with the last stream taken. A graceful one
// (NO_ERROR) lets the open streams end; final closes the connection.
func (c *conn) goAway(code http2.ErrCode, final bool) {
	c.mu.Lock()
	if c.closed || c.goingAway && !final {
		c.mu.Unlock()
		return
	}
	resend := c.goingAway
	c.goingAway = true
	last := c.maxID
	idle := len(c.streams) == 0 && c.running == 0
	c.mu.Unlock()
	if !resend || code != http2.ErrCodeNo {
		c.lockWrite()
		c.writeGoAway(last, code)
		c.unlockWrite(true)
	}
	if final || idle {
		c.closeSoon()
	}
}

// teardown ends every stream once the reader is done, and closes ended.
func (c *conn) teardown() {
	defer close(c.ended)
	if c.lingering.Load() {
		c.drain()
	}
	c.nc.Close()
	c.mu.Lock()
	c.closed = true
	for _, st := range c.streams {
		c.closeStreamLocked(st, goneClosed)
	}
	c.queue = nil
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.mu.Unlock()
}

// idleCheck closes the connection once it has had no stream for
// IdleTimeout.
func (c *conn) idleCheck() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if len(c.streams) > 0 || c.running > 0 {
		c.idleTimer.Reset(c.cfg.IdleTimeout)
		c.mu.Unlock()
		return
	}
	if left := c.cfg.IdleTimeout - time.Since(c.idleSince); left > 0 {
		c.idleTimer.Reset(left)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.goAway(http2.ErrCodeNo, true)
}
