package dataplane

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Client is an HTTP/2-only client of a tlsHarness.
func (th *tlsHarness) h2Client(t *testing.T) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(th.ca.cert)
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "shop.example"}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func TestHTTP2ToHTTP1App(t *testing.T) {
	rb := newRecordingBackend(t, func(c net.Conn, r recorded, _ int) bool {
		body := r.method + " " + r.uri + " " + r.body
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Proto-Seen: %s\r\nConnection: X-Hop\r\nX-Hop: h\r\nContent-Length: %d\r\n\r\n%s",
			r.header.Get("X-Forwarded-Proto"), len(body), body)
		return true
	})
	th := newTLSHarness(t, Options{}, TLSOptions{HTTP2: true}, [][]string{{"shop.example"}},
		running("app", "/", nil, readyAddr(0, rb.addr, "tok")))
	client := th.h2Client(t)
	base := "https://" + th.tlsAddr

	res, err := client.Get(base + "/a?b=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != 200 || string(body) != "GET /a?b=1 " ||
		res.Header.Get("X-Proto-Seen") != "https" || res.Header.Get("X-Hop") != "" {
		t.Errorf("GET over h2: %s %d %q %v", res.Proto, res.StatusCode, body, res.Header)
	}
	got := rb.got()
	if len(got) != 1 || got[0].header.Get("Ancm-Token") != "tok" || !strings.HasPrefix(got[0].raw, "GET /a?b=1 HTTP/1.1\r\nHost: ") {
		t.Errorf("the app got %+v", got)
	}

	// A body of known length, and one streamed without a length.
	for _, known := range []bool{true, false} {
		var r io.Reader = strings.NewReader("payload")
		if !known {
			r = io.MultiReader(strings.NewReader("pay"), strings.NewReader("load")) // no length
		}
		req, _ := http.NewRequest("POST", base+"/post", r)
		if !known {
			req.ContentLength = -1
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(body) != "POST /post payload" {
			t.Errorf("POST (length known: %v): %q", known, body)
		}
	}

	// No route, and the same smuggling-proof head rules.
	res, err = client.Get(base + "/")
	if err == nil {
		res.Body.Close()
	}
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Header.Set("X_Forwarded_Host", "evil")
	req.Header.Set("Ancm-Token", "forged")
	if res, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if last := rb.got()[len(rb.got())-1]; strings.Contains(last.raw, "evil") || strings.Contains(last.raw, "forged") {
		t.Errorf("forged headers over h2 reached the app: %q", last.raw)
	}
}

// TestHTTP2ConcurrentStreams sends 200 requests at once on one
// connection: all answered.
func TestHTTP2ConcurrentStreams(t *testing.T) {
	b := echoBackend(t, "b")
	th := newTLSHarness(t, Options{}, TLSOptions{HTTP2: true}, [][]string{{"shop.example"}}, running("app", "/", nil, ready(0, b, "tok")))
	client := th.h2Client(t)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := client.Get(fmt.Sprintf("https://%s/s/%d", th.tlsAddr, i))
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != 200 || decodeEcho(t, string(body)).Path != fmt.Sprintf("/s/%d", i) {
				errs <- fmt.Errorf("stream %d: %d %q", i, res.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHTTP2ErrorsAndTrailers checks the error answers and that an
// instance's chunked trailers arrive as HTTP/2 trailers.
func TestHTTP2ErrorsAndTrailers(t *testing.T) {
	rb := newRecordingBackend(t, func(c net.Conn, r recorded, _ int) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nSet-Cookie: no\r\n\r\n")
		return true
	})
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	th := newTLSHarness(t, Options{}, TLSOptions{HTTP2: true}, [][]string{{"shop.example"}},
		running("app", "/app", nil, readyAddr(0, rb.addr, "tok")),
		running("dead", "/dead", nil, readyAddr(0, deadAddr, "tok")))
	client := th.h2Client(t)
	for path, want := range map[string]int{"/nowhere": 404, "/dead": 502} {
		res, err := client.Get("https://" + th.tlsAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want || !bytes.Contains(body, []byte("<!DOCTYPE html>")) {
			t.Errorf("%s over h2: %d, want %d", path, res.StatusCode, want)
		}
	}
	res, err := client.Get("https://" + th.tlsAddr + "/app")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "hello" || res.Trailer.Get("X-Checksum") != "abc" || res.Trailer.Get("Set-Cookie") != "" {
		t.Errorf("body %q trailers %v", body, res.Trailer)
	}
}

// TestHTTP2RapidReset runs the rapid-reset attack (CVE-2023-44487) on one
// connection: streams opened and reset at once, thousands in a row,
// against an app that is slow to answer. The resets must not let more
// than maxConcurrentStreams requests run at once, the connection is
// closed with ENHANCE_YOUR_CALM once the backlog of reset streams grows,
// far fewer requests than streams reach the app, and the proxy serves
// other clients after.
func TestHTTP2RapidReset(t *testing.T) {
	var cur, peak atomic.Int64
	rb := newRecordingBackend(t, func(c net.Conn, r recorded, _ int) bool {
		n := cur.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		defer cur.Add(-1)
		if r.uri == "/slow" {
			// Until the proxy gives up on the request (its client reset
			// the stream) or a while passes.
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			var b [1]byte
			_, _ = c.Read(b[:])
			return false
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	th := newTLSHarness(t, Options{}, TLSOptions{HTTP2: true}, [][]string{{"shop.example"}},
		running("app", "/", nil, readyAddr(0, rb.addr, "tok")))

	pool := x509.NewCertPool()
	pool.AddCert(th.ca.cert)
	tc, err := tls.Dial("tcp", th.tlsAddr, &tls.Config{RootCAs: pool, ServerName: "shop.example", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q", p)
	}
	_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(tc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(tc, tc)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// The server's frames, read until it closes: was there a GOAWAY?
	goaway := make(chan http2.ErrCode, 1)
	go func() {
		rf := http2.NewFramer(io.Discard, tc)
		for {
			f, err := rf.ReadFrame()
			if err != nil {
				close(goaway)
				return
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				goaway <- ga.ErrCode
				return
			}
		}
	}()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "shop.example"}, {":path", "/slow"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	// The proxy's own count of requests in flight, sampled through the
	// attack: the bound is on the proxy (x/net runs at most
	// maxConcurrentStreams handlers per connection), where the app sees a
	// request end only when the proxy's connection to it closes.
	st := th.p.allStats()[0]
	var proxyPeak int64
	stopSampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			default:
			}
			if n := st.inFlight(); n > proxyPeak {
				proxyPeak = n
			}
			runtime.Gosched()
		}
	}()
	const attempts = 20000
	sent := 0
	for id := uint32(1); sent < attempts; id += 2 {
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}) != nil ||
			fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break // the server closed the connection
		}
		sent++
	}
	var code http2.ErrCode
	select {
	case c, ok := <-goaway:
		if !ok {
			t.Fatalf("the connection ended without a GOAWAY after %d reset streams", sent)
		}
		code = c
	case <-time.After(20 * time.Second):
		t.Fatalf("no GOAWAY after %d reset streams", sent)
	}
	if code != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", code)
	}
	close(stopSampling)
	<-sampled
	t.Logf("%d streams written (opened and reset) before GOAWAY %v; at most %d requests in flight in the proxy (sampled), %d at the app at once, %d in all",
		sent, code, proxyPeak, peak.Load(), len(rb.got()))
	if proxyPeak > maxConcurrentStreams {
		t.Errorf("%d requests in flight at once, more than the %d streams a connection may have", proxyPeak, maxConcurrentStreams)
	}
	if n := len(rb.got()); n >= sent {
		t.Errorf("every one of the %d reset streams reached the app", n)
	}
	// Other clients are served.
	res, err := th.h2Client(t).Get("https://" + th.tlsAddr + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("a request after the attack: %d", res.StatusCode)
	}
	waitFor(t, "the reset streams' requests to end", func() bool { return cur.Load() == 0 })
}

// TestHTTP2LargeBodiesBothWays sends 4 MiB up and 4 MiB down through the
// HTTP/2 front end to an HTTP/1.1 app, past every flow-control window of
// both sides, with a known length and streamed without one: the app gets
// every byte, and so does the client.
func TestHTTP2LargeBodiesBothWays(t *testing.T) {
	const size = 4 << 20
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Got", fmt.Sprintf("%d %x", n, h.Sum(nil)))
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 1024)
		for sent := 0; sent < size; sent += len(chunk) {
			_, _ = w.Write(chunk)
		}
	}))
	t.Cleanup(app.Close)
	th := newTLSHarness(t, Options{}, TLSOptions{HTTP2: true}, [][]string{{"shop.example"}},
		running("app", "/", nil, ready(0, app, "tok")))
	client := th.h2Client(t)
	up := make([]byte, size)
	for i := range up {
		up[i] = byte(i * 7)
	}
	sum := sha256.Sum256(up)
	for _, known := range []bool{true, false} {
		var r io.Reader = bytes.NewReader(up)
		if !known {
			r = io.MultiReader(bytes.NewReader(up[:size/2]), bytes.NewReader(up[size/2:]))
		}
		req, _ := http.NewRequest("POST", "https://"+th.tlsAddr+"/up", r)
		if !known {
			req.ContentLength = -1
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if want := fmt.Sprintf("%d %x", size, sum); res.StatusCode != 200 || res.Header.Get("X-Got") != want {
			t.Fatalf("length known %v: status %d, the app got %q, want %q", known, res.StatusCode, res.Header.Get("X-Got"), want)
		}
		if err != nil || n != size {
			t.Fatalf("length known %v: %d bytes back, %v", known, n, err)
		}
	}
}
