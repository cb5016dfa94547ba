package dataplane

// The HTTP/2 front end: golang.org/x/net/http2 serves a TLS connection
// that negotiated "h2" by ALPN, and every stream becomes an exchange of
// the one proxy core (forward.go), so HTTP/2 gets the routing, queueing,
// balancing, retries, timeouts and error answers of HTTP/1.1.
//
// A stream's request is written as an HTTP/1.1 head and parsed by the
// HTTP/1.1 parser (http1.ParseRequest, then classify), so that the header rules (hop-by-hop
// fields, the proxy's own headers and their underscore aliases, Host)
// are the same code for both; x/net/http2 has already refused what HTTP/2
// forbids (connection-specific fields, bad names and values). A body of
// unknown length goes to the instance chunked, with the stream's
// trailers; the answer goes back decoded, with the instance's trailers as
// HTTP/2 trailers.

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/http2"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

// maxConcurrentStreams bounds the streams of one HTTP/2 connection.
const maxConcurrentStreams = 250

// newH2 makes the HTTP/2 server of a Proxy. base only carries the
// graceful shutdown (GOAWAY) to the connections served with it, and the
// log: what x/net/http2 says of a connection (a client's protocol error,
// a rapid-reset flood cut off) goes to hclog at debug, never to the
// standard logger.
func newH2(p *Proxy) (*http2.Server, *http.Server) {
	base := &http.Server{ErrorLog: p.logger.Named("http2").StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug})}
	s := &http2.Server{
		MaxConcurrentStreams: maxConcurrentStreams,
		IdleTimeout:          idleTimeout,
		WriteByteTimeout:     p.sendTimeout,
		ReadIdleTimeout:      idleTimeout,
	}
	_ = http2.ConfigureServer(base, s)
	return s, base
}

// serveH2 serves an HTTP/2 connection until it ends.
func (c *clientConn) serveH2(tc *tls.Conn) {
	c.p.h2.ServeConn(tc, &http2.ServeConnOpts{
		BaseConfig: c.p.h2base,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
			st := &h2stream{c: c, w: w, hr: hr, fi: c.fi}
			st.serve()
		}),
	})
}

// h2stream is one HTTP/2 stream as a downstream of the exchange.
type h2stream struct {
	c   *clientConn // the connection, for its client's address and certificate
	w   http.ResponseWriter
	hr  *http.Request
	fi  forwardInfo
	out []byte
	req request
	ex  exchange
	// abort: the answer broke off after its head; the stream is reset
	// once the exchange is accounted for.
	abort bool
	n     int64 // body bytes written, for the access log
}

func (st *h2stream) sent() int64 { return st.n }

// serve handles the stream's request.
func (st *h2stream) serve() {
	p, hr, r := st.c.p, st.hr, &st.req
	if hr.Method == "CONNECT" {
		st.plain(http.StatusMethodNotAllowed)
		return
	}
	err := parseRequest(st.head(), r)
	if err == nil {
		err = r.ResolveTarget()
	}
	if err != nil {
		p.logger.Debug("request refused", "status", http.StatusBadRequest, "error", err, "proto", "h2")
		p.count(st.fi.idConn, http.StatusBadRequest)
		st.plain(http.StatusBadRequest)
		return
	}
	p.serveRequest(st, r)
	if st.abort {
		panic(http.ErrAbortHandler) // resets the stream: a cut body must not pass for a whole one
	}
}

