package h2

// The write side of a connection: frames go to a buffered writer under
// wmu, and the last writer out flushes.

import (
	"encoding/binary"
	"strconv"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

// lockWrite takes the write lock, counted while it waits so that the
// writer before can leave the flush to it.
func (c *conn) lockWrite() {
	c.waiting.Add(1)
	c.wmu.Lock()
	c.waiting.Add(-1)
}

// unlockWrite leaves the write lock. flush asks for what was written to
// reach the client; it is done now unless another writer waits for the
// lock, which then flushes for both (flushWanted stays set until a
// flush). Without flush the bytes wait for the next writer that asks.
func (c *conn) unlockWrite(flush bool) {
	if flush {
		c.flushWanted = true
	}
	if c.flushWanted && c.waiting.Load() == 0 {
		c.flushWanted = false
		if c.werr == nil {
			if err := c.bw.Flush(); err != nil {
				c.writeFailed(err)
			}
		}
	}
	c.wmu.Unlock()
}

// unlockReader is the reader's unlockWrite: while more whole frames are
// buffered it answers them first and flushes once, before it waits.
func (c *conn) unlockReader() {
	if c.frameBuffered() {
		c.flushDue.Store(true)
		c.unlockWrite(false)
		return
	}
	c.flushDue.Store(false)
	c.unlockWrite(true)
}

// writeFailed records the first write error and closes the connection,
// which ends the reader and with it every stream.
func (c *conn) writeFailed(err error) {
	if c.werr == nil {
		c.werr = err
		c.log.Debug("connection write failed", "error", err)
		c.nc.Close()
	}
}

const frameHeaderLen = 9

// frameBuffered reports whether a whole frame is buffered, which the
// reader takes without waiting for the socket; the reader's only.
func (c *conn) frameBuffered() bool {
	n := c.br.Buffered()
	if n < frameHeaderLen {
		return false
	}
	h, _ := c.br.Peek(frameHeaderLen)
	return n >= frameHeaderLen+(int(h[0])<<16|int(h[1])<<8|int(h[2]))
}

// writeFrame writes one frame; under wmu.
func (c *conn) writeFrame(t http2.FrameType, flags http2.Flags, id uint32, payload []byte) {
	if c.werr != nil {
		return
	}
	n := len(payload)
	h := c.fh[:]
	h[0], h[1], h[2], h[3], h[4] = byte(n>>16), byte(n>>8), byte(n), byte(t), byte(flags)
	binary.BigEndian.PutUint32(h[5:], id&(1<<31-1))
	_, _ = c.bw.Write(h)
	if n > 0 {
		if _, err := c.bw.Write(payload); err != nil {
			c.writeFailed(err)
		}
	}
}

// writeSettings sends the server's connection preface: its SETTINGS,
// and the connection window opened to ConnWindow.
func (c *conn) writeSettings() {
	var p [18]byte
	for i, s := range []http2.Setting{
		{ID: http2.SettingMaxConcurrentStreams, Val: c.cfg.MaxConcurrentStreams},
		{ID: http2.SettingInitialWindowSize, Val: c.cfg.StreamWindow},
		{ID: http2.SettingMaxHeaderListSize, Val: c.cfg.MaxHeaderListSize},
	} {
		binary.BigEndian.PutUint16(p[6*i:], uint16(s.ID))
		binary.BigEndian.PutUint32(p[6*i+2:], s.Val)
	}
	c.lockWrite()
	c.writeFrame(http2.FrameSettings, 0, 0, p[:])
	if inc := c.cfg.ConnWindow - initialWindow; inc > 0 {
		c.writeWindowUpdates(int64(inc), 0, 0)
	}
	c.unlockWrite(true)
}

// writeGoAway writes a GOAWAY; under wmu.
func (c *conn) writeGoAway(last uint32, code http2.ErrCode) {
	var p [8]byte
	binary.BigEndian.PutUint32(p[:], last)
	binary.BigEndian.PutUint32(p[4:], uint32(code))
	c.writeFrame(http2.FrameGoAway, 0, 0, p[:])
}

// writeRST resets stream id, once; under wmu. st is nil for a stream no
// longer known.
func (c *conn) writeRST(st *Stream, id uint32, code http2.ErrCode) {
	if st != nil {
		if st.rstSent {
			return
		}
		st.rstSent, st.wclosed = true, true
	}
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(code))
	c.writeFrame(http2.FrameRSTStream, 0, id, p[:])
}

