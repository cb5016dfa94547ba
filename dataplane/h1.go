package dataplane

// The HTTP/1.1 front end's side of an exchange (downstream, forward.go):
// bodies read from the client connection's buffer, answers written to it
// with the codec (http1).
//
//   - A client that stops sending its body is cut off at request_timeout.
//   - Upgrades (WebSocket and any other "Connection: upgrade" request) are
//     forwarded with their Upgrade and Connection headers; on a 101 answer
//     the client and instance connections are spliced until either side
//     closes. request_timeout stops counting at the 101.
//   - 1xx informational answers (103 Early Hints) are forwarded to
//     HTTP/1.1 clients.
//   - A client that goes away cancels the request to the instance: while
//     the proxy waits on the instance it checks the client's connection
//     every clientCheckInterval, and a failed write to the client ends the
//     exchange; either way the instance's connection is closed.

import (
	"errors"
	"net/http"
	"time"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

func (c *clientConn) info() *forwardInfo { return &c.fi }

func (c *clientConn) outBuf() *[]byte { return &c.out }

func (c *clientConn) exch() *exchange { return &c.ex }

// bodyInHand: a Content-Length body that arrived whole with the head is
// in the read buffer, and can be written twice.
func (c *clientConn) bodyInHand(r *request) bool {
	return !r.Framing.Chunked && r.Framing.Length <= int64(c.br.Buffered())
}

func (c *clientConn) doneBody(r *request) { _, _ = c.br.Discard(int(r.Framing.Length)) }

// writeBody writes the body from the buffer when it is there whole, or
// streams it from the client: after a 100 Continue when the client asked
// for one, re-framed when chunked, within request_timeout.
func (c *clientConn) writeBody(ex *exchange, bc *http1.Conn) error {
	r := ex.r
	if ex.buffered {
		body, _ := c.br.Peek(int(r.Framing.Length))
		_, _ = bc.BW.Write(body)
		return nil
	}
	if r.Expect100 && !r.HTTP10 && !ex.continued {
		ex.continued = true
		_, _ = c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := c.bw.Flush(); err != nil {
			return errClientGone
		}
	}
	ex.bodyStarted = true
	// An instance that stops reading the body, or a client that stops
	// sending it, cannot hold the request beyond request_timeout.
	_ = bc.NC.SetWriteDeadline(ex.deadline)
	c.setReadDeadline(ex.deadline)
	var err error
	if r.Framing.Chunked {
		err = http1.CopyChunked(bc.BW, c.br, nil, trailerAllowed)
	} else {
		err = http1.CopyN(bc.BW, c.br, r.Framing.Length, nil)
	}
	if err == nil {
		err = bc.BW.Flush()
	}
	if http1.IsTimeout(err) {
		err = ErrTimeout
	}
	_ = bc.NC.SetWriteDeadline(time.Time{})
	if err != nil {
		var ce *http1.CopyError // here: it escapes, and would cost an allocation per request
		if errors.As(err, &ce) && !ce.Write && !errors.Is(err, http1.ErrBadChunk) {
			return errClientGone // the client's body broke off
		}
	}
	return err
}

// informational forwards a 1xx answer to an HTTP/1.1 client (an HTTP/1.0
// one gets none).
func (c *clientConn) informational(ex *exchange, head []byte) error {
	if ex.r.HTTP10 {
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

// relay writes the response head and body to the client, and returns the
// instance connection to the pool when the exchange left it clean.
func (c *clientConn) relay(ex *exchange) bool {
	r, res, bc := ex.r, &ex.res, ex.bc
	ex.status = res.Status
	keep := r.KeepAlive() && !c.s.closing.Load()
	mode, reuse := http1.BodyMode(r.Method, r.HTTP10, res)
	if mode == http1.BodyDechunk || mode == http1.BodyEOFRaw {
		keep = false
	}
	w := c.bw
	http1.WriteResponseHead(w, bc.Head, res, r.HTTP10, mode, keep, c.out[:0])
	if res.Status == http.StatusSwitchingProtocols {
		tunnel(c, bc)
		return false
	}
	err := http1.RelayBody(w, bc.BR, res, mode, ex.waitBody, trailerAllowed)
	if err == nil {
		if err = w.Flush(); err != nil {
			err = http1.WriteErr(err)
		}
	}
	if err != nil {
		bc.Close()
		var ce *http1.CopyError
		if errors.As(err, &ce) && !ce.Write && !errors.Is(err, errClientGone) {
			ex.p.logger.Debug("response body broke off", "app", ex.a.name, "instance", ex.b.instance, "error", err)
		}
		return false
	}
	if !reuse {
		bc.Close()
	} else {
		ex.b.pool.Put(bc, ex.start)
	}
	return keep
}

// tunnel splices an upgraded client connection and its instance
// connection until either side closes, then closes both.
func tunnel(c *clientConn, bc *http1.Conn) {
	_ = c.nc.SetDeadline(time.Time{})
	c.wr.Forget()
	_ = bc.NC.SetDeadline(time.Time{})
	if c.bw.Flush() != nil {
		bc.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		_, _ = c.br.WriteTo(bc.NC) // what the client sent early, then its connection
		done <- struct{}{}
	}()
	go func() {
		_, _ = bc.BR.WriteTo(&c.wr) // under send_timeout, as any answer
		done <- struct{}{}
	}()
	<-done
	c.nc.Close()
	bc.Close()
	<-done
}