// head writes the stream's request as an HTTP/1.1 head, fields sorted by
// name for a stable order.
func (st *h2stream) head() string {
	hr := st.hr
	var b strings.Builder
	b.WriteString(hr.Method)
	b.WriteByte(' ')
	b.WriteString(hr.RequestURI)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(hr.Host)
	b.WriteString("\r\n")
	names := make([]string, 0, len(hr.Header))
	for name := range hr.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if strings.EqualFold(name, "Host") || strings.EqualFold(name, "Content-Length") {
			continue // the authority is Host; the framing is written below
		}
		for _, v := range hr.Header[name] {
			b.WriteString(name)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	switch {
	case hr.ContentLength > 0:
		b.WriteString("Content-Length: ")
		b.WriteString(strconv.FormatInt(hr.ContentLength, 10))
		b.WriteString("\r\n")
	case hr.ContentLength < 0 && hr.Body != nil && hr.Body != http.NoBody:
		b.WriteString("Transfer-Encoding: chunked\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// plain answers with a bare status.
func (st *h2stream) plain(status int) {
	st.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	st.w.WriteHeader(status)
	_, _ = io.WriteString(st.w, strconv.Itoa(status)+" "+http.StatusText(status))
}

func (st *h2stream) info() *forwardInfo { return &st.fi }

func (st *h2stream) outBuf() *[]byte { return &st.out }

func (st *h2stream) exch() *exchange { return &st.ex }

func (st *h2stream) gone() bool { return st.hr.Context().Err() != nil }

func (st *h2stream) context(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(st.hr.Context(), cancel)
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
	body := st.hr.Body
	buf := http1.GetBuffer()
	defer http1.PutBuffer(buf)
	if !ex.r.Framing.Chunked {
		n, err := io.CopyBuffer(bc.BW, io.LimitReader(body, ex.r.Framing.Length), buf)
		switch {
		case err != nil && http1.IsTimeout(err):
			return ErrTimeout
		case err != nil || n < ex.r.Framing.Length:
			return errClientGone
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
		if err != nil {
			return errClientGone
		}
	}
	_, _ = bc.BW.WriteString("0\r\n")
	for name, vals := range st.hr.Trailer {
		if !trailerAllowed(name) || !http1.ValidToken(name) {
			continue
		}
		for _, v := range vals {
			if http1.ValidValue(v) {
				_, _ = bc.BW.WriteString(name + ": " + v + "\r\n")
			}
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
	h := st.w.Header()
	http1.EachField(head, func(name, value string) { h.Add(name, value) })
	st.w.WriteHeader(http.StatusEarlyHints)
	for k := range h {
		delete(h, k)
	}
	return nil
}

// relay writes the response to the stream: the fields the proxy does not
// drop, the body decoded, the instance's trailers as trailers.
func (st *h2stream) relay(ex *exchange) bool {
	res, bc, r := &ex.res, ex.bc, ex.r
	ex.status = res.Status
	h := st.w.Header()
	http1.EachField(bc.Head, func(name, value string) {
		if !res.Drop(name, bc.Head) {
			h.Add(name, value)
		}
	})
	mode, reuse := http1.BodyMode(r.Method, false, res)
	if res.Length >= 0 && !res.Chunked {
		h.Set("Content-Length", strconv.FormatInt(res.Length, 10))
	}
	st.w.WriteHeader(res.Status)
	var err error
	if mode != http1.BodyNone {
		fw := &flushWriter{w: st.w, n: &st.n}
		fw.f, _ = st.w.(http.Flusher)
		w := getH2Writer(fw)
		defer putH2Writer(w)
		switch mode {
		case http1.BodyChunked:
			err = http1.CopyDecoded(w, bc.BR, ex.waitBody, trailerAllowed, func(name, value string) {
				h.Add(http.TrailerPrefix+name, value)
			})
		case http1.BodyLength:
			err = http1.CopyN(w, bc.BR, res.Length, ex.waitBody)
		default: // http1.BodyEOF
			err = http1.CopyToEOF(w, bc.BR, false, ex.waitBody)
		}
		if err == nil {
			// The last bytes leave with the end of the stream when the
			// handler returns: no flush of a frame of their own.
			fw.f = nil
			if err = w.Flush(); err != nil {
				err = http1.WriteErr(err)
			}
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

// writeError answers a failed request on the stream.
func (st *h2stream) writeError(r *request, err error, _ bool) int {
	status, body := st.c.p.errorAnswer(r, err)
	if status == statusClientClosed {
		return status
	}
	h := st.w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", retryAfter)
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if id := r.id(); id != "" {
		h.Set(headerRequestID, id)
	}
	st.w.WriteHeader(status)
	if r.Method != "HEAD" {
		n, _ := st.w.Write(body)
		st.n += int64(n)
	}
	return status
}

// flushWriter writes to a ResponseWriter and flushes it, so that what the
// instance sent reaches the client before the proxy waits for more.
type flushWriter struct {
	w http.ResponseWriter
	f http.Flusher // nil: write only
	n *int64       // counts the bytes written, when set
}

// h2Writers lends the buffered writers of HTTP/2 answers.
var h2Writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}

func getH2Writer(fw *flushWriter) *bufio.Writer {
	w := h2Writers.Get().(*bufio.Writer)
	w.Reset(fw)
	return w
}

func putH2Writer(w *bufio.Writer) {
	w.Reset(nil)
	h2Writers.Put(w)
}

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if f.n != nil {
		*f.n += int64(n)
	}
	if err == nil && f.f != nil {
		f.f.Flush()
	}
	return n, err
}
