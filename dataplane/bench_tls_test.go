package dataplane

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/http2"
)

// benchTLS runs keep-alive requests through the TLS listener, over
// HTTP/1.1 or HTTP/2, against a small-response backend.
func benchTLS(b *testing.B, h2 bool) {
	body := []byte("hello, world\n")
	backendSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	}))
	b.Cleanup(backendSrv.Close)
	th := newTLSHarness(b, Options{Logger: hclog.NewNullLogger()}, TLSOptions{HTTP2: h2}, [][]string{{"shop.example"}},
		running("app", "/", nil, ready(0, backendSrv, "tok")))
	pool := x509.NewCertPool()
	pool.AddCert(th.ca.cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "shop.example"}
	var rt http.RoundTripper = &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64}
	if h2 {
		rt = &http2.Transport{TLSClientConfig: cfg}
	}
	client := &http.Client{Transport: rt}
	req, _ := http.NewRequest("GET", "https://"+th.tlsAddr+"/bench", nil)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}

func BenchmarkTLSRoundTrip(b *testing.B)   { benchTLS(b, false) }
func BenchmarkHTTP2RoundTrip(b *testing.B) { benchTLS(b, true) }

// benchTLSNewConn sends each request on a new TLS connection with
// Connection: close, as wrk -H 'Connection: close' does (bench/run.sh's
// "new TLS connections" row). The client offers X25519 and P-256 key
// shares only, as OpenSSL 3.0's does, so that the server does the same
// key exchange for it as for wrk. With resume the client keeps a session
// cache, as wrk does (OpenSSL's SSL_clear keeps the session), and every
// handshake after the first is a TLS 1.3 PSK resumption with (EC)DHE; without,
// every handshake is a full one (certificate and ECDSA signature).
func benchTLSNewConn(b *testing.B, resume bool) {
	body := []byte("hello, world\n")
	backendSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(body)
	}))
	b.Cleanup(backendSrv.Close)
	th := newTLSHarness(b, Options{Logger: hclog.NewNullLogger()}, TLSOptions{}, [][]string{{"shop.example"}},
		running("app", "/", nil, ready(0, backendSrv, "tok")))
	pool := x509.NewCertPool()
	pool.AddCert(th.ca.cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "shop.example",
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}
	if resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}
	req := []byte("GET /bench HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
	var resumed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	defer func() { b.ReportMetric(float64(resumed.Load())/float64(b.N), "resumed/op") }()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 4<<10)
		for pb.Next() {
			c, err := tls.Dial("tcp", th.tlsAddr, cfg)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				c.Close()
				return
			}
			n := 0
			for {
				m, err := c.Read(buf[n:])
				n += m
				if err != nil {
					break
				}
			}
			if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200 ")) {
				b.Errorf("answer %q", buf[:n])
			}
			if c.ConnectionState().DidResume {
				resumed.Add(1)
			}
			c.Close()
		}
	})
}

func BenchmarkTLSNewConnResumed(b *testing.B) { benchTLSNewConn(b, true) }
func BenchmarkTLSNewConnFull(b *testing.B)    { benchTLSNewConn(b, false) }
