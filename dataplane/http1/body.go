package http1

// Bodies are streamed, never buffered whole, in both directions:
//
//   - Content-Length bodies are copied as they are (CopyN); chunked bodies
//     are re-framed chunk by chunk as they are read (CopyChunked:
//     canonical sizes, no extensions, only the trailer fields the caller
//     allows), or decoded (CopyDechunked, CopyDecoded); a body without a
//     length, read until the sender closes, is chunk-encoded for an
//     HTTP/1.1 receiver (CopyToEOF).
//   - The writing side is flushed whenever the reading side has nothing
//     buffered, before a read that may block. A small message leaves in
//     one write with its head; chunked streams and server-sent events go
//     on as they are written; large bodies go through in 32 KiB reads and
//     writes that bypass both buffers.
//   - A read that times out asks the caller's wait function whether to go
//     on: that is how a proxy checks on its client, or ends a copy at a
//     deadline, without a goroutine per copy.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// ErrBadChunk is a chunked body whose framing is refused.
var ErrBadChunk = errors.New("malformed chunked body")

// copyBuffers lends 32 KiB copy buffers. A buffered channel, unlike a
// sync.Pool, takes a []byte back without allocating.
var copyBuffers = make(chan []byte, 256)

// GetBuffer lends a 32 KiB buffer; PutBuffer takes it back.
func GetBuffer() []byte {
	select {
	case b := <-copyBuffers:
		return b
	default:
		return make([]byte, 32<<10)
	}
}

func PutBuffer(b []byte) {
	select {
	case copyBuffers <- b:
	default:
	}
}

// Writer is where a body is copied to: a *bufio.Writer, or a writer
// that buffers alike (an HTTP/2 stream). Flush is called before every
// wait for more of the body, so that what came reaches the client.
type Writer interface {
	io.Writer
	io.StringWriter
	Flush() error
}

// CopyError is the error of a body copy; it tells which side failed.
type CopyError struct {
	Write bool // the destination failed; else the source
	Err   error
}

func (e *CopyError) Error() string { return e.Err.Error() }
func (e *CopyError) Unwrap() error { return e.Err }

func readErr(err error) error { return &CopyError{Err: err} }

// WriteErr wraps a failed write to a copy's destination.
func WriteErr(err error) error { return &CopyError{Write: true, Err: err} }

// CopyN copies n bytes from src to dst, flushing dst before every read
// that may block. A read that times out calls wait, which returns nil to
// read again or the error that ends the copy (see Conn.ReadHead); nil
// wait means a timeout is an error. Every copy's errors are *CopyError.
func CopyN(dst Writer, src *bufio.Reader, n int64, wait func() error) error {
	for n > 0 {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return WriteErr(err)
			}
			if n >= int64(src.Size()) {
				// Large reads and writes bypass both buffers.
				buf := GetBuffer()
				m, err := src.Read(buf[:min(n, int64(len(buf)))])
				if m > 0 {
					if _, werr := dst.Write(buf[:m]); werr != nil {
						PutBuffer(buf)
						return WriteErr(werr)
					}
					n -= int64(m)
				}
				PutBuffer(buf)
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
			return WriteErr(err)
		}
		_, _ = src.Discard(k)
		n -= int64(k)
	}
	return nil
}

