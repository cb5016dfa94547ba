package dataplane

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

// downstream is the client side of an exchange: the front end a request
// came in on. clientConn (conn.go, h1.go) is HTTP/1.1, plain or over
// TLS; h2stream (h2.go) is one HTTP/2 stream. Routing, activation,
// balancing, the retry rule, request_timeout and the error statuses are
// the exchange's, the same for every front end; a downstream only moves
// bytes and says whether its client is still there.
type downstream interface {
	// info is the client part of the forwarded head.
	info() *forwardInfo
	// exch is the downstream's exchange, reused by each of its requests.
	exch() *exchange
	// outBuf is a scratch buffer for the forwarded head.
	outBuf() *[]byte
	// gone reports whether the client went away, without blocking.
	gone() bool
	// context ends with parent or when the client goes away; release
	// ends the watch. It is for long waits (a start queue).
	context(parent context.Context) (ctx context.Context, release func())
	// bodyInHand reports whether the request's whole body is at hand
	// without reading from the client, so it can be sent twice.
	bodyInHand(r *request) bool
	// writeBody writes the request body to the instance; ex.bodyStarted
	// is set once the client's body is being consumed.
	writeBody(ex *exchange, bc *http1.Conn) error
	// doneBody drops a body that was at hand, after the exchange.
	doneBody(r *request)
	// informational passes a 1xx answer on to the client.
	informational(ex *exchange, head []byte) error
	// relay writes the response whose head is in ex.res and ex.bc.Head,
	// and gives the instance connection back when it is left clean. It
	// reports whether the client connection can carry another request.
	relay(ex *exchange) bool
	// writeError answers a failed request and returns its status.
	writeError(r *request, err error, keep bool) int
	// bodyReader returns the request body as a stream for an h2c
	// instance, with its length (-1: unknown); nil without a body.
	bodyReader(ex *exchange) (io.ReadCloser, int64, error)
	// relayStream writes an h2c instance's response (h2c.go).
	relayStream(ex *exchange, res *http.Response) bool
	// sent is the bytes the client took so far, for the access log.
	sent() int64
}

// serveRequest routes a parsed request, activates its app if need be,
// forwards it and answers the client. It reports whether the client
// connection can carry another request.
func (p *Proxy) serveRequest(c downstream, r *request) bool {
	var start time.Time
	var sent int64
	if p.measure || p.accessLog != nil {
		start = time.Now()
	}
	if p.accessLog != nil {
		sent = c.sent()
	}
	fi := c.info()
	r.assignID(fi)
	// Without a body, or with one not read at all, the connection can
	// carry on after an error answer only if the body is skipped.
	a, waited, err := p.resolve(c, r)
	var st *appStats
	var sh *statShard
	if p.measure {
		st = p.statsOf(a)
		// The streams of an HTTP/2 connection, which run at once, and
		// the requests of any connection spread over the shards.
		sh = st.shard(r.idConn + r.idSeq)
		sh.inFlight.Add(1)
	}
	if err == nil && a != nil {
		if b := a.pick(nil); b != nil {
			// The exchange lives in its downstream, reused request after
			// request: one on the stack would escape (its methods are
			// called through the interface) and cost an allocation each.
			ex := c.exch()
			*ex = exchange{p: p, c: c, r: r, a: a, b: b}
			if !waited {
				ex.start = start // a zero start is taken afresh in run
			}
			var keep bool
			if a.h2c {
				keep = ex.runH2C()
			} else {
				keep = ex.run()
			}
			ex.b.outstanding.Add(-1)
			p.finish(c, r, ex.a, ex.b, ex.status, start, st, sh, sent)
			return keep
		}
		err = newError(ErrUnavailable, a, nil)
	}
	keep := !r.HasBody() && r.KeepAlive()
	status := c.writeError(r, err, keep)
	p.finish(c, r, a, nil, status, start, st, sh, sent)
	return keep && status != statusClientClosed
}

