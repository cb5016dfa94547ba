package h2

// Frames about streams and the connection, as the reader applies them:
// SETTINGS, PING, WINDOW_UPDATE, RST_STREAM, PRIORITY, GOAWAY and DATA
// (HEADERS are request.go's), flow control on the receiving side, and
// how streams end.

import (
	"time"

	"golang.org/x/net/http2"
)

// process handles one frame.
func (c *conn) process(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.HeadersFrame:
		return c.processHeaders(f)
	case *http2.DataFrame:
		return c.processData(f)
	case *http2.SettingsFrame:
		return c.processSettings(f)
	case *http2.WindowUpdateFrame:
		return c.processWindowUpdate(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			c.lockWrite()
			c.writeFrame(http2.FramePing, http2.FlagPingAck, 0, f.Data[:])
			c.unlockReader()
		}
		return nil
	case *http2.RSTStreamFrame:
		c.mu.Lock()
		st := c.streams[f.StreamID]
		idle := st == nil && f.StreamID > c.maxID
		if st != nil {
			c.closeStreamLocked(st, goneReset)
		}
		inc := c.takeCreditLocked()
		c.mu.Unlock()
		if idle {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.sendCredit(inc, 0, 0, true)
		return nil
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
		return nil
	case *http2.GoAwayFrame:
		if f.ErrCode != http2.ErrCodeNo {
			c.log.Debug("client sent GOAWAY", "code", f.ErrCode, "debug", string(f.DebugData()))
		}
		c.goAway(http2.ErrCodeNo, false)
		return nil
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol) // clients do not push
	default:
		return nil // unknown frame types are ignored (RFC 9113 §4.1)
	}
}

// testHookSettingsApplied, when set by a test, runs after a SETTINGS
// frame is applied and before its ACK is written.
var testHookSettingsApplied func(c *conn)

func (c *conn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	// The settings are applied under the write lock and acknowledged
	// before it is let go, so no frame written under a new setting (DATA
	// in a window the frame opened, taken by a handler woken here) can
	// reach the client ahead of the ACK (RFC 9113 §6.5.3: the ACK is sent
	// at once). A client that waits for the ACK and then for the DATA
	// (h2spec 6.9.2) would otherwise miss the DATA now and then.
	c.lockWrite()
	if err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingHeaderTableSize:
			c.henc.SetMaxDynamicTableSizeLimit(s.Val)
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame.Store(s.Val)
		case http2.SettingInitialWindowSize:
			c.mu.Lock()
			delta := int64(s.Val) - c.peerInitWin
			c.peerInitWin = int64(s.Val)
			for _, st := range c.streams {
				st.sendWin += delta
				if st.sendWin > maxWindow {
					c.mu.Unlock()
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			c.wakeFlowLocked()
			c.mu.Unlock()
		}
		return nil
	}); err != nil {
		c.unlockWrite(false)
		return err
	}
	if testHookSettingsApplied != nil {
		testHookSettingsApplied(c)
	}
	c.writeFrame(http2.FrameSettings, http2.FlagSettingsAck, 0, nil)
	c.unlockReader()
	return nil
}

func (c *conn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		if c.sendWin+inc > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.sendWin += inc
		c.wakeFlowLocked()
		return nil
	}
	st := c.streams[f.StreamID]
	if st == nil {
		if f.StreamID > c.maxID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
		}
		return nil // a closed one: frames in flight
	}
	if st.sendWin+inc > maxWindow {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	st.sendWin += inc
	if st.waitingFlow {
		st.cond.Signal()
	}
	return nil
}

// wakeFlowLocked wakes the handlers waiting for a send window.
func (c *conn) wakeFlowLocked() {
	if c.flowWaiters == 0 {
		return
	}
	for _, st := range c.streams {
		if st.waitingFlow {
			st.cond.Signal()
		}
	}
}

