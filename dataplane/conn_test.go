package dataplane

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// rawBackend is an instance that answers each request with the raw bytes
// that answers[path] gives, and closes the connection after it when the
// path is "/eof".
func rawBackend(t *testing.T, answers map[string]string) string {
	t.Helper()
	return serveLoopback(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			_, _ = io.WriteString(c, answers[req.URL.Path])
			if req.URL.Path == "/eof" {
				return
			}
		}
	})
}

// rawExchangeText writes raw bytes to the proxy and returns what it
// answers, up to the deadline or the connection's end.
func rawExchangeText(t *testing.T, addr, raw string, wait time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestResponseFramings(t *testing.T) {
	addr := rawBackend(t, map[string]string{
		"/eof":   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nno length, ends with the connection",
		"/hints": "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/conn":  "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok",
		"/chunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: done\r\n\r\n",
	})
	route := running("app", "/", nil)
	route.Endpoints = append(route.Endpoints, readyAddr(0, addr, "tok"))
	h := newHarness(t, Options{}, route)

	res, body := h.get("", "/eof")
	if res.StatusCode != 200 || body != "no length, ends with the connection" || res.TransferEncoding == nil {
		t.Errorf("/eof: %d %v %q", res.StatusCode, res.TransferEncoding, body)
	}
	res, body = h.get("", "/conn")
	if body != "ok" || res.Header.Get("X-Secret") != "" || res.Header.Get("Keep-Alive") != "" || res.Header.Get("X-Kept") != "1" {
		t.Errorf("/conn: hop-by-hop headers of the response: %v", res.Header)
	}
	res, body = h.get("", "/chunk")
	if body != "abc" || res.Trailer.Get("X-T") != "done" {
		t.Errorf("/chunk: %q trailer %v", body, res.Trailer)
	}
	out := rawExchangeText(t, h.addr, "GET /hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.1 103 Early Hints\r\n") || !strings.Contains(out, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(out, "ok") {
		t.Errorf("1xx not forwarded: %q", out)
	}
	// HTTP/1.0: no chunking; the end of the connection ends the body.
	out = rawExchangeText(t, h.addr, "GET /chunk HTTP/1.0\r\nHost: x\r\n\r\n", 5*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.0 200 OK\r\n") || strings.Contains(out, "chunked") || !strings.HasSuffix(out, "\r\n\r\nabc") {
		t.Errorf("HTTP/1.0 client: %q", out)
	}
}

// readyAddr is a ready endpoint at addr.
func readyAddr(instance uint32, addr, token string) *ancmv1.Endpoint {
	return &ancmv1.Endpoint{Instance: instance, Address: addr, Token: token, State: ancmv1.InstanceState_INSTANCE_STATE_READY, Ready: true}
}

func TestHeadHTTP10AndKeepAlive(t *testing.T) {
	b := echoBackend(t, "b")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, b, "tok")))
	// HEAD: the length is passed on, no body follows, the connection
	// carries on.
	out := rawExchangeText(t, h.addr, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second)
	head, get, ok := strings.Cut(out, "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") || !strings.Contains(head, "Content-Length: ") ||
		!strings.HasPrefix(get, "HTTP/1.1 200 OK\r\n") || !strings.Contains(get, `"method":"GET"`) {
		t.Errorf("HEAD then GET: %q", out)
	}
	out = rawExchangeText(t, h.addr, "GET / HTTP/1.0\r\nHost: x\r\n\r\n", 5*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.0 200 OK\r\n") || !strings.Contains(out, "Connection: close\r\n") {
		t.Errorf("HTTP/1.0: %q", out)
	}
	out = rawExchangeText(t, h.addr, "GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", 300*time.Millisecond)
	if !strings.Contains(out, "Connection: keep-alive\r\n") {
		t.Errorf("HTTP/1.0 keep-alive: %q", out)
	}
	for _, tc := range []struct {
		raw  string
		want int
	}{
		{"GET / HTTP/1.1\r\n\r\n", 400},                             // no Host
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},       // two
		{"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", 400},   // not a token
		{"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},                  // version
		{"GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", 417}, // expectation
		{"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 405},      // no tunnels
	} {
		if codes := rawExchange(t, h.addr, tc.raw, 1); len(codes) != 1 || codes[0] != tc.want {
			t.Errorf("%q: %v, want %d", tc.raw, codes, tc.want)
		}
	}
}

func TestExpectContinue(t *testing.T) {
	b := echoBackend(t, "b")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, b, "tok")))
	tr := &http.Transport{ExpectContinueTimeout: time.Minute} // waits for our 100
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("PUT", h.url+"/up", strings.NewReader("payload"))
	req.Header.Set("Expect", "100-continue")
	res, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if e := decodeEcho(t, string(body)); res.StatusCode != 200 || e.Body != "payload" || e.Header.Get("Expect") != "" {
		t.Errorf("status %d, backend got %q with Expect %q", res.StatusCode, e.Body, e.Header.Get("Expect"))
	}
}

func TestStalePooledConnectionRedialed(t *testing.T) {
	b := echoBackend(t, "b")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, b, "tok")))
	for i := range 3 {
		if res, _ := h.get("", "/"); res.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
		b.CloseClientConnections() // the pooled connection dies while idle
		req, _ := http.NewRequest("POST", h.url+"/", strings.NewReader("body"))
		res, body := h.do(req)
		if res.StatusCode != 200 || decodeEcho(t, body).Body != "body" {
			t.Fatalf("request %d after the instance closed its idle connection: %d %s", i, res.StatusCode, body)
		}
		b.CloseClientConnections()
	}
	if s := h.p.Stats(); s.Ejections != 0 || s.Retries != 0 {
		t.Errorf("a closed idle connection ejected the instance: %+v", s)
	}
}
