package dataplane

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// serveRequest routes a parsed request, activates its app if need be,
// forwards it and answers the client. It reports whether the client
// connection can carry another request.
func (p *Proxy) serveRequest(c *clientConn, r *request) bool {
	var start time.Time
	if p.accessLog != nil {
		start = time.Now()
	}
	// Without a body, or with one not read at all, the connection can
	// carry on after an error answer only if the body is skipped.
	a, err := p.resolve(c, r)
	if err == nil && a != nil {
		if b := a.pick(nil); b != nil {
			ex := exchange{p: p, c: c, r: r, a: a, b: b}
			keep := ex.run()
			ex.b.outstanding.Add(-1)
			p.finish(r, ex.a, ex.b, ex.status, start)
			return keep
		}
		err = newError(ErrUnavailable, a, nil)
	}
	keep := !r.hasBody() && r.keepAlive()
	status := p.writeError(c, r, err, keep)
	p.finish(r, a, nil, status, start)
	return keep && status != statusClientClosed
}

// resolve finds the app for a request and makes sure it can take it,
// activating it when it has no ready instance.
func (p *Proxy) resolve(c *clientConn, r *request) (*app, error) {
	t := p.table.Load()
	if !t.synced {
		return nil, newError(ErrNotSynced, nil, nil)
	}
	a := t.route(normalizeHost(r.host), r.path)
	if a == nil {
		return nil, newError(ErrNoRoute, nil, nil)
	}
	if a.serving() {
		return a, nil
	}
	ctx, release := c.context(context.Background())
	na, err := p.admit(ctx, a)
	release()
	if err != nil {
		return a, err
	}
	return na, nil
}

// exchange is one request forwarded to an instance: its attempts and the
// relay of the answer.
type exchange struct {
	p    *Proxy
	c    *clientConn
	r    *request
	a    *app
	b    *backend // the instance of the current attempt
	from *backend // the instance of the first attempt, after a retry
	bc   *bconn

	start       time.Time
	deadline    time.Time // request_timeout, up to the response head, over all attempts
	bodyStarted bool      // the client's body is being read: no replay
	buffered    bool      // the body was buffered whole: it can be replayed
	continued   bool      // 100 Continue sent to the client
	status      int
	res         response

	// Of the current attempt, for the retry rule (see retry):
	reused   bool // on a pooled connection
	wrote    bool // the instance's socket took bytes of the request
	answered bool // a byte of an answer arrived (a 1xx counts)
	timedOut bool // request_timeout passed waiting for the response head
}

