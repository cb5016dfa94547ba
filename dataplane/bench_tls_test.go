package dataplane

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
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
