package dataplane

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// chunkConn is a net.Conn that reads data in pieces of at most n bytes.
type chunkConn struct {
	net.Conn
	data []byte
	n    int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

// FuzzFramingConn checks that the framing scanner never changes, drops or
// reorders bytes: what it passes on is the input, or a prefix of it
// followed by the malformed head that makes net/http answer 400.
func FuzzFramingConn(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n0\r\nT: 1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw bytes",
		"\r\nGET / HTTP/1.0\n\n",
	} {
		f.Add([]byte(s), 1)
		f.Add([]byte(s), 7)
	}
	f.Fuzz(func(t *testing.T, in []byte, n int) {
		if n <= 0 || n > 1<<16 {
			n = 1 + (n&0xffff)%4096
		}
		fc := &framingConn{Conn: &chunkConn{data: bytes.Clone(in), n: n}, stats: &counters{}}
		out, err := io.ReadAll(fc)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(out, in) {
			return
		}
		prefix, ok := bytes.CutSuffix(out, badHead)
		if !ok || !bytes.HasPrefix(in, prefix) {
			t.Fatalf("scanner changed the stream:\n in: %q\nout: %q", in, out)
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
