package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

// Client connection states, for shutdown.
const (
	csActive = iota // reading or serving a request
	csIdle          // waiting for the next request
	csClosed        // closed by shutdown
)

var (
	// errClientGone ends an exchange whose client went away.
	errClientGone = errors.New("client went away")
	// errHeadTooLarge: a request head beyond maxHeaderBytes (431).
	errHeadTooLarge = errors.New("request head too large")
)

// clientConn is one client connection, served by one goroutine that also
// does the forwarding of its requests.
type clientConn struct {
	s     *server
	p     *Proxy
	nc    net.Conn
	probe http1.Prober // of the TCP connection, for liveness checks
	br    *bufio.Reader
	bw    *bufio.Writer // writes through wr
	wr    clientWriter
	state atomic.Int32
	fi    forwardInfo // client part; the instance part is set per attempt

	linger bool      // unread client data may be left: see closeLingering
	rdl    time.Time // the read deadline last set

	inBuf []byte // the request head being read
	out   []byte // the head being sent to an instance
	req   request
	ex    exchange // the current request's; see downstream.exch
}

func newClientConn(s *server, nc net.Conn) *clientConn {
	c := &clientConn{s: s, p: s.p, nc: nc}
	c.br = clientReaders.Get().(*bufio.Reader)
	c.br.Reset(nc)
	c.wr = clientWriter{DeadlineWriter: http1.DeadlineWriter{NC: nc, Timeout: s.p.sendTimeout}}
	c.bw = clientWriters.Get().(*bufio.Writer)
	c.bw.Reset(&c.wr)
	c.fi.clientIP = clientIP(nc.RemoteAddr().String())
	c.fi.trusted = s.p.trusted(c.fi.clientIP)
	c.fi.idConn, c.fi.idSeq = connIDs.Add(1), new(atomic.Uint64)
	tcp := nc
	if tc, ok := nc.(*tls.Conn); ok {
		c.fi.tls = true
		tcp = tc.NetConn()
	}
	c.probe.Init(tcp)
	return c
}

// The buffers of client connections are lent for a connection's life: a
// load of short connections (one request each, over TLS) would otherwise
// allocate 8 KiB per connection for them.
var (
	clientReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, http1.RequestReaderSize) }}
	clientWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// release gives the connection's buffers back once serve is done with
// them and the connection is closed: nothing reads or writes them after
// that (a tunnel's and a watch's goroutines end before serve goes on,
// HTTP/2 streams never use them, and an h2c transport still reading the
// last body is cut off by detach).
func (c *clientConn) release() {
	if c.ex.stream != nil {
		c.ex.stream.detach()
	}
	c.br.Reset(nil)
	clientReaders.Put(c.br)
	c.bw.Reset(nil)
	clientWriters.Put(c.bw)
	c.br, c.bw = nil, nil
}

// serve reads and answers requests until the connection ends.
func (c *clientConn) serve() {
	defer func() {
		if c.linger {
			c.closeLingering()
		}
		c.nc.Close()
		c.s.remove(c)
		c.release()
	}()
	if tc, ok := c.nc.(*tls.Conn); ok {
		if !c.handshake(tc) {
			return
		}
		switch tc.ConnectionState().NegotiatedProtocol {
		case "h2":
			c.serveH2(tc) // active until it ends; shutdown sends GOAWAY
			return
		case acmeTLS1:
			return // an ACME CA's check: the handshake was all of it
		}
	}
	c.setReadDeadline(time.Now().Add(readHeaderTimeout))
	for first := true; ; first = false {
		if !first {
			c.state.Store(csIdle)
			if c.s.closing.Load() {
				return
			}
			c.setReadDeadline(time.Now().Add(idleTimeout))
			if _, err := c.br.Peek(1); err != nil {
				return
			}
			if !c.state.CompareAndSwap(csIdle, csActive) {
				return
			}
			if !c.headBuffered() {
				c.setReadDeadline(time.Now().Add(readHeaderTimeout))
			}
		}
		if !c.serveOne() {
			return
		}
	}
}

// clientWriter writes to a client under send_timeout (a client that
// stops reading its answer is dropped, and with it the instance
// connection its answer came from), counting the bytes for the access
// log.
type clientWriter struct {
	http1.DeadlineWriter
	n int64
}

func (w *clientWriter) Write(p []byte) (int, error) {
	n, err := w.DeadlineWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// handshake runs the TLS handshake under handshakeTimeout and takes the
// client certificate, if any, for the forwarded heads. It reports false
// when the connection is to be closed.
func (c *clientConn) handshake(tc *tls.Conn) bool {
	// The deadline bounds it: a context would cost a timer and an
	// AfterFunc per connection for nothing more.
	_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		c.p.stats.tlsHandshakeErrors.Add(1)
		c.p.logger.Debug("tls handshake failed", "client", c.nc.RemoteAddr().String(), "error", err)
		return false
	}
	_ = tc.SetDeadline(time.Time{})
	if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 {
		c.fi.xfcc, c.fi.clientCert = clientCertHeaders(st.PeerCertificates[0])
	}
	return true
}

// setReadDeadline sets the client's read deadline, unless the one set is
// within a second of t: a keep-alive connection under load then re-arms
// its idle timeout about once a second, not on every request.
func (c *clientConn) setReadDeadline(t time.Time) {
	if !t.IsZero() && !c.rdl.IsZero() && c.rdl.Sub(t).Abs() < time.Second {
		return
	}
	if t.IsZero() && c.rdl.IsZero() {
		return
	}
	c.rdl = t
	_ = c.nc.SetReadDeadline(t)
}

