package dataplane

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// Request ids. Every request reaches its app with X-Request-Id: the
// client's own when it is a sane token (validRequestID), else a new one,
// "PREFIX-CONN-SEQ": a random prefix drawn once per process, the client
// connection's number and the request's number on that connection, in
// hex. Making one costs an atomic add on the connection's own counter; it
// is written into the forwarded head without an allocation, and spelled
// out as a string only for the access log and error pages.

// maxRequestIDLen bounds a client's X-Request-Id; a longer one is replaced.
const maxRequestIDLen = 128

const headerRequestID = "X-Request-Id"

// idPrefix is this process's prefix of generated request ids.
var idPrefix = func() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// connIDs numbers client connections.
var connIDs atomic.Uint64

// validRequestID reports whether a client's X-Request-Id is kept: 1 to
// maxRequestIDLen characters of letters, digits and -_.:+/=@.
func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '+', c == '/', c == '=', c == '@':
		default:
			return false
		}
	}
	return true
}

// assignID numbers the request on its connection; the numbers make its
// id when the client's was not kept, and pick its metrics shard.
func (r *request) assignID(fi *forwardInfo) {
	if fi.idSeq == nil {
		return
	}
	r.idConn, r.idSeq = fi.idConn, fi.idSeq.Add(1)
}

// appendID appends the request's id; nothing when it has none.
func (r *request) appendID(b []byte) []byte {
	if r.requestID != "" {
		return append(b, r.requestID...)
	}
	if r.idSeq == 0 {
		return b
	}
	b = append(b, idPrefix...)
	b = append(b, '-')
	b = strconv.AppendUint(b, r.idConn, 16)
	b = append(b, '-')
	return strconv.AppendUint(b, r.idSeq, 16)
}

// id returns the request's id as a string ("" when it has none).
func (r *request) id() string {
	if r.requestID != "" || r.idSeq == 0 {
		return r.requestID
	}
	var buf [48]byte
	return string(r.appendID(buf[:0]))
}
