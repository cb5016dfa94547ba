package testtool

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how Path or Find ended it.
type recorder struct {
	testing.TB
	ended string // "fatal", "skip", or "" when it returned
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.ended = "fatal: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Skipf(format string, args ...any) {
	r.ended = "skip: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder, as a test's goroutine would.
func run(f func(testing.TB) string) (path, ended string) {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		path = f(r)
	}()
	<-done
	return path, r.ended
}

// TestPathAndFind: a program in go install's directory is found; a
// missing one is "" for Path and a skip for Find, and fails both under CI.
func TestPathAndFind(t *testing.T) {
	gobin := t.TempDir()
	tool := filepath.Join(gobin, "ancm-testtool-probe")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOBIN", gobin)
	t.Setenv("CI", "")
	if p, ended := run(func(tb testing.TB) string { return Path(tb, "ancm-testtool-probe") }); p != tool || ended != "" {
		t.Errorf("Path of a program in GOBIN = %q (%s), want %q", p, ended, tool)
	}
	const missing = "ancm-testtool-missing"
	if p, ended := run(func(tb testing.TB) string { return Path(tb, missing) }); p != "" || ended != "" {
		t.Errorf("Path of a missing program outside CI = %q (%s), want \"\"", p, ended)
	}
	if _, ended := run(func(tb testing.TB) string { return Find(tb, missing) }); !strings.HasPrefix(ended, "skip:") {
		t.Errorf("Find of a missing program outside CI ended %q, want a skip", ended)
	}
	t.Setenv("CI", "true")
	for name, f := range map[string]func(testing.TB, string) string{"Path": Path, "Find": Find} {
		if _, ended := run(func(tb testing.TB) string { return f(tb, missing) }); !strings.HasPrefix(ended, "fatal:") {
			t.Errorf("%s of a missing program under CI ended %q, want a failure", name, ended)
		}
	}
}
