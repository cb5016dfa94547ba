package dataplane

// Apps with protocol = "h2c" (gRPC servers) are spoken to in cleartext
// HTTP/2 with prior knowledge, through one golang.org/x/net/http2
// Transport that keeps a multiplexed connection per instance. Request and
// response bodies are streamed both ways at once, and trailers pass end
// to end, so a gRPC call of any kind (unary, server, client or
// bidirectional streaming) goes through.
//
// The forwarded header fields are the ones appendRequestHead writes for
// an HTTP/1.1 instance (one set of rules: the token, X-Forwarded-*,
// strip_prefix, what is dropped), read back into the HTTP/2 request.
// request_timeout bounds the wait for the response head, not the stream
// after it. A request is sent again only when no connection to its
// instance could be made, on another instance.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

// maxBufferedH2CBody bounds a chunked HTTP/1.1 request body for an h2c
// app, which is read whole before it is sent (HTTP/1.1 clients of gRPC
// servers are rare; streamed bodies come over HTTP/2).
const maxBufferedH2CBody = 8 << 20

// h2cDialer dials h2c instances as http1.Pool dials HTTP/1.1 ones.
var h2cDialer = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}

// newH2CTransport is the transport to h2c instances.
func newH2CTransport() *http2.Transport {
	return &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return h2cDialer.DialContext(ctx, network, addr)
		},
		ReadIdleTimeout: 30 * time.Second,
		PingTimeout:     10 * time.Second,
		IdleConnTimeout: idleConnTimeout, // instances come and go on new ports
	}
}

// errH2CTarget: "OPTIONS *" has no HTTP/2 form to forward.
var errH2CTarget = errors.New("request target cannot be sent to an h2c app")

// runH2C forwards the request to an h2c instance and relays the answer.
func (ex *exchange) runH2C() bool {
	r := ex.r
	if ex.start.IsZero() {
		ex.start = time.Now()
	}
	ex.deadline = ex.start.Add(ex.a.requestTimeout)
	res, err := ex.roundTrip()
	if err != nil && isDialFailure(err) && !ex.h2cBodyStarted() {
		ex.p.eject(ex.a, ex.b)
		if nb := ex.a.pick(ex.b); nb != nil {
			ex.switchTo(ex.a, nb)
			res, err = ex.roundTrip()
		}
	}
	if err != nil {
		if ex.cancel != nil {
			ex.cancel()
		}
		re := ex.failure(ex.a, err)
		if re.kind == ErrBackend && ex.c.gone() {
			re.kind = context.Canceled // the transport's error is the client's leaving
		}
		keep := r.KeepAlive() && !r.HasBody()
		ex.status = ex.c.writeError(r, re, keep)
		return keep && ex.status != statusClientClosed
	}
	ex.status = res.StatusCode
	defer ex.cancel()
	defer res.Body.Close()
	return ex.c.relayStream(ex, res)
}

// roundTrip sends the request to ex.b and returns the response head. The
// request's context ends with ex.cancel, which the caller calls when the
// exchange is over.
func (ex *exchange) roundTrip() (*http.Response, error) {
	if ex.cancel != nil {
		ex.cancel()
	}
	uri, host, hdr := h2cFields(ex.head())
	if uri == "*" {
		return nil, errH2CTarget
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, errH2CTarget
	}
	u.Scheme, u.Host = "http", ex.b.addr
	body, length, err := ex.c.bodyReader(ex)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ex.cancel = cancel
	req := (&http.Request{
		Method: ex.r.Method, URL: u, Host: host, Header: hdr,
		Proto: "HTTP/2.0", ProtoMajor: 2, Body: body, ContentLength: length,
	}).WithContext(ctx)
	if body == nil {
		req.Body = http.NoBody
	}
	var fired atomic.Bool
	timer := time.AfterFunc(time.Until(ex.deadline), func() { fired.Store(true); cancel() })
	res, err := ex.p.h2cTransport.RoundTrip(req)
	timer.Stop()
	if fired.Load() && err != nil {
		ex.timedOut = true
		err = ErrTimeout
	}
	if err == nil && ex.b.timeouts.Load() != 0 {
		ex.b.timeouts.Store(0)
	}
	return res, err
}

