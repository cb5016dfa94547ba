package config

import (
	"strings"
	"testing"

	"github.com/ancm-dev/ancm/internal/testpki"
)

// testPair writes a self-signed certificate and its key into dir.
func testPair(t *testing.T, dir string) (certFile, keyFile string) {
	return testpki.SelfSigned(t, "shop.test").Write(t, dir, "c")
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
