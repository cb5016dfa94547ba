package dataplane

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func BenchmarkRoute(b *testing.B) {
	tb := routingTable(b)
	cases := [][2]string{
		{"unknown.test", "/api/v2/users/42"},
		{"Example.com:8080", "/admin/x"},
		{"a.b.eu.example.com", "/api/x"},
		{"docs.example.org", "/docs/intro"},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c := cases[i%len(cases)]
		if tb.route(normalizeHost(c[0]), c[1]) == nil {
			b.Fatal("no route")
		}
	}
}

func BenchmarkRewriteHeaders(b *testing.B) {
	var r request
	head := "GET /api/v1/users?id=42 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nUser-Agent: bench\r\n" +
		"X-Forwarded-For: 203.0.113.9\r\nAncm-Token: forged\r\nConnection: keep-alive\r\n\r\n"
	fi := &forwardInfo{clientIP: "192.0.2.10", token: "0123456789abcdef", backend: "127.0.0.1:9000"}
	out := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if err := parseRequest(head, &r); err != nil {
			b.Fatal(err)
		}
		if err := r.ResolveTarget(); err != nil {
			b.Fatal(err)
		}
		out = appendRequestHead(out[:0], &r, fi)
	}
}

// BenchmarkProxyRoundTrip measures one keep-alive request through the
// whole data plane (client -> proxy -> instance) on loopback, with the
// per-app metrics (metrics.go) and without them: the difference is their
// cost per request.
func BenchmarkProxyRoundTrip(b *testing.B) {
	for _, measure := range []bool{true, false} {
		name := "metrics=on"
		if !measure {
			name = "metrics=off"
		}
		b.Run(name, func(b *testing.B) { benchRoundTrip(b, measure) })
	}
}

func benchRoundTrip(b *testing.B, measure bool) {
	body := []byte("hello, world\n")
	backendSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	}))
	b.Cleanup(backendSrv.Close)
	h := newHarness(b, Options{Logger: hclog.NewNullLogger(), ReportInterval: -1}, running("app", "/", nil, ready(0, backendSrv, "tok")))
	h.p.measure = measure
	req, _ := http.NewRequest("GET", h.url+"/bench", nil)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := h.client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}

// BenchmarkAccounting is the bookkeeping of one proxied request, on every
// core at once. "counters" is what it was before metrics: the exchange's
// clock read (for request_timeout) and the global counters by status
// class. "metrics" is what it is with them: the same clock read, now taken
// at the head and shared with the exchange, in flight up and down, the
// second clock read, the status code and the latency bucket in a shard.
// The difference is what metrics cost a request.
func BenchmarkAccounting(b *testing.B) {
	var sink time.Time
	b.Run("counters", func(b *testing.B) {
		var c counters
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var t time.Time
			for pb.Next() {
				t = time.Now()
				c.count(200)
			}
			sink = t
		})
	})
	b.Run("metrics", func(b *testing.B) {
		st := newAppStats("app", 0)
		var conns atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			conn := conns.Add(1) // a connection per goroutine
			var seq uint64
			for pb.Next() {
				start := time.Now()
				seq++
				sh := st.shard(conn + seq)
				sh.inFlight.Add(1)
				sh.inFlight.Add(-1)
				st.done(sh, 200, time.Since(start))
			}
		})
	})
	_ = sink
}

// BenchmarkRequestID is a generated id written into a forwarded head.
func BenchmarkRequestID(b *testing.B) {
	fi := &forwardInfo{idConn: 42, idSeq: new(atomic.Uint64)}
	out := make([]byte, 0, 64)
	var r request
	b.ReportAllocs()
	for b.Loop() {
		r.requestID, r.idSeq = "", 0
		r.assignID(fi)
		out = r.appendID(out[:0])
	}
}
