package h2

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/ancm-dev/ancm/internal/testpki"
)

// server is a Server on a loopback listener, plain (h2c with prior
// knowledge) or TLS with ALPN "h2".
type server struct {
	srv  *Server
	addr string
	tls  *tls.Config // the client's, when the listener is TLS
	wg   sync.WaitGroup
}

// serve starts a Server with h on a loopback listener; the test's end
// stops it and waits for its connections.
func serve(t testing.TB, cfg Config, useTLS bool, h Handler) *server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: io.Discard})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{srv: NewServer(cfg), addr: ln.Addr().String()}
	if useTLS {
		cert := testpki.SelfSigned(t, "h2.test")
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert.TLS()}, NextProtos: []string{"h2"}})
		s.tls = &tls.Config{RootCAs: cert.Pool(), ServerName: "h2.test", NextProtos: []string{"h2"}}
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[nc] = true
			mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if tc, ok := nc.(*tls.Conn); ok {
					if tc.Handshake() != nil {
						nc.Close()
						return
					}
				}
				s.srv.ServeConn(nc, h)
				mu.Lock()
				delete(conns, nc)
				mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		defer s.srv.Close()
		ln.Close()
		mu.Lock()
		for nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// client is x/net's HTTP/2 client for s.
func (s *server) client(t testing.TB) *http.Client {
	tr := &http2.Transport{}
	if s.tls != nil {
		tr.TLSClientConfig = s.tls
	} else {
		tr.AllowHTTP = true
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func (s *server) url(path string) string {
	if s.tls != nil {
		return "https://" + s.addr + path
	}
	return "http://" + s.addr + path
}

// raw is a client that speaks frames, for what a well-behaved client
// never sends.
type raw struct {
	t    testing.TB
	nc   net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

// dialRaw opens a plain connection to s, sends the preface and SETTINGS,
// and reads until the server's SETTINGS.
func (s *server) dialRaw(t testing.TB, settings ...http2.Setting) *raw {
	t.Helper()
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	r := &raw{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.henc = hpack.NewEncoder(&r.hbuf)
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	f := r.read()
	if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	return r
}

// read reads the next frame, failing the test at the end of the
// connection.
func (r *raw) read() http2.Frame {
	r.t.Helper()
	f, err := r.fr.ReadFrame()
	if err != nil {
		r.t.Fatalf("read frame: %v", err)
	}
	return f
}

// until reads frames until one matches, and returns it; nil at the end
// of the connection.
func (r *raw) until(match func(http2.Frame) bool) http2.Frame {
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return nil
		}
		if match(f) {
			return f
		}
	}
}

// block encodes fields (pairs of name and value) as a header block.
func (r *raw) block(fields ...string) []byte {
	r.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		_ = r.henc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return append([]byte(nil), r.hbuf.Bytes()...)
}

// request opens stream id with a GET (or fields given).
func (r *raw) request(id uint32, end bool, fields ...string) {
	r.t.Helper()
	if len(fields) == 0 {
		fields = []string{":method", "GET", ":scheme", "http", ":authority", "h2.test", ":path", "/"}
	}
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block(fields...), EndStream: end, EndHeaders: true}); err != nil {
		r.t.Fatal(err)
	}
}

// rstOrGoAway reads until the stream is reset or the connection goes
// away, and gives the error code.
func (r *raw) rstOrGoAway(id uint32) (http2.ErrCode, string) {
	f := r.until(func(f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			return f.StreamID == id
		case *http2.GoAwayFrame:
			return true
		}
		return false
	})
	switch f := f.(type) {
	case *http2.RSTStreamFrame:
		return f.ErrCode, "RST_STREAM"
	case *http2.GoAwayFrame:
		return f.ErrCode, "GOAWAY"
	}
	return 0, "closed"
}

// echo answers with the request's body, its fields as X-Got-* fields
// and its trailers as trailers.
func echo(st *Stream) {
	body, err := io.ReadAll(st)
	if err != nil {
		st.Reset(http2.ErrCodeCancel)
		return
	}
	fields := []hpack.HeaderField{{Name: "Content-Type", Value: "text/plain"}, {Name: "x-method", Value: st.Method}, {Name: "x-path", Value: st.Path}, {Name: "x-length", Value: strconv.FormatInt(st.ContentLength, 10)}}
	for _, f := range st.Fields {
		fields = append(fields, hpack.HeaderField{Name: "x-got-" + f.Name, Value: f.Value})
	}
	_ = st.WriteHead(200, fields)
	_, _ = st.Write(body)
	var trailers []hpack.HeaderField
	for _, f := range st.Trailers() {
		trailers = append(trailers, hpack.HeaderField{Name: "x-trailer-" + f.Name, Value: f.Value})
	}
	_ = st.End(trailers)
}

// poll reports whether cond came to hold within timeout, checked every
// millisecond; a handler's goroutine, which cannot fail the test, uses
// it as it is.
func poll(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// waitFor polls cond for up to 10 s and fails the test if it never holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !poll(10*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// anyConn reports whether f holds for one of s's connections, each
// looked at under its mutex.
func (s *server) anyConn(f func(c *conn) bool) bool {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	for c := range s.srv.conns {
		c.mu.Lock()
		ok := f(c)
		c.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}
