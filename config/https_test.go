package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPair writes a self-signed certificate and its key into dir.
func testPair(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shop.test"}, DNSNames: []string{"shop.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestHTTPSVersions: min_version and max_version default to 1.2 and 1.3,
// take either, and a max below the min, or any other value, is an error
// naming the file, the line and the key.
func TestHTTPSVersions(t *testing.T) {
	dir := t.TempDir()
	cert, key := testPair(t, dir)
	block := func(extra string) string {
		return "https {\n  listen = \"127.0.0.1:8443\"\n  certificate {\n    cert_file = \"" + cert + "\"\n    key_file = \"" + key + "\"\n  }\n" + extra + "}\n"
	}
	for _, tc := range []struct {
		extra    string
		min, max uint16
		err      string // "" for none
	}{
		{"", 0x0303, 0x0304, ""},
		{"  min_version = \"1.3\"\n", 0x0304, 0x0304, ""},
		{"  max_version = \"1.2\"\n", 0x0303, 0x0303, ""},
		{"  min_version = \"1.3\"\n  max_version = \"1.2\"\n", 0, 0, `/t.hcl:8:17: https.max_version: "1.2" is below min_version "1.3"`},
		{"  max_version = \"1.1\"\n", 0, 0, `/t.hcl:7:17: https.max_version: must be "1.2" or "1.3", not "1.1"`},
		{"  min_version = \"1.0\"\n  max_version = \"1.2\"\n", 0, 0, `/t.hcl:7:17: https.min_version: must be "1.2" or "1.3", not "1.0"`},
	} {
		f, err := Parse([]byte(block(tc.extra)), "/t.hcl")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %s", tc.extra, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.extra, err)
			continue
		}
		if got, gotMax := f.HTTPS.TLSMinVersion(), f.HTTPS.TLSMaxVersion(); got != tc.min || gotMax != tc.max {
			t.Errorf("%q: versions %#x..%#x, want %#x..%#x", tc.extra, got, gotMax, tc.min, tc.max)
		}
	}
}
