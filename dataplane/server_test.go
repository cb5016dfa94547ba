package dataplane

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// rawExchange writes raw bytes to the proxy and reads the responses to
// n requests.
func rawExchange(t *testing.T, addr, raw string, n int) []int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var codes []int
	for range n {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		codes = append(codes, res.StatusCode)
		if res.Close {
			break
		}
	}
	return codes
}

func TestAmbiguousFramingRefused(t *testing.T) {
	var hits atomic.Int32
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(b.Close)
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, b, "tok")))

	for _, tc := range []struct{ name, raw string }{
		{"CL+TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"TE+CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n"},
		{"differing CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
		{"CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!"},
		{"TE gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{"TE gzip,chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
		{"TE twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"obs-fold", "POST / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n"},
		{"after a good one", "GET /ok HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	} {
		before := hits.Load()
		codes := rawExchange(t, h.addr, tc.raw, 3)
		want := 1
		if tc.name == "after a good one" {
			want = 2
		}
		if len(codes) != want || codes[len(codes)-1] != http.StatusBadRequest {
			t.Errorf("%s: statuses %v, want the last of %d to be 400", tc.name, codes, want)
		}
		if got := hits.Load() - before; got != int32(want-1) {
			t.Errorf("%s: %d requests reached the backend", tc.name, got)
		}
	}
}

func TestPipelinedFramingAccepted(t *testing.T) {
	b := echoBackend(t, "b")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, b, "tok")))
	raw := "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world" +
		"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
	codes := rawExchange(t, h.addr, raw, 3)
	if len(codes) != 3 || codes[0] != 200 || codes[1] != 200 || codes[2] != 200 {
		t.Errorf("statuses %v, want three 200", codes)
	}
}

func TestHugeHeaders431(t *testing.T) {
	b := echoBackend(t, "b")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, b, "tok")))
	req, _ := http.NewRequest("GET", h.url+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 100<<10))
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", res.StatusCode)
	}
}

func TestServeShutdownFinishesInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	t.Cleanup(b.Close)
	cp := startCP(t, "127.0.0.1:0")
	cp.set(running("app", "/", nil, ready(0, b, "tok")))
	p, err := New(Options{Logger: testLogger(t), Conn: dialCP(t, cp.addr)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { _ = p.Run(ctx); close(runDone) }()
	t.Cleanup(func() { cancel(); <-runDone })
	<-p.Synced()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(sctx, ln) }()

	got := make(chan string, 1)
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		got <- string(body)
	}()
	<-entered
	stop()
	// New connections are refused once the listener is closed.
	waitFor(t, "listener closed", func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	if body := <-got; body != "finished" {
		t.Errorf("in-flight request: %q", body)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestKeepsServingAndResyncs(t *testing.T) {
	b1 := echoBackend(t, "b1")
	b2 := echoBackend(t, "b2")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, b1, "tok1")))
	addr := h.cp.addr
	epoch := h.p.Stats().Epoch
	h.cp.stop()

	// The stream is broken; the last table still serves.
	for range 3 {
		res, body := h.get("", "/")
		if res.StatusCode != 200 || decodeEcho(t, body).Name != "b1" {
			t.Fatalf("while disconnected: %d %s", res.StatusCode, body)
		}
	}

	// A new control plane on the same address, new epoch, new table.
	cp2 := startCP(t, addr)
	cp2.set(running("app", "/", nil, ready(0, b2, "tok2")), running("extra", "/extra", nil, ready(0, b1, "tok1")))
	waitFor(t, "resync from the new control plane", func() bool { return h.p.Stats().Epoch == cp2.epoch })
	if h.p.Stats().Epoch == epoch {
		t.Fatal("epoch unchanged")
	}
	_, body := h.get("", "/")
	if e := decodeEcho(t, body); e.Name != "b2" || e.Header.Get("Ancm-Token") != "tok2" {
		t.Errorf("after resync: %s with %q", e.Name, e.Header.Get("Ancm-Token"))
	}

	// Incremental updates and removals on the resumed stream.
	rev := cp2.remove("extra")
	h.waitRevision(rev)
	if res, _ := h.get("", "/extra"); res.StatusCode != 200 {
		t.Errorf("/extra after removal: %d (falls to app at /)", res.StatusCode)
	} else if _, body := h.get("", "/extra"); decodeEcho(t, body).Name != "b2" {
		t.Errorf("/extra still routed to the removed app")
	}
	rev = cp2.set(&ancmv1.AppRoute{App: "app", PathPrefix: "/", State: ancmv1.AppState_APP_STATE_STOPPED})
	h.waitRevision(rev)
	if res, _ := h.get("", "/"); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("stopped app: %d", res.StatusCode)
	}
}
