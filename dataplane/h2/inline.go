package h2

// A stream the reader runs itself. Handing each stream to a worker costs
// a wake-up, a park and a read that finds nothing per request: about
// 1.5 µs of the 21 µs ancmd spends on an HTTP/2 request (h2load -m 1,
// bench/run.sh). A client that sends one request at a time (curl, most
// API clients, a browser between page loads) pays it on every request.
// So when a request comes whole (END_STREAM on its HEADERS), no other
// stream is open and no other frame is buffered, the reader runs its
// handler itself, as an HTTP/1.1 connection does.
//
// While it does, nobody reads the connection. If the handler is not done
// within inlineWait (a slow app, or an answer waiting for the client to
// open its window), a timer hands the reading to a new goroutine, and
// the reader, once its handler is done, leaves. A frame that
// comes meanwhile (a RST_STREAM, a PING, another request) waits at most
// that long. A client that multiplexes gets that wait at most once: a
// connection stops running streams inline once it had two open at once,
// or once its reading was taken over while the answer waited for the
// client's window (that client has to be read while answers go out). A
// take-over for a slow answer alone leaves inline runs on: under load
// (h2load -c 64 on two cores) some answers pass 10 ms, and each
// connection that had one went over to a worker per stream for good.

import "time"

// inlineWait is how long a stream run inline may keep the connection
// unread. Under load an answer takes milliseconds (64 connections on
// two cores: about 1.6 ms); a shorter wait hands the reading over so
// often that it costs more than it saves.
var inlineWait = 10 * time.Millisecond

// reader is what a goroutine reading the connection keeps across the
// streams it runs inline: its take-over timer.
type reader struct {
	timer *time.Timer
	st    *Stream // the stream its timer is armed for, under c.mu
}

func (r *reader) stop() {
	if r.timer != nil {
		r.timer.Stop()
	}
}

// inlineLocked reports whether the reader should run st itself, and
// marks it so.
func (c *conn) inlineLocked(st *Stream) bool {
	if c.noInline || !st.recvDone || c.running > 0 || len(c.queue) > 0 || c.inlineRun != nil || c.br.Buffered() > 0 {
		return false
	}
	c.running++
	c.inlineRun = st
	c.inline = st
	return true
}

// runInline runs st on the reader's goroutine, and reports whether it
// reads on after; if not, the reading was taken over.
func (c *conn) runInline(r *reader, st *Stream) bool {
	c.mu.Lock()
	r.st = st
	c.mu.Unlock()
	if r.timer == nil {
		r.timer = time.AfterFunc(inlineWait, func() { c.takeOver(r) })
	} else {
		r.timer.Reset(inlineWait)
	}
	c.call(st)
	c.mu.Lock()
	taken := st.taken
	if !taken {
		c.inlineRun = nil
	}
	r.st = nil
	c.mu.Unlock()
	r.timer.Stop()
	// The reader's goroutine never becomes a worker: ServeConn returns
	// with its connection.
	if next := c.finish(st); next != nil {
		c.srv.run(next)
	}
	return !taken
}

// takeOver starts a new reader when the stream r runs inline is still
// running; it is the timer's goroutine.
func (c *conn) takeOver(r *reader) {
	c.mu.Lock()
	st := r.st
	if st == nil || st.taken || c.inlineRun != st || c.closed {
		c.mu.Unlock()
		return
	}
	st.taken = true
	c.inlineRun = nil
	if st.waitingFlow {
		c.noInline = true // the client has to be read for the answer to go on
	}
	c.mu.Unlock()
	c.readLoop(nil)
}