// h2cFields reads the forwarded head appendRequestHead wrote: the target,
// Host, and the fields an HTTP/2 request carries (no connection-specific
// ones, no framing: HTTP/2 frames itself).
func h2cFields(head []byte) (uri, host string, hdr http.Header) {
	line, _ := http1.CutLine(head)
	if _, rest, ok := bytes.Cut(line, []byte(" ")); ok {
		if i := bytes.LastIndexByte(rest, ' '); i >= 0 {
			uri = string(rest[:i])
		}
	}
	hdr = http.Header{}
	http1.EachField(head, func(name, value string) {
		switch strings.ToLower(name) {
		case "host":
			host = value
		case "content-length", "transfer-encoding", "connection", "upgrade", "keep-alive", "proxy-connection":
		default:
			hdr.Add(name, value)
		}
	})
	return uri, host, hdr
}

// isDialFailure reports whether err means no connection to the instance
// could be made: nothing of the request was sent.
func isDialFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || errors.Is(err, syscall.ECONNREFUSED)
}

// bodyStream is a request body that an h2c transport reads in a
// goroutine of its own, possibly after the exchange is over (RoundTrip
// may return before the body is read). It records that the body was
// started and counts what was read: a client connection may carry
// another request only once all of this one's body has been read.
// detach ends it: later reads fail without touching the source, and
// detach returns once a read under way has returned, so that a client
// connection's buffer can be given back (clientConn.release).
type bodyStream struct {
	mu      sync.Mutex
	r       io.Reader
	done    bool
	started atomic.Bool
	count   atomic.Int64
}

// errBodyDetached is a read of a bodyStream after its exchange ended.
var errBodyDetached = errors.New("request body read after its exchange")

func (b *bodyStream) Read(p []byte) (int, error) {
	b.started.Store(true)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, errBodyDetached
	}
	n, err := b.r.Read(p)
	b.count.Add(int64(n))
	return n, err
}

func (b *bodyStream) Close() error { return nil }

func (b *bodyStream) detach() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
}

// h2cBodyStarted reports whether the exchange's body began to be consumed,
// by the front end or by an h2c transport.
func (ex *exchange) h2cBodyStarted() bool {
	return ex.bodyStarted || ex.stream != nil && ex.stream.started.Load()
}

// bodyReader gives the body of an HTTP/1.1 request as a stream: a
// Content-Length body straight from the connection, a chunked one
// checked and read whole (at most maxBufferedH2CBody).
func (c *clientConn) bodyReader(ex *exchange) (io.ReadCloser, int64, error) {
	r := ex.r
	if !r.HasBody() {
		return nil, 0, nil
	}
	if !r.Framing.Chunked {
		c.setReadDeadline(time.Time{})
		if ex.stream != nil {
			ex.stream.detach() // a first attempt's, never read: its dial failed
		}
		ex.stream = &bodyStream{r: io.LimitReader(c.br, r.Framing.Length)}
		return ex.stream, r.Framing.Length, nil
	}
	ex.bodyStarted = true
	var buf bytes.Buffer
	w := bufio.NewWriter(&limitWriter{w: &buf, n: maxBufferedH2CBody})
	c.setReadDeadline(ex.deadline)
	if err := http1.CopyDechunked(w, c.br, nil); err != nil { // trailers checked, dropped
		return nil, 0, err
	}
	if err := w.Flush(); err != nil {
		return nil, 0, err
	}
	return io.NopCloser(&buf), int64(buf.Len()), nil
}

// limitWriter fails writes beyond n bytes.
type limitWriter struct {
	w io.Writer
	n int
}

