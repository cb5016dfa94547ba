package h2

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Stream is one request and its response. The request's fields are set
// before the handler runs; the body is read with Read, and the answer
// written with WriteHead, Write, Flush and End, from the handler's
// goroutine (or one it hands them to, one at a time).
type Stream struct {
	c  *conn
	id uint32

	// The request. Method, Scheme, Path and Authority are its
	// pseudo-header fields (Path and Scheme are empty for CONNECT).
	// Fields are the others, as the client sent them, less Expect
	// (a 100-continue is answered on the first Read).
	Method, Scheme, Authority, Path string
	Fields                          []hpack.HeaderField
	// ContentLength is the body's length: 0 when the request ended with
	// its head, -1 when not known.
	ContentLength int64
	// HeadTooLarge: the header list exceeded MaxHeaderListSize; the
	// fields are incomplete, and the answer should be 431.
	HeadTooLarge bool

	expectContinue bool
	why            atomic.Int32 // goneReset, goneClosed, goneWindow: the stream is over
	cond           sync.Cond    // on c.mu: body and window waits

	// Under c.mu.
	recvDone    bool // END_STREAM received, or ended early
	sendDone    bool // END_STREAM sent, or ended early
	handlerDone bool
	body        bodyBuffer
	trailers    []hpack.HeaderField
	received    int64 // DATA bytes, for ContentLength
	recvWin     int64 // what the client may still send on the stream
	recvUnacked int64
	sendWin     int64
	waitingBody bool
	waitingFlow bool
	taken       bool // run inline, and the reading was taken over meanwhile
	ctx         context.Context
	cancel      context.CancelFunc

	// Under c.wmu.
	wclosed  bool // END_STREAM or RST_STREAM sent: no more frames
	rstSent  bool
	headSent bool // the final head is written: no 100 Continue after it

	// The handler's.
	status       int
	head         []hpack.HeaderField
	headPending  bool // set by WriteHead, sent with what follows
	final        bool // a final (non-1xx) head was given
	ended        bool
	readDeadline time.Time
	wbuf         []byte
	wbufp        *[]byte // wbuf's pool entry
}

// Reasons a stream ends early.
const (
	goneReset int32 = iota + 1
	goneClosed
	goneWindow
)

// Gone reports, without blocking, whether the stream ended under its
// handler: reset by the client or by the server (a bad body, a window
// kept shut past WriteTimeout), or the connection gone.
func (st *Stream) Gone() bool { return st.why.Load() != 0 }

// Context ends when the stream does: reset, connection closed, or its
// handler returned. It is made on first use.
func (st *Stream) Context() context.Context {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.ctx == nil {
		st.ctx, st.cancel = context.WithCancel(context.Background())
		if st.Gone() || st.handlerDone {
			st.cancel()
		}
	}
	return st.ctx
}

func (st *Stream) failure() error {
	switch st.why.Load() {
	case goneClosed:
		return ErrConnClosed
	case goneWindow:
		return ErrWindowTimeout
	}
	return ErrStreamReset
}

// Read reads the request body; io.EOF ends a whole body, any other
// error a cut one. After io.EOF, Trailers has the request's trailers.
func (st *Stream) Read(p []byte) (int, error) {
	c := st.c
	if st.expectContinue {
		// The reader of the body may not be the handler (an h2c app's
		// transport reads on its own goroutine): whether the final head
		// went already is known under wmu only.
		st.expectContinue = false
		c.lockWrite()
		if !st.headSent && c.writableLocked(st) == nil {
			c.writeHeaders(st.id, 100, nil, false)
		}
		c.unlockWrite(true)
	}
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	var timer *time.Timer
	fired := false // this call's deadline passed (under c.mu)
	for st.body.len() == 0 && !st.recvDone {
		if !st.readDeadline.IsZero() && timer == nil {
			d := time.Until(st.readDeadline)
			if d <= 0 {
				c.mu.Unlock()
				return 0, ErrReadTimeout
			}
			timer = time.AfterFunc(d, func() {
				c.mu.Lock()
				fired = true
				st.cond.Broadcast()
				c.mu.Unlock()
			})
		}
		if fired {
			c.mu.Unlock()
			return 0, ErrReadTimeout
		}
		st.waitingBody = true
		st.cond.Wait()
		st.waitingBody = false
	}
	if timer != nil {
		timer.Stop()
	}
	if st.Gone() {
		c.mu.Unlock()
		return 0, st.failure()
	}
	if st.body.len() == 0 {
		c.mu.Unlock()
		return 0, io.EOF
	}
	n := st.body.read(p)
	c.creditLocked(int64(n))
	var sinc int64
	if !st.recvDone {
		sinc = st.creditLocked(int64(n))
	}
	inc := c.takeCreditLocked()
	c.mu.Unlock()
	c.sendCredit(inc, st.id, sinc, false)
	return n, nil
}

