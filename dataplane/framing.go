package dataplane

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
)

// net/http resolves some ambiguous framings by itself instead of refusing
// them: with both Content-Length and Transfer-Encoding it drops the length
// and reads chunks (RFC 9112 allows this, but a proxy in front of other
// parsers had better refuse), it answers 501 to unknown transfer codings,
// and it ignores Transfer-Encoding on HTTP/1.0. By the time a handler runs
// the evidence is gone, so the check happens on the connection: the bytes
// of each request head are held until the head is complete and checked;
// a bad head is replaced by a malformed request line, which net/http
// answers with 400 and a closed connection, so nothing is forwarded.
//
// To find the next head the scanner follows the body framing itself
// (Content-Length, chunked); after an upgrade or CONNECT, or any head it
// cannot make sense of, it steps aside and lets net/http decide.
// TLS connections are passed through unchecked: net/http must see the
// *tls.Conn itself.

// framingListener wraps accepted connections in framingConns.
type framingListener struct {
	net.Listener
	stats *counters
}

func (l *framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, ok := c.(*tls.Conn); ok {
		return c, nil
	}
	return &framingConn{Conn: c, stats: l.stats}, nil
}

// Scanner states.
const (
	fsHead      = iota // collecting a request head
	fsBody             // passing remaining bytes, then state after
	fsChunkSize        // passing a chunk-size line
	fsChunkEnd         // passing the CRLF after chunk data
	fsTrailer          // passing trailer lines up to the empty one
	fsPass             // not looking anymore
	fsRejected         // bad head sent; nothing more is read
)

// maxHeadScan is the most head bytes held back; beyond it net/http's own
// limit (431) applies and the scanner steps aside.
const maxHeadScan = maxHeaderBytes + 8<<10

// badHead is what net/http gets instead of a refused head.
var badHead = []byte("BAD-FRAMING\r\n\r\n")

type framingConn struct {
	net.Conn
	stats *counters

	state     int
	after     int   // state after fsBody
	remaining int64 // bytes left in fsBody
	lineStart bool  // in fsHead: at the start of a line
	head      []byte
	line      []byte // current chunk-size or trailer line
	buf       []byte
	unread    []byte // read from the connection, not yet scanned
	pending   []byte // scanned, not yet returned
}

func (c *framingConn) Read(p []byte) (int, error) {
	for {
		if len(c.pending) > 0 {
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		}
		switch c.state {
		case fsPass:
			if len(c.unread) > 0 {
				c.pending, c.unread = c.unread, nil
				continue
			}
			return c.Conn.Read(p)
		case fsRejected:
			return 0, io.EOF
		case fsBody:
			if len(c.unread) == 0 {
				// Large bodies go straight into the caller's buffer.
				if int64(len(p)) > c.remaining {
					p = p[:c.remaining]
				}
				n, err := c.Conn.Read(p)
				c.remaining -= int64(n)
				if c.remaining == 0 {
					c.state = c.after
				}
				return n, err
			}
		}
		if len(c.unread) == 0 {
			if c.buf == nil {
				c.buf = make([]byte, 4096)
			}
			n, err := c.Conn.Read(c.buf)
			if n == 0 {
				var ne net.Error
				if err != nil && len(c.head) > 0 && !(errors.As(err, &ne) && ne.Timeout()) {
					// The client is gone mid-head: let net/http see the
					// partial head and the error. (A timeout may be
					// net/http interrupting its background read; the
					// head stays held for the next Read.)
					c.pending, c.head, c.state = c.head, nil, fsPass
					continue
				}
				return 0, err
			}
			c.unread = c.buf[:n]
		}
		c.scan()
	}
}

// scan consumes some of c.unread and sets c.pending to what may be passed
// on. It makes progress on every call.
func (c *framingConn) scan() {
	switch c.state {
	case fsHead:
		c.scanHead()
	case fsBody:
		n := int64(len(c.unread))
		if n > c.remaining {
			n = c.remaining
		}
		c.pending, c.unread = c.unread[:n], c.unread[n:]
		c.remaining -= n
		if c.remaining == 0 {
			c.state = c.after
		}
	case fsChunkSize, fsChunkEnd, fsTrailer:
		c.scanLine()
	default:
		c.pending, c.unread = c.unread, nil
	}
}

func (c *framingConn) scanHead() {
	if len(c.head) == 0 {
		c.lineStart = false
	}
	for i, b := range c.unread {
		switch b {
		case '\n':
			if c.lineStart {
				c.head = append(c.head, c.unread[:i+1]...)
				c.unread = c.unread[i+1:]
				c.endHead()
				return
			}
			c.lineStart = true
		case '\r':
		default:
			c.lineStart = false
		}
	}
	c.head = append(c.head, c.unread...)
	c.unread = nil
	if len(c.head) > maxHeadScan {
		c.pending, c.head, c.state = c.head, nil, fsPass
	}
}

