package pemfile

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

func TestCertPool(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	good, empty := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("not pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := CertPool(good)
	if err != nil || pool == nil {
		t.Fatalf("CertPool(%s): %v", good, err)
	}
	if !pool.Equal(func() *x509.CertPool {
		p := x509.NewCertPool()
		c, _ := x509.ParseCertificate(der)
		p.AddCert(c)
		return p
	}()) {
		t.Error("the pool does not hold the file's certificate")
	}
	if _, err := CertPool(empty); err == nil || !strings.Contains(err.Error(), empty+": no PEM certificate") {
		t.Errorf("a file without PEM: %v", err)
	}
	if _, err := CertPool(filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("a missing file: %v", err)
	}
}
