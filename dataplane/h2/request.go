package h2

// Streams opened by HEADERS, checked as RFC 9113 §8 has it, and run by
// handlers, at most MaxConcurrentStreams at once.

import (
	"errors"
	"strconv"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

func (c *conn) processHeaders(f *http2.HeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol) // clients open odd streams
	}
	blockErr := c.readBlock(f)
	var se http2.StreamError
	if blockErr != nil && !errors.As(blockErr, &se) {
		return blockErr
	}
	b := &c.hb
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.streams[id]; st != nil {
		// Trailers: they end the body, and carry no pseudo-header field.
		switch {
		case st.recvDone:
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		case blockErr != nil || !f.StreamEnded() || b.pseudo > 0:
			c.closeStreamLocked(st, goneReset)
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		st.trailers = append([]hpack.HeaderField(nil), b.fields...)
		return c.endRecvLocked(st)
	}
	if id <= c.maxID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // streams only go up
	}
	c.maxID = id // a malformed request still opened its stream
	switch {
	case blockErr != nil:
		return blockErr
	case f.HasPriority() && f.Priority.StreamDep == id:
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	case c.goingAway, len(c.streams) >= int(c.cfg.MaxConcurrentStreams):
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	if len(c.streams) > 0 {
		c.noInline = true // two streams open at once (inline.go)
	}
	st := &Stream{c: c, id: id, ContentLength: -1}
	st.cond.L = &c.mu
	if b.truncated {
		st.HeadTooLarge = true
	} else if !st.setRequest(b.fields[:b.pseudo], b.fields[b.pseudo:]) {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if f.StreamEnded() {
		if st.ContentLength > 0 {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		st.ContentLength = 0
		st.recvDone = true
	}
	st.recvWin = int64(c.cfg.StreamWindow)
	st.sendWin = c.peerInitWin
	c.streams[id] = st
	return c.dispatchLocked(st)
}

// setRequest takes the request's fields, and reports whether they make
// a well-formed request (RFC 9113 §8.2, §8.3). The regular fields are
// copied: the block's slice is the connection's.
func (st *Stream) setRequest(pseudo, fields []hpack.HeaderField) bool {
	var seen uint8
	for _, hf := range pseudo {
		var bit uint8
		switch hf.Name {
		case ":method":
			st.Method, bit = hf.Value, 1
		case ":scheme":
			st.Scheme, bit = hf.Value, 2
		case ":authority":
			st.Authority, bit = hf.Value, 4
		case ":path":
			st.Path, bit = hf.Value, 8
		default: // :status, :protocol (extended CONNECT is not offered), unknown ones
			return false
		}
		if seen&bit != 0 {
			return false // twice
		}
		seen |= bit
	}
	if !http1.ValidToken(st.Method) || !http1.ValidHost(st.Authority) {
		return false
	}
	if st.Method == "CONNECT" {
		if st.Scheme != "" || st.Path != "" || st.Authority == "" {
			return false
		}
	} else if !http1.ValidToken(st.Scheme) || !validPath(st.Path, st.Method) {
		return false
	}
	kept := make([]hpack.HeaderField, 0, len(fields))
	for _, hf := range fields {
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return false
		case "te":
			if hf.Value != "trailers" {
				return false
			}
		case "content-length":
			n, err := strconv.ParseUint(hf.Value, 10, 63)
			if err != nil || hf.Value[0] == '+' || st.ContentLength >= 0 && int64(n) != st.ContentLength {
				return false
			}
			st.ContentLength = int64(n)
		case "expect":
			if strings.EqualFold(hf.Value, "100-continue") {
				st.expectContinue = true
				continue
			}
		}
		kept = append(kept, hf)
	}
	st.Fields = kept
	return true
}

// validPath: an origin-form target, or "*" for OPTIONS, with the
// characters an HTTP/1.1 request target may have (http1.ValidTarget).
func validPath(p, method string) bool {
	if p == "*" {
		return method == "OPTIONS"
	}
	return p != "" && p[0] == '/' && http1.ValidTarget(p)
}

// dispatchLocked runs st's handler, or queues st while
// MaxConcurrentStreams handlers run. Streams the client opens and resets
// faster than handlers end pile up here; past 4 × MaxConcurrentStreams
// the connection is cut (the rapid-reset attack, CVE-2023-44487).
func (c *conn) dispatchLocked(st *Stream) error {
	if c.inlineLocked(st) {
		return nil
	}
	if c.running < int(c.cfg.MaxConcurrentStreams) {
		c.running++
		c.srv.run(st)
		return nil
	}
	c.queue = append(c.queue, st)
	if len(c.queue) > 4*int(c.cfg.MaxConcurrentStreams) {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

// maxIdleWorkers bounds the handler goroutines a Server keeps waiting
// for a next stream, of any connection. A goroutine started per stream
// grows its stack anew each time, and copying stacks cost more than the
// hand-off; parked workers' stacks shrink back at GC.
const maxIdleWorkers = 256

// run hands st to an idle worker, or to a new one.
func (s *Server) run(st *Stream) {
	select {
	case s.work <- st:
	default:
		go s.worker(st)
	}
}

// worker runs st's handler, then those of the streams its connection
// queued meanwhile, then waits for a next stream of any connection,
// unless maxIdleWorkers already wait.
func (s *Server) worker(st *Stream) {
	for {
		c := st.c
		for st != nil {
			c.call(st)
			st = c.finish(st)
		}
		if s.idle.Add(1) > maxIdleWorkers {
			s.idle.Add(-1)
			return
		}
		select {
		case st = <-s.work:
			s.idle.Add(-1)
		case <-s.done:
			s.idle.Add(-1)
			return
		}
	}
}

// call runs the handler; a panic resets the stream, and is logged.
func (c *conn) call(st *Stream) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("http2 handler panicked", "stream", st.id, "panic", r)
		}
	}()
	c.handler(st)
}

// finish ends a stream whose handler returned, and takes the next queued
// stream for the goroutine, if any. A response that did not end is
// reset; a request still sending its body is told to stop (RFC 9113
// §8.1: RST_STREAM NO_ERROR after a whole response).
func (c *conn) finish(st *Stream) *Stream {
	if !st.ended {
		st.Reset(http2.ErrCodeInternal)
	}
	st.releaseWriteBuffer()
	c.mu.Lock()
	st.handlerDone = true
	stop := !st.recvDone
	if stop {
		c.closeStreamLocked(st, goneReset)
	}
	if n := st.body.len(); n > 0 {
		c.creditLocked(int64(n))
	}
	st.body.reset()
	if st.cancel != nil {
		st.cancel()
	}
	var next *Stream
	for len(c.queue) > 0 && next == nil {
		next = c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		if next.Gone() {
			next = nil // reset while it waited
		}
	}
	if next == nil {
		c.running--
		if len(c.streams) == 0 && c.running == 0 {
			c.becameIdleLocked()
		}
	}
	inc := c.takeCreditLocked()
	c.mu.Unlock()
	if stop || inc > 0 {
		c.lockWrite()
		if stop {
			c.writeRST(st, st.id, http2.ErrCodeNo)
		}
		c.writeWindowUpdates(inc, 0, 0)
		c.unlockWrite(true)
	}
	return next
}
