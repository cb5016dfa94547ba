package http1

import "testing"

// TestParseRequestFraming checks what ParseRequest says of a head's body
// framing, and that a head it cannot read is refused as malformed.
func TestParseRequestFraming(t *testing.T) {
	for _, tc := range []struct {
		head string
		want Framing
		err  error
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Framing{}, nil},
		{"POST / HTTP/1.1\r\ncontent-length: 12\r\n\r\n", Framing{Length: 12}, nil},
		{"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", Framing{Length: 3}, nil},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", Framing{Chunked: true}, nil},
		{"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", Framing{Bad: true, Length: 3}, ErrBadFraming},
		{"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n", Framing{Bad: true}, ErrBadFraming},
		{"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", Framing{Tunnel: true}, nil},
		{"CONNECT a:443 HTTP/1.1\r\n\r\n", Framing{Tunnel: true}, nil},
		{"garbage\r\n\r\n", Framing{}, ErrMalformed},
	} {
		var r Request
		err := ParseRequest(tc.head, &r)
		if err != tc.err || r.Framing != tc.want {
			t.Errorf("ParseRequest(%q): %v, framing %+v; want %v, %+v", tc.head, err, r.Framing, tc.err, tc.want)
		}
	}
}
