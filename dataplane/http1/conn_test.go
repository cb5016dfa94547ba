package http1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// server accepts connections on loopback and hands each to serve.
func server(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// respond answers every request head on c with a fixed response.
func respond(c net.Conn, res string) { respondAfter(c, res, nil) }

// respondAfter is respond calling before (if not nil) ahead of each
// answer.
func respondAfter(c net.Conn, res string, before func()) {
	defer c.Close()
	br := bufio.NewReader(c)
	var b []byte
	for {
		var err error
		if b, err = ReadHead(br, b, MaxRequestHead, nil); err != nil {
			return
		}
		if before != nil {
			before()
		}
		if _, err := io.WriteString(c, res); err != nil {
			return
		}
	}
}

// getRequest is the request the tests send.
const getRequest = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

// exchange sends a GET on c and reads the response head and its body.
func exchange(t *testing.T, c *Conn) string {
	t.Helper()
	body, err := roundTrip(t, c, c.BW.Flush, nil)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// roundTrip writes a GET to c's buffer, sends it with flush, and reads
// the response head (with wait as ReadHead's callback) and its body.
func roundTrip(t *testing.T, c *Conn, flush, wait func() error) (string, error) {
	t.Helper()
	_, _ = c.BW.WriteString(getRequest)
	if err := flush(); err != nil {
		return "", err
	}
	if err := c.ReadHead(wait); err != nil {
		return "", err
	}
	var res Response
	if err := ParseResponse(c.Head, &res); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, res.Length)
	if _, err := io.ReadFull(c.BR, body); err != nil {
		t.Fatal(err)
	}
	return string(body), nil
}

// TestPoolReuse: a connection given back clean is the next one taken,
// marked reused; Sent counts what its socket took.
func TestPoolReuse(t *testing.T) {
	addr := server(t, func(c net.Conn) { respond(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") })
	p := &Pool{Addr: addr}
	c, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	if c.Reused || c.Sent() != 0 {
		t.Fatalf("a dialed connection: reused %v, sent %d", c.Reused, c.Sent())
	}
	if got := exchange(t, c); got != "ok" {
		t.Fatalf("body %q", got)
	}
	if c.Sent() != int64(len(getRequest)) {
		t.Fatalf("sent %d", c.Sent())
	}
	p.Put(c, time.Now())
	c2, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	if c2 != c || !c2.Reused {
		t.Fatalf("got a new connection (reused %v), want the pooled one", c2.Reused)
	}
	if got := exchange(t, c2); got != "ok" {
		t.Fatalf("body %q", got)
	}
	c2.Close()
}

// TestPoolDropsDirtyConnections: a connection the server sent more than
// its response on, or closed, is never handed out again: its bytes would
// be read as the next request's response.
func TestPoolDropsDirtyConnections(t *testing.T) {
	// The server answers with one response and an extra one after it.
	addr := server(t, func(c net.Conn) {
		respond(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
	})
	p := &Pool{Addr: addr}
	c, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	if got := exchange(t, c); got != "ok" {
		t.Fatalf("body %q", got)
	}
	// The extra response arrived with the first: Put sees it buffered.
	deadline := time.Now().Add(5 * time.Second)
	for c.BR.Buffered() == 0 && time.Now().Before(deadline) {
		_ = c.NC.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		_, _ = c.BR.Peek(1)
	}
	_ = c.NC.SetReadDeadline(time.Time{})
	if c.BR.Buffered() == 0 {
		t.Fatal("the extra response never arrived")
	}
	p.Put(c, time.Now())
	if len(p.idle) != 0 {
		t.Fatal("a connection with buffered bytes was pooled")
	}

	// A connection whose extra bytes arrive after Put is dropped by Get.
	addr2 := server(t, func(c net.Conn) {
		respond(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	p2 := &Pool{Addr: addr2}
	c, err = p2.Get()
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c)
	p2.Put(c, time.Now())
	// The server goes away: the pooled connection reads as closed.
	for _, ic := range p2.idle {
		_ = ic.NC.(*net.TCPConn).CloseWrite() // our side stays open; the peer sees EOF and closes
	}
	waitClosed := time.Now().Add(5 * time.Second)
	for c.probe.Probe() != ProbeClosed {
		if time.Now().After(waitClosed) {
			t.Fatal("the server did not close its side")
		}
		time.Sleep(time.Millisecond)
	}
	c2, err := p2.Get()
	if err != nil {
		t.Fatal(err)
	}
	if c2 == c || c2.Reused {
		t.Fatal("a closed pooled connection was handed out")
	}
	c2.Close()
}

// TestPoolCloseIdle: CloseIdle closes the connections idle since before
// its argument and keeps the others.
func TestPoolCloseIdle(t *testing.T) {
	addr := server(t, func(c net.Conn) { respond(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") })
	p := &Pool{Addr: addr}
	now := time.Now()
	var conns []*Conn
	for range 3 {
		c, err := p.Dial()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	p.Put(conns[0], now.Add(-2*time.Minute))
	p.Put(conns[1], now.Add(-2*time.Minute))
	p.Put(conns[2], now)
	p.CloseIdle(now.Add(-time.Minute))
	if len(p.idle) != 1 || p.idle[0] != conns[2] {
		t.Fatalf("%d idle left, want the recent one", len(p.idle))
	}
	if _, err := conns[0].NC.Write([]byte("x")); err == nil {
		t.Fatal("a stale connection was left open")
	}
	p.CloseIdle(now.Add(time.Hour))
	if len(p.idle) != 0 {
		t.Fatal("CloseIdle in the future left connections")
	}
}

// TestFlushOnReadLosesNoAnswer: a request whose last bytes leave with
// the first read of its answer, thousands of times over pooled
// connections to a server that answers at once: every flush is deferred,
// every answer is read (a wait that missed one would hold its read until
// the 5 s deadline and fail the test), and each request leaves once.
// What keeps an answer from coming before the wait begins is the order
// inside flushAndWait (the flush after RawConn.Read's prepare); a build
// that flushed before it passed this test too, the window being a few
// hundred nanoseconds, so the order is argued in FlushOnRead's comment
// rather than shown here.
func TestFlushOnReadLosesNoAnswer(t *testing.T) {
	var served atomic.Int64
	addr := server(t, func(c net.Conn) {
		respondAfter(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", func() { served.Add(1) })
	})
	p := &Pool{Addr: addr}
	const n = 3000
	deferred := 0
	for i := range n {
		c, err := p.Get()
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		sent := c.Sent()
		_, _ = c.BW.WriteString(getRequest)
		if err := c.FlushOnRead(); err != nil {
			t.Fatal(err)
		}
		if c.await {
			deferred++
		}
		if c.Sent() != sent && c.await {
			t.Fatal("FlushOnRead deferred a flush and wrote too")
		}
		if err := c.ReadHead(nil); err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
		if got := c.Sent() - sent; got != int64(len(getRequest)) {
			t.Fatalf("exchange %d: the socket took %d bytes, want %d", i, got, len(getRequest))
		}
		var res Response
		if err := ParseResponse(c.Head, &res); err != nil || res.Status != 200 {
			t.Fatalf("exchange %d: %v %d", i, err, res.Status)
		}
		if _, err := c.BR.Discard(int(res.Length)); err != nil {
			t.Fatal(err)
		}
		p.Put(c, time.Now())
	}
	if deferred != n {
		t.Errorf("%d of %d flushes deferred, want all (requests that fit the buffer)", deferred, n)
	}
	if got := served.Load(); got != n {
		t.Errorf("server saw %d requests, want %d", got, n)
	}
}

// TestFlushOnReadFlushesAtOnce: a connection that is not a socket, or
// whose request already began to leave (it did not fit the buffer), is
// flushed by FlushOnRead itself.
func TestFlushOnReadFlushesAtOnce(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := NewConn(a)
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, len(getRequest))
		_, _ = io.ReadFull(b, buf)
		got <- string(buf)
	}()
	_, _ = c.BW.WriteString(getRequest)
	if err := c.FlushOnRead(); err != nil || c.await {
		t.Fatalf("pipe: FlushOnRead = %v, deferred %v; want a flush", err, c.await)
	}
	if s := <-got; s != getRequest {
		t.Fatalf("pipe got %q", s)
	}

	addr := server(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	p := &Pool{Addr: addr}
	tc, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_, _ = tc.BW.Write(make([]byte, 20<<10)) // past BW's 8 KiB: part of it left already
	if tc.Sent() == 0 {
		t.Fatal("a 20 KiB write left nothing")
	}
	if err := tc.FlushOnRead(); err != nil || tc.await || tc.Sent() != 20<<10 {
		t.Fatalf("FlushOnRead = %v, deferred %v, sent %d; want a flush of the rest", err, tc.await, tc.Sent())
	}
}

// TestFlushOnReadWaitsPastDeadlines: a read deadline that passes while
// the deferred request waits for its answer calls ReadHead's callback,
// which may wait on; one already past when the read begins still sends
// the request, once.
func TestFlushOnReadWaitsPastDeadlines(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first time.Duration // the read deadline when ReadHead begins, from now
	}{
		{"passes during the wait", 30 * time.Millisecond},
		{"past before the read", -time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan struct{}, 4)
			answer := make(chan struct{})
			addr := server(t, func(c net.Conn) {
				respondAfter(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", func() {
					got <- struct{}{}
					<-answer
				})
			})
			p := &Pool{Addr: addr}
			c, err := p.Get()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(tc.first))
			waits := 0
			body, err := roundTrip(t, c, c.FlushOnRead, func() error {
				waits++
				if waits == 1 {
					select {
					case <-got: // the request left despite the deadline
					case <-time.After(5 * time.Second):
						return errors.New("the server never got the request")
					}
					close(answer)
				}
				if waits > 1000 {
					return errors.New("too many waits")
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				return nil
			})
			if err != nil || body != "ok" {
				t.Fatalf("exchange: %q, %v", body, err)
			}
			if waits != 1 {
				t.Errorf("%d waits, want 1", waits)
			}
			if len(got) != 0 || c.Sent() != int64(len(getRequest)) {
				t.Errorf("the request left more than once (sent %d)", c.Sent())
			}
		})
	}
}

// TestFlushOnReadReturnsTheFlushError: when the deferred flush fails (the
// server reset the connection), the read returns the write's error and
// Sent shows that nothing left, as Flush would have.
func TestFlushOnReadReturnsTheFlushError(t *testing.T) {
	dialed := make(chan struct{})
	addr := server(t, func(c net.Conn) {
		<-dialed
		_ = c.(*net.TCPConn).SetLinger(0) // close with a reset
		c.Close()
	})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	close(dialed)
	c := NewConn(nc)
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for c.probe.Probe() != ProbeClosed {
		if time.Now().After(deadline) {
			t.Fatal("the server did not reset the connection")
		}
		time.Sleep(time.Millisecond)
	}
	_, err = roundTrip(t, c, c.FlushOnRead, nil)
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("read after a failed flush: %v, want the write's ECONNRESET or EPIPE", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "write" {
		t.Errorf("error %v is not the write's", err)
	}
	if c.Sent() != 0 {
		t.Errorf("sent %d, want 0", c.Sent())
	}
}
