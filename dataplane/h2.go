package dataplane

// The HTTP/2 front end: package h2 serves a TLS connection that
// negotiated "h2" by ALPN, and every stream becomes an exchange of the
// one proxy core (forward.go), so HTTP/2 gets the routing, queueing,
// balancing, retries, timeouts and error answers of HTTP/1.1.
//
// A stream's request is written as an HTTP/1.1 head and parsed by the
// HTTP/1.1 parser (http1.ParseRequest, then classify), so that the header
// rules (hop-by-hop fields, the proxy's own headers and their underscore
// aliases, Host) are the same code for both; package h2 has already
// refused what HTTP/2 forbids (connection-specific fields, bad names and
// values). A body of unknown length goes to the instance chunked, with
// the stream's trailers; the answer goes back decoded, framed straight
// from the instance connection's buffer, with the instance's trailers as
// HTTP/2 trailers.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/ancm-dev/ancm/dataplane/h2"
	"github.com/ancm-dev/ancm/dataplane/http1"
)

// maxConcurrentStreams bounds the streams of one HTTP/2 connection.
const maxConcurrentStreams = h2.DefaultMaxConcurrentStreams

// newH2 makes the HTTP/2 server of a Proxy. What it says of a connection
// (a client's protocol error, a rapid-reset flood cut off) goes to hclog
// at debug; a handler's panic at error.
func newH2(p *Proxy) *h2.Server {
	return h2.NewServer(h2.Config{
		MaxConcurrentStreams: maxConcurrentStreams,
		MaxHeaderListSize:    maxHeaderBytes,
		IdleTimeout:          idleTimeout,
		WriteTimeout:         p.sendTimeout,
		Logger:               p.logger.Named("http2"),
	})
}

// serveH2 serves an HTTP/2 connection until it ends.
func (c *clientConn) serveH2(tc *tls.Conn) {
	c.p.h2.ServeConn(tc, func(s *h2.Stream) {
		st := h2streams.Get().(*h2stream)
		st.c, st.s, st.fi = c, s, c.fi
		st.serve()
		st.release()
	})
}

// h2streams lends the state of a stream's exchange, as a client
// connection keeps its own for each of its requests: the exchange, the
// parsed request and the buffers of the forwarded head and fields.
var h2streams = sync.Pool{New: func() any { return new(h2stream) }}

// release gives st back once its handler is done: nothing refers to it
// then (an h2c transport still reading the body reads the h2.Stream).
func (st *h2stream) release() {
	clear(st.fields)
	st.c, st.s, st.fi = nil, nil, forwardInfo{}
	st.ex, st.cw = exchange{}, countWriter{}
	st.out, st.fields = st.out[:0], st.fields[:0]
	st.abort, st.n = false, 0
	h2streams.Put(st)
}

// h2stream is one HTTP/2 stream as a downstream of the exchange.
type h2stream struct {
	c   *clientConn // the connection, for its client's address and certificate
	s   *h2.Stream
	fi  forwardInfo
	out []byte
	req request
	ex  exchange
	// abort: the answer broke off after its head; the stream is reset
	// once the exchange is accounted for.
	abort  bool
	n      int64 // body bytes written, for the access log
	fields []hpack.HeaderField
	cw     countWriter
	vals   map[string]string // interned field values (intern), kept across streams
	num    [20]byte
}

func (st *h2stream) sent() int64 { return st.n }

// serve handles the stream's request.
func (st *h2stream) serve() {
	p, s, r := st.c.p, st.s, &st.req
	switch {
	case s.HeadTooLarge:
		p.count(st.fi.idConn, http.StatusRequestHeaderFieldsTooLarge)
		st.plain(http.StatusRequestHeaderFieldsTooLarge)
		return
	case s.Method == "CONNECT":
		st.plain(http.StatusMethodNotAllowed)
		return
	}
	err := parseRequest(st.head(), r)
	if err == nil {
		err = r.ResolveTarget()
	}
	if err != nil {
		status := http.StatusBadRequest
		p.logger.Debug("request refused", "status", status, "error", err, "proto", "h2")
		p.count(st.fi.idConn, status)
		st.plain(status)
		return
	}
	p.serveRequest(st, r)
	if st.abort {
		s.Reset(http2.ErrCodeInternal) // a cut body must not pass for a whole one
	}
}