var errBodyTooLarge = errors.New("request body too large to buffer")

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, errBodyTooLarge
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// relayStream writes an h2c instance's response to an HTTP/1.1 client:
// chunked unless its length is known and it has no trailers, with its
// trailers in the chunked trailer section.
func (c *clientConn) relayStream(ex *exchange, res *http.Response) bool {
	r, w := ex.r, c.bw
	keep := r.KeepAlive() && !c.s.closing.Load()
	// The connection carries on only once the transport has read all of
	// the body from it (it reads in a goroutine of its own); else what is
	// left of the body would be read as the next request.
	consumed := func() bool {
		return !r.HasBody() || r.Framing.Chunked || ex.stream != nil && ex.stream.count.Load() >= r.Framing.Length
	}
	noBody := r.Method == "HEAD" || res.StatusCode == 204 || res.StatusCode == 304
	chunked := !noBody && !r.HTTP10 && (res.ContentLength < 0 || len(res.Trailer) > 0)
	if !noBody && r.HTTP10 && res.ContentLength < 0 {
		keep = false
	}
	if r.HTTP10 {
		_, _ = w.WriteString("HTTP/1.0 ")
	} else {
		_, _ = w.WriteString("HTTP/1.1 ")
	}
	_, _ = w.WriteString(strconv.Itoa(res.StatusCode) + " " + http.StatusText(res.StatusCode) + "\r\n")
	for name, vals := range res.Header {
		if h2cHopByHop(name) {
			continue
		}
		for _, v := range vals {
			_, _ = w.WriteString(name + ": " + v + "\r\n")
		}
	}
	switch {
	case chunked:
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	case !noBody && res.ContentLength >= 0:
		_, _ = w.WriteString("Content-Length: " + strconv.FormatInt(res.ContentLength, 10) + "\r\n")
	}
	http1.EndHead(w, keep, r.HTTP10)
	if noBody {
		return w.Flush() == nil && keep && consumed()
	}
	buf := http1.GetBuffer()
	defer http1.PutBuffer(buf)
	var hdr []byte
	for {
		m, err := res.Body.Read(buf)
		if m > 0 {
			if chunked {
				hdr = strconv.AppendInt(hdr[:0], int64(m), 16)
				_, _ = w.Write(append(hdr, '\r', '\n'))
			}
			_, _ = w.Write(buf[:m])
			if chunked {
				_, _ = w.WriteString("\r\n")
			}
			if w.Flush() != nil {
				return false
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			ex.p.logger.Debug("response body broke off", "app", ex.a.name, "instance", ex.b.instance, "error", err)
			return false
		}
	}
	if chunked {
		_, _ = w.WriteString("0\r\n")
		for name, vals := range res.Trailer {
			if !trailerAllowed(name) {
				continue
			}
			for _, v := range vals {
				_, _ = w.WriteString(name + ": " + v + "\r\n")
			}
		}
		_, _ = w.WriteString("\r\n")
	}
	return w.Flush() == nil && keep && consumed()
}

// h2cHopByHop reports the response fields that never pass to a client.
func h2cHopByHop(name string) bool {
	switch strings.ToLower(name) {
	case "connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "trailer", "content-length":
		return true
	}
	return false
}

// bodyReader gives a stream's body as it arrives, for full-duplex
// streaming to the instance.
func (st *h2stream) bodyReader(ex *exchange) (io.ReadCloser, int64, error) {
	if !ex.r.HasBody() {
		return nil, 0, nil
	}
	length := int64(-1)
	if !ex.r.Framing.Chunked {
		length = ex.r.Framing.Length
	}
	ex.stream = &bodyStream{r: st.s}
	return ex.stream, length, nil
}

// relayStream writes an h2c instance's response to the stream, flushing
// each read (a gRPC stream's messages go out as they come) and passing
// its trailers.
func (st *h2stream) relayStream(ex *exchange, res *http.Response) bool {
	fields := st.fields[:0]
	for name, vals := range res.Header {
		if !h2cHopByHop(name) {
			for _, v := range vals {
				fields = append(fields, hpack.HeaderField{Name: name, Value: v})
			}
		}
	}
	st.fields = fields
	s := st.s
	// The head is not flushed on its own: an answer with no body and no
	// trailers (gRPC's trailers-only) then leaves as one HEADERS frame
	// that ends the stream.
	if s.WriteHead(res.StatusCode, fields) != nil {
		return false
	}
	buf := http1.GetBuffer()
	defer http1.PutBuffer(buf)
	for {
		m, err := res.Body.Read(buf)
		if m > 0 {
			if _, werr := s.Write(buf[:m]); werr != nil {
				return false
			}
			st.n += int64(m)
			if err == nil && s.Flush() != nil {
				return false
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			ex.p.logger.Debug("response stream broke off", "app", ex.a.name, "instance", ex.b.instance, "error", err, "proto", "h2c")
			st.abort = true
			return false
		}
	}
	var trailers []hpack.HeaderField
	for name, vals := range res.Trailer {
		for _, v := range vals {
			trailers = append(trailers, hpack.HeaderField{Name: name, Value: v})
		}
	}
	return s.End(trailers) == nil
}
