package dataplane

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
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