// SetReadDeadline bounds Read's waits for body bytes: past t, Read fails
// with ErrReadTimeout and the stream stays as it is. The zero time
// removes the bound.
func (st *Stream) SetReadDeadline(t time.Time) { st.readDeadline = t }

// creditLocked is conn.creditLocked for the stream's window.
func (st *Stream) creditLocked(n int64) int64 {
	st.recvUnacked += n
	if st.recvUnacked < int64(st.c.cfg.StreamWindow)/2 {
		return 0
	}
	inc := st.recvUnacked
	st.recvWin += inc
	st.recvUnacked = 0
	return inc
}

// Trailers are the request's trailer fields, once Read returned io.EOF.
func (st *Stream) Trailers() []hpack.HeaderField {
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	return st.trailers
}

// WriteHead gives the response head. A 1xx head is sent at once; a
// final one leaves with the first body bytes, Flush or End (so that an
// answer with no body is one HEADERS frame): fields must not change
// until then. Field names may be in any case; connection-specific
// fields are dropped.
func (st *Stream) WriteHead(status int, fields []hpack.HeaderField) error {
	if st.final {
		return errEnded
	}
	if status < 200 {
		c := st.c
		c.lockWrite()
		err := c.writableLocked(st)
		if err == nil {
			c.writeHeaders(st.id, status, fields, false)
		}
		c.unlockWrite(true)
		return err
	}
	st.status, st.final, st.headPending = status, true, true
	st.head = fields
	return nil
}

// Write writes body bytes. They are buffered up to a frame's worth;
// Flush sends them on.
func (st *Stream) Write(p []byte) (int, error) {
	if !st.final {
		return 0, errNoHead
	}
	if st.ended {
		return 0, errEnded
	}
	if st.Gone() {
		return 0, st.failure()
	}
	if st.wbufp == nil {
		st.wbufp = writeBuffers.Get().(*[]byte)
		st.wbuf = (*st.wbufp)[:0]
	}
	if len(st.wbuf)+len(p) > cap(st.wbuf) {
		if err := st.push(st.wbuf, false, nil, false); err != nil {
			return 0, err
		}
		st.wbuf = st.wbuf[:0]
		if len(p) >= cap(st.wbuf) {
			if err := st.push(p, false, nil, false); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	st.wbuf = append(st.wbuf, p...)
	return len(p), nil
}

// WriteString is Write for a string.
func (st *Stream) WriteString(s string) (int, error) {
	if st.wbuf != nil && len(st.wbuf)+len(s) <= cap(st.wbuf) && st.final && !st.ended && !st.Gone() {
		st.wbuf = append(st.wbuf, s...)
		return len(s), nil
	}
	return st.Write([]byte(s))
}

// Flush sends the head and the body bytes written so far.
func (st *Stream) Flush() error {
	if !st.final {
		return errNoHead
	}
	if st.ended {
		return errEnded
	}
	err := st.push(st.wbuf, false, nil, true)
	st.wbuf = st.wbuf[:0]
	return err
}

// End ends the response, with trailers when there are any.
func (st *Stream) End(trailers []hpack.HeaderField) error {
	if !st.final {
		return errNoHead
	}
	if st.ended {
		return errEnded
	}
	st.ended = true
	err := st.push(st.wbuf, true, trailers, true)
	st.releaseWriteBuffer()
	return err
}

// releaseWriteBuffer gives the write buffer back to its pool.
func (st *Stream) releaseWriteBuffer() {
	if st.wbufp != nil {
		*st.wbufp = st.wbuf[:0]
		writeBuffers.Put(st.wbufp)
		st.wbufp, st.wbuf = nil, nil
	}
}

// Reset ends the stream with RST_STREAM: an answer broken off. A stream
// that already ended under its handler (reset by the client, the
// connection gone) is left as it is: no RST_STREAM answers one.
func (st *Stream) Reset(code http2.ErrCode) {
	st.ended = true
	c := st.c
	c.mu.Lock()
	if st.Gone() {
		c.mu.Unlock()
		return
	}
	c.closeStreamLocked(st, goneReset)
	inc := c.takeCreditLocked()
	c.mu.Unlock()
	c.lockWrite()
	c.writeRST(st, st.id, code)
	c.writeWindowUpdates(inc, 0, 0)
	c.unlockWrite(true)
}

// push frames data (with the pending head, and the end of the stream
// with its trailers when end is set) as the send windows allow.
func (st *Stream) push(data []byte, end bool, trailers []hpack.HeaderField, flush bool) error {
	c := st.c
	for {
		k := 0
		if len(data) > 0 {
			var err error
			if k, err = st.takeWindow(len(data)); err != nil {
				return err
			}
		}
		last := k == len(data)
		endNow := end && last
		c.lockWrite()
		if err := c.writableLocked(st); err != nil {
			c.unlockWrite(false)
			st.giveBack(k)
			return err
		}
		closed := false
		if st.headPending {
			st.headPending, st.headSent = false, true
			closed = endNow && k == 0 && trailers == nil
			c.writeHeaders(st.id, st.status, st.head, closed)
		}
		if !closed && (k > 0 || endNow && trailers == nil) {
			closed = endNow && trailers == nil
			c.writeData(st.id, data[:k], closed)
		}
		if endNow && trailers != nil {
			c.writeHeaders(st.id, 0, trailers, true)
			closed = true
		}
		if closed {
			// The stream is done sending before the frame can reach the
			// client, whose next frames may be about it (lock order: wmu,
			// then mu).
			st.wclosed = true
			c.mu.Lock()
			st.sendDone = true
			if st.recvDone {
				c.removeLocked(st)
			}
			c.mu.Unlock()
		}
		c.unlockWrite(flush || endNow)
		data = data[k:]
		if last {
			return nil
		}
	}
}

// takeWindow waits until the stream and the connection may send, and
// takes up to n bytes of both windows (at most a frame). What is
// buffered is flushed before a wait: the client opens windows as it
// reads. A wait lasts at most WriteTimeout.
func (st *Stream) takeWindow(n int) (int, error) {
	c := st.c
	n = min(n, int(c.peerMaxFrame.Load()))
	flushed := false
	var timer *time.Timer
	returned := false // this call is over: a late timer does nothing (under c.mu)
	c.mu.Lock()
	defer func() {
		returned = true
		c.mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if st.Gone() {
			return 0, st.failure()
		}
		if avail := min(c.sendWin, st.sendWin); avail > 0 {
			k := min(int64(n), avail)
			c.sendWin -= k
			st.sendWin -= k
			return int(k), nil
		}
		if !flushed {
			flushed = true
			c.mu.Unlock()
			c.lockWrite()
			c.unlockWrite(true)
			c.mu.Lock()
			continue
		}
		if timer == nil {
			timer = time.AfterFunc(c.cfg.WriteTimeout, func() {
				c.mu.Lock()
				shut := !returned && !st.Gone()
				if shut {
					c.closeStreamLocked(st, goneWindow)
				}
				inc := c.takeCreditLocked()
				c.mu.Unlock()
				if shut {
					c.lockWrite()
					c.writeRST(st, st.id, http2.ErrCodeCancel)
					c.writeWindowUpdates(inc, 0, 0)
					c.unlockWrite(true)
				}
			})
		}
		st.waitingFlow = true
		c.flowWaiters++
		st.cond.Wait()
		c.flowWaiters--
		st.waitingFlow = false
	}
}

// giveBack returns window taken for bytes that were not sent.
func (st *Stream) giveBack(k int) {
	if k == 0 {
		return
	}
	c := st.c
	c.mu.Lock()
	c.sendWin += int64(k)
	st.sendWin += int64(k)
	c.wakeFlowLocked() // another stream may wait for the connection's window
	c.mu.Unlock()
}

// writableLocked reports why frames can no longer be written for st, if
// they cannot; under wmu.
func (c *conn) writableLocked(st *Stream) error {
	switch {
	case c.werr != nil:
		return ErrConnClosed
	case st.wclosed:
		return errEnded
	case st.Gone():
		return st.failure()
	}
	return nil
}

// Write buffers are lent for a stream's answer.
const writeBufferLen = 16 << 10

var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, writeBufferLen); return &b }}

