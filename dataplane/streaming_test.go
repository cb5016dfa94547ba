package dataplane

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

func TestWebSocketUpgrade(t *testing.T) {
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || r.Header.Get("Ancm-Token") != "tok" {
			http.Error(w, "want an upgrade with the token", 400)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		// Echo lines until the client closes.
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = rw.WriteString("echo " + line)
			_ = rw.Flush()
		}
	}))
	t.Cleanup(ws.Close)
	h := newHarness(t, Options{}, running("ws", "/", nil, ready(0, ws, "tok")))

	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /chat HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", res.StatusCode)
	}
	for _, msg := range []string{"hello", "world"} {
		fmt.Fprintf(c, "%s\n", msg)
		got, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if got != "echo "+msg+"\n" {
			t.Errorf("got %q", got)
		}
	}
}

func TestServerSentEventsStream(t *testing.T) {
	next := make(chan struct{})
	sse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next: // the client saw this event while the handler runs
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(sse.Close)
	h := newHarness(t, Options{}, running("sse", "/", nil, ready(0, sse, "tok")))
	res, err := h.client.Get(h.url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("data: event %d\n", i); line != want {
			t.Fatalf("got %q, want %q", line, want)
		}
		_, _ = br.ReadString('\n')
		next <- struct{}{}
	}
}

func TestLargeBodiesStream(t *testing.T) {
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d", n)
	}))
	t.Cleanup(b.Close)
	h := newHarness(t, Options{}, running("up", "/", nil, ready(0, b, "tok")))
	const size = 8 << 20
	req, _ := http.NewRequest("PUT", h.url+"/upload", io.LimitReader(zeros{}, size))
	req.ContentLength = -1 // chunked
	res, body := h.do(req)
	if res.StatusCode != 200 || body != fmt.Sprint(size) {
		t.Errorf("status %d, backend got %s bytes", res.StatusCode, body)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestRequestTimeout504(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	route := running("slow", "/", nil, ready(0, slow, "tok"))
	route.RequestTimeout = durationpb.New(100 * time.Millisecond)
	h := newHarness(t, Options{}, route)
	res, body := h.get("", "/")
	if res.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "slow") {
		t.Errorf("status %d body %s", res.StatusCode, body)
	}
}

func TestClientGoneCancelsBackend(t *testing.T) {
	entered := make(chan struct{})
	canceled := make(chan struct{})
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		close(canceled)
	}))
	t.Cleanup(b.Close)
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, b, "tok")))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.url+"/", nil)
	go func() {
		<-entered
		cancel()
	}()
	if _, err := h.client.Do(req); err == nil {
		t.Fatal("request succeeded")
	}
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("backend request not canceled")
	}
	waitFor(t, "client-closed count", func() bool { return h.p.Stats().ClientClosed == 1 })
}
