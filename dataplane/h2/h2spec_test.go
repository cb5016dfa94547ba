package h2

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/ancm-dev/ancm/internal/testtool"
)

// TestH2spec runs h2spec, the conformance suite for RFC 7540 and RFC
// 7541 servers, over TLS and over h2c: every one of its 145 cases must
// pass.
func TestH2spec(t *testing.T) {
	bin := testtool.Find(t, "h2spec")
	if testing.Short() {
		t.Skip("h2spec runs a few hundred connections")
	}
	// h2spec's cases send small requests and expect answers with bodies
	// (its 6.9.1 cases wait for DATA under a small window).
	h := func(st *Stream) {
		_, _ = st.Read(make([]byte, 1))
		for {
			if _, err := st.Read(make([]byte, 4096)); err != nil {
				break
			}
		}
		_ = st.WriteHead(200, []hpack.HeaderField{{Name: "content-type", Value: "text/plain"}})
		_, _ = st.WriteString(strings.Repeat("h2spec ", 20))
		_ = st.End(nil)
	}
	for _, useTLS := range []bool{false, true} {
		name := "h2c"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			s := serve(t, Config{}, useTLS, h)
			host, port, _ := strings.Cut(s.addr, ":")
			args := []string{"-h", host, "-p", port, "-o", "5", "-j", filepath.Join(t.TempDir(), "report.xml")}
			if useTLS {
				args = append(args, "-t", "-k")
			}
			out, err := exec.Command(bin, args...).CombinedOutput()
			summary := lastLine(string(out))
			if err != nil || !strings.Contains(summary, " 0 failed") {
				t.Fatalf("h2spec: %v\n%s", err, failures(string(out)))
			}
			if n := passed(summary); n < 145 {
				t.Fatalf("h2spec passed %d cases, want all: %s", n, summary)
			}
			t.Log(summary)
		})
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// failures is the part of h2spec's output that lists what failed.
func failures(out string) string {
	if i := strings.Index(out, "Failures:"); i >= 0 {
		return out[i:]
	}
	return out
}

// passed reads "N tests, P passed, ..." from h2spec's summary.
func passed(summary string) int {
	for _, part := range strings.Split(summary, ",") {
		if f := strings.Fields(part); len(f) == 2 && f[1] == "passed" {
			n, _ := strconv.Atoi(f[0])
			return n
		}
	}
	return 0
}