// headBuffered reports whether a whole request head is already buffered,
// so that reading it cannot block and needs no header deadline. Empty
// lines before the request line are not a head.
func (c *clientConn) headBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	b = bytes.TrimLeft(b, "\r\n")
	return bytes.Contains(b, []byte("\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// serveOne reads one request and answers it. It reports whether the
// connection can carry another request.
func (c *clientConn) serveOne() bool {
	head, err := c.readHead()
	if err != nil {
		if err == errHeadTooLarge {
			c.plainError(http.StatusRequestHeaderFieldsTooLarge)
		}
		return false
	}
	r := &c.req
	err = parseRequest(head, r)
	if err == nil && r.Method == "CONNECT" {
		c.plainError(http.StatusMethodNotAllowed) // no tunnels to anywhere
		return false
	}
	if err == nil {
		err = r.ResolveTarget()
	}
	if err != nil {
		status := http.StatusBadRequest
		switch err {
		case ErrBadFraming:
			c.p.stats.badFraming.Add(1)
			c.p.count(c.fi.idConn, status)
		case http1.ErrBadVersion:
			status = http.StatusHTTPVersionNotSupported
		case http1.ErrBadExpect:
			status = http.StatusExpectationFailed
		}
		c.p.logger.Debug("request refused", "status", status, "error", err)
		c.plainError(status)
		return false
	}
	if c.p.redirect != "" && !c.fi.tls {
		return c.redirectHTTPS(r)
	}
	if r.HasBody() {
		c.setReadDeadline(time.Time{}) // bodies take as long as they take
	}
	return c.p.serveRequest(c, r)
}

// readHead reads one request head (http1.ReadHead), skipping empty lines
// before it.
func (c *clientConn) readHead() (string, error) {
	b, err := http1.ReadHead(c.br, c.inBuf, maxHeaderBytes, nil)
	c.inBuf = b[:0]
	if err == http1.ErrLineTooLong {
		return "", errHeadTooLarge
	}
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// redirectHTTPS answers a plain request with 308 to the same host, path
// and query on the TLS listener (redirect_http). A request with a body is
// answered without reading it, and the connection closed after.
func (c *clientConn) redirectHTTPS(r *request) bool {
	host := normalizeHost(r.Host)
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if c.p.redirect != "443" {
		host += ":" + c.p.redirect
	}
	loc := "https://" + host + r.URI
	if r.URI == "*" {
		loc = "https://" + host + "/"
	}
	keep := !r.HasBody() && r.KeepAlive()
	w := c.bw
	if r.HTTP10 {
		_, _ = w.WriteString("HTTP/1.0 308 Permanent Redirect\r\n")
	} else {
		_, _ = w.WriteString("HTTP/1.1 308 Permanent Redirect\r\n")
	}
	_, _ = w.WriteString("Location: " + loc + "\r\nContent-Length: 0\r\n")
	http1.EndHead(w, keep, r.HTTP10)
	c.linger = !keep && r.HasBody()
	err := w.Flush()
	c.p.count(c.fi.idConn, http.StatusPermanentRedirect)
	return keep && err == nil
}

// plainError answers a request that could not be parsed, as net/http's
// server does, and the connection is closed after it.
func (c *clientConn) plainError(status int) {
	text := strconv.Itoa(status) + " " + http.StatusText(status)
	_, _ = c.bw.WriteString("HTTP/1.1 " + text +
		"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" + text)
	_ = c.bw.Flush()
	c.linger = true
}

// lingerTimeout bounds closeLingering.
const lingerTimeout = 500 * time.Millisecond

// closeLingering half-closes a connection the proxy answered while the
// client may still be sending (a refused head, an unread body), and reads
// what comes for a moment, so that closing does not reset the connection
// before the client has read the answer (net/http's closeWriteAndWait).
func (c *clientConn) closeLingering() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	buf := http1.GetBuffer()
	defer http1.PutBuffer(buf)
	for {
		if _, err := c.nc.Read(buf); err != nil {
			return
		}
	}
}

// gone reports whether the client closed or reset its connection, without
// blocking and without consuming anything it sent.
func (c *clientConn) gone() bool { return c.probe.Probe() == http1.ProbeClosed }

// context returns a context that ends with parent or when the client goes
// away; release ends the watch. Like watch, it is for long waits.
func (c *clientConn) context(parent context.Context) (ctx context.Context, release func()) {
	ctx, cancel := context.WithCancel(parent)
	stop := c.watch(cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// watch calls cancel when the client goes away, until stop is called. It
// costs a goroutine and is meant for long waits (a start queue). Data the
// client sends meanwhile ends the watch without cancel.
func (c *clientConn) watch(cancel func()) (stop func()) {
	raw := c.probe.Raw()
	if raw == nil || c.br.Buffered() > 0 {
		return func() {}
	}
	c.setReadDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = raw.Read(func(fd uintptr) bool {
			switch http1.ProbeFD(fd) {
			case http1.ProbeEmpty:
				return false // wait until readable
			case http1.ProbeClosed:
				cancel()
			}
			return true
		})
	}()
	return func() {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0)) // wakes the watcher
		<-done
		c.rdl = time.Time{}
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}