// Idempotent methods (RFC 9110 9.2.2) that may be sent again when their
// connection failed before any answer.
func idempotent(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

// run forwards the request and relays the answer, with at most one retry
// (see retry). It reports whether the client connection can carry
// another request.
func (ex *exchange) run() bool {
	p, r := ex.p, ex.r
	ex.start = time.Now()
	ex.deadline = ex.start.Add(ex.a.requestTimeout)
	ex.buffered = r.hasBody() && !r.framing.chunked && r.framing.length <= int64(ex.c.br.Buffered())
	err := ex.attempt(false)
	ex.observe(err)
	if err != nil && ex.retryable(err) {
		if ex.retarget(err) {
			err = ex.attempt(ex.reused && !ex.switched())
			ex.observe(err)
		}
	}
	a := ex.a
	if ex.buffered {
		_, _ = ex.c.br.Discard(int(r.framing.length))
	}
	if err != nil {
		re := newError(ErrBackend, a, err)
		re.instance = int(ex.b.instance)
		switch {
		case errors.Is(err, ErrTimeout):
			re.kind = ErrTimeout
		case errors.Is(err, errClientGone):
			re.kind = context.Canceled
		case errors.Is(err, errBadChunk):
			re.kind = ErrBadFraming // the client's chunked body
		}
		keep := r.keepAlive() && (!r.hasBody() || ex.buffered) && !errors.Is(err, errBadChunk)
		ex.status = p.writeError(ex.c, r, re, keep)
		return keep && ex.status != statusClientClosed
	}
	return ex.relay()
}

// retryable is the retry rule of the contract, for the first attempt's
// error:
//
//   - a request that never reached its instance (the dial failed, or a
//     connection broke before its socket took a byte) is sent again,
//     whatever its method, if its body can be sent again (none, or one
//     read whole into the buffer);
//   - an idempotent request (GET, HEAD, OPTIONS, PUT, DELETE, TRACE)
//     whose connection failed after it was sent but before any byte of
//     an answer may be sent again, on the same condition about its body;
//   - nothing else is: not a POST or PATCH that reached an instance, not
//     a request that timed out (it already waited request_timeout), not
//     one that got part of an answer, not one whose client left.
//
// There is one retry in all, whatever path it takes (another instance, a
// fresh connection to the same one, or a wait for the control plane to
// publish one).
func (ex *exchange) retryable(err error) bool {
	if !isConnFailure(err) || ex.answered || ex.timedOut || (ex.bodyStarted && !ex.buffered) {
		return false
	}
	return !ex.wrote || idempotent(ex.r.method)
}

// observe feeds an attempt's outcome to passive health: an instance that
// refuses or breaks a fresh connection is ejected at once, and one that
// lets ejectAfterTimeouts requests in a row time out before their
// response head, as if it had refused. A failed pooled connection says
// little about the instance (it may have closed an idle connection as the
// request went out) and ejects nothing.
func (ex *exchange) observe(err error) {
	b := ex.b
	switch {
	case err == nil:
		if b.timeouts.Load() != 0 {
			b.timeouts.Store(0)
		}
	case ex.timedOut:
		if n := b.timeouts.Add(1); n >= ejectAfterTimeouts && ex.p.eject(ex.a, b) {
			ex.p.logger.Warn("instance ejected after timeouts", "app", ex.a.name, "instance", b.instance, "timeouts", n)
		}
	case isConnFailure(err) && !ex.reused:
		ex.p.eject(ex.a, b)
	}
}

// retarget points the exchange at the instance of its retry: another
// instance if the app has one; else, after a failed pooled connection,
// the same instance over a fresh connection; else (the app's only
// instance refused: it crashed, or the control plane restarted and took
// its instances along) whatever instance the control plane gets ready,
// waited for as a first request waits, within request_timeout. It
// reports false when there is none.
func (ex *exchange) retarget(err error) bool {
	p, a, failed := ex.p, ex.a, ex.b
	if nb := a.pick(failed); nb != nil {
		p.logger.Debug("retrying on another instance", "app", a.name,
			"instance", failed.instance, "next_instance", nb.instance, "error", err)
		ex.switchTo(a, nb)
		return true
	}
	if ex.reused {
		p.logger.Debug("retrying on a fresh connection", "app", a.name, "instance", failed.instance, "error", err)
		failed.outstanding.Add(1)
		ex.switchTo(a, failed)
		return true
	}
	return ex.reactivate()
}

// switched reports whether the exchange's retry goes to another instance
// than its first attempt; retarget records it in ex.from.
func (ex *exchange) switched() bool { return ex.from != ex.b }

// reactivate waits, as a request for an idle app does, until the control
// plane reports the app ready again and the table has an instance other
// than the one that failed, then points the exchange at it. The wait
// ends at request_timeout, or when the client leaves; it reports false
// then, or when the activation fails.
func (ex *exchange) reactivate() bool {
	ctx, cancel := context.WithDeadline(context.Background(), ex.deadline)
	defer cancel()
	ctx, release := ex.c.context(ctx)
	defer release()
	failed := ex.b
	for {
		t := ex.p.table.Load()
		na, err := ex.p.admit(ctx, ex.a)
		if err != nil || na == nil {
			ex.p.logger.Debug("no instance after re-activation", "app", ex.a.name, "error", err)
			if time.Now().After(ex.deadline) {
				ex.timedOut = true
			}
			return false
		}
		if nb := na.pick(failed); nb != nil {
			ex.switchTo(na, nb)
			return true
		}
		// The table still has only the instance that just failed: the
		// control plane has not seen it go yet. Wait for the news.
		select {
		case <-t.next:
		case <-ctx.Done():
			ex.timedOut = !time.Now().Before(ex.deadline)
			return false
		}
	}
}

// switchTo moves the exchange to instance b (of app a, the same or a newer
// table's) for its retry.
func (ex *exchange) switchTo(a *app, b *backend) {
	ex.from = ex.b
	ex.b.outstanding.Add(-1)
	ex.a, ex.b = a, b
	ex.p.stats.retries.Add(1)
}

// attempt sends the request to ex.b and reads the response head into
// ex.res, over a pooled connection or, with fresh, a new one. A pooled
// connection found closed before use is closed unused (getConn).
func (ex *exchange) attempt(fresh bool) error {
	ex.reused, ex.wrote, ex.answered, ex.timedOut = false, false, false, false
	var bc *bconn
	var err error
	if fresh {
		bc, err = ex.b.dial()
	} else {
		bc, err = ex.b.getConn()
	}
	if err != nil {
		return err
	}
	ex.bc, ex.reused = bc, bc.reused
	sent := bc.sent.n
	err = ex.send(bc)
	ex.wrote = bc.sent.n > sent
	if err == nil {
		err = ex.readResponse(bc)
	}
	if err != nil {
		ex.bc = nil
		bc.nc.Close()
	}
	return err
}

// send writes the request head and body to bc.
func (ex *exchange) send(bc *bconn) error {
	c, r := ex.c, ex.r
	c.fi.token, c.fi.aspnet, c.fi.backend = ex.b.token, ex.a.aspnet, ex.b.addr
	c.out = appendRequestHead(c.out[:0], r, &c.fi)
	_, _ = bc.bw.Write(c.out)
	var err error
	switch {
	case !r.hasBody():
	case ex.buffered:
		body, _ := c.br.Peek(int(r.framing.length))
		_, _ = bc.bw.Write(body)
	default:
		if r.expect100 && !r.http10 && !ex.continued {
			ex.continued = true
			_, _ = c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := c.bw.Flush(); err != nil {
				return errClientGone
			}
		}
		ex.bodyStarted = true
		// An instance that stops reading the body, or a client that
		// stops sending it, cannot hold the request beyond
		// request_timeout.
		_ = bc.nc.SetWriteDeadline(ex.deadline)
		c.setReadDeadline(ex.deadline)
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
	}
	if err == nil {
		err = bc.bw.Flush()
	}
	if err != nil {
		var ce *copyErr // here: it escapes, and would cost an allocation per request
		if errors.As(err, &ce) && !ce.write {
			return errClientGone // the client's body broke off
		}
	}
	return err
}

// readResponse reads the response head, forwarding 1xx answers, within
// request_timeout and while the client is there.
func (ex *exchange) readResponse(bc *bconn) error {
	// A deadline left by the connection's last exchange serves if it is
	// not too close and not beyond request_timeout: timeouts are checked
	// in waitHead anyway.
	if left := bc.rdl.Sub(ex.start); left < clientCheckInterval/2 || bc.rdl.After(ex.deadline) {
		bc.setReadDeadline(ex.nextCheck(ex.start, ex.deadline))
	}
	for {
		if err := bc.readHead(ex.waitHead); err != nil {
			if len(bc.head) > 0 {
				ex.answered = true
			}
			return err
		}
		ex.answered = true
		if err := parseResponse(bc.head, &ex.res); err != nil {
			return err
		}
		if s := ex.res.status; s >= 200 {
			return nil
		}
		if ex.res.status == http.StatusSwitchingProtocols {
			if !ex.r.isUpgrade() {
				return errBadResponse // a tunnel nobody asked for
			}
			return nil
		}
		if !ex.r.http10 { // 1xx: forward, then wait for the final answer
			_, _ = ex.c.bw.Write(bc.head)
			if ex.c.bw.Flush() != nil {
				return errClientGone
			}
		}
	}
}

// nextCheck is the read deadline of the next wait on the instance.
func (ex *exchange) nextCheck(now, limit time.Time) time.Time {
	t := now.Add(clientCheckInterval)
	if !limit.IsZero() && limit.Before(t) {
		return limit
	}
	return t
}

// waitHead is called when a wait for the response head times out.
func (ex *exchange) waitHead() error {
	now := time.Now()
	if !now.Before(ex.deadline) {
		ex.timedOut = true
		return ErrTimeout
	}
	if ex.c.gone() {
		return errClientGone
	}
	ex.bc.setReadDeadline(ex.nextCheck(now, ex.deadline))
	return nil
}

// waitBody is called when a wait for more of the response body times out.
func (ex *exchange) waitBody() error {
	if ex.c.gone() {
		return errClientGone
	}
	ex.bc.setReadDeadline(ex.nextCheck(time.Now(), time.Time{}))
	return nil
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
func (ex *exchange) relay() bool {
	c, r, res, bc := ex.c, ex.r, &ex.res, ex.bc
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
	switch {
	case !keep:
		_, _ = w.WriteString("Connection: close\r\n\r\n")
	case r.http10:
		_, _ = w.WriteString("Connection: keep-alive\r\n\r\n")
	default:
		_, _ = w.WriteString("\r\n")
	}
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

// isConnFailure reports whether err means the request never got an answer
// from the instance because the connection failed: dial errors, refused,
// reset or closed before a response.
func isConnFailure(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}
