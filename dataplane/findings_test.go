package dataplane

// Regression tests of the request-path findings of issue 10, one (or a
// few) per finding, each against a backend that records exactly which
// requests reached it. Finding 9 (TailLogs) is controlplane's
// TestTailInBoundedMessages; the codec's differential tests and fuzzers
// are in http1/differential_test.go.

import (
	"bufio"
	"bytes"
	"context"
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

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// recorded is one request as a recordingBackend read it.
type recorded struct {
	method, uri string
	header      http.Header
	raw         string // the head as it came off the wire
	body        string
}

// recordingBackend is an instance that records every request it reads
// (with net/http's parser) and lets answer write the response raw;
// answer returns false to close the connection without more.
type recordingBackend struct {
	addr string
	mu   sync.Mutex
	reqs []recorded
}

func newRecordingBackend(t *testing.T, answer func(c net.Conn, r recorded, n int) bool) *recordingBackend {
	t.Helper()
	rb := &recordingBackend{}
	rb.addr = serveLoopback(t, func(c net.Conn) {
		var rec bytes.Buffer
		br := bufio.NewReader(io.TeeReader(c, &rec))
		for {
			rec.Reset()
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			raw := rec.String()
			raw = raw[:len(raw)-br.Buffered()]
			body, err := io.ReadAll(req.Body)
			if err != nil {
				return
			}
			r := recorded{method: req.Method, uri: req.RequestURI, header: req.Header, raw: raw, body: string(body)}
			rb.mu.Lock()
			rb.reqs = append(rb.reqs, r)
			n := len(rb.reqs)
			rb.mu.Unlock()
			if !answer(c, r, n) {
				return
			}
		}
	})
	return rb
}

func (rb *recordingBackend) got() []recorded {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return append([]recorded(nil), rb.reqs...)
}

// okAnswer answers 200 with the request's URI as the body.
func okAnswer(c net.Conn, r recorded, _ int) bool {
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.uri), r.uri)
	return true
}

// readAnswers reads n answers from br and returns their statuses and
// bodies.
func readAnswers(t *testing.T, br *bufio.Reader, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v (after %q)", i+1, err, out)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		out = append(out, fmt.Sprintf("%d %s", res.StatusCode, b))
	}
	return out
}

// TestFinding1LongHeaderLinesKeepTheirHead sends header lines whose
// length before CRLF is at and around every buffer boundary, pipelined
// with a second request: the instance must get exactly the two requests,
// the first with every header after the long one.
func TestFinding1LongHeaderLinesKeepTheirHead(t *testing.T) {
	rb := newRecordingBackend(t, okAnswer)
	h := newHarness(t, Options{}, running("app", "/", nil, readyAddr(0, rb.addr, "tok")))
	for _, edge := range []int{4 << 10, 8 << 10, 16 << 10, 32 << 10} {
		for n := edge - 3; n <= edge+3; n++ {
			before := len(rb.got())
			// "X-Pad: " + value is n bytes before its CRLF.
			pad := "X-Pad: " + strings.Repeat("p", n-len("X-Pad: "))
			raw := "GET /first HTTP/1.1\r\nHost: x\r\n" + pad + "\r\nX-After: 1\r\n\r\n" +
				"GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, raw)
			got := readAnswers(t, bufio.NewReader(c), 2)
			c.Close()
			if got[0] != "200 /first" || got[1] != "200 /second" {
				t.Errorf("line of %d bytes: answers %q", n, got)
			}
			reqs := rb.got()[before:]
			if len(reqs) != 2 || reqs[0].header.Get("X-After") != "1" || len(reqs[0].header.Get("X-Pad")) != n-7 || reqs[1].uri != "/second" {
				t.Errorf("line of %d bytes: instance got %d requests", n, len(reqs))
			}
		}
	}
}

// TestFinding1LongResponseHeaderLines does the same for response heads
// (read through a 16 KiB buffer).
func TestFinding1LongResponseHeaderLines(t *testing.T) {
	var size atomic.Int64
	rb := newRecordingBackend(t, func(c net.Conn, r recorded, _ int) bool {
		n := int(size.Load())
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Pad: %s\r\nX-After: 1\r\nContent-Length: 4\r\n\r\nbody", strings.Repeat("p", n-len("X-Pad: ")))
		return true
	})
	h := newHarness(t, Options{}, running("app", "/", nil, readyAddr(0, rb.addr, "tok")))
	for _, edge := range []int{4 << 10, 8 << 10, 16 << 10, 32 << 10} {
		for n := edge - 3; n <= edge+3; n++ {
			size.Store(int64(n))
			res, body := h.get("", "/")
			if res.StatusCode != 200 || body != "body" || res.Header.Get("X-After") != "1" || len(res.Header.Get("X-Pad")) != n-7 {
				t.Errorf("response line of %d bytes: %d %q, X-After %q", n, res.StatusCode, body, res.Header.Get("X-After"))
			}
		}
	}
}

