package dataplane

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// captureBackend answers every request with the raw bytes the proxy sent
// for it (head and body as they came off the wire), and counts the
// requests whose body net/http read completely.
func captureBackend(t *testing.T, complete *atomic.Int32) string {
	t.Helper()
	return serveLoopback(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		var rec bytes.Buffer
		br := bufio.NewReader(io.TeeReader(c, &rec))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.ReadAll(req.Body); err != nil {
			return
		}
		complete.Add(1)
		raw := rec.Bytes()[:rec.Len()-br.Buffered()]
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(raw), raw)
	})
}

// TestChunkedBodyForwardedCanonically checks that a chunked request body
// reaches the instance re-framed by the proxy: sizes in plain hex, no
// chunk extensions, CRLF line ends, and only the trailer fields that are
// allowed in a trailer (never a framing, routing or token field).
func TestChunkedBodyForwardedCanonically(t *testing.T) {
	var complete atomic.Int32
	h := newHarness(t, Options{}, running("app", "/", nil, readyAddr(0, captureBackend(t, &complete), "tok")))
	out := rawExchangeText(t, h.addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"005;name=\"v\\\"x\"\r\nhello\r\n3 ;e\r\nabc\r\n0;last\r\n"+
		"X-Ok: 1\r\nAncm-Token: forged\r\nMS-ASPNETCORE-TOKEN: forged\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\nHost: evil\r\n\r\n", 5*time.Second)
	_, body, _ := strings.Cut(out, "\r\n\r\n")
	_, fwd, _ := strings.Cut(body, "\r\n\r\n")
	if want := "5\r\nhello\r\n3\r\nabc\r\n0\r\nX-Ok: 1\r\n\r\n"; fwd != want {
		t.Errorf("forwarded body %q, want %q", fwd, want)
	}
}

// TestBadChunkedBodiesRefused checks chunk framings the proxy must not
// pass on: the instance never completes such a request.
func TestBadChunkedBodiesRefused(t *testing.T) {
	var complete atomic.Int32
	h := newHarness(t, Options{}, running("app", "/", nil, readyAddr(0, captureBackend(t, &complete), "tok")))
	head := "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	for _, tc := range []struct{ name, body string }{
		{"leading space", " 3\r\nabc\r\n0\r\n\r\n"},
		{"junk after size", "3x\r\nabc\r\n0\r\n\r\n"},
		{"0x prefix", "0x3\r\nabc\r\n0\r\n\r\n"},
		{"negative", "-3\r\nabc\r\n0\r\n\r\n"},
		{"overflow", "10000000000000003\r\nabc\r\n0\r\n\r\n"},
		{"empty size", "\r\nabc\r\n0\r\n\r\n"},
		{"no CRLF after data", "3\r\nabcX\r\n0\r\n\r\n"},
		{"data longer than size", "3\r\nabcdef\r\n0\r\n\r\n"},
		{"bare LF size line", "3\nabc\r\n0\r\n\r\n"},
		{"bare LF after data", "3\r\nabc\n0\r\n\r\n"},
		{"bare CR in extension", "3;a\rb\r\nabc\r\n0\r\n\r\n"},
		{"NUL in extension", "3;a\x00\r\nabc\r\n0\r\n\r\n"},
		{"trailer obs-fold", "0\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n"},
		{"trailer without colon", "0\r\nX-A 1\r\n\r\n"},
		{"trailer name with space", "0\r\nContent-Length : 5\r\n\r\n"},
		{"trailer bare CR", "0\r\nX-A: 1\rX-B: 2\r\n\r\n"},
	} {
		before := complete.Load()
		out := firstAnswer(t, h.addr, head+tc.body+"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
		if strings.Contains(out, "200 OK") {
			t.Errorf("%s: answered %q", tc.name, out)
		}
		if n := complete.Load() - before; n != 0 {
			t.Errorf("%s: %d requests completed at the instance", tc.name, n)
		}
	}
}

