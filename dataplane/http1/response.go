package http1

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// ErrBadResponse is a response head a proxy must not relay (502).
var ErrBadResponse = errors.New("malformed response from instance")

// Response is what a proxy needs of a response head: its status and
// framing.
type Response struct {
	Status  int
	Chunked bool
	Length  int64 // -1: none given
	Close   bool  // the server closes the connection after it
	Upgrade string
	Conn    ConnOptions
	Trailer bool // announces trailers
}

// ParseResponse reads the framing of a response head (status line and
// header lines, up to the empty line). Anything the proxy could not relay
// as it was meant, or that a client or another intermediary could read
// two ways, is ErrBadResponse (502): a status line other than
// "HTTP/1.x NNN reason", a field name that is not a token, control
// characters in a value or the reason (a bare CR would split the head
// for a lenient client), a Content-Length that is not one decimal
// (repeated: not written the same), a Transfer-Encoding other than one
// "chunked", and one in an HTTP/1.0 response. A response with both
// Content-Length and Transfer-Encoding is read as chunked, and its
// connection is not reused (RFC 9112 6.3).
func ParseResponse(head []byte, res *Response) error {
	*res = Response{Length: -1}
	s := head
	line, s := CutLine(s)
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') || !ValidValue(line[12:]) {
		return ErrBadResponse
	}
	code, ok := parseDecimal(string(line[9:12]))
	if !ok || code < 100 {
		return ErrBadResponse
	}
	res.Status = int(code)
	http10 := line[7] == '0'
	teCount := 0
	var te []byte
	var lengthValue string
	for {
		line, s = CutLine(s)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !ValidToken(line[:colon]) || !ValidValue(line[colon+1:]) {
			return ErrBadResponse
		}
		name, value := line[:colon], line[colon+1:]
		switch len(name) {
		case 7:
			switch {
			case strings.EqualFold(string(name), "Upgrade"):
				res.Upgrade = TrimOWS(string(value))
			case strings.EqualFold(string(name), "Trailer"):
				res.Trailer = true
			}
		case 10:
			if strings.EqualFold(string(name), "Connection") {
				res.Conn.Add(string(value))
			}
		case 14:
			if strings.EqualFold(string(name), "Content-Length") {
				v := TrimOWS(string(value))
				n, ok := parseDecimal(v)
				if !ok || (res.Length >= 0 && v != lengthValue) {
					return ErrBadResponse // repeated, as written (see ParseRequest)
				}
				res.Length, lengthValue = n, v
			}
		case 17:
			if strings.EqualFold(string(name), "Transfer-Encoding") {
				te = value
				teCount++
			}
		}
	}
	if teCount > 0 {
		// RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is
		// faulty framing (net/http ignores it and reads to the end).
		if teCount > 1 || http10 || !strings.EqualFold(TrimOWS(string(te)), "chunked") {
			return ErrBadResponse
		}
		if res.Length >= 0 {
			res.Close = true
		}
		res.Chunked, res.Length = true, -1
	}
	if res.Conn.Close || http10 && !res.Conn.KeepAlive {
		res.Close = true
	}
	return nil
}

// Drop reports whether a field of the response (whose head is head) is
// hop-by-hop or framing a proxy writes afresh: the fixed list, and every
// field a Connection header of the response names, whatever its name.
func (res *Response) Drop(name string, head []byte) bool {
	var drop bool
	switch len(name) {
	case 2:
		drop = strings.EqualFold(name, "TE")
	case 7:
		drop = strings.EqualFold(name, "Upgrade") || strings.EqualFold(name, "Trailer") && !res.Chunked
	case 10:
		drop = strings.EqualFold(name, "Connection") || strings.EqualFold(name, "Keep-Alive")
	case 14:
		drop = strings.EqualFold(name, "Content-Length")
	case 16:
		drop = strings.EqualFold(name, "Proxy-Connection")
	case 17:
		drop = strings.EqualFold(name, "Transfer-Encoding")
	case 18:
		drop = strings.EqualFold(name, "Proxy-Authenticate")
	case 19:
		drop = strings.EqualFold(name, "Proxy-Authorization")
	}
	return drop || res.Conn.Other && namedByConnection(head, name)
}

// Body framings of a relayed response (BodyMode).
const (
	BodyNone    = iota
	BodyLength  // Content-Length, as the server sent it
	BodyChunked // chunked, re-framed (CopyChunked)
	BodyDechunk // chunked from the server, decoded for an HTTP/1.0 client
	BodyEOF     // until the server closes, chunk-encoded for HTTP/1.1
	BodyEOFRaw  // until the server closes, to an HTTP/1.0 client
)

