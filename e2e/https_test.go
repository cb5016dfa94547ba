package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ancm-dev/ancm/internal/testtool"
)

// httpsDaemon is an ancmd with an https block: shop.test and grpc.test
// on one certificate, blog.test on another, client certificates
// requested, HTTP/2 on; a web app for shop.test and blog.test and a gRPC
// app (protocol = "h2c") for grpc.test.
type httpsDaemon struct {
	*daemon
	https             string // host:port of the TLS listener
	server, clients   *pki
	blogCert, blogKey string
}

func newHTTPSDaemon(t *testing.T) *httpsDaemon {
	t.Helper()
	h := &httpsDaemon{server: newPKI(t, "server CA"), clients: newPKI(t, "client CA")}
	shopCert, shopKey := h.server.issue("shop", false, "shop.test", "grpc.test")
	h.blogCert, h.blogKey = h.server.issue("blog", false, "blog.test")
	h.https = freeAddr(t)
	h.daemon = newDaemon(t, fmt.Sprintf(`
https {
  listen = %q
  certificate {
    cert_file = %q
    key_file  = %q
  }
  certificate {
    cert_file = %q
    key_file  = %q
  }
  client_auth    = "request"
  client_ca_file = %q
}

app "web" {
  command = "TESTAPP"
  args    = ["serve"]
  hosts   = ["shop.test", "blog.test"]
  start   = "eager"
}

app "grpc" {
  command  = "GRPCAPP"
  hosts    = ["grpc.test"]
  protocol = "h2c"
  start    = "eager"
}
`, h.https, shopCert, shopKey, h.blogCert, h.blogKey, h.clients.caFile))
	h.waitState("web", "APP_STATE_RUNNING", 20*time.Second)
	h.waitState("grpc", "APP_STATE_RUNNING", 20*time.Second)
	return h
}

