package pemfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ancm-dev/ancm/internal/testpki"
)

func TestCertPool(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.SelfSigned(t, "test CA")
	good, _ := ca.Write(t, dir, "ca")
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := CertPool(good)
	if err != nil || pool == nil {
		t.Fatalf("CertPool(%s): %v", good, err)
	}
	if !pool.Equal(ca.Pool()) {
		t.Error("the pool does not hold the file's certificate")
	}
	if _, err := CertPool(empty); err == nil || !strings.Contains(err.Error(), empty+": no PEM certificate") {
		t.Errorf("a file without PEM: %v", err)
	}
	if _, err := CertPool(filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("a missing file: %v", err)
	}
}