// retryRead turns a read timeout into a call of wait: nil means read
// again. Any other error, and EOF, is returned (EOF as unexpected).
func retryRead(err error, wait func() error) error {
	if wait != nil && IsTimeout(err) {
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
	if err == ErrLineTooLong {
		err = ErrBadChunk
	}
	return line, err
}

// CopyChunked copies a chunked body from src to dst through the final
// chunk and the trailer section, re-framed rather than passed through, so
// that the receiver reads exactly the framing that was checked: chunk
// sizes in plain hex, no chunk extensions (RFC 9112 7.1.1 lets a
// recipient ignore them), CRLF line ends, and only the trailer fields
// allow allows (nil: none). A size line with anything but hex digits
// before an optional extension, a line not ended by CRLF, control
// characters in an extension or a trailer field, and chunk data not
// followed by CRLF are ErrBadChunk.
func CopyChunked(dst Writer, src *bufio.Reader, wait func() error, allow func(name string) bool) error {
	return copyChunks(dst, src, wait, true, allow, nil)
}

// CopyDechunked decodes a chunked body for an HTTP/1.0 client, which gets
// it delimited by the end of the connection. The framing is read and
// checked as CopyChunked reads it, through the trailer section, which is
// dropped; wait is as for CopyN.
func CopyDechunked(dst Writer, src *bufio.Reader, wait func() error) error {
	return copyChunks(dst, src, wait, false, nil, nil)
}

// copyChunks is CopyChunked, and with reframe false CopyDechunked and
// CopyDecoded: the chunk data alone is copied, and the trailer fields
// allow allows go to trailer.
func copyChunks(dst Writer, src *bufio.Reader, wait func() error, reframe bool, allow func(string) bool, trailer func(name, value string)) error {
	var hdr [24]byte
	var lb [128]byte
	for {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return WriteErr(err)
			}
		}
		line, err := chunkLine(src, lb[:], wait)
		if err != nil {
			return readErr(err)
		}
		size, ok := chunkSize(line)
		if !ok {
			return readErr(ErrBadChunk)
		}
		if reframe {
			h := strconv.AppendInt(hdr[:0], size, 16)
			if _, err := dst.Write(append(h, '\r', '\n')); err != nil {
				return WriteErr(err)
			}
		}
		if size == 0 {
			return copyTrailers(dst, src, wait, reframe, allow, trailer)
		}
		if err := CopyN(dst, src, size, wait); err != nil {
			return err
		}
		line, err = chunkLine(src, lb[:], wait)
		if err != nil {
			return readErr(err)
		}
		if len(line) != 2 || line[0] != '\r' {
			return readErr(ErrBadChunk)
		}
		if !reframe {
			continue
		}
		if _, err := dst.WriteString("\r\n"); err != nil {
			return WriteErr(err)
		}
	}
}

// maxTrailerBytes bounds a trailer section.
const maxTrailerBytes = 64 << 10

// copyTrailers copies the trailer section after the last chunk, up to and
// including the empty line, keeping the fields allow allows; with keep
// false, it reads and checks them, copies nothing and hands the allowed
// ones to trailer, when set.
func copyTrailers(dst Writer, src *bufio.Reader, wait func() error, keep bool, allow func(string) bool, trailer func(name, value string)) error {
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
			return readErr(ErrBadChunk)
		}
		line = line[:n-2]
		if len(line) == 0 {
			if !keep {
				return nil
			}
			if _, err := dst.WriteString("\r\n"); err != nil {
				return WriteErr(err)
			}
			return nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !ValidToken(line[:colon]) || !ValidValue(line[colon+1:]) {
			return readErr(ErrBadChunk) // also obs-fold: a leading space is no token
		}
		if (!keep && trailer == nil) || allow == nil || !allow(string(line[:colon])) {
			continue
		}
		if !keep {
			trailer(string(line[:colon]), TrimOWS(string(line[colon+1:])))
			continue
		}
		_, _ = dst.Write(line[:colon])
		_, _ = dst.WriteString(": ")
		_, _ = dst.WriteString(TrimOWS(string(line[colon+1:])))
		if _, err := dst.WriteString("\r\n"); err != nil {
			return WriteErr(err)
		}
	}
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
		if !ValidValue(line[i+1:]) {
			return 0, false
		}
		size = line[:i]
	}
	for len(size) > 0 && (size[len(size)-1] == ' ' || size[len(size)-1] == '\t') {
		size = size[:len(size)-1] // BWS before the extension
	}
	return parseHex(string(size))
}

// CopyToEOF copies src to dst until src ends, chunk-encoding it when
// chunk is set (a response without a length to an HTTP/1.1 client).
func CopyToEOF(dst Writer, src *bufio.Reader, chunk bool, wait func() error) error {
	buf := GetBuffer()
	defer PutBuffer(buf)
	var hdr []byte
	for {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return WriteErr(err)
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
				return WriteErr(werr)
			}
		}
		if err == io.EOF {
			if chunk {
				if _, err := dst.WriteString("0\r\n\r\n"); err != nil {
					return WriteErr(err)
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

// CopyDecoded copies a chunked body from src to dst decoded (for a client
// that frames messages itself: HTTP/2), with CopyChunked's checks, and
// hands each trailer field allow allows to trailer.
func CopyDecoded(dst Writer, src *bufio.Reader, wait func() error, allow func(name string) bool, trailer func(name, value string)) error {
	return copyChunks(dst, src, wait, false, allow, trailer)
}
