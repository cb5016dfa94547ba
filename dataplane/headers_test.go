package dataplane

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

// FuzzParseRequest checks that a request the proxy accepts is forwarded
// with the framing it checked, and that net/http, as an app's parser,
// reads the forwarded head with the same method, target and body framing,
// and the forwarded body (Content-Length or chunked, re-framed by
// http1.CopyChunked) to exactly its end with the same content net/http reads
// from the client's original: no message can make the proxy and an app
// disagree about where a request ends.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"\r\nGET http://h/p?q HTTP/1.0\n\n",
		"PUT /a%20b HTTP/1.1\r\nHost: x\r\nConnection: X-A, close\r\nX-A: 1\r\nTE: trailers\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
		// Attack shapes: each must be refused or forwarded unambiguously.
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n003 ;x=\"a;b\"\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\nAncm-Token: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n X: folded\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\n",
		"GET / HTTP/1.1\rHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
		"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n",
		"GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		c := &clientConn{br: bufio.NewReader(strings.NewReader(msg))}
		head, err := c.readHead()
		if err != nil {
			return
		}
		var r request
		if parseRequest(head, &r) != nil || r.ResolveTarget() != nil {
			return
		}
		fi := &forwardInfo{clientIP: "192.0.2.1", token: "tok", backend: "127.0.0.1:1"}
		out := appendRequestHead(nil, &r, fi)
		var r2 request
		if err := parseRequest(string(out), &r2); err != nil || r2.ResolveTarget() != nil {
			t.Fatalf("forwarded head refused by the proxy's own parser: %v\n%q", err, out)
		}
		if r2.Method != r.Method || r2.URI != r.URI || r2.Framing.Chunked != r.Framing.Chunked || r2.Framing.Length != r.Framing.Length {
			t.Fatalf("forwarded head changed the request:\n in: %q\nout: %q", head, out)
		}
		// The body, forwarded as the proxy forwards it.
		rest, _ := io.ReadAll(c.br)
		var body bytes.Buffer
		bw := bufio.NewWriter(&body)
		src := bufio.NewReader(bytes.NewReader(rest))
		var ferr error
		switch {
		case r.Framing.Chunked:
			ferr = http1.CopyChunked(bw, src, nil, trailerAllowed)
		case r.Framing.Length > 0:
			ferr = http1.CopyN(bw, src, r.Framing.Length, nil)
		}
		if ferr != nil {
			return // the exchange ends there; nothing complete was forwarded
		}
		_ = bw.Flush()
		consumed := len(rest) - src.Buffered()
		fwd := append(out, body.Bytes()...)
		br := bufio.NewReader(bytes.NewReader(fwd))
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("net/http refuses the forwarded head: %v\n%q", err, out)
		}
		chunked := len(req.TransferEncoding) > 0
		if req.Method != r.Method || chunked != r.Framing.Chunked || (!chunked && req.ContentLength != r.Framing.Length) {
			t.Fatalf("net/http reads the forwarded head differently: %s chunked=%v length=%d\n%q",
				req.Method, chunked, req.ContentLength, out)
		}
		if got := req.Header.Values("Ancm-Token"); len(got) != 1 || got[0] != "tok" {
			t.Fatalf("tokens %q", got)
		}
		got, err := io.ReadAll(req.Body)
		if err != nil || br.Buffered() != 0 {
			t.Fatalf("net/http reads the forwarded body differently: %v, %d bytes left\n%q", err, br.Buffered(), fwd)
		}
		for k := range req.Trailer {
			if !trailerAllowed(k) {
				t.Fatalf("trailer %q forwarded", k)
			}
		}
		// What net/http makes of the client's own body is the same.
		if r.Framing.Chunked {
			orig, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(rest[:consumed])))
			if err == nil && !bytes.Equal(orig, got) {
				t.Fatalf("body %q forwarded as %q", orig, got)
			}
		}
	})
}
