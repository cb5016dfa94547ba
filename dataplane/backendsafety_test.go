package dataplane

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

// scriptBackend is an instance that reads each request with net/http's
// parser and writes whatever answer gives for it, raw. answer may also
// sleep, write more later (through c) or ask for the connection to close.
func scriptBackend(t *testing.T, answer func(c net.Conn, req *http.Request) (close bool)) string {
	t.Helper()
	return serveLoopback(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if answer(c, req) {
				return
			}
		}
	})
}

// dirtyBackend answers /ok?id=N with a body naming N, and misbehaves on
// the other paths in ways that leave its connection in an unknown state:
// bytes beyond the response, a body where none is allowed, bytes arriving
// after the response, a response cut short.
// late counts the /late answers whose trailing bytes have been written.
func dirtyBackend(t *testing.T) (addr string, late *atomic.Int64) {
	const injected = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected"
	late = new(atomic.Int64)
	return scriptBackend(t, func(c net.Conn, req *http.Request) bool {
		var out string
		switch req.URL.Path {
		case "/ok":
			id := req.URL.Query().Get("id")
			out = fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(id), id)
		case "/extra": // a second response in the same write
			out = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + injected
		case "/204body": // a body on a 204
			out = fmt.Sprintf("HTTP/1.1 204 No Content\r\nContent-Length: %d\r\n\r\n%s", len(injected), injected)
		case "/304chunked":
			out = "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n" + injected
		case "/head": // a body on a HEAD answer
			out = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + injected
		case "/clte": // both framings: TE wins, the rest is unknown
			out = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + injected
		case "/late": // the extra bytes come while the connection is idle
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			time.Sleep(20 * time.Millisecond)
			_, _ = io.WriteString(c, injected)
			late.Add(1)
		case "/short":
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
			return true
		case "/shortchunk":
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc")
			return true
		}
		_, _ = io.WriteString(c, out)
		return false
	}), late
}