// dial opens a TLS connection with SNI sni (and a client certificate).
func (h *httpsDaemon) dial(t *testing.T, sni string, cert *tls.Certificate) *tls.Conn {
	t.Helper()
	cfg := h.server.clientTLS(sni)
	cfg.NextProtos = []string{"http/1.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c, err := tls.Dial("tcp", h.https, cfg)
	if err != nil {
		t.Fatalf("tls dial %s: %v", sni, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends a raw HTTP/1.1 request on c and returns the app's reply.
func exchange(t *testing.T, c net.Conn, br *bufio.Reader, raw string) (int, string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(b)
}

func serialOf(c *tls.Conn) string {
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestHTTPSCertificatesBySNIAndReload(t *testing.T) {
	h := newHTTPSDaemon(t)
	for sni, want := range map[string]string{"shop.test": "shop.test", "blog.test": "blog.test"} {
		c := h.dial(t, sni, nil)
		if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != want {
			t.Errorf("SNI %s: certificate of %s", sni, got)
		}
		code, body := exchange(t, c, bufio.NewReader(c), "GET /x HTTP/1.1\r\nHost: "+sni+"\r\n\r\n")
		r := decodeReply(t, body)
		if code != 200 || r.Headers["X-Forwarded-Proto"][0] != "https" || r.Host != sni {
			t.Errorf("%s: %d %+v", sni, code, r)
		}
	}

	// A keep-alive connection open across a swap of the files on disk
	// keeps working; new connections get the new certificate.
	old := h.dial(t, "blog.test", nil)
	oldBR := bufio.NewReader(old)
	if code, _ := exchange(t, old, oldBR, "GET / HTTP/1.1\r\nHost: blog.test\r\n\r\n"); code != 200 {
		t.Fatal(code)
	}
	before := serialOf(old)
	h.server.issue("blog", false, "blog.test")
	waitFor(t, 15*time.Second, "the new certificate on new connections", func() bool {
		return serialOf(h.dial(t, "blog.test", nil)) != before
	})
	if code, _ := exchange(t, old, oldBR, "GET /again HTTP/1.1\r\nHost: blog.test\r\n\r\n"); code != 200 {
		t.Errorf("the connection open across the swap: %d", code)
	}

	// A broken file and a SIGHUP: the pair in use stays, and the log says so.
	current := serialOf(h.dial(t, "blog.test", nil))
	if err := os.WriteFile(h.blogCert, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the refused reload in the log", func() bool {
		return strings.Contains(h.out.String(), "certificates not reloaded")
	})
	if got := serialOf(h.dial(t, "blog.test", nil)); got != current {
		t.Errorf("a broken certificate file replaced the one in use")
	}
	waitFor(t, 10*time.Second, "a certificates_not_reloaded event", func() bool {
		out, _, _ := h.ctl("events", "-o", "json")
		return strings.Contains(out, "certificates_not_reloaded") || strings.Contains(out, "CERTIFICATES_NOT_RELOADED")
	})
}

func TestHTTPSClientCertificateForwarded(t *testing.T) {
	h := newHTTPSDaemon(t)
	// Without a certificate (client_auth = "request"): served, and a
	// forged header never reaches the app.
	c := h.dial(t, "shop.test", nil)
	_, body := exchange(t, c, bufio.NewReader(c), "GET / HTTP/1.1\r\nHost: shop.test\r\nX-Forwarded-Client-Cert: Hash=forged\r\n\r\n")
	if r := decodeReply(t, body); len(r.Headers["X-Forwarded-Client-Cert"]) != 0 {
		t.Errorf("a forged X-Forwarded-Client-Cert reached the app: %v", r.Headers["X-Forwarded-Client-Cert"])
	}
	certFile, keyFile := h.clients.issue("alice", true, "alice.clients.test")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c = h.dial(t, "shop.test", &cert)
	_, body = exchange(t, c, bufio.NewReader(c), "GET / HTTP/1.1\r\nHost: shop.test\r\nX-Forwarded-Client-Cert: Hash=forged\r\n\r\n")
	xfcc := decodeReply(t, body).Headers["X-Forwarded-Client-Cert"]
	if len(xfcc) != 1 || strings.Contains(xfcc[0], "forged") || !strings.Contains(xfcc[0], `Subject="CN=alice.clients.test"`) ||
		!strings.Contains(xfcc[0], "DNS=alice.clients.test") {
		t.Errorf("X-Forwarded-Client-Cert %q", xfcc)
	}
}

func TestHTTP2ConcurrentStreamsThroughAncmd(t *testing.T) {
	h := newHTTPSDaemon(t)
	tr := &http2.Transport{TLSClientConfig: h.server.clientTLS("shop.test")}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", fmt.Sprintf("https://%s/stream/%d", h.https, i), nil)
			req.Host = "shop.test"
			res, err := client.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.ProtoMajor != 2 || res.StatusCode != 200 || !strings.Contains(string(b), fmt.Sprintf(`"/stream/%d"`, i)) {
				errs <- fmt.Sprintf("stream %d: %s %d %.80q", i, res.Proto, res.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestGRPCAppBehindAncmd calls the gRPC app through the TLS listener with
// grpc-go (unary Check, server-streaming Watch) and, when it is
// installed, with grpcurl over server reflection.
func TestGRPCAppBehindAncmd(t *testing.T) {
	h := newHTTPSDaemon(t)
	conn, err := grpc.NewClient(h.https, grpc.WithAuthority("grpc.test"),
		grpc.WithTransportCredentials(credentials.NewTLS(h.server.clientTLS("grpc.test"))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "ancm.test"})
	if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check through ancmd: %v %v", res, err)
	}
	w, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "ancm.test"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch through ancmd: %v %v", m, err)
	}

	grpcurl := testtool.Path(t, "grpcurl")
	if grpcurl == "" {
		t.Log("grpcurl is not installed (.ci/run installs it); the grpc-go calls above ran")
		return
	}
	out, err := exec.Command(grpcurl, "-cacert", h.server.caFile, "-servername", "grpc.test", "-authority", "grpc.test",
		"-d", `{"service":"ancm.test"}`, h.https, "grpc.health.v1.Health/Check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"status": "SERVING"`) {
		t.Errorf("grpcurl through ancmd: %v\n%s", err, out)
	}
}

// TestHTTPSExampleValidates runs examples/https/make-certs.sh on a copy of
// the example and checks the config with ancmd validate.
func TestHTTPSExampleValidates(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	for _, name := range []string{"ancm.hcl", "make-certs.sh"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", "https", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(filepath.Join(dir, "make-certs.sh")).CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin.ancmd, "validate", "-c", filepath.Join(dir, "ancm.hcl")).CombinedOutput(); err != nil {
		t.Fatalf("ancmd validate: %v\n%s", err, out)
	}
}

// TestHTTPSRequiredClientCertificate: with client_auth = "require", a
// client without a certificate, or with one the client CA did not sign,
// gets no answer (the handshake fails), and one with a certificate of the
// client CA is served with it forwarded.
func TestHTTPSRequiredClientCertificate(t *testing.T) {
	server, clients, stranger := newPKI(t, "server CA"), newPKI(t, "client CA"), newPKI(t, "another CA")
	cert, key := server.issue("shop", false, "shop.test")
	addr := freeAddr(t)
	d := newDaemon(t, fmt.Sprintf(`
https {
  listen = %q
  certificate {
    cert_file = %q
    key_file  = %q
  }
  client_auth    = "require"
  client_ca_file = %q
}

app "web" {
  command = "TESTAPP"
  args    = ["serve"]
  start   = "eager"
}
`, addr, cert, key, clients.caFile))
	d.waitState("web", "APP_STATE_RUNNING", 20*time.Second)

	// try sends one request over a new connection with the given client
	// certificate and returns the status, or the error that ended it.
	try := func(cert *tls.Certificate) (int, string, error) {
		cfg := server.clientTLS("shop.test")
		cfg.NextProtos = []string{"http/1.1"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return 0, "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		// TLS 1.3: the client's side of the handshake is done before the
		// server checks its certificate; a refusal arrives as an alert.
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n"); err != nil {
			return 0, "", err
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, "", err
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, string(b), nil
	}
	if status, _, err := try(nil); err == nil {
		t.Errorf("served without a client certificate: %d", status)
	} else if !strings.Contains(err.Error(), "certificate required") {
		t.Logf("refused without a certificate: %v", err)
	}
	sf, sk := stranger.issue("mallory", true, "mallory.clients.test")
	bad, err := tls.LoadX509KeyPair(sf, sk)
	if err != nil {
		t.Fatal(err)
	}
	if status, _, err := try(&bad); err == nil {
		t.Errorf("served with a certificate of another CA: %d", status)
	}
	gf, gk := clients.issue("alice", true, "alice.clients.test")
	good, err := tls.LoadX509KeyPair(gf, gk)
	if err != nil {
		t.Fatal(err)
	}
	status, body, err := try(&good)
	if err != nil || status != 200 {
		t.Fatalf("with the client CA's certificate: %d %v", status, err)
	}
	if xfcc := decodeReply(t, body).Headers["X-Forwarded-Client-Cert"]; len(xfcc) != 1 || !strings.Contains(xfcc[0], `Subject="CN=alice.clients.test"`) {
		t.Errorf("X-Forwarded-Client-Cert %q", xfcc)
	}
}

// TestSmugglingShapesSameOverTLS sends request-smuggling shapes to ancmd
// on its plain listener and on its TLS listener: each gets the same
// status on both, 400 for every ambiguous framing, and the long header
// line that cut heads at 4 KiB before issue 10 is a request like any.
func TestSmugglingShapesSameOverTLS(t *testing.T) {
	h := newHTTPSDaemon(t)
	pad := "X-Pad: " + strings.Repeat("p", 4096-7)
	for _, tc := range []struct {
		raw  string
		want int
	}{
		{"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 4\r\nContent-Length: 04\r\n\r\nabcd", 400},
		{"POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: +4\r\n\r\nabcd", 400},
		{"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: shop.test\r\n" + pad + "\r\nX-After: 1\r\n\r\n", 200},
	} {
		plain, err := net.Dial("tcp", h.listen)
		if err != nil {
			t.Fatal(err)
		}
		ps, _ := exchange(t, plain, bufio.NewReader(plain), tc.raw)
		plain.Close()
		c := h.dial(t, "shop.test", nil)
		ts, _ := exchange(t, c, bufio.NewReader(c), tc.raw)
		if ps != tc.want || ts != tc.want {
			t.Errorf("%.70q: %d plain, %d over TLS; want %d", tc.raw, ps, ts, tc.want)
		}
	}
}