// closeWithoutAnswer reads a request and closes the connection: the
// instance got the request and died (or dropped it) before answering.
func closeWithoutAnswer(net.Conn, recorded, int) bool { return false }

// TestFinding2NoReplayOfRequestsThatReachedAnInstance checks the retry
// rule: a POST or PATCH that reached an instance is never sent again; an
// idempotent request whose connection failed before any answer is sent
// once more; never more than once.
func TestFinding2NoReplayOfRequestsThatReachedAnInstance(t *testing.T) {
	for _, tc := range []struct {
		method string
		body   string
		sends  int // times the instances get it
		status int
	}{
		{"POST", "payload", 1, 502},
		{"PATCH", "payload", 1, 502},
		{"POST", "", 1, 502},
		{"GET", "", 2, 502},
		{"DELETE", "", 2, 502},
		{"PUT", "payload", 2, 502},
	} {
		t.Run(tc.method+"/"+tc.body, func(t *testing.T) {
			b0 := newRecordingBackend(t, closeWithoutAnswer)
			b1 := newRecordingBackend(t, closeWithoutAnswer)
			route := running("app", "/", nil, readyAddr(0, b0.addr, "t0"), readyAddr(1, b1.addr, "t1"))
			h := newHarness(t, Options{}, route)
			h.cp.setActivate(func(ctx context.Context, _ string) (*ancmv1.ActivateResponse, error) {
				return &ancmv1.ActivateResponse{Ready: true, State: ancmv1.AppState_APP_STATE_RUNNING, Revision: 1}, nil
			})
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, h.url+"/x", body)
			res, _ := h.do(req)
			sends := len(b0.got()) + len(b1.got())
			if res.StatusCode != tc.status || sends != tc.sends {
				t.Errorf("%s: status %d, sent %d times; want %d, %d", tc.method, res.StatusCode, sends, tc.status, tc.sends)
			}
		})
	}
}

// TestFinding2GetRetriedOnceThenServed checks that the one retry of an
// idempotent request can succeed on the other instance.
func TestFinding2GetRetriedOnceThenServed(t *testing.T) {
	var first atomic.Bool
	answer := func(c net.Conn, r recorded, n int) bool {
		if first.CompareAndSwap(false, true) {
			return false // the first request anywhere is dropped
		}
		return okAnswer(c, r, n)
	}
	b0, b1 := newRecordingBackend(t, answer), newRecordingBackend(t, answer)
	h := newHarness(t, Options{}, running("app", "/", nil, readyAddr(0, b0.addr, "t0"), readyAddr(1, b1.addr, "t1")))
	res, body := h.get("", "/idem")
	if res.StatusCode != 200 || body != "/idem" || len(b0.got())+len(b1.got()) != 2 {
		t.Errorf("status %d %q, sent %d times", res.StatusCode, body, len(b0.got())+len(b1.got()))
	}
}

