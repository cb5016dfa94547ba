package h2

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// BenchmarkRequest measures the server's cost of a request and its
// answer (a head of four fields and a small body, as the proxy relays),
// one request at a time on each of several loopback connections. The
// client sends the same header block every time after the first, and
// skips the answer's frames without decoding them: what it costs is the
// same for every build of the server.
// (Its windows are the largest there are, so b.N is bounded at about
// 2^31 / 13 requests a connection.)
func BenchmarkRequest(b *testing.B) {
	body := []byte("Hello, World!")
	fields := []hpack.HeaderField{
		{Name: "Content-Type", Value: "text/plain; charset=utf-8"},
		{Name: "Date", Value: "Tue, 01 Dec 2026 12:00:00 GMT"},
		{Name: "X-Request-Id", Value: "0123456789abcdef"},
		{Name: "content-length", Value: "13"},
	}
	s := serve(b, Config{}, false, func(st *Stream) {
		_ = st.WriteHead(200, fields)
		_, _ = st.Write(body)
		_ = st.End(nil)
	})
	// The first block adds the fields to the server's dynamic table; every
	// later one refers to them by index, as h2load's do, and stays the same.
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	encode := func() []byte {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "bench.local"}, {":path", "/"}, {"user-agent", "h2load nghttp2/1.52.0"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	first, block := encode(), encode()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		nc, err := net.Dial("tcp", s.addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer nc.Close()
		bw := bufio.NewWriter(nc)
		br := bufio.NewReaderSize(nc, 64<<10)
		fr := http2.NewFramer(bw, nil)
		_, _ = bw.WriteString(http2.ClientPreface)
		// Windows as large as h2load's: the client never gives credit back.
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
		_ = fr.WriteWindowUpdate(0, 1<<31-1-65535)
		_ = fr.WriteSettingsAck()
		_ = bw.Flush()
		var h [9]byte
		id := uint32(1)
		for pb.Next() {
			frag := block
			if id == 1 {
				frag = first
			}
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: true, EndHeaders: true})
			if err := bw.Flush(); err != nil {
				b.Error(err)
				return
			}
			for {
				if _, err := io.ReadFull(br, h[:]); err != nil {
					b.Error(err)
					return
				}
				n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
				if _, err := br.Discard(n); err != nil {
					b.Error(err)
					return
				}
				if http2.FrameType(h[3]) == http2.FrameData && binary.BigEndian.Uint32(h[5:])&(1<<31-1) == id && http2.Flags(h[4]).Has(http2.FlagDataEndStream) {
					break
				}
			}
			id += 2
		}
	})
}
