package dataplane

// Bodies are streamed, never buffered whole, in both directions:
//
//   - Content-Length bodies are copied as they are; chunked bodies are
//     passed through chunk by chunk (extensions and trailers included)
//     after their framing is checked; a response without a length (read
//     until the instance closes) is chunk-encoded for an HTTP/1.1 client.
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
	"errors"
	"io"
	"net/http/httputil"
	"strconv"
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

// readLine reads one line of chunked framing (at most 4 KiB).
func readLine(src *bufio.Reader, wait func() error) ([]byte, error) {
	var acc []byte
	for {
		line, err := src.ReadSlice('\n')
		if err == nil {
			if acc == nil {
				return line, nil
			}
			return append(acc, line...), nil
		}
		acc = append(acc, line...)
		if len(acc) > 4096 {
			return nil, errBadChunk
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err = retryRead(err, wait); err != nil {
			return nil, err
		}
	}
}

// copyChunked passes a chunked body from src to dst after checking its
// framing, through the final chunk and the trailer section.
func copyChunked(dst *bufio.Writer, src *bufio.Reader, wait func() error) error {
	for {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return writeErr(err)
			}
		}
		line, err := readLine(src, wait)
		if err != nil {
			return readErr(err)
		}
		size, ok := chunkSize(line)
		if !ok {
			return readErr(errBadChunk)
		}
		if _, err := dst.Write(line); err != nil {
			return writeErr(err)
		}
		if size == 0 {
			for { // trailer section, up to the empty line
				line, err := readLine(src, wait)
				if err != nil {
					return readErr(err)
				}
				if _, err := dst.Write(line); err != nil {
					return writeErr(err)
				}
				if len(line) <= 2 && (line[0] == '\n' || line[0] == '\r') {
					return nil
				}
			}
		}
		if err := copyN(dst, src, size, wait); err != nil {
			return err
		}
		line, err = readLine(src, wait)
		if err != nil {
			return readErr(err)
		}
		if !(len(line) == 2 && line[0] == '\r' || len(line) == 1) {
			return readErr(errBadChunk)
		}
		if _, err := dst.Write(line); err != nil {
			return writeErr(err)
		}
	}
}

// chunkSize parses a chunk-size line ("1a;ext=1\r\n").
func chunkSize(line []byte) (int64, bool) {
	s := string(line)
	s, _ = cutLine(s)
	if i := indexByteString(s, ';'); i >= 0 {
		s = s[:i]
	}
	return parseHex(trimOWS(s))
}

func indexByteString(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
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

// copyDechunked decodes a chunked body for an HTTP/1.0 client, which gets
// it delimited by the end of the connection. Trailers are dropped.
func copyDechunked(dst *bufio.Writer, src *bufio.Reader) error {
	buf := getBuffer()
	defer putBuffer(buf)
	cr := httputil.NewChunkedReader(src)
	for {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return writeErr(err)
			}
		}
		m, err := cr.Read(buf)
		if _, werr := dst.Write(buf[:m]); werr != nil {
			return writeErr(werr)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return readErr(err)
		}
	}
}

// tunnel splices an upgraded client connection and its instance
// connection until either side closes, then closes both.
func tunnel(c *clientConn, bc *bconn) {
	_ = c.nc.SetDeadline(time.Time{})
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
		_, _ = bc.br.WriteTo(c.nc)
		done <- struct{}{}
	}()
	<-done
	c.nc.Close()
	bc.nc.Close()
	<-done
}
