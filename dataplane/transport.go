package dataplane

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"
)

// newTransport returns the transport to app instances: HTTP/1.1 keep-alive
// on loopback with a deep idle pool, no proxy from the environment, and
// bodies passed through as they are (no transparent gzip).
func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          0, // no global limit
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
}

// retryTransport wraps the instance transport. It enforces request_timeout
// up to the response headers and retries, once and on another instance, a
// request that failed to reach its instance (the dial failed, or the
// connection was refused or reset before a response) when the request can
// be replayed: no body, or a body not yet read from at all. A failing
// instance is ejected at once.
type retryTransport struct {
	p    *Proxy
	next http.RoundTripper
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := stateOf(req.Context())
	if st == nil {
		return t.next.RoundTrip(req)
	}
	if st.timer == nil && st.app.requestTimeout > 0 {
		st.timer = time.AfterFunc(st.app.requestTimeout, st.expire)
	}
	var body *replayBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &replayBody{rc: req.Body}
		req.Body = body
	}
	res, err := t.next.RoundTrip(req)
	if err != nil && st.Err() == nil && isConnFailure(err) {
		t.p.eject(st.app, st.be)
		if body == nil || body.detach() {
			if nb := st.app.pick(st.be); nb != nil {
				t.p.logger.Debug("retrying on another instance", "app", st.app.name,
					"instance", st.be.instance, "next_instance", nb.instance, "error", err)
				st.be.outstanding.Add(-1)
				st.be = nb
				t.p.stats.retries.Add(1)
				retry := req.Clone(req.Context())
				retry.URL.Host = nb.addr
				setToken(retry.Header, nb.token, st.app.aspnet)
				if body != nil {
					retry.Body = &replayBody{rc: body.rc}
				}
				res, err = t.next.RoundTrip(retry)
				if err != nil && st.Err() == nil && isConnFailure(err) {
					t.p.eject(st.app, nb)
				}
			}
		}
	}
	if st.timer != nil && !st.timer.Stop() && err == nil {
		// The timer fired as the response arrived: the context is
		// canceled, so the body could not be copied anyway.
		res.Body.Close()
		res, err = nil, context.Cause(st)
	}
	if err != nil {
		re := newError(ErrBackend, st.app, err)
		re.instance = int(st.be.instance)
		if context.Cause(st) == ErrTimeout {
			re.kind = ErrTimeout
		} else if st.Err() != nil {
			re.kind = context.Canceled
		}
		return nil, re
	}
	return res, nil
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

// replayBody lends a request body to one attempt. Close is a no-op, so the
// transport cannot close the client's body under a retry; detach tells
// whether the attempt never read from it and cuts the attempt off, so a
// late read by the failed attempt cannot steal bytes from the retry.
type replayBody struct {
	rc    io.ReadCloser
	state atomic.Int32 // 0 untouched, 1 read from, 2 detached
}

var errDetached = errors.New("request body detached from a failed attempt")

func (b *replayBody) Read(p []byte) (int, error) {
	for {
		switch b.state.Load() {
		case 1:
			return b.rc.Read(p)
		case 2:
			return 0, errDetached
		}
		if b.state.CompareAndSwap(0, 1) {
			return b.rc.Read(p)
		}
	}
}

func (b *replayBody) Close() error { return nil }

// detach reports whether the body was never read, and if so forbids any
// further read through b.
func (b *replayBody) detach() bool { return b.state.CompareAndSwap(0, 2) }