// bodyBuffer holds a request body between the reader and the handler,
// in chunks lent from a pool: at most the stream's window.
type bodyBuffer struct {
	chunks []*bodyChunk
	n      int
}

const chunkSize = 16 << 10

type bodyChunk struct {
	b    [chunkSize]byte
	r, w int
}

var bodyChunks = sync.Pool{New: func() any { return new(bodyChunk) }}

func (b *bodyBuffer) len() int { return b.n }

func (b *bodyBuffer) write(p []byte) {
	b.n += len(p)
	for len(p) > 0 {
		if len(b.chunks) == 0 || b.chunks[len(b.chunks)-1].w == chunkSize {
			ch := bodyChunks.Get().(*bodyChunk)
			ch.r, ch.w = 0, 0
			b.chunks = append(b.chunks, ch)
		}
		ch := b.chunks[len(b.chunks)-1]
		m := copy(ch.b[ch.w:], p)
		ch.w += m
		p = p[m:]
	}
}

func (b *bodyBuffer) read(p []byte) int {
	n := 0
	for n < len(p) && len(b.chunks) > 0 {
		ch := b.chunks[0]
		m := copy(p[n:], ch.b[ch.r:ch.w])
		ch.r += m
		n += m
		if ch.r == ch.w {
			if len(b.chunks) == 1 {
				ch.r, ch.w = 0, 0
				break
			}
			bodyChunks.Put(ch)
			b.chunks[0] = nil
			b.chunks = b.chunks[1:]
		}
	}
	b.n -= n
	return n
}

// reset drops what is buffered and gives the chunks back.
func (b *bodyBuffer) reset() {
	for i, ch := range b.chunks {
		bodyChunks.Put(ch)
		b.chunks[i] = nil
	}
	b.chunks, b.n = nil, 0
}
