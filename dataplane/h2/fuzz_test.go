package h2

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzConn feeds a connection arbitrary bytes after the client preface
// and checks what the server does with them: it never panics nor hangs
// (ServeConn returns once the client is gone), and everything it writes
// is well-formed HTTP/2 — frames a Framer reads, header blocks an HPACK
// decoder decodes, DATA only on streams that were answered.
func FuzzConn(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("one input took %v", d)
			}
		}()
		srv := NewServer(Config{
			MaxConcurrentStreams: 4, StreamWindow: 1 << 16, ConnWindow: 1 << 16,
			MaxHeaderListSize: 4 << 10, WriteTimeout: time.Second, IdleTimeout: time.Second,
			Logger: hclog.NewNullLogger(),
		})
		defer srv.Close()
		cc, sc := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeConn(sc, echo)
		}()
		out := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(cc)
			out <- b
		}()
		_ = cc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.WriteString(cc, http2.ClientPreface)
		_, _ = cc.Write(data) // returns once the server read it all (net.Pipe)
		cc.Close()            // the client is gone: the server must end the connection
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("ServeConn did not return after the client left")
		}
		var written []byte
		select {
		case written = <-out:
		case <-time.After(5 * time.Second):
			t.Fatal("the server's output did not end")
		}
		checkServerOutput(t, written)
	})
}

// checkServerOutput reads what a server wrote: well-formed frames, from
// its SETTINGS on, with header blocks that decode, no connection-specific
// field, and DATA only after its stream's head.
func checkServerOutput(t *testing.T, b []byte) {
	fr := http2.NewFramer(nil, bytes.NewReader(b))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.SetMaxReadFrameSize(1 << 24)
	first := true
	answered := map[uint32]bool{}
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return // the pipe closed mid-write: what came is a prefix
		}
		if err != nil {
			t.Fatalf("the server wrote a frame a client cannot read: %v", err)
		}
		if first {
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				t.Fatalf("first frame %v, want SETTINGS", f)
			}
			first = false
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.PseudoValue("status") != "" {
				answered[f.StreamID] = true
			}
			for _, hf := range f.Fields {
				if hf.Name == "connection" || hf.Name == "transfer-encoding" {
					t.Fatalf("the server sent %q", hf.Name)
				}
			}
		case *http2.DataFrame:
			if !answered[f.StreamID] {
				t.Fatalf("DATA on stream %d before its head", f.StreamID)
			}
		}
	}
}

// fuzzSeeds are frame sequences worth starting from: a request with a
// body and trailers, a rapid reset, a header block in CONTINUATIONs, a
// window update flood, and garbage.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	frame := func(build func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer)) []byte {
		var buf, hb bytes.Buffer
		fr := http2.NewFramer(&buf, nil)
		fr.AllowIllegalWrites = true
		build(fr, hpack.NewEncoder(&hb), &hb)
		return buf.Bytes()
	}
	block := func(enc *hpack.Encoder, hb *bytes.Buffer, fields ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(fields); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	get := []string{":method", "POST", ":scheme", "https", ":authority", "h", ":path", "/x"}
	seeds = append(seeds, frame(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(enc, hb, get...), EndHeaders: true})
		_ = fr.WriteData(1, false, []byte("hello"))
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(enc, hb, "x-t", "1"), EndHeaders: true, EndStream: true})
		_ = fr.WriteWindowUpdate(0, 1000)
		_ = fr.WriteWindowUpdate(1, 1000)
		_ = fr.WritePing(false, [8]byte{1})
	}))
	seeds = append(seeds, frame(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		_ = fr.WriteSettings()
		for id := uint32(1); id < 40; id += 2 {
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block(enc, hb, get...), EndHeaders: true, EndStream: true})
			_ = fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
	}))
	seeds = append(seeds, frame(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		_ = fr.WriteSettings()
		b := block(enc, hb, append(get, "x-long", string(bytes.Repeat([]byte("v"), 300)))...)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:10], EndStream: true})
		_ = fr.WriteContinuation(1, false, b[10:20])
		_ = fr.WriteContinuation(1, true, b[20:])
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: b, EndHeaders: true, EndStream: true, Priority: http2.PriorityParam{StreamDep: 3}})
	}))
	seeds = append(seeds, frame(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(enc, hb, get...), EndHeaders: true, EndStream: true})
		for range 20 {
			_ = fr.WriteWindowUpdate(1, 1)
		}
		_ = fr.WriteGoAway(1, http2.ErrCodeNo, nil)
	}))
	seeds = append(seeds, []byte("\x00\x00\x00\x04\x00\x00\x00\x00\x00garbage"))
	return seeds
}
