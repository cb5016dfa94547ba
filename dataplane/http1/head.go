package http1

// Where lines and heads end, for requests and responses alike: one line
// reader, one head reader, one token-list parser and one socket probe.
// What the lines mean is request.go's and response.go's business; where
// they end is decided here only.
//
// A line ends at LF and nowhere else. A line longer than the reader's
// buffer is gathered across reads, never cut: bufio.Reader.ReadSlice
// returns such a line in pieces (ErrBufferFull), and a piece is never a
// line of its own. A head ends at the first empty line ("\r\n" or "\n")
// that starts at a line start.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// ErrLineTooLong is a line, or a head, beyond its limit.
var ErrLineTooLong = errors.New("line too long")

// readLine appends one line of br, through its LF, to b. A read that
// times out calls wait, which returns nil to go on waiting or the error
// that ends the read (nil wait: the timeout is the error). It returns
// ErrLineTooLong once b would grow beyond limit bytes, and
// io.ErrUnexpectedEOF when br ends inside a line, io.EOF when it ends
// before the line's first byte.
func readLine(br *bufio.Reader, b []byte, limit int, wait func() error) ([]byte, error) {
	start := len(b)
	for {
		frag, err := br.ReadSlice('\n')
		if len(b)+len(frag) > limit {
			return b, ErrLineTooLong
		}
		b = append(b, frag...)
		switch {
		case err == nil:
			return b, nil
		case err == bufio.ErrBufferFull:
			// A piece of a long line: keep reading the same line.
		case IsTimeout(err) && wait != nil:
			if werr := wait(); werr != nil {
				return b, werr
			}
		case err == io.EOF && len(b) > start:
			return b, io.ErrUnexpectedEOF
		default:
			return b, err
		}
	}
}

// isEmptyLine reports whether line (with its LF) is empty.
func isEmptyLine(line []byte) bool {
	return len(line) == 1 || len(line) == 2 && line[0] == '\r'
}

// ReadHead reads one message head into b[:0]: its lines through the
// empty line that ends it. Empty lines before the first line are skipped
// (RFC 9112 2.2), counted against limit like the head. A head beyond
// limit bytes is ErrLineTooLong; a connection that ends before the
// head's first byte gives io.EOF, one that ends inside it
// io.ErrUnexpectedEOF. wait is as for readLine.
func ReadHead(br *bufio.Reader, b []byte, limit int, wait func() error) ([]byte, error) {
	b = b[:0]
	skipped := 0
	for {
		line := len(b)
		var err error
		b, err = readLine(br, b, limit-skipped, wait)
		if err != nil {
			if err == io.EOF && line > 0 {
				err = io.ErrUnexpectedEOF
			}
			return b, err
		}
		if isEmptyLine(b[line:]) {
			if line > 0 {
				return b, nil
			}
			skipped += len(b)
			b = b[:0]
		}
	}
}

// CutLine splits s after its first line; line has no CR LF or LF.
func CutLine[T string | []byte](s T) (line, rest T) {
	var i int
	switch p := any(&s).(type) {
	case *string:
		i = strings.IndexByte(*p, '\n')
	case *[]byte:
		i = bytes.IndexByte(*p, '\n')
	}
	if i < 0 {
		return s, s[len(s):]
	}
	line, rest = s[:i], s[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// nextToken returns the first element of a comma-separated list, without
// optional whitespace, and the rest of the list. Empty elements are
// returned as "" (callers skip them).
func nextToken(v string) (tok, rest string) {
	tok, rest, _ = strings.Cut(v, ",")
	return TrimOWS(tok), rest
}

// HasToken reports whether the comma-separated list v holds tok, case
// insensitively.
func HasToken(v, tok string) bool {
	for v != "" {
		var t string
		t, v = nextToken(v)
		if strings.EqualFold(t, tok) {
			return true
		}
	}
	return false
}

// ConnOptions are the options of Connection headers, in a request or a
// response alike.
type ConnOptions struct {
	Close     bool // "close"
	KeepAlive bool // "keep-alive"
	Upgrade   bool // "upgrade"
	Other     bool // names other header fields, which are hop-by-hop
}

// Add reads one Connection header's value.
func (o *ConnOptions) Add(v string) {
	for v != "" {
		var tok string
		tok, v = nextToken(v)
		switch {
		case tok == "":
		case strings.EqualFold(tok, "close"):
			o.Close = true
		case strings.EqualFold(tok, "keep-alive"):
			o.KeepAlive = true
		case strings.EqualFold(tok, "upgrade"):
			o.Upgrade = true
		default:
			o.Other = true
		}
	}
}

// namedByConnection reports whether a Connection field line of head (the
// first line, a start line, is skipped) names the field name, which makes
// that field hop-by-hop.
func namedByConnection[T string | []byte](head T, name string) bool {
	_, s := CutLine(head)
	for len(s) > 0 {
		var line T
		line, s = CutLine(s)
		if len(line) == 0 {
			return false
		}
		if len(line) > 11 && line[10] == ':' && strings.EqualFold(string(line[:10]), "Connection") &&
			HasToken(string(line[11:]), name) {
			return true
		}
	}
	return false
}

// Socket probe results; see ProbeFD.
const (
	ProbeEmpty  = iota // nothing to read, connection open
	ProbeData          // bytes waiting
	ProbeClosed        // end of stream or an error: the peer is gone
)

// ProbeFD looks at a socket without blocking and without consuming: one
// byte with MSG_PEEK and MSG_DONTWAIT. It is the one liveness check of
// the data plane, for clients (a proxy's "is the client gone") and idle
// pooled connections (Pool.Get).
func ProbeFD(fd uintptr) int {
	var b [1]byte
	for {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return ProbeEmpty
		case err != nil || n == 0:
			return ProbeClosed
		}
		return ProbeData
	}
}

// Prober runs ProbeFD on a connection. Its callback is made once: a
// closure per check would allocate on every request.
type Prober struct {
	raw syscall.RawConn // nil: not a socket, never probed
	fn  func(fd uintptr)
	res int
}

// Init sets p up for the socket under nc; a connection that is not a
// socket is never probed (pass a tls.Conn's NetConn).
func (p *Prober) Init(nc net.Conn) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	p.raw = raw
	p.fn = func(fd uintptr) { p.res = ProbeFD(fd) }
}

// Raw is the probed socket, nil when there is none.
func (p *Prober) Raw() syscall.RawConn { return p.raw }

// Probe returns ProbeFD's answer for the connection; a connection that
// cannot be probed reads as empty.
func (p *Prober) Probe() int {
	if p.raw == nil {
		return ProbeEmpty
	}
	p.res = ProbeClosed
	if p.raw.Control(p.fn) != nil {
		return ProbeClosed
	}
	return p.res
}

// Sizes of a server's client connection that the codec is tested with
// (the differential tests against net/http are sized to them).
const (
	// RequestReaderSize is the size of a client connection's reader.
	RequestReaderSize = 4 << 10
	// MaxRequestHead bounds a request head; a longer one is
	// ErrLineTooLong from ReadHead, 431 to the client.
	MaxRequestHead = 64 << 10
)