// resolve finds the app for a request and makes sure it can take it,
// activating it when it has no ready instance; waited reports that it
// did.
func (p *Proxy) resolve(c downstream, r *request) (a *app, waited bool, err error) {
	t := p.table.Load()
	if !t.synced {
		return nil, false, newError(ErrNotSynced, nil, nil)
	}
	a = t.route(normalizeHost(r.Host), r.Path)
	if a == nil {
		return nil, false, newError(ErrNoRoute, nil, nil)
	}
	if a.serving() {
		return a, false, nil
	}
	ctx, release := c.context(context.Background())
	na, err := p.admit(ctx, a)
	release()
	if err != nil {
		return a, true, err
	}
	return na, true, nil
}

// exchange is one request forwarded to an instance: its attempts and the
// relay of the answer.
type exchange struct {
	p    *Proxy
	c    downstream
	r    *request
	a    *app
	b    *backend // the instance of the current attempt
	from *backend // the instance of the first attempt, after a retry
	bc   *http1.Conn

	start       time.Time
	deadline    time.Time // request_timeout, up to the response head, over all attempts
	bodyStarted bool      // the client's body is being read: no replay
	buffered    bool      // the body was buffered whole: it can be replayed
	continued   bool      // 100 Continue sent to the client
	status      int
	res         http1.Response

	// Of the current attempt, for the retry rule (see retry):
	reused   bool // on a pooled connection
	wrote    bool // the instance's socket took bytes of the request
	answered bool // a byte of an answer arrived (a 1xx counts)
	timedOut bool // request_timeout passed waiting for the response head

	cancel context.CancelFunc // ends an h2c request's stream (h2c.go)
	stream *bodyStream        // the body an h2c transport reads (h2c.go)
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
	r := ex.r
	if ex.start.IsZero() {
		ex.start = time.Now()
	}
	ex.deadline = ex.start.Add(ex.a.requestTimeout)
	ex.buffered = r.HasBody() && ex.c.bodyInHand(r)
	err := ex.attempt(false)
	ex.observe(err)
	if err != nil && ex.retryable(err) {
		if ex.retarget(err) {
			same := !ex.switched()
			err = ex.attempt(ex.reused && same)
			ex.observe(err)
			// A fresh connection to the same instance was refused: it is
			// gone (it crashed), and the request was sent once. Wait for
			// the control plane to bring one back, as a first request
			// does, and send it there.
			if same && err != nil && !ex.wrote && isConnFailure(err) && ex.reactivate() {
				err = ex.attempt(false)
				ex.observe(err)
			}
		} else if ex.timedOut {
			err = ErrTimeout // request_timeout passed waiting for an instance
		}
	}
	a := ex.a
	if ex.buffered {
		ex.c.doneBody(r)
	}
	if err != nil {
		re := ex.failure(a, err)
		keep := r.KeepAlive() && (!r.HasBody() || ex.buffered) && !errors.Is(err, http1.ErrBadChunk)
		ex.status = ex.c.writeError(r, re, keep)
		return keep && ex.status != statusClientClosed
	}
	return ex.c.relay(ex)
}