// writeWindowUpdates gives the client back connInc bytes on the
// connection and streamInc on stream id; under wmu.
func (c *conn) writeWindowUpdates(connInc int64, id uint32, streamInc int64) {
	var p [4]byte
	if connInc > 0 {
		binary.BigEndian.PutUint32(p[:], uint32(connInc))
		c.writeFrame(http2.FrameWindowUpdate, 0, 0, p[:])
	}
	if streamInc > 0 {
		binary.BigEndian.PutUint32(p[:], uint32(streamInc))
		c.writeFrame(http2.FrameWindowUpdate, 0, id, p[:])
	}
}

// writeHeaders writes a header block: a response head when status is
// set, trailers when it is 0. Field names are lower-cased; pseudo,
// connection-specific and invalid fields are dropped, so no handler can
// send what HTTP/2 forbids. Under wmu.
func (c *conn) writeHeaders(id uint32, status int, fields []hpack.HeaderField, end bool) {
	c.hbuf.Reset()
	if status != 0 {
		_ = c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: statusValue(status)})
	}
	for _, f := range fields {
		name, ok := wireName(f.Name)
		if !ok || connectionSpecific(name) || !http1.ValidValue(f.Value) {
			continue
		}
		_ = c.henc.WriteField(hpack.HeaderField{Name: name, Value: f.Value, Sensitive: f.Sensitive})
	}
	block := c.hbuf.Bytes()
	limit := int(c.peerMaxFrame.Load())
	var flags http2.Flags
	if end {
		flags = http2.FlagHeadersEndStream
	}
	t := http2.FrameHeaders
	for {
		frag := block[:min(len(block), limit)]
		block = block[len(frag):]
		f := flags
		if len(block) == 0 {
			f |= http2.FlagHeadersEndHeaders
		}
		c.writeFrame(t, f, id, frag)
		if len(block) == 0 {
			return
		}
		t, flags = http2.FrameContinuation, 0
	}
}

// writeData writes one DATA frame; under wmu.
func (c *conn) writeData(id uint32, p []byte, end bool) {
	var flags http2.Flags
	if end {
		flags = http2.FlagDataEndStream
	}
	c.writeFrame(http2.FrameData, flags, id, p)
}

// statusValues are the :status values, made once.
var statusValues = func() (v [600]string) {
	for i := 100; i < len(v); i++ {
		v[i] = strconv.Itoa(i)
	}
	return v
}()

func statusValue(status int) string {
	if status >= 100 && status < len(statusValues) {
		return statusValues[status]
	}
	return strconv.Itoa(status)
}

// lowerNames are the lower-case forms of common field names as HTTP/1.1
// servers and net/http spell them, so that relaying them allocates
// nothing.
var lowerNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{
		"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
		"Access-Control-Max-Age", "Age", "Allow", "Alt-Svc", "Cache-Control", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Location", "Content-Range",
		"Content-Security-Policy", "Content-Type", "Cross-Origin-Opener-Policy", "Date", "ETag", "Etag",
		"Expires", "Grpc-Encoding", "Grpc-Message", "Grpc-Status", "Last-Modified", "Link", "Location",
		"Permissions-Policy", "Referrer-Policy", "Retry-After", "Server", "Set-Cookie",
		"Strict-Transport-Security", "Timing-Allow-Origin", "Vary", "Via", "WWW-Authenticate",
		"Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options", "X-Powered-By",
		"X-Request-Id", "X-Xss-Protection",
	} {
		l := strings.ToLower(n)
		m[n], m[l] = l, l
	}
	return m
}()

// LowerName gives a field name in lower case, as HTTP/2 sends it; the
// common names without allocating.
func LowerName(b []byte) string {
	if l, ok := lowerNames[string(b)]; ok {
		return l
	}
	return strings.ToLower(string(b))
}

// wireName gives a field name as HTTP/2 writes it, lower case; ok is
// false for a name that is not a token.
func wireName(name string) (string, bool) {
	if !http1.ValidToken(name) {
		return "", false
	}
	if !hasUpper(name) {
		return name, true
	}
	if l, ok := lowerNames[name]; ok {
		return l, true
	}
	return strings.ToLower(name), true
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// connectionSpecific reports the fields HTTP/2 forbids (RFC 9113
// §8.2.2), lower case.
func connectionSpecific(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te":
		return true
	}
	return false
}