// TestRequestSmugglingShapes sends request heads that parsers are known
// to read differently, and checks each is either refused with the right
// status before anything reaches the instance, or forwarded with one
// framing that the instance reads the same way.
func TestRequestSmugglingShapes(t *testing.T) {
	var complete atomic.Int32
	h := newHarness(t, Options{}, running("app", "/", nil, readyAddr(0, captureBackend(t, &complete), "tok")))
	const get = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	long := strings.Repeat("a", 70<<10)
	for _, tc := range []struct {
		name, raw string
		want      int // 0: connection closed without an answer
		forwarded string
	}{
		{"TE xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + get, 400, ""},
		{"TE chunked, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + get, 400, ""},
		{"TE chunked;q", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n" + get, 400, ""},
		{"TE bare CR", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\r\n\r\n0\r\n\r\n" + get, 400, ""},
		{"TE vertical tab", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n" + get, 400, ""},
		{"TE space before colon", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + get, 400, ""},
		{"TE leading space", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  chunked\r\n\r\n0\r\n\r\n", 200, "Transfer-Encoding: chunked\r\n"},
		{"TE tab", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\t\r\n\r\n0\r\n\r\n", 200, "Transfer-Encoding: chunked\r\n"},
		{"TE obs-fold", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + get, 400, ""},
		{"CL plus", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd" + get, 400, ""},
		{"CL negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\nabcd" + get, 400, ""},
		{"CL hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x4\r\n\r\nabcd" + get, 400, ""},
		{"CL overflow", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551620\r\n\r\nabcd" + get, 400, ""},
		{"CL empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\nabcd" + get, 400, ""},
		{"CL duplicate same", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 200, "Content-Length: 4\r\n"},
		{"CL leading zeros", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0004\r\n\r\nabcd", 200, "Content-Length: 4\r\n"},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, ""},
		{"NUL in target", "GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"NUL in name", "GET / HTTP/1.1\r\nHost: x\r\nX\x00A: 1\r\n\r\n", 400, ""},
		{"bare CR line end", "GET / HTTP/1.1\rHost: x\r\n\r\n", 400, ""},
		{"bare LF", "GET /lf HTTP/1.1\nHost: x\nX-A: 1\n\n", 200, "GET /lf HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n"},
		{"space before request line", " GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"double space", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"trailing space", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400, ""},
		{"tab separator", "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"invalid method", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505, ""},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", 400, ""},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, ""},
		{"Host with space", "GET / HTTP/1.1\r\nHost: x y\r\n\r\n", 400, ""},
		{"Host with userinfo", "GET / HTTP/1.1\r\nHost: a@x\r\n\r\n", 400, ""},
		{"Host space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, ""},
		{"absolute form wins over Host", "GET http://abs.example/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", 200, "GET /p?q=1 HTTP/1.1\r\nHost: abs.example\r\n"},
		{"absolute form userinfo", "GET http://u@abs.example/ HTTP/1.1\r\nHost: abs.example\r\n\r\n", 400, ""},
		{"authority form GET", "GET abs.example:80 HTTP/1.1\r\nHost: abs.example\r\n\r\n", 400, ""},
		{"CONNECT", "CONNECT abs.example:443 HTTP/1.1\r\nHost: abs.example:443\r\n\r\n", 405, ""},
		{"asterisk not OPTIONS", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"long request line", "GET /" + long + " HTTP/1.1\r\nHost: x\r\n\r\n", 431, ""},
		{"first header folded", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400, ""},
		{"h2c upgrade not forwarded", "GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", 200, "GET /h2c HTTP/1.1\r\nHost: x\r\nX-Forwarded-For"},
	} {
		before := complete.Load()
		out := firstAnswer(t, h.addr, tc.raw)
		got := 0
		if len(out) >= 12 {
			fmt.Sscanf(out[9:12], "%d", &got)
		}
		if got != tc.want {
			t.Errorf("%s: status %d, want %d: %.200q", tc.name, got, tc.want, out)
			continue
		}
		n := complete.Load() - before
		switch {
		case tc.want != 200 && n != 0:
			t.Errorf("%s: %d requests reached the instance", tc.name, n)
		case tc.want == 200 && (n != 1 || !strings.Contains(out, tc.forwarded)):
			t.Errorf("%s: instance got %d requests; want one with %q: %q", tc.name, n, tc.forwarded, out)
		case strings.Contains(out, "/smuggled"):
			t.Errorf("%s: smuggled request reached the instance", tc.name)
		}
	}
}

// TestPipelinedAnswersInOrder sends requests with bodies and without in
// one write, and checks that each answer is for its own request.
func TestPipelinedAnswersInOrder(t *testing.T) {
	b := echoBackend(t, "b")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, b, "tok")))
	raw := "POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst" +
		"POST /2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n" +
		"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /4 HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n" +
		"GET /5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" +
		"GET /6 HTTP/1.1\r\nHost: x\r\n\r\n"
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, raw)
	br := bufio.NewReader(c)
	for i, want := range []string{"/1 first", "/2 second", "/3 ", "/4 ", "/5 "} {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		body, _ := io.ReadAll(res.Body)
		e := decodeEcho(t, string(body))
		if got := e.Path + " " + e.Body; got != want {
			t.Errorf("answer %d is for %q, want %q", i+1, got, want)
		}
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("answered after Connection: close: %q", rest)
	}
}

// firstAnswer writes raw bytes to the proxy and returns its first answer
// and whatever follows it within a moment.
func firstAnswer(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() { _, _ = io.WriteString(c, raw) }()
	var rec bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &rec))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return rec.String()
	}
	_, _ = io.ReadAll(res.Body)
	_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = io.ReadAll(br)
	return rec.String()
}