// TestFinding3OneInstanceHonoursRequestTimeout checks that a request
// whose only instance refused does not wait startup_timeout for a new
// one: request_timeout bounds the whole request.
func TestFinding3OneInstanceHonoursRequestTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // refuses from now on
	route := running("app", "/", nil, readyAddr(0, dead, "t0"))
	route.StartupTimeout = durationpb.New(30 * time.Second)
	route.RequestTimeout = durationpb.New(300 * time.Millisecond)
	h := newHarness(t, Options{}, route)
	// The control plane takes its time to bring the app back.
	h.cp.setActivate(func(ctx context.Context, _ string) (*ancmv1.ActivateResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	start := time.Now()
	res, _ := h.get("", "/")
	// The bound is generous: the old code waited startup_timeout + 5s.
	if d := time.Since(start); res.StatusCode != http.StatusGatewayTimeout || d > 10*time.Second {
		t.Errorf("status %d after %v; want 504 at request_timeout", res.StatusCode, d)
	}
}

// TestFinding4SendTimeoutFreesTheInstanceConnection checks that a client
// that stops reading its answer is dropped after send_timeout, and the
// instance's connection with it.
func TestFinding4SendTimeoutFreesTheInstanceConnection(t *testing.T) {
	writeErr := make(chan error, 1)
	rb := newRecordingBackend(t, func(c net.Conn, r recorded, _ int) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
		chunk := make([]byte, 64<<10)
		_ = c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		for {
			if _, err := c.Write(chunk); err != nil {
				writeErr <- err
				return false
			}
		}
	})
	h := newHarness(t, Options{SendTimeout: 300 * time.Millisecond}, running("app", "/", nil, readyAddr(0, rb.addr, "tok")))
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	select {
	case err := <-writeErr:
		if strings.Contains(err.Error(), "timeout") {
			t.Errorf("the instance's write timed out: the proxy held its connection (%v)", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the instance's connection is still held")
	}
}

// TestFinding5ConnectionLimit checks that past max_connections a new
// connection waits, and is served once another one closes.
func TestFinding5ConnectionLimit(t *testing.T) {
	rb := newRecordingBackend(t, okAnswer)
	h := newHarness(t, Options{MaxConnections: 3}, running("app", "/", nil, readyAddr(0, rb.addr, "tok")))
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
		readAnswers(t, bufio.NewReader(c), 1)
		held = append(held, c)
	}
	extra, err := net.Dial("tcp", h.addr) // the kernel takes it into the backlog
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_, _ = io.WriteString(extra, "GET /extra HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = extra.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _ := extra.Read(make([]byte, 1)); n != 0 {
		t.Fatal("a connection past max_connections was served")
	}
	held[0].Close()
	_ = extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got := readAnswers(t, bufio.NewReader(extra), 1); got[0] != "200 /extra" {
		t.Errorf("after a slot freed: %q", got)
	}
}

// TestFinding5BudgetFitsTheFileLimit checks that max_connections is
// lowered to what the open-file limit holds with the reserve.
func TestFinding5BudgetFitsTheFileLimit(t *testing.T) {
	if got := connectionBudget(testLogger(t), 1<<30); got >= 1<<29 {
		t.Errorf("budget %d not lowered to the file limit", got)
	}
	if got := connectionBudget(testLogger(t), 10); got != 10 {
		t.Errorf("budget %d, want 10", got)
	}
}

// TestFinding6BadChunkedBody400 checks that a malformed chunked request
// body gets a 400, not a closed connection.
func TestFinding6BadChunkedBody400(t *testing.T) {
	rb := newRecordingBackend(t, okAnswer)
	h := newHarness(t, Options{}, running("app", "/", nil, readyAddr(0, rb.addr, "tok")))
	for _, body := range []string{
		"zz\r\nhello\r\n0\r\n\r\n",         // not hex
		"5\r\nhelloXX0\r\n\r\n",            // data not followed by CRLF
		"5\nhello\r\n0\r\n\r\n",            // bare LF after the size
		strings.Repeat("0", 5000) + "\r\n", // a size line beyond 4 KiB
	} {
		out := firstAnswer(t, h.addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+body)
		if !strings.HasPrefix(out, "HTTP/1.1 400 ") || !strings.Contains(out, "Connection: close") {
			t.Errorf("body %.20q: answer %.60q", body, out)
		}
	}
	if n := len(rb.got()); n != 0 {
		t.Errorf("the instance completed %d requests with a bad body", n)
	}
}

// TestFinding7UnderscoreAliasesDropped checks that header names that read
// as one the proxy sets or strips once "_" is "-" never reach the app.
func TestFinding7UnderscoreAliasesDropped(t *testing.T) {
	rb := newRecordingBackend(t, okAnswer)
	h := newHarness(t, Options{}, running("app", "/", nil, readyAddr(0, rb.addr, "tok")))
	out := firstAnswer(t, h.addr, "GET / HTTP/1.1\r\nHost: x\r\nX_Forwarded_Host: evil\r\nAncm_Token: forged\r\n"+
		"x_forwarded_for: 6.6.6.6\r\nX_Forwarded_Proto: https\r\nMS_ASPNETCORE_TOKEN: forged\r\nTransfer_Encoding: chunked\r\n"+
		"Content_Length: 5\r\nX_Custom_Header: kept\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Fatalf("answer %q", out)
	}
	got := rb.got()
	if len(got) != 1 {
		t.Fatalf("instance got %d requests", len(got))
	}
	raw := strings.ToLower(got[0].raw)
	for _, bad := range []string{"evil", "forged", "6.6.6.6", "_proto", "transfer_encoding", "content_length"} {
		if strings.Contains(raw, bad) {
			t.Errorf("%q reached the app: %q", bad, got[0].raw)
		}
	}
	if !strings.Contains(got[0].raw, "X_Custom_Header: kept") {
		t.Errorf("an unrelated underscore header was dropped: %q", got[0].raw)
	}
}

// TestFinding7EmptyHost400 checks RFC 9112 3.2: an HTTP/1.1 request with
// an empty Host gets 400.
func TestFinding7EmptyHost400(t *testing.T) {
	rb := newRecordingBackend(t, okAnswer)
	h := newHarness(t, Options{}, running("app", "/", nil, readyAddr(0, rb.addr, "tok")))
	if out := firstAnswer(t, h.addr, "GET / HTTP/1.1\r\nHost:\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.1 400 ") {
		t.Errorf("empty Host: %.40q", out)
	}
	if out := firstAnswer(t, h.addr, "GET / HTTP/1.0\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.0 200 ") {
		t.Errorf("HTTP/1.0 without Host: %.40q", out)
	}
	if n := len(rb.got()); n != 1 {
		t.Errorf("instance got %d requests, want the HTTP/1.0 one", n)
	}
}

// TestFinding8ConnectionNamedResponseHeadersDropped checks that every
// response field a Connection header names is removed, whatever the
// length of its name.
func TestFinding8ConnectionNamedResponseHeadersDropped(t *testing.T) {
	rb := newRecordingBackend(t, func(c net.Conn, r recorded, _ int) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: X-Secret, Set-Cookie\r\nConnection: Etag,te\r\n"+
			"X-Secret: s\r\nSet-Cookie: sid=1\r\nETag: \"e\"\r\nX-Kept: k\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	h := newHarness(t, Options{}, running("app", "/", nil, readyAddr(0, rb.addr, "tok")))
	res, body := h.get("", "/")
	if res.StatusCode != 200 || body != "ok" || res.Header.Get("X-Kept") != "k" {
		t.Fatalf("status %d %q %v", res.StatusCode, body, res.Header)
	}
	for _, name := range []string{"X-Secret", "Set-Cookie", "Etag"} {
		if v := res.Header.Get(name); v != "" {
			t.Errorf("%s named by Connection reached the client: %q", name, v)
		}
	}
}

// TestFinding10HungInstanceShed checks that an instance that takes
// requests and never answers (a stopped process: the kernel still
// accepts) is ejected after ejectAfterTimeouts timeouts in a row, and
// that the requests that timed out on it were not retried.
func TestFinding10HungInstanceShed(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close() // never accepts: connections sit in the backlog
	rb := newRecordingBackend(t, okAnswer)
	route := running("app", "/", nil, readyAddr(0, hung.Addr().String(), "t0"), readyAddr(1, rb.addr, "t1"))
	route.RequestTimeout = durationpb.New(200 * time.Millisecond)
	h := newHarness(t, Options{}, route)
	var timeouts, ok int
	for i := range 20 {
		res, _ := h.get("", fmt.Sprintf("/%d", i))
		switch res.StatusCode {
		case http.StatusGatewayTimeout:
			timeouts++
		case 200:
			ok++
		default:
			t.Errorf("request %d: status %d", i, res.StatusCode)
		}
	}
	if timeouts != ejectAfterTimeouts || ok != 20-ejectAfterTimeouts || len(rb.got()) != ok {
		t.Errorf("%d timed out, %d served (healthy instance got %d); want %d timeouts, the rest served once",
			timeouts, ok, len(rb.got()), ejectAfterTimeouts)
	}
}

// TestStripPrefix checks strip_prefix: the app gets the path without
// path_prefix, the query as sent, the prefix in X-Forwarded-Prefix; a
// client's own X-Forwarded-Prefix never reaches it.
func TestStripPrefix(t *testing.T) {
	rb := newRecordingBackend(t, okAnswer)
	route := running("shop", "/shop", nil, readyAddr(0, rb.addr, "tok"))
	route.StripPrefix = true
	plain := running("blog", "/blog", nil, readyAddr(0, rb.addr, "tok"))
	h := newHarness(t, Options{}, route, plain)
	for _, tc := range []struct{ target, want string }{
		{"/shop/cart?x=1&y=%2F", "/cart?x=1&y=%2F"},
		{"/shop", "/"},
		{"/shop?q", "/?q"},
		{"/shop/", "/"},
		{"/sh%6Fp/a%20b", "/a%20b"},
		{"/blog/post", "/blog/post"}, // no strip_prefix: as sent
	} {
		before := len(rb.got())
		out := firstAnswer(t, h.addr, "GET "+tc.target+" HTTP/1.1\r\nHost: x\r\nX-Forwarded-Prefix: /evil\r\n\r\n")
		got := rb.got()[before:]
		if !strings.HasPrefix(out, "HTTP/1.1 200") || len(got) != 1 || got[0].uri != tc.want {
			t.Errorf("%s: app got %+v", tc.target, got)
			continue
		}
		wantPrefix := ""
		if !strings.HasPrefix(tc.want, "/blog") {
			wantPrefix = "/shop"
		}
		if p := strings.Join(got[0].header.Values("X-Forwarded-Prefix"), ","); p != wantPrefix {
			t.Errorf("%s: X-Forwarded-Prefix %q, want %q", tc.target, p, wantPrefix)
		}
	}
}
