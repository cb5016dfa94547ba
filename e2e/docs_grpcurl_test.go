package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ancm-dev/ancm/internal/testtool"
)

// docExamples returns the grpcurl command lines of docs/operations.md,
// continuation lines joined.
func docExamples(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur string
	open := func() bool { return strings.HasSuffix(cur, "\\") || strings.Count(cur, "'")%2 == 1 }
	for _, line := range strings.Split(string(src), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur != "":
			cur = strings.TrimSuffix(cur, "\\") + " " + trimmed
		case strings.HasPrefix(trimmed, "grpcurl "):
			cur = trimmed
		default:
			continue
		}
		if !open() {
			out = append(out, cur)
			cur = ""
		}
	}
	return out
}

// splitShell splits a command line on spaces outside single quotes.
func splitShell(s string) []string {
	var out []string
	var b strings.Builder
	quoted, inWord := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				out = append(out, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, b.String())
	}
	return out
}

// TestOperationsGrpcurlExamples runs the grpcurl examples of
// docs/operations.md against a daemon, as written but for the socket path
// (the TCP one needs a daemon with mutual TLS, which ctl_test covers).
func TestOperationsGrpcurlExamples(t *testing.T) {
	grpcurl := testtool.Find(t, "grpcurl")
	d := newDaemon(t, `app "hello" {
  command = "TESTAPP"
  args    = ["serve"]
  start   = "eager"
}`)
	d.waitState("hello", "APP_STATE_RUNNING", 20*time.Second)
	sock := strings.TrimPrefix(d.control, "unix://")
	examples := docExamples(t)
	if len(examples) < 8 {
		t.Fatalf("found %d grpcurl examples in docs/operations.md", len(examples))
	}
	ran := 0
	for _, ex := range examples {
		if !strings.Contains(ex, "/var/lib/ancm/ancm.sock") {
			continue
		}
		args := splitShell(strings.ReplaceAll(ex, "/var/lib/ancm/ancm.sock", sock))[1:]
		cmd := exec.Command(grpcurl, append([]string{"-max-time", "3"}, args...)...)
		out, err := cmd.CombinedOutput()
		// A follow stream runs until -max-time ends it.
		if err != nil && !(strings.Contains(ex, `"follow": true`) && strings.Contains(string(out), "DeadlineExceeded")) {
			t.Errorf("%s:\n%v\n%s", ex, err, out)
		}
		ran++
	}
	if ran < 7 {
		t.Errorf("ran %d examples", ran)
	}
}