func (c *conn) processData(f *http2.DataFrame) error {
	id, n := f.StreamID, int64(f.Length)
	c.mu.Lock()
	st := c.streams[id]
	if st == nil && id > c.maxID {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeProtocol) // DATA on an idle stream
	}
	if n > c.recvWin {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recvWin -= n
	var err error
	var sinc int64
	switch {
	case st == nil || st.recvDone:
		// Closed, or half-closed by the client: the bytes are dropped and
		// the connection's window given back.
		c.creditLocked(n)
		err = http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	case n > st.recvWin:
		c.creditLocked(n)
		err = http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	default:
		st.recvWin -= n
		data := f.Data()
		st.received += int64(len(data))
		if st.ContentLength >= 0 && st.received > st.ContentLength {
			c.creditLocked(n)
			err = http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
			break
		}
		pad := n - int64(len(data))
		if st.handlerDone {
			pad = n // nobody reads it
		} else if len(data) > 0 {
			st.body.write(data)
			if st.waitingBody {
				st.cond.Signal()
			}
		}
		if pad > 0 {
			c.creditLocked(pad)
			sinc = st.creditLocked(pad)
		}
		if f.StreamEnded() {
			err = c.endRecvLocked(st)
		}
	}
	inc := c.takeCreditLocked()
	c.mu.Unlock()
	c.sendCredit(inc, id, sinc, true)
	return err
}

// creditLocked counts n bytes the client may send again on the
// connection. The window is given back in halves, not frame by frame:
// once half of it is due, takeCreditLocked hands the increment to send.
func (c *conn) creditLocked(n int64) {
	c.recvUnacked += n
	if c.recvUnacked >= int64(c.cfg.ConnWindow)/2 {
		c.recvWin += c.recvUnacked
		c.creditDue += c.recvUnacked
		c.recvUnacked = 0
	}
}

// takeCreditLocked takes the connection WINDOW_UPDATE increment due.
func (c *conn) takeCreditLocked() int64 {
	inc := c.creditDue
	c.creditDue = 0
	return inc
}

// sendCredit sends the WINDOW_UPDATEs due: inc on the connection, sinc
// on stream id. reader: the frame reader sends them.
func (c *conn) sendCredit(inc int64, id uint32, sinc int64, reader bool) {
	if inc == 0 && sinc == 0 {
		return
	}
	c.lockWrite()
	c.writeWindowUpdates(inc, id, sinc)
	if reader {
		c.unlockReader()
	} else {
		c.unlockWrite(true)
	}
}

// streamError resets the stream of se.
func (c *conn) streamError(se http2.StreamError) {
	c.mu.Lock()
	st := c.streams[se.StreamID]
	if st != nil {
		c.closeStreamLocked(st, goneReset)
	}
	inc := c.takeCreditLocked()
	c.mu.Unlock()
	if se.Cause != nil {
		c.log.Debug("stream error", "stream", se.StreamID, "code", se.Code, "error", se.Cause)
	}
	c.lockWrite()
	c.writeRST(st, se.StreamID, se.Code)
	c.writeWindowUpdates(inc, 0, 0)
	c.unlockReader()
}

// closeStreamLocked ends a stream before its time: reset, or the
// connection gone (why). Its handler sees failure(); its unread body is dropped and
// the connection's window for it given back (the caller sends what
// takeCreditLocked gives).
func (c *conn) closeStreamLocked(st *Stream, why int32) {
	if st.Gone() {
		return
	}
	st.why.Store(why)
	st.recvDone, st.sendDone = true, true
	if n := int64(st.body.len()); n > 0 {
		st.body.reset()
		c.creditLocked(n)
	}
	c.removeLocked(st)
	if st.cancel != nil {
		st.cancel()
	}
	st.cond.Broadcast()
}

// endRecvLocked marks the request's body complete. A body whose length
// is not its content-length is malformed (RFC 9113 §8.1.1).
func (c *conn) endRecvLocked(st *Stream) error {
	st.recvDone = true
	if st.waitingBody {
		st.cond.Signal()
	}
	if st.ContentLength >= 0 && st.received != st.ContentLength {
		// Closed here, under mu, so that no Read takes the short body
		// for a whole one.
		c.closeStreamLocked(st, goneReset)
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	if st.sendDone {
		c.removeLocked(st)
	}
	return nil
}

// removeLocked forgets a stream that ended both ways.
func (c *conn) removeLocked(st *Stream) {
	if c.streams[st.id] != st {
		return
	}
	delete(c.streams, st.id)
	if len(c.streams) == 0 && c.running == 0 {
		c.becameIdleLocked()
	}
}

// becameIdleLocked notes the start of an idle spell, and ends a
// connection that was going away.
func (c *conn) becameIdleLocked() {
	c.idleSince = time.Now()
	if c.goingAway && !c.closed {
		go c.closeSoon() // not under mu: CloseWrite may wait for a write
	}
}
