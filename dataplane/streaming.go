package dataplane

// Bodies are streamed, never buffered whole, in both directions:
//
//   - Content-Length bodies are copied as they are; chunked bodies are
//     re-framed chunk by chunk as they are read (canonical sizes, no
//     extensions, only the trailer fields a trailer may carry; see
//     copyChunked); a response without a length (read until the instance
//     closes) is chunk-encoded for an HTTP/1.1 client.
//   - A client that stops sending its body is cut off at request_timeout.
//   - The writing side is flushed whenever the reading side has nothing
//     buffered, before the proxy blocks on a read. A small response leaves
//     in one write with its head; chunked streams and server-sent events
//     reach the client as the app writes them; large bodies go through
//     in 32 KiB reads and writes.
//   - Upgrades (WebSocket and any other "Connection: upgrade" request) are
//     forwarded with their Upgrade and Connection headers; on a 101 answer
//     the client and instance connections are spliced until either side
//     closes. request_timeout stops counting at the 101.
//   - 1xx informational answers (103 Early Hints) are forwarded to
//     HTTP/1.1 clients.
//   - A client that goes away cancels the request to the instance: while
//     the proxy waits on the instance it checks the client's connection
//     every clientCheckInterval, and a failed write to the client ends the
//     exchange; either way the instance's connection is closed.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

var errBadChunk = errors.New("malformed chunked body")

// copyBuffers lends 32 KiB copy buffers. A buffered channel, unlike a
// sync.Pool, takes a []byte back without allocating.
var copyBuffers = make(chan []byte, 256)

func getBuffer() []byte {
	select {
	case b := <-copyBuffers:
		return b
	default:
		return make([]byte, 32<<10)
	}
}

func putBuffer(b []byte) {
	select {
	case copyBuffers <- b:
	default:
	}
}

// copyErr tells which side of a copy failed.
type copyErr struct {
	write bool // the destination failed; else the source
	err   error
}

func (e *copyErr) Error() string { return e.err.Error() }
func (e *copyErr) Unwrap() error { return e.err }

func readErr(err error) error  { return &copyErr{err: err} }
func writeErr(err error) error { return &copyErr{write: true, err: err} }

// copyN copies n bytes from src to dst, flushing dst before every read
// that may block. wait handles read timeouts (see bconn.readHead); nil
// means a timeout is an error.
func copyN(dst *bufio.Writer, src *bufio.Reader, n int64, wait func() error) error {
	for n > 0 {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return writeErr(err)
			}
			if n >= int64(src.Size()) {
				// Large reads and writes bypass both buffers.
				buf := getBuffer()
				m, err := src.Read(buf[:min(n, int64(len(buf)))])
				if m > 0 {
					if _, werr := dst.Write(buf[:m]); werr != nil {
						putBuffer(buf)
						return writeErr(werr)
					}
					n -= int64(m)
				}
				putBuffer(buf)
				if err != nil && n > 0 {
					if err = retryRead(err, wait); err != nil {
						return readErr(err)
					}
				}
				continue
			}
			if _, err := src.Peek(1); err != nil {
				if err = retryRead(err, wait); err != nil {
					return readErr(err)
				}
				continue
			}
		}
		k := int(min(int64(src.Buffered()), n))
		p, _ := src.Peek(k)
		if _, err := dst.Write(p); err != nil {
			return writeErr(err)
		}
		_, _ = src.Discard(k)
		n -= int64(k)
	}
	return nil
}

