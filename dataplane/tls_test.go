package dataplane

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf for names (server) or for a client; it returns the
// PEM of the chain and of the key.
func (ca *testCA) issue(t testing.TB, cn string, client bool, names ...string) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"ancm, tests"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: names,
	}
	if client {
		u, _ := url.Parse("spiffe://ancm.test/client")
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), leaf
}

// writePair writes a server pair for names into dir and returns it.
func (ca *testCA) writePair(t testing.TB, dir, base string, names ...string) CertPair {
	t.Helper()
	c, k, _ := ca.issue(t, names[0], false, names...)
	p := CertPair{CertFile: filepath.Join(dir, base+".crt"), KeyFile: filepath.Join(dir, base+".key")}
	writeFile(t, p.KeyFile, k)
	writeFile(t, p.CertFile, c)
	return p
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	// Written aside and renamed, as a certificate tool does.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlsHarness is a harness whose proxy also serves TLS.
type tlsHarness struct {
	*harness
	tlsAddr string
	certs   *Certificates
	ca      *testCA
	dir     string
}

func newTLSHarness(t testing.TB, opts Options, topts TLSOptions, names [][]string, routes ...*ancmv1.AppRoute) *tlsHarness {
	t.Helper()
	h := newHarness(t, opts, routes...)
	th := &tlsHarness{harness: h, ca: newTestCA(t, "server CA"), dir: t.TempDir()}
	for i, n := range names {
		topts.Certificates = append(topts.Certificates, th.ca.writePair(t, th.dir, fmt.Sprintf("pair%d", i), n...))
	}
	certs, err := LoadCertificates(testLogger(t), topts.Certificates, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := TLSConfig(certs, topts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	th.tlsAddr, th.certs = ln.Addr().String(), certs
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = h.p.Serve(ctx, tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return th
}

// dial opens a TLS connection with SNI server, trusting the test CA.
func (th *tlsHarness) dial(t *testing.T, server string, client *tls.Certificate) *tls.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(th.ca.cert)
	cfg := &tls.Config{ServerName: server, RootCAs: pool}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	c, err := tls.Dial("tcp", th.tlsAddr, cfg)
	if err != nil {
		t.Fatalf("tls dial %s: %v", server, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends one raw request on c and reads the answer.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

func TestTLSPicksCertificateBySNI(t *testing.T) {
	b := echoBackend(t, "b")
	th := newTLSHarness(t, Options{}, TLSOptions{}, [][]string{{"shop.example"}, {"blog.example", "*.blog.example"}},
		running("app", "/", nil, ready(0, b, "tok")))
	for _, tc := range []struct{ sni, want string }{
		{"shop.example", "shop.example"},
		{"blog.example", "blog.example"},
		{"www.blog.example", "blog.example"},
		{"other.example", "shop.example"}, // no match: the first pair
	} {
		pool := x509.NewCertPool()
		pool.AddCert(th.ca.cert)
		c, err := tls.Dial("tcp", th.tlsAddr, &tls.Config{ServerName: tc.sni, RootCAs: pool, InsecureSkipVerify: tc.sni == "other.example"})
		if err != nil {
			t.Fatalf("%s: %v", tc.sni, err)
		}
		got := c.ConnectionState().PeerCertificates[0].DNSNames[0]
		res, body := roundTrip(t, c, bufio.NewReader(c), "GET / HTTP/1.1\r\nHost: "+tc.sni+"\r\n\r\n")
		c.Close()
		if got != tc.want || res.StatusCode != 200 || decodeEcho(t, body).Header.Get("X-Forwarded-Proto") != "https" {
			t.Errorf("SNI %s: certificate for %s (want %s), status %d", tc.sni, got, tc.want, res.StatusCode)
		}
	}
}

// TestTLSReloadKeepsConnections swaps the certificate files: new
// connections get the new certificate, an open keep-alive connection
// keeps working.
func TestTLSReloadKeepsConnections(t *testing.T) {
	b := echoBackend(t, "b")
	th := newTLSHarness(t, Options{}, TLSOptions{}, [][]string{{"shop.example"}}, running("app", "/", nil, ready(0, b, "tok")))
	old := th.dial(t, "shop.example", nil)
	oldBR := bufio.NewReader(old)
	if res, _ := roundTrip(t, old, oldBR, "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n"); res.StatusCode != 200 {
		t.Fatal(res.Status)
	}
	serial := old.ConnectionState().PeerCertificates[0].SerialNumber

	// A broken pair is refused and the old one stays.
	pair := CertPair{CertFile: filepath.Join(th.dir, "pair0.crt"), KeyFile: filepath.Join(th.dir, "pair0.key")}
	good, _ := os.ReadFile(pair.CertFile)
	writeFile(t, pair.CertFile, []byte("not a certificate"))
	if err := th.certs.Reload(); err == nil || !strings.Contains(err.Error(), pair.CertFile) {
		t.Errorf("reload of a broken pair: %v", err)
	}
	if c := th.dial(t, "shop.example", nil); c.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(serial) != 0 {
		t.Error("a failed reload changed the certificate")
	}
	writeFile(t, pair.CertFile, good)

	// A new pair, picked up by the file watch.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go th.certs.Watch(ctx, 20*time.Millisecond)
	th.ca.writePair(t, th.dir, "pair0", "shop.example")
	waitFor(t, "the new certificate", func() bool {
		c := th.dial(t, "shop.example", nil)
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(serial) != 0
	})
	if res, _ := roundTrip(t, old, oldBR, "GET /again HTTP/1.1\r\nHost: shop.example\r\n\r\n"); res.StatusCode != 200 {
		t.Errorf("the open connection after the swap: %s", res.Status)
	}
}

func TestTLSClientCertificates(t *testing.T) {
	b := echoBackend(t, "b")
	clientCA := newTestCA(t, "client CA")
	caFile := filepath.Join(t.TempDir(), "clients.pem")
	writeFile(t, caFile, clientCA.pem)
	route := running("app", "/", nil, ready(0, b, "tok"))
	route.Compat = "aspnetcore"
	th := newTLSHarness(t, Options{}, TLSOptions{ClientAuth: "require", ClientCAFile: caFile}, [][]string{{"shop.example"}}, route)

	// Refused without a certificate.
	pool := x509.NewCertPool()
	pool.AddCert(th.ca.cert)
	if c, err := tls.Dial("tcp", th.tlsAddr, &tls.Config{ServerName: "shop.example", RootCAs: pool}); err == nil {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
		if err == nil {
			_, err = http.ReadResponse(bufio.NewReader(c), nil)
		}
		c.Close()
		if err == nil {
			t.Error("a client without a certificate was served")
		}
	}

	certPEM, keyPEM, leaf := clientCA.issue(t, "alice", true, "alice.clients.example")
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := th.dial(t, "shop.example", &cert)
	res, body := roundTrip(t, c, bufio.NewReader(c), "GET / HTTP/1.1\r\nHost: shop.example\r\n"+
		"X-Forwarded-Client-Cert: Hash=forged\r\nMS-ASPNETCORE-CLIENTCERT: forged\r\nX-Forwarded-Proto: http\r\n\r\n")
	if res.StatusCode != 200 {
		t.Fatal(res.Status)
	}
	e := decodeEcho(t, body)
	sum := sha256.Sum256(leaf.Raw)
	xfcc := e.Header.Values("X-Forwarded-Client-Cert")
	if len(xfcc) != 1 || !strings.HasPrefix(xfcc[0], "Hash="+hex.EncodeToString(sum[:])+`;Cert="`) ||
		!strings.Contains(xfcc[0], `Subject="CN=alice,O=ancm\\, tests"`) || !strings.Contains(xfcc[0], ";URI=spiffe://ancm.test/client;DNS=alice.clients.example") {
		t.Errorf("X-Forwarded-Client-Cert %q", xfcc)
	}
	if got := e.Header.Values("Ms-Aspnetcore-Clientcert"); len(got) != 1 || got[0] != base64.StdEncoding.EncodeToString(leaf.Raw) {
		t.Errorf("MS-ASPNETCORE-CLIENTCERT %q", got)
	}
	if got := e.Header.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != "https" {
		t.Errorf("X-Forwarded-Proto %q", got)
	}
	// The PEM in Cert= is the client's certificate.
	_, rest, _ := strings.Cut(xfcc[0], `Cert="`)
	enc, _, _ := strings.Cut(rest, `"`)
	dec, err := url.PathUnescape(enc)
	if blk, _ := pem.Decode([]byte(dec)); err != nil || blk == nil || string(blk.Bytes) != string(leaf.Raw) {
		t.Errorf("Cert= does not decode to the client's certificate: %v", err)
	}
}

// TestTrustedProxyHeadersKept checks trusted_proxies: a trusted client's
// X-Forwarded-Proto, -Host and -Client-Cert are kept (and X-Forwarded-For
// appended to); anyone else's never reach the app.
func TestTrustedProxyHeadersKept(t *testing.T) {
	b := echoBackend(t, "b")
	raw := "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: public.example\r\n" +
		"X-Forwarded-Client-Cert: Hash=abc\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n"
	for _, tc := range []struct {
		trusted                []netip.Prefix
		proto, host, xfcc, xff string
	}{
		{nil, "http", "x", "", "203.0.113.7, 127.0.0.1"},
		{[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "http", "x", "", "203.0.113.7, 127.0.0.1"},
		{[]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "https", "public.example", "Hash=abc", "203.0.113.7, 127.0.0.1"},
	} {
		h := newHarness(t, Options{TrustedProxies: tc.trusted}, running("app", "/", nil, ready(0, b, "tok")))
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		_, body := roundTrip(t, c, bufio.NewReader(c), raw)
		c.Close()
		e := decodeEcho(t, body)
		if got := strings.Join(e.Header.Values("X-Forwarded-Proto"), "|"); got != tc.proto {
			t.Errorf("trusted %v: X-Forwarded-Proto %q", tc.trusted, got)
		}
		if got := strings.Join(e.Header.Values("X-Forwarded-Host"), "|"); got != tc.host {
			t.Errorf("trusted %v: X-Forwarded-Host %q", tc.trusted, got)
		}
		if got := strings.Join(e.Header.Values("X-Forwarded-Client-Cert"), "|"); got != tc.xfcc {
			t.Errorf("trusted %v: X-Forwarded-Client-Cert %q", tc.trusted, got)
		}
		if got := e.Header.Get("X-Forwarded-For"); got != tc.xff {
			t.Errorf("trusted %v: X-Forwarded-For %q", tc.trusted, got)
		}
	}
}

func TestRedirectHTTP(t *testing.T) {
	b := echoBackend(t, "b")
	h := newHarness(t, Options{RedirectHTTPS: "8443"}, running("app", "/", nil, ready(0, b, "tok")))
	for _, tc := range []struct{ raw, want string }{
		{"GET /a/b?q=1 HTTP/1.1\r\nHost: shop.example:8080\r\n\r\n", "https://shop.example:8443/a/b?q=1"},
		{"GET http://abs.example/p HTTP/1.1\r\nHost: abs.example\r\n\r\n", "https://abs.example:8443/p"},
		{"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "https://[::1]:8443/"},
	} {
		out := firstAnswer(t, h.addr, tc.raw)
		if !strings.HasPrefix(out, "HTTP/1.1 308 ") || !strings.Contains(out, "\r\nLocation: "+tc.want+"\r\n") {
			t.Errorf("%q: answer %q", tc.raw, out)
		}
	}
}

// TestSmugglingShapesOverTLS checks that the framing rules hold on the
// TLS listener as on the plain one.
func TestSmugglingShapesOverTLS(t *testing.T) {
	b := echoBackend(t, "b")
	th := newTLSHarness(t, Options{}, TLSOptions{}, [][]string{{"shop.example"}}, running("app", "/", nil, ready(0, b, "tok")))
	pad := "X-Pad: " + strings.Repeat("p", 4096-7)
	for _, tc := range []struct {
		raw  string
		want int
	}{
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd", 400},
		{"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: x\r\n" + pad + "\r\nX-After: 1\r\n\r\n", 200},
	} {
		c := th.dial(t, "shop.example", nil)
		res, _ := roundTrip(t, c, bufio.NewReader(c), tc.raw)
		if res.StatusCode != tc.want {
			t.Errorf("%.60q over TLS: %d, want %d", tc.raw, res.StatusCode, tc.want)
		}
	}
}

// TestTLSMaxVersion: max_version = "1.2" makes a TLS 1.3 client speak
// TLS 1.2, over HTTP/1.1 and HTTP/2 alike; the default is TLS 1.3.
func TestTLSMaxVersion(t *testing.T) {
	b := echoBackend(t, "b")
	for _, tc := range []struct {
		max, want uint16
	}{{0, tls.VersionTLS13}, {tls.VersionTLS12, tls.VersionTLS12}} {
		th := newTLSHarness(t, Options{}, TLSOptions{HTTP2: true, MaxVersion: tc.max}, [][]string{{"shop.example"}},
			running("app", "/", nil, ready(0, b, "tok")))
		c := th.dial(t, "shop.example", nil)
		if v := c.ConnectionState().Version; v != tc.want {
			t.Errorf("max %#x: negotiated %#x, want %#x", tc.max, v, tc.want)
		}
		res, err := th.h2Client(t).Get("https://" + th.tlsAddr + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.ProtoMajor != 2 || res.TLS.Version != tc.want || res.StatusCode != 200 {
			t.Errorf("max %#x: h2 %s over %#x: %d", tc.max, res.Proto, res.TLS.Version, res.StatusCode)
		}
	}
}
