package dataplane

// The HTTP/1.1 front end's side of an exchange (downstream, forward.go):
// bodies read from the client connection's buffer, answers written to it.

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"time"
)

func (c *clientConn) info() *forwardInfo { return &c.fi }

func (c *clientConn) outBuf() *[]byte { return &c.out }

func (c *clientConn) exch() *exchange { return &c.ex }

// bodyInHand: a Content-Length body that arrived whole with the head is
// in the read buffer, and can be written twice.
func (c *clientConn) bodyInHand(r *request) bool {
	return !r.framing.chunked && r.framing.length <= int64(c.br.Buffered())
}

func (c *clientConn) doneBody(r *request) { _, _ = c.br.Discard(int(r.framing.length)) }

// writeBody writes the body from the buffer when it is there whole, or
// streams it from the client: after a 100 Continue when the client asked
// for one, re-framed when chunked, within request_timeout.
func (c *clientConn) writeBody(ex *exchange, bc *bconn) error {
	r := ex.r
	if ex.buffered {
		body, _ := c.br.Peek(int(r.framing.length))
		_, _ = bc.bw.Write(body)
		return nil
	}
	if r.expect100 && !r.http10 && !ex.continued {
		ex.continued = true
		_, _ = c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := c.bw.Flush(); err != nil {
			return errClientGone
		}
	}
	ex.bodyStarted = true
	// An instance that stops reading the body, or a client that stops
	// sending it, cannot hold the request beyond request_timeout.
	_ = bc.nc.SetWriteDeadline(ex.deadline)
	c.setReadDeadline(ex.deadline)
	var err error
	if r.framing.chunked {
		err = copyChunked(bc.bw, c.br, nil)
	} else {
		err = copyN(bc.bw, c.br, r.framing.length, nil)
	}
	if err == nil {
		err = bc.bw.Flush()
	}
	if isTimeout(err) {
		err = ErrTimeout
	}
	_ = bc.nc.SetWriteDeadline(time.Time{})
	if err != nil {
		var ce *copyErr // here: it escapes, and would cost an allocation per request
		if errors.As(err, &ce) && !ce.write && !errors.Is(err, errBadChunk) {
			return errClientGone // the client's body broke off
		}
	}
	return err
}

// informational forwards a 1xx answer to an HTTP/1.1 client (an HTTP/1.0
// one gets none).
func (c *clientConn) informational(ex *exchange, head []byte) error {
	if ex.r.http10 {
		return nil
	}
	_, _ = c.bw.Write(head)
	if c.bw.Flush() != nil {
		return errClientGone
	}
	return nil
}

func (c *clientConn) sent() int64 { return c.wr.n + int64(c.bw.Buffered()) }

func (c *clientConn) writeError(r *request, err error, keep bool) int {
	return c.p.writeError(c, r, err, keep)
}

// Response body framings towards the client.
const (
	bodyNone    = iota
	bodyLength  // Content-Length, as the instance sent it
	bodyChunked // chunked, passed through
	bodyDechunk // chunked from the instance, decoded for an HTTP/1.0 client
	bodyEOF     // until the instance closes, chunk-encoded for HTTP/1.1
	bodyEOFRaw  // until the instance closes, to an HTTP/1.0 client
)

// responseBodyMode is how relay frames the body of res, the answer to a
// request with method from a client speaking HTTP/1.0 (http10) or 1.1,
// and whether the instance connection can carry another exchange after
// it (reuse).
func responseBodyMode(method string, http10 bool, res *response) (mode int, reuse bool) {
	noBody := method == "HEAD" || res.status < 200 || res.status == 204 || res.status == 304
	// A 204 or 304 that announces a body may send one, which would be
	// read as the next response: its connection is not reused.
	dirty := method != "HEAD" && (res.status == 204 && (res.chunked || res.length >= 0) ||
		res.status == 304 && res.chunked)
	switch {
	case noBody:
	case res.chunked && http10:
		mode = bodyDechunk
	case res.chunked:
		mode = bodyChunked
	case res.length >= 0:
		mode = bodyLength
	case http10:
		mode = bodyEOFRaw
	default:
		mode = bodyEOF
	}
	reuse = !res.close && !dirty && mode != bodyEOF && mode != bodyEOFRaw && mode != bodyDechunk
	return mode, reuse
}

// relay writes the response head and body to the client, and returns the
// instance connection to the pool when the exchange left it clean.
func (c *clientConn) relay(ex *exchange) bool {
	r, res, bc := ex.r, &ex.res, ex.bc
	ex.status = res.status
	keep := r.keepAlive() && !c.s.closing.Load()
	mode, reuse := responseBodyMode(r.method, r.http10, res)
	noBody := mode == bodyNone
	if mode == bodyDechunk || mode == bodyEOFRaw {
		keep = false
	}
	w := c.bw
	if r.http10 {
		_, _ = w.WriteString("HTTP/1.0")
	} else {
		_, _ = w.WriteString("HTTP/1.1")
	}
	line, rest := cutLine(bc.head)
	_, _ = w.Write(line[8:])
	_, _ = w.WriteString("\r\n")
	for {
		line, rest = cutLine(rest)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if responseDrop(string(line[:colon]), res, bc.head) {
			continue
		}
		_, _ = w.Write(line)
		_, _ = w.WriteString("\r\n")
	}
	switch {
	case res.status == http.StatusSwitchingProtocols:
		_, _ = w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		_, _ = w.WriteString(res.upgrade)
		_, _ = w.WriteString("\r\n\r\n")
		tunnel(c, bc)
		return false
	case res.status == 204 || (res.status == 304 && res.chunked):
		// no framing: these never have a body (RFC 9110 8.6, 6.4.1)
	case res.chunked && (mode == bodyChunked || noBody):
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	case res.length >= 0:
		_, _ = w.WriteString("Content-Length: ")
		_, _ = w.Write(strconv.AppendInt(c.out[:0], res.length, 10))
		_, _ = w.WriteString("\r\n")
	case mode == bodyEOF:
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	endHead(w, keep, r.http10)
	var err error
	switch mode {
	case bodyLength:
		err = copyN(w, bc.br, res.length, ex.waitBody)
	case bodyChunked:
		err = copyChunked(w, bc.br, ex.waitBody)
	case bodyDechunk:
		err = copyDechunked(w, bc.br, ex.waitBody)
	case bodyEOF, bodyEOFRaw:
		err = copyToEOF(w, bc.br, mode == bodyEOF, ex.waitBody)
	}
	if err == nil {
		if err = w.Flush(); err != nil {
			err = writeErr(err)
		}
	}
	if err != nil {
		bc.nc.Close()
		var ce *copyErr
		if errors.As(err, &ce) && !ce.write && !errors.Is(err, errClientGone) {
			ex.p.logger.Debug("response body broke off", "app", ex.a.name, "instance", ex.b.instance, "error", err)
		}
		return false
	}
	if !reuse {
		bc.nc.Close()
	} else {
		ex.b.putConn(bc, ex.start)
	}
	return keep
}

// endHead ends an answer's head to an HTTP/1.x client with the connection
// field it needs: close when the connection ends after it, keep-alive for
// an HTTP/1.0 client that keeps it.
func endHead(w *bufio.Writer, keep, http10 bool) {
	switch {
	case !keep:
		_, _ = w.WriteString("Connection: close\r\n\r\n")
	case http10:
		_, _ = w.WriteString("Connection: keep-alive\r\n\r\n")
	default:
		_, _ = w.WriteString("\r\n")
	}
}