// TestPooledConnectionNeverMixesResponses sends, from many clients at
// once, well-behaved requests mixed with requests whose answers leave the
// instance connection dirty, and checks that every client gets its own
// answer: a connection in an unknown state must never go back to the pool.
func TestPooledConnectionNeverMixesResponses(t *testing.T) {
	addr, late := dirtyBackend(t)
	route := running("app", "/", nil, readyAddr(0, addr, "tok"))
	h := newHarness(t, Options{}, route)

	// One by one first: each dirty exchange, then a clean one that would
	// take the same pooled connection.
	for _, dirty := range []string{"GET /extra", "GET /204body", "GET /304chunked", "HEAD /head", "GET /clte", "GET /late", "GET /short", "GET /shortchunk"} {
		method, path, _ := strings.Cut(dirty, " ")
		req, _ := http.NewRequest(method, h.url+path, nil)
		if res, err := h.client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		if path == "/late" {
			// The next request must find the late bytes on the idle
			// connection, so wait until they are written.
			waitFor(t, "the late bytes", func() bool { return late.Load() == 1 })
		}
		for i := range 3 {
			id := fmt.Sprintf("%s-%d", path[1:], i)
			res, body := h.get("", "/ok?id="+id)
			if res.StatusCode != 200 || body != id {
				t.Fatalf("after %s: request %s got %d %q", dirty, id, res.StatusCode, body)
			}
		}
	}

	// Then concurrently.
	var wrong atomic.Int32
	var wg sync.WaitGroup
	// Not /late: bytes that arrive after a connection was taken again are
	// indistinguishable from its next response, for any HTTP/1.1 client.
	paths := []string{"/extra", "/204body", "/304chunked", "/clte", "/short", "/shortchunk"}
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 4}
			defer tr.CloseIdleConnections()
			cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for i := range 60 {
				if i%3 == 0 {
					res, err := cl.Get(h.url + paths[(g+i)%len(paths)])
					if err == nil {
						_, _ = io.Copy(io.Discard, res.Body)
						res.Body.Close()
					}
					continue
				}
				id := fmt.Sprintf("g%d-%d", g, i)
				res, err := cl.Get(h.url + "/ok?id=" + id)
				if err != nil {
					t.Errorf("%s: %v", id, err)
					wrong.Add(1)
					continue
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || string(b) != id {
					t.Errorf("%s got %d %q", id, res.StatusCode, b)
					wrong.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := wrong.Load(); n > 0 {
		t.Fatalf("%d requests got an answer that was not theirs", n)
	}
}

// TestTruncatedResponseIsNotClean checks that a response the instance
// cuts short reaches the client as a broken one: a short Content-Length
// body or an unterminated chunked body, then the end of the connection.
func TestTruncatedResponseIsNotClean(t *testing.T) {
	addr, _ := dirtyBackend(t)
	route := running("app", "/", nil, readyAddr(0, addr, "tok"))
	h := newHarness(t, Options{}, route)
	for _, tc := range []struct{ path, want string }{
		{"/short", "Content-Length: 10\r\n\r\nabc"},
		{"/shortchunk", "Transfer-Encoding: chunked\r\n\r\n5\r\nabc"},
	} {
		out := rawExchangeText(t, h.addr, "GET "+tc.path+" HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
		if !strings.HasSuffix(out, tc.want) {
			t.Errorf("%s: %q does not end where the instance stopped", tc.path, out)
		}
		res, err := h.client.Get(h.url + tc.path)
		if err == nil {
			_, err = io.ReadAll(res.Body)
			res.Body.Close()
		}
		if err == nil {
			t.Errorf("%s: the client read a complete response", tc.path)
		}
	}
}

// TestBadResponseHeads502 checks that a response head the proxy cannot
// relay faithfully, or that could be read two ways downstream, is
// answered with 502 rather than passed on.
func TestBadResponseHeads502(t *testing.T) {
	answers := map[string]string{
		"/space-colon": "HTTP/1.1 200 OK\r\nContent-Length : 5\r\nContent-Length: 2\r\n\r\nok",
		"/cr-value":    "HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok",
		"/nul-value":   "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
		"/bad-name":    "HTTP/1.1 200 OK\r\nX(A): 1\r\nContent-Length: 2\r\n\r\nok",
		"/xchunked":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/gzipchunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/te-twice":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/version":     "HTTP/1.x 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/reason-cr":   "HTTP/1.1 200 O\rK\r\nContent-Length: 2\r\n\r\nok",
		"/101":         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"/cl-neg":      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
		"/good":        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	}
	addr := scriptBackend(t, func(c net.Conn, req *http.Request) bool {
		_, _ = io.WriteString(c, answers[req.URL.Path])
		return req.URL.Path != "/good"
	})
	h := newHarness(t, Options{}, running("app", "/", nil, readyAddr(0, addr, "tok")))
	for path := range answers {
		want := http.StatusBadGateway
		if path == "/good" {
			want = 200
		}
		out := rawExchangeText(t, h.addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second)
		if !strings.HasPrefix(out, fmt.Sprintf("HTTP/1.1 %d ", want)) {
			t.Errorf("%s: %q, want %d", path, out, want)
		}
		if strings.Contains(out, "evil") {
			t.Errorf("%s: a header was split: %q", path, out)
		}
	}
}

// TestNoBodyStatusesHaveNoFraming checks that 204 and 304 answers are
// relayed without a framing that would make a client wait for a body.
func TestNoBodyStatusesHaveNoFraming(t *testing.T) {
	addr, _ := dirtyBackend(t)
	route := running("app", "/", nil, readyAddr(0, addr, "tok"))
	h := newHarness(t, Options{}, route)
	for _, path := range []string{"/204body", "/304chunked"} {
		out := rawExchangeText(t, h.addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second)
		head, body, _ := strings.Cut(out, "\r\n\r\n")
		if path == "/204body" && strings.Contains(head, "Content-Length") || strings.Contains(head, "Transfer-Encoding") || body != "" {
			t.Errorf("%s: %q", path, out)
		}
	}
}

// TestUpgradeRefusedIsNotATunnel checks that an upgrade request answered
// with something else than 101 is relayed as an ordinary response and
// the connection goes on carrying HTTP.
func TestUpgradeRefusedIsNotATunnel(t *testing.T) {
	addr := scriptBackend(t, func(c net.Conn, req *http.Request) bool {
		if req.Header.Get("Upgrade") != "" {
			_, _ = io.WriteString(c, "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\n\r\nnope")
			return false
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain")
		return false
	})
	h := newHarness(t, Options{}, running("app", "/", nil, readyAddr(0, addr, "tok")))
	out := rawExchangeText(t, h.addr, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"+
		"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second)
	first, second, _ := strings.Cut(out, "nope")
	if !strings.HasPrefix(first, "HTTP/1.1 426 ") || !strings.HasPrefix(second, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(second, "plain") {
		t.Errorf("refused upgrade then a request: %q", out)
	}
}

// TestSlowRequestBodyTimesOut checks that a client that stops sending its
// body does not hold its connection and an instance connection forever:
// the body must arrive within request_timeout.
func TestSlowRequestBodyTimesOut(t *testing.T) {
	b := echoBackend(t, "b")
	route := running("app", "/", nil, ready(0, b, "tok"))
	route.RequestTimeout = durationpb.New(300 * time.Millisecond)
	h := newHarness(t, Options{}, route)
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("a", 5000))
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.ReadAll(c)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("connection held %v by a stalled body", d)
	}
}

// TestClientTimeouts checks the read-header timeout (slowloris), also on
// a keep-alive connection whose next head starts with empty lines, and
// the idle timeout.
func TestClientTimeouts(t *testing.T) {
	h0, i0 := readHeaderTimeout, idleTimeout
	t.Cleanup(func() { readHeaderTimeout, idleTimeout = h0, i0 }) // after the harness's
	readHeaderTimeout, idleTimeout = 200*time.Millisecond, 1500*time.Millisecond
	b := echoBackend(t, "b")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, b, "tok")))
	const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct {
		name, raw string
		answers   int
		max       time.Duration
	}{
		{"partial first head", "GET / HTTP/1.1\r\nHo", 0, time.Second},
		{"partial second head", get + "GET / HTTP/1.1\r\nHo", 1, time.Second},
		{"empty lines then partial head", get + "\r\n\r\nGET / HTTP/1.1\r\nHo", 1, time.Second},
		{"idle", get, 1, 3 * time.Second},
	} {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = c.SetDeadline(start.Add(5 * time.Second))
		_, _ = io.WriteString(c, tc.raw)
		br := bufio.NewReader(c)
		for range tc.answers {
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
		}
		_, _ = io.ReadAll(br)
		if d := time.Since(start); d > tc.max {
			t.Errorf("%s: connection open for %v", tc.name, d)
		}
		c.Close()
	}
}
