package dataplane

import (
	"bufio"
	"bytes"
	"net/http"
	"testing"
)

// FuzzParseRequest checks that a head the proxy accepts is forwarded
// with the framing it checked, and that net/http, as an app's parser,
// reads the forwarded head with the same method, target and body framing:
// no head can make the proxy and an app disagree about where a request
// ends.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"\r\nGET http://h/p?q HTTP/1.0\n\n",
		"PUT /a%20b HTTP/1.1\r\nHost: x\r\nConnection: X-A, close\r\nX-A: 1\r\nTE: trailers\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, head string) {
		var r request
		if parseRequest(head, &r) != nil || r.resolveTarget() != nil {
			return
		}
		fi := &forwardInfo{clientIP: "192.0.2.1", token: "tok", backend: "127.0.0.1:1"}
		out := appendRequestHead(nil, &r, fi)
		var r2 request
		if err := parseRequest(string(out), &r2); err != nil || r2.resolveTarget() != nil {
			t.Fatalf("forwarded head refused by the proxy's own parser: %v\n%q", err, out)
		}
		if r2.method != r.method || r2.uri != r.uri || r2.framing.chunked != r.framing.chunked || r2.framing.length != r.framing.length {
			t.Fatalf("forwarded head changed the request:\n in: %q\nout: %q", head, out)
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(out)))
		if err != nil {
			t.Fatalf("net/http refuses the forwarded head: %v\n%q", err, out)
		}
		chunked := len(req.TransferEncoding) > 0
		if req.Method != r.method || chunked != r.framing.chunked || (!chunked && req.ContentLength != r.framing.length) {
			t.Fatalf("net/http reads the forwarded head differently: %s chunked=%v length=%d\n%q",
				req.Method, chunked, req.ContentLength, out)
		}
		if got := req.Header.Values("Ancm-Token"); len(got) != 1 || got[0] != "tok" {
			t.Fatalf("tokens %q", got)
		}
	})
}

func TestCheckHead(t *testing.T) {
	for _, tc := range []struct {
		head string
		want headFraming
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", headFraming{}},
		{"POST / HTTP/1.1\r\ncontent-length: 12\r\n\r\n", headFraming{length: 12}},
		{"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", headFraming{length: 3}},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", headFraming{chunked: true}},
		{"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", headFraming{bad: true, length: 3}},
		{"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n", headFraming{bad: true}},
		{"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", headFraming{tunnel: true}},
		{"CONNECT a:443 HTTP/1.1\r\n\r\n", headFraming{tunnel: true}},
		{"garbage\r\n\r\n", headFraming{unknown: true}},
	} {
		if got := checkHead([]byte(tc.head)); got != tc.want {
			t.Errorf("checkHead(%q) = %+v, want %+v", tc.head, got, tc.want)
		}
	}
}