// endHead checks a complete head and decides how its body is framed.
func (c *framingConn) endHead() {
	head := c.head
	// The buffer is reused for the next head: that is only scanned once
	// pending (which aliases it) has been handed on.
	c.head = c.head[:0]
	f := checkHead(head)
	switch {
	case f.bad:
		c.stats.badFraming.Add(1)
		c.stats.requests.Add(1)
		c.stats.byClass[4].Add(1)
		c.pending, c.unread, c.state = badHead, nil, fsRejected
		return
	case f.unknown:
		c.pending, c.state = head, fsPass
		return
	}
	c.pending = head
	switch {
	case f.tunnel:
		c.state = fsPass
	case f.chunked:
		c.state = fsChunkSize
		c.line = c.line[:0]
	case f.length > 0:
		c.state, c.remaining, c.after = fsBody, f.length, fsHead
	default:
		c.state = fsHead
	}
}

// scanLine passes one line of chunked framing and interprets it.
func (c *framingConn) scanLine() {
	i := bytes.IndexByte(c.unread, '\n')
	if i < 0 {
		c.line = append(c.line, c.unread...)
		c.pending, c.unread = c.unread, nil
		if len(c.line) > 4096 {
			c.state = fsPass
		}
		return
	}
	c.line = append(c.line, c.unread[:i+1]...)
	c.pending, c.unread = c.unread[:i+1], c.unread[i+1:]
	line := bytes.TrimRight(c.line, "\r\n")
	c.line = c.line[:0]
	switch c.state {
	case fsChunkEnd:
		if len(line) != 0 {
			c.state = fsPass // net/http will refuse it
			return
		}
		c.state = fsChunkSize
	case fsTrailer:
		if len(line) == 0 {
			c.state = fsHead
		}
	case fsChunkSize:
		if j := bytes.IndexByte(line, ';'); j >= 0 {
			line = line[:j]
		}
		line = bytes.TrimSpace(line)
		size, ok := parseHex(line)
		switch {
		case !ok:
			c.state = fsPass
		case size == 0:
			c.state = fsTrailer
		default:
			c.state, c.remaining, c.after = fsBody, size, fsChunkEnd
		}
	}
}

func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

// headFraming is what checkHead found out about a request head.
type headFraming struct {
	bad     bool // refuse with 400
	unknown bool // not understood: let net/http judge
	tunnel  bool // upgrade or CONNECT: stop scanning after the head
	chunked bool
	length  int64
}

// checkHead checks the framing headers of one request head: it refuses
// Content-Length together with Transfer-Encoding, differing or malformed
// Content-Length values, any Transfer-Encoding but a single "chunked",
// Transfer-Encoding on HTTP/1.0, and obsolete line folding.
func checkHead(head []byte) headFraming {
	var f headFraming
	// RFC 9112 2.2: empty lines before the request line are ignored.
	head = bytes.TrimLeft(head, "\r\n")
	eol := bytes.IndexByte(head, '\n')
	if eol < 0 {
		return headFraming{unknown: true}
	}
	reqLine := bytes.TrimRight(head[:eol], "\r")
	rest := head[eol+1:]
	sp := bytes.IndexByte(reqLine, ' ')
	lsp := bytes.LastIndexByte(reqLine, ' ')
	if sp <= 0 || lsp == sp {
		return headFraming{unknown: true}
	}
	method, proto := reqLine[:sp], reqLine[lsp+1:]
	http10 := string(proto) == "HTTP/1.0"
	if string(method) == "CONNECT" {
		f.tunnel = true
	}
	var (
		haveCL, haveTE, upgrade, connUpgrade bool
		teCount                              int
		teValue                              []byte
	)
	for len(rest) > 0 {
		eol := bytes.IndexByte(rest, '\n')
		if eol < 0 {
			eol = len(rest)
		}
		line := bytes.TrimRight(rest[:eol], "\r")
		rest = rest[min(eol+1, len(rest)):]
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			f.bad = true // obs-fold could hide a framing header
			return f
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return headFraming{unknown: true}
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseDecimal(value)
			if !ok || (haveCL && n != f.length) {
				f.bad = true
				return f
			}
			haveCL, f.length = true, n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			haveTE = true
			teCount++
			teValue = value
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = len(value) > 0
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				if bytes.EqualFold(bytes.TrimSpace(tok), []byte("upgrade")) {
					connUpgrade = true
				}
			}
		}
	}
	if haveTE {
		if haveCL || http10 || teCount != 1 || !bytes.EqualFold(teValue, []byte("chunked")) {
			f.bad = true
			return f
		}
		f.chunked = true
		f.length = 0
	}
	if upgrade && connUpgrade {
		f.tunnel = true
	}
	return f
}

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// CloseWrite lets net/http half-close the connection as it would a
// *net.TCPConn.
func (c *framingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