// BodyMode is how a relay frames the body of res, the answer to a
// request with method from a client speaking HTTP/1.0 (http10) or 1.1,
// and whether the server's connection can carry another exchange after
// it (reuse).
func BodyMode(method string, http10 bool, res *Response) (mode int, reuse bool) {
	noBody := method == "HEAD" || res.Status < 200 || res.Status == 204 || res.Status == 304
	// A 204 or 304 that announces a body may send one, which would be
	// read as the next response: its connection is not reused.
	dirty := method != "HEAD" && (res.Status == 204 && (res.Chunked || res.Length >= 0) ||
		res.Status == 304 && res.Chunked)
	switch {
	case noBody:
	case res.Chunked && http10:
		mode = BodyDechunk
	case res.Chunked:
		mode = BodyChunked
	case res.Length >= 0:
		mode = BodyLength
	case http10:
		mode = BodyEOFRaw
	default:
		mode = BodyEOF
	}
	reuse = !res.Close && !dirty && mode != BodyEOF && mode != BodyEOFRaw && mode != BodyDechunk
	return mode, reuse
}

// WriteResponseHead writes the head of res (head as the server sent it)
// to a client speaking HTTP/1.0 (http10) or 1.1, for a body framed as
// mode: the status line in the client's version, the fields Drop keeps,
// the framing field mode needs, then the end of the head (EndHead with
// keep). A 101 gets Connection: Upgrade and its Upgrade instead, and the
// connection becomes a tunnel. scratch is a buffer for the length.
func WriteResponseHead(w *bufio.Writer, head []byte, res *Response, http10 bool, mode int, keep bool, scratch []byte) {
	if http10 {
		_, _ = w.WriteString("HTTP/1.0")
	} else {
		_, _ = w.WriteString("HTTP/1.1")
	}
	line, rest := CutLine(head)
	_, _ = w.Write(line[8:])
	_, _ = w.WriteString("\r\n")
	for {
		line, rest = CutLine(rest)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if res.Drop(string(line[:colon]), head) {
			continue
		}
		_, _ = w.Write(line)
		_, _ = w.WriteString("\r\n")
	}
	switch {
	case res.Status == http.StatusSwitchingProtocols:
		_, _ = w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		_, _ = w.WriteString(res.Upgrade)
		_, _ = w.WriteString("\r\n\r\n")
		return
	case res.Status == 204 || (res.Status == 304 && res.Chunked):
		// no framing: these never have a body (RFC 9110 8.6, 6.4.1)
	case res.Chunked && (mode == BodyChunked || mode == BodyNone):
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	case res.Length >= 0:
		_, _ = w.WriteString("Content-Length: ")
		_, _ = w.Write(strconv.AppendInt(scratch[:0], res.Length, 10))
		_, _ = w.WriteString("\r\n")
	case mode == BodyEOF:
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	EndHead(w, keep, http10)
}

// RelayBody copies the body of res from src to dst as mode frames it.
// allow picks the trailer fields that pass (CopyChunked); wait is as for
// CopyN.
func RelayBody(dst *bufio.Writer, src *bufio.Reader, res *Response, mode int, wait func() error, allow func(name string) bool) error {
	switch mode {
	case BodyLength:
		return CopyN(dst, src, res.Length, wait)
	case BodyChunked:
		return CopyChunked(dst, src, wait, allow)
	case BodyDechunk:
		return CopyDechunked(dst, src, wait)
	case BodyEOF, BodyEOFRaw:
		return CopyToEOF(dst, src, mode == BodyEOF, wait)
	}
	return nil
}

// EndHead ends a head to an HTTP/1.x client with the connection field
// it needs: close when the connection ends after it, keep-alive for an
// HTTP/1.0 client that keeps it.
func EndHead(w *bufio.Writer, keep, http10 bool) {
	switch {
	case !keep:
		_, _ = w.WriteString("Connection: close\r\n\r\n")
	case http10:
		_, _ = w.WriteString("Connection: keep-alive\r\n\r\n")
	default:
		_, _ = w.WriteString("\r\n")
	}
}

// EachField calls fn for each field line of a head after its first line,
// with the value trimmed.
func EachField(head []byte, fn func(name, value string)) {
	_, s := CutLine(head)
	for len(s) > 0 {
		var line []byte
		line, s = CutLine(s)
		if len(line) == 0 {
			return
		}
		if colon := bytes.IndexByte(line, ':'); colon > 0 {
			fn(string(line[:colon]), TrimOWS(string(line[colon+1:])))
		}
	}
}
