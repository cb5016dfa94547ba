package h2

// Header blocks, decoded here rather than by the Framer's ReadMetaHeaders
// so that the fields land in one slice the connection reuses (the
// Framer's makes a frame and grows a slice for every block), with the
// Framer's checks: values without control characters, names in lower
// case, pseudo-fields first, the header list bounded by
// MaxHeaderListSize, and a block that keeps coming past that bound, or
// past an invalid field, cut with the connection (the CONTINUATION flood,
// CVE-2024-27316).

import (
	"errors"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

// block is the header block being decoded; the reader's.
type block struct {
	fields     []hpack.HeaderField // reused from block to block
	pseudo     int                 // fields[:pseudo] are the pseudo-fields
	remain     uint32              // what the header list may still take
	truncated  bool                // past MaxHeaderListSize: fields dropped
	invalid    error
	sawRegular bool
}

var (
	errFieldValue  = errors.New("invalid header field value")
	errFieldName   = errors.New("invalid header field name")
	errPseudoAfter = errors.New("pseudo-header field after a regular one")
)

// emit takes a decoded field.
func (c *conn) emit(hf hpack.HeaderField) {
	b := &c.hb
	if b.invalid != nil || b.truncated {
		return // decoding goes on, for the table's sake
	}
	switch {
	case !http1.ValidValue(hf.Value):
		b.invalid = errFieldValue
		return
	case strings.HasPrefix(hf.Name, ":"):
		if b.sawRegular {
			b.invalid = errPseudoAfter
			return
		}
		b.pseudo++
	default:
		b.sawRegular = true
		if !http1.ValidToken(hf.Name) || hasUpper(hf.Name) {
			b.invalid = errFieldName
			return
		}
	}
	if size := hf.Size(); size > b.remain {
		b.truncated, b.remain = true, 0
		return
	} else {
		b.remain -= size
	}
	b.fields = append(b.fields, hf)
}

// readBlock decodes the block hf starts, reading its CONTINUATION
// frames. A connection error ends the connection; a stream error (an
// invalid field) resets the stream once the block is decoded.
func (c *conn) readBlock(hf *http2.HeadersFrame) error {
	b := &c.hb
	clear(b.fields)
	*b = block{fields: b.fields[:0], remain: c.cfg.MaxHeaderListSize}
	frag, ended := hf.HeaderBlockFragment(), hf.HeadersEnded()
	for first := true; ; first = false {
		// A fragment much larger than what the list may still take, any
		// fragment after the list went past its bound, or after an
		// invalid field: the client keeps sending what will be dropped.
		if int64(len(frag)) > 4*int64(b.remain) || !first && b.invalid != nil {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := c.hdec.Write(frag); err != nil {
			return http2.ConnectionError(http2.ErrCodeCompression)
		}
		if ended {
			break
		}
		f, err := c.fr.ReadFrame() // the Framer lets only this stream's CONTINUATION through
		if err != nil {
			return err
		}
		cf, ok := f.(*http2.ContinuationFrame)
		if !ok {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		frag, ended = cf.HeaderBlockFragment(), cf.HeadersEnded()
	}
	if err := c.hdec.Close(); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if b.invalid != nil {
		return http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: b.invalid}
	}
	return nil
}