// head writes the stream's request as an HTTP/1.1 head, for the
// HTTP/1.1 parser: :authority as Host (or the host field without one),
// the fields in the client's order, cookie fields joined into one
// (RFC 9113 §8.2.3), and framing from the stream's length.
func (st *h2stream) head() string {
	s := st.s
	host := s.Authority
	var cookies int
	for _, f := range s.Fields {
		switch f.Name {
		case "host":
			if host == "" {
				host = f.Value
			}
		case "cookie":
			cookies++
		}
	}
	var b strings.Builder
	b.Grow(64 + len(s.Path) + len(host) + 48*len(s.Fields))
	b.WriteString(s.Method)
	b.WriteByte(' ')
	b.WriteString(s.Path)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(host)
	b.WriteString("\r\n")
	joined := false
	for _, f := range s.Fields {
		switch f.Name {
		case "host", "content-length":
			continue // the authority is Host; the framing is written below
		case "cookie":
			if cookies > 1 {
				if !joined {
					joined = true
					b.WriteString("cookie: ")
					sep := ""
					for _, g := range s.Fields {
						if g.Name == "cookie" {
							b.WriteString(sep)
							b.WriteString(g.Value)
							sep = "; "
						}
					}
					b.WriteString("\r\n")
				}
				continue
			}
		}
		b.WriteString(f.Name)
		b.WriteString(": ")
		b.WriteString(f.Value)
		b.WriteString("\r\n")
	}
	switch {
	case s.ContentLength > 0:
		b.WriteString("Content-Length: ")
		b.WriteString(strconv.FormatInt(s.ContentLength, 10))
		b.WriteString("\r\n")
	case s.ContentLength < 0:
		b.WriteString("Transfer-Encoding: chunked\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// plain answers with a bare status.
func (st *h2stream) plain(status int) {
	text := strconv.Itoa(status) + " " + http.StatusText(status)
	_ = st.s.WriteHead(status, []hpack.HeaderField{
		{Name: "content-type", Value: "text/plain; charset=utf-8"},
		{Name: "content-length", Value: strconv.Itoa(len(text))},
	})
	_, _ = st.s.WriteString(text)
	_ = st.s.End(nil)
}

func (st *h2stream) info() *forwardInfo { return &st.fi }

func (st *h2stream) outBuf() *[]byte { return &st.out }

func (st *h2stream) exch() *exchange { return &st.ex }

func (st *h2stream) gone() bool { return st.s.Gone() }

func (st *h2stream) context(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(st.s.Context(), cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// bodyInHand: a stream's body is read from the stream; none is at hand.
func (st *h2stream) bodyInHand(*request) bool { return false }

func (st *h2stream) doneBody(*request) {}

// writeBody streams the body from the stream to the instance, as the
// parsed head framed it: Content-Length bytes exactly, or chunks (one per
// read, flushed: a stream's body may be a stream) and the stream's
// trailers. The instance must take it within request_timeout.
func (st *h2stream) writeBody(ex *exchange, bc *http1.Conn) error {
	ex.bodyStarted = true
	_ = bc.NC.SetWriteDeadline(ex.deadline)
	defer func() { _ = bc.NC.SetWriteDeadline(time.Time{}) }()
	// A client that stops sending the body cannot hold the request
	// beyond request_timeout, as over HTTP/1.1.
	body := st.s
	body.SetReadDeadline(ex.deadline)
	defer body.SetReadDeadline(time.Time{})
	buf := http1.GetBuffer()
	defer http1.PutBuffer(buf)
	if !ex.r.Framing.Chunked {
		for left := ex.r.Framing.Length; left > 0; {
			m, err := body.Read(buf[:min(int64(len(buf)), left)])
			if m > 0 {
				if _, werr := bc.BW.Write(buf[:m]); werr != nil {
					if http1.IsTimeout(werr) {
						return ErrTimeout
					}
					return werr
				}
				left -= int64(m)
			}
			if err != nil && left > 0 {
				if errors.Is(err, h2.ErrReadTimeout) {
					return ErrTimeout
				}
				return errClientGone
			}
		}
		return nil
	}
	var hdr []byte
	for {
		m, err := body.Read(buf)
		if m > 0 {
			hdr = strconv.AppendInt(hdr[:0], int64(m), 16)
			hdr = append(hdr, "\r\n"...)
			_, _ = bc.BW.Write(hdr)
			_, _ = bc.BW.Write(buf[:m])
			_, _ = bc.BW.WriteString("\r\n")
			if werr := bc.BW.Flush(); werr != nil {
				if http1.IsTimeout(werr) {
					return ErrTimeout
				}
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if errors.Is(err, h2.ErrReadTimeout) {
			return ErrTimeout
		}
		if err != nil {
			return errClientGone
		}
	}
	_, _ = bc.BW.WriteString("0\r\n")
	for _, f := range st.s.Trailers() {
		if trailerAllowed(f.Name) && http1.ValidToken(f.Name) && http1.ValidValue(f.Value) {
			hdr = http1.AppendField(hdr[:0], f.Name, f.Value)
			_, _ = bc.BW.Write(hdr)
		}
	}
	_, _ = bc.BW.WriteString("\r\n")
	return nil
}

// informational passes a 103 Early Hints on (the HTTP/2 server answers
// 100 Continue itself when the handler reads the body).
func (st *h2stream) informational(ex *exchange, head []byte) error {
	if ex.res.Status != http.StatusEarlyHints {
		return nil
	}
	fields := st.fields[:0]
	http1.EachField(head, func(name, value string) {
		fields = append(fields, hpack.HeaderField{Name: name, Value: value})
	})
	st.fields = fields
	return st.s.WriteHead(http.StatusEarlyHints, fields)
}

// relay writes the response to the stream: the fields the proxy does not
// drop, the body decoded, the instance's trailers as trailers. The body
// is written to the stream, which frames it; the copy flushes it before
// each wait for more from the instance, and the last bytes leave with
// the end of the stream.
func (st *h2stream) relay(ex *exchange) bool {
	res, bc, r := &ex.res, ex.bc, ex.r
	ex.status = res.Status
	fields := st.headFields(st.fields[:0], bc.Head, res)
	mode, reuse := http1.BodyMode(r.Method, false, res)
	if res.Length >= 0 && !res.Chunked {
		fields = append(fields, hpack.HeaderField{Name: "content-length", Value: st.intern(strconv.AppendInt(st.num[:0], res.Length, 10))})
	}
	st.fields = fields
	s := st.s
	err := s.WriteHead(res.Status, fields)
	var trailers []hpack.HeaderField
	if err == nil && mode != http1.BodyNone {
		st.cw = countWriter{s: s, n: &st.n}
		w := &st.cw
		switch mode {
		case http1.BodyChunked:
			err = http1.CopyDecoded(w, bc.BR, ex.waitBody, trailerAllowed, func(name, value string) {
				trailers = append(trailers, hpack.HeaderField{Name: name, Value: value})
			})
		case http1.BodyLength:
			err = http1.CopyN(w, bc.BR, res.Length, ex.waitBody)
		default: // http1.BodyEOF
			err = http1.CopyToEOF(w, bc.BR, false, ex.waitBody)
		}
	}
	if err == nil {
		if err = s.End(trailers); err != nil {
			err = http1.WriteErr(err)
		}
	}
	switch {
	case err != nil:
		bc.Close()
		ex.p.logger.Debug("response body broke off", "app", ex.a.name, "instance", ex.b.instance, "error", err, "proto", "h2")
		st.abort = true
	case !reuse:
		bc.Close()
	default:
		ex.b.pool.Put(bc, ex.start)
	}
	return true
}

// headFields appends the fields of an instance's response head that res
// does not drop: names in lower case, values interned (st.intern), so
// that relaying the usual fields allocates nothing.
func (st *h2stream) headFields(fields []hpack.HeaderField, head []byte, res *http1.Response) []hpack.HeaderField {
	_, s := http1.CutLine(head)
	for len(s) > 0 {
		var line []byte
		line, s = http1.CutLine(s)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || res.Drop(string(line[:colon]), head) {
			continue
		}
		fields = append(fields, hpack.HeaderField{Name: h2.LowerName(line[:colon]), Value: st.intern(http1.TrimOWS(line[colon+1:]))})
	}
	return fields
}

// Interned field values: the same few (content types, cache policies,
// lengths) come back answer after answer.
const (
	maxInterned    = 64
	maxInternedLen = 128
)

// intern gives v as a string, the same string for the same bytes while
// it is among the last values seen.
func (st *h2stream) intern(v []byte) string {
	if s, ok := st.vals[string(v)]; ok {
		return s
	}
	s := string(v)
	if len(v) <= maxInternedLen {
		if st.vals == nil {
			st.vals = make(map[string]string, maxInterned)
		} else if len(st.vals) >= maxInterned {
			clear(st.vals)
		}
		st.vals[s] = s
	}
	return s
}

// writeError answers a failed request on the stream.
func (st *h2stream) writeError(r *request, err error, _ bool) int {
	status, body := st.c.p.errorAnswer(r, err)
	if status == statusClientClosed {
		return status
	}
	fields := append(st.fields[:0],
		hpack.HeaderField{Name: "cache-control", Value: "no-store"},
		hpack.HeaderField{Name: "x-content-type-options", Value: "nosniff"},
		hpack.HeaderField{Name: "content-type", Value: "text/html; charset=utf-8"},
		hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))},
	)
	if status == http.StatusServiceUnavailable {
		fields = append(fields, hpack.HeaderField{Name: "retry-after", Value: retryAfter})
	}
	if id := r.id(); id != "" {
		fields = append(fields, hpack.HeaderField{Name: "x-request-id", Value: id})
	}
	st.fields = fields
	_ = st.s.WriteHead(status, fields)
	if r.Method != "HEAD" {
		n, _ := st.s.Write(body)
		st.n += int64(n)
	}
	_ = st.s.End(nil)
	return status
}

// countWriter writes a body to a stream, counting the bytes for the
// access log.
type countWriter struct {
	s *h2.Stream
	n *int64
}

func (w *countWriter) Write(p []byte) (int, error) {
	n, err := w.s.Write(p)
	*w.n += int64(n)
	return n, err
}

func (w *countWriter) WriteString(p string) (int, error) {
	n, err := w.s.WriteString(p)
	*w.n += int64(n)
	return n, err
}

func (w *countWriter) Flush() error { return w.s.Flush() }
