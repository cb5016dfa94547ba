package http1

import (
	"io"
	"net"
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
func respond(c net.Conn, res string) {
	defer c.Close()
	br := NewConn(c).BR
	var b []byte
	for {
		var err error
		if b, err = ReadHead(br, b, MaxRequestHead, nil); err != nil {
			return
		}
		if _, err := io.WriteString(c, res); err != nil {
			return
		}
	}
}

// exchange sends a GET on c and reads the response head and its body.
func exchange(t *testing.T, c *Conn) string {
	t.Helper()
	_, _ = c.BW.WriteString("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if err := c.BW.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadHead(nil); err != nil {
		t.Fatal(err)
	}
	var res Response
	if err := ParseResponse(c.Head, &res); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, res.Length)
	if _, err := io.ReadFull(c.BR, body); err != nil {
		t.Fatal(err)
	}
	return string(body)
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
	if c.Sent() != int64(len("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) {
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