// retryRead turns a read timeout into a call of wait: nil means read
// again. Any other error, and EOF, is returned (EOF as unexpected).
func retryRead(err error, wait func() error) error {
	if wait != nil && isTimeout(err) {
		return wait()
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// maxChunkLine bounds a chunk-size line and a trailer field line.
const maxChunkLine = 4096

// chunkLine reads one line of chunked framing into b[:0] (head.go's line
// reader: a line ends at LF only, however long).
func chunkLine(src *bufio.Reader, b []byte, wait func() error) ([]byte, error) {
	line, err := readLine(src, b[:0], maxChunkLine, wait)
	if err == errLineTooLong {
		err = errBadChunk
	}
	return line, err
}

// copyChunked copies a chunked body from src to dst through the final
// chunk and the trailer section, re-framed rather than passed through, so
// that the receiver reads exactly the framing the proxy checked: chunk
// sizes in plain hex, no chunk extensions (RFC 9112 7.1.1 lets a
// recipient ignore them), CRLF line ends, and only the trailer fields
// that may appear in a trailer (see trailerAllowed). A size line with
// anything but hex digits before an optional extension, a line not ended
// by CRLF, control characters in an extension or a trailer field, and
// chunk data not followed by CRLF are errBadChunk.
func copyChunked(dst *bufio.Writer, src *bufio.Reader, wait func() error) error {
	return copyChunks(dst, src, wait, true, nil)
}

// copyDechunked decodes a chunked body for an HTTP/1.0 client, which gets
// it delimited by the end of the connection. The framing is read and
// checked as copyChunked reads it, through the trailer section, which is
// dropped; wait is as for copyChunked.
func copyDechunked(dst *bufio.Writer, src *bufio.Reader, wait func() error) error {
	return copyChunks(dst, src, wait, false, nil)
}

// copyChunks is copyChunked, and with reframe false copyDechunked: the
// chunk data alone is copied.
func copyChunks(dst *bufio.Writer, src *bufio.Reader, wait func() error, reframe bool, trailer func(name, value string)) error {
	var hdr [24]byte
	var lb [128]byte
	for {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return writeErr(err)
			}
		}
		line, err := chunkLine(src, lb[:], wait)
		if err != nil {
			return readErr(err)
		}
		size, ok := chunkSize(line)
		if !ok {
			return readErr(errBadChunk)
		}
		if reframe {
			h := strconv.AppendInt(hdr[:0], size, 16)
			if _, err := dst.Write(append(h, '\r', '\n')); err != nil {
				return writeErr(err)
			}
		}
		if size == 0 {
			return copyTrailers(dst, src, wait, reframe, trailer)
		}
		if err := copyN(dst, src, size, wait); err != nil {
			return err
		}
		line, err = chunkLine(src, lb[:], wait)
		if err != nil {
			return readErr(err)
		}
		if len(line) != 2 || line[0] != '\r' {
			return readErr(errBadChunk)
		}
		if !reframe {
			continue
		}
		if _, err := dst.WriteString("\r\n"); err != nil {
			return writeErr(err)
		}
	}
}

// maxTrailerBytes bounds a trailer section.
const maxTrailerBytes = 64 << 10