// failure is the answer to an exchange that failed with err on app a: the
// sentinel err wraps picks the status (statusFor), a backend error (502)
// when none does.
func (ex *exchange) failure(a *app, err error) *requestError {
	re := newError(ErrBackend, a, err)
	re.instance = int(ex.b.instance)
	switch {
	case errors.Is(err, ErrTimeout):
		re.kind = ErrTimeout
	case errors.Is(err, errClientGone):
		re.kind = context.Canceled
	case errors.Is(err, http1.ErrBadChunk), errors.Is(err, errH2CTarget):
		re.kind = ErrBadFraming // the client's chunked body; a target h2c cannot carry
	}
	return re
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
// A request is sent at most twice, whatever path the retry takes (another
// instance, a fresh connection to the same one, or a wait for the control
// plane to publish one); a connection that was refused sent nothing.
func (ex *exchange) retryable(err error) bool {
	if !isConnFailure(err) || ex.answered || ex.timedOut || (ex.bodyStarted && !ex.buffered) {
		return false
	}
	return !ex.wrote || idempotent(ex.r.Method)
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
	if a.stats != nil {
		a.stats.retries.Add(1)
	}
}

// attempt sends the request to ex.b and reads the response head into
// ex.res, over a pooled connection or, with fresh, a new one. A pooled
// connection found closed before use is closed unused (http1.Pool.Get).
func (ex *exchange) attempt(fresh bool) error {
	ex.reused, ex.wrote, ex.answered, ex.timedOut = false, false, false, false
	var bc *http1.Conn
	var err error
	if fresh {
		bc, err = ex.b.pool.Dial()
	} else {
		bc, err = ex.b.pool.Get()
	}
	if err != nil {
		return err
	}
	ex.bc, ex.reused = bc, bc.Reused
	sent := bc.Sent()
	err = ex.send(bc)
	if err == nil {
		err = ex.readResponse(bc) // sends the request's last bytes first (FlushOnRead)
	}
	ex.wrote = bc.Sent() > sent
	if err != nil {
		ex.bc = nil
		bc.Close()
	}
	return err
}

// head writes the head to forward to the attempt's instance (its token,
// the app's compat and strip_prefix) into the downstream's buffer.
func (ex *exchange) head() []byte {
	fi := ex.c.info()
	fi.token, fi.aspnet, fi.backend = ex.b.token, ex.a.aspnet, ex.b.addr
	fi.prefix = ""
	if ex.a.strip && ex.a.prefix != "/" {
		fi.prefix = ex.a.prefix
	}
	out := ex.c.outBuf()
	*out = appendRequestHead((*out)[:0], ex.r, fi)
	return *out
}

// send writes the request head and body to bc; what is left in its
// buffer leaves with the first read of the response (FlushOnRead).
func (ex *exchange) send(bc *http1.Conn) error {
	r := ex.r
	_, _ = bc.BW.Write(ex.head())
	var err error
	if r.HasBody() {
		err = ex.c.writeBody(ex, bc)
	}
	if err == nil {
		err = bc.FlushOnRead()
	}
	return err
}

// readResponse reads the response head, forwarding 1xx answers, within
// request_timeout and while the client is there.
func (ex *exchange) readResponse(bc *http1.Conn) error {
	// A deadline left by the connection's last exchange serves if it is
	// not too close and not beyond request_timeout: timeouts are checked
	// in waitHead anyway.
	if left := bc.ReadDeadline().Sub(ex.start); left < clientCheckInterval/2 || bc.ReadDeadline().After(ex.deadline) {
		bc.SetReadDeadline(ex.nextCheck(ex.start, ex.deadline))
	}
	for {
		if err := bc.ReadHead(ex.waitHead); err != nil {
			if len(bc.Head) > 0 {
				ex.answered = true
			}
			return err
		}
		ex.answered = true
		if err := http1.ParseResponse(bc.Head, &ex.res); err != nil {
			return err
		}
		if s := ex.res.Status; s >= 200 {
			return nil
		}
		if ex.res.Status == http.StatusSwitchingProtocols {
			if !ex.r.IsUpgrade() {
				return http1.ErrBadResponse // a tunnel nobody asked for
			}
			return nil
		}
		if err := ex.c.informational(ex, bc.Head); err != nil { // then wait for the final answer
			return err
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
	ex.bc.SetReadDeadline(ex.nextCheck(now, ex.deadline))
	return nil
}

// waitBody is called when a wait for more of the response body times out.
func (ex *exchange) waitBody() error {
	if ex.c.gone() {
		return errClientGone
	}
	ex.bc.SetReadDeadline(ex.nextCheck(time.Now(), time.Time{}))
	return nil
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