// copyTrailers copies the trailer section after the last chunk, up to and
// including the empty line, keeping the fields trailerAllowed allows;
// with keep false, it reads and checks them and copies nothing.
func copyTrailers(dst *bufio.Writer, src *bufio.Reader, wait func() error, keep bool, trailer func(name, value string)) error {
	total := 0
	var lb [128]byte
	for {
		line, err := chunkLine(src, lb[:], wait)
		if err != nil {
			return readErr(err)
		}
		total += len(line)
		n := len(line)
		if n < 2 || line[n-2] != '\r' || total > maxTrailerBytes {
			return readErr(errBadChunk)
		}
		line = line[:n-2]
		if len(line) == 0 {
			if !keep {
				return nil
			}
			if _, err := dst.WriteString("\r\n"); err != nil {
				return writeErr(err)
			}
			return nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validToken(line[:colon]) || !validValue(line[colon+1:]) {
			return readErr(errBadChunk) // also obs-fold: a leading space is no token
		}
		if (!keep && trailer == nil) || !trailerAllowed(string(line[:colon])) {
			continue
		}
		if !keep {
			trailer(string(line[:colon]), trimOWS(string(line[colon+1:])))
			continue
		}
		_, _ = dst.Write(line[:colon])
		_, _ = dst.WriteString(": ")
		_, _ = dst.WriteString(trimOWS(string(line[colon+1:])))
		if _, err := dst.WriteString("\r\n"); err != nil {
			return writeErr(err)
		}
	}
}

// trailerAllowed reports whether a field may be passed on in a trailer
// section. Fields that frame or route the message, carry the proxy's own
// data (the instance token, X-Forwarded-*), are hop-by-hop, or that a
// recipient could act on as if they were in the header section
// (RFC 9110 6.5.1: authentication, content metadata, controls) are
// dropped.
func trailerAllowed(name string) bool {
	if isAspNetPrivate(name) || len(name) > 12 && strings.EqualFold(name[:12], "X-Forwarded-") {
		return false
	}
	switch strings.ToLower(name) {
	case "content-length", "transfer-encoding", "trailer", "host", "connection", "keep-alive", "upgrade", "te",
		"proxy-connection", "proxy-authorization", "proxy-authenticate", "authorization", "www-authenticate",
		"cookie", "set-cookie", "content-type", "content-encoding", "content-range", "range", "expect",
		"cache-control", "pragma", "location", "forwarded", "ancm-token", "age", "expires", "date",
		"retry-after", "vary", "max-forwards", "if-match", "if-none-match", "if-modified-since",
		"if-unmodified-since", "if-range":
		return false
	}
	return true
}

// chunkSize parses a chunk-size line ("1a;ext=1\r\n"): hex digits,
// optional whitespace, then an optional extension without control
// characters, then CRLF.
func chunkSize(line []byte) (int64, bool) {
	n := len(line)
	if n < 3 || line[n-2] != '\r' {
		return 0, false
	}
	line = line[:n-2]
	size := line
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		if !validValue(line[i+1:]) {
			return 0, false
		}
		size = line[:i]
	}
	for len(size) > 0 && (size[len(size)-1] == ' ' || size[len(size)-1] == '\t') {
		size = size[:len(size)-1] // BWS before the extension
	}
	return parseHex(string(size))
}

// copyToEOF copies src to dst until src ends, chunk-encoding it when
// chunk is set (a response without a length to an HTTP/1.1 client).
func copyToEOF(dst *bufio.Writer, src *bufio.Reader, chunk bool, wait func() error) error {
	buf := getBuffer()
	defer putBuffer(buf)
	var hdr []byte
	for {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return writeErr(err)
			}
		}
		m, err := src.Read(buf)
		if m > 0 {
			if chunk {
				hdr = strconv.AppendInt(hdr[:0], int64(m), 16)
				hdr = append(hdr, "\r\n"...)
				_, _ = dst.Write(hdr)
			}
			_, werr := dst.Write(buf[:m])
			if chunk && werr == nil {
				_, werr = dst.WriteString("\r\n")
			}
			if werr != nil {
				return writeErr(werr)
			}
		}
		if err == io.EOF {
			if chunk {
				if _, err := dst.WriteString("0\r\n\r\n"); err != nil {
					return writeErr(err)
				}
			}
			return nil
		}
		if err != nil {
			if err = retryRead(err, wait); err != nil {
				return readErr(err)
			}
		}
	}
}

// tunnel splices an upgraded client connection and its instance
// connection until either side closes, then closes both.
func tunnel(c *clientConn, bc *bconn) {
	_ = c.nc.SetDeadline(time.Time{})
	c.wr.dl = time.Time{}
	_ = bc.nc.SetDeadline(time.Time{})
	if c.bw.Flush() != nil {
		bc.nc.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		_, _ = c.br.WriteTo(bc.nc) // what the client sent early, then its connection
		done <- struct{}{}
	}()
	go func() {
		_, _ = bc.br.WriteTo(&c.wr) // under send_timeout, as any answer
		done <- struct{}{}
	}()
	<-done
	c.nc.Close()
	bc.nc.Close()
	<-done
}

// copyDecoded copies a chunked body from src to dst decoded (for a client
// that frames messages itself: HTTP/2), with copyChunked's checks, and
// hands each trailer field trailerAllowed allows to trailer.
func copyDecoded(dst *bufio.Writer, src *bufio.Reader, wait func() error, trailer func(name, value string)) error {
	return copyChunks(dst, src, wait, false, trailer)
}
