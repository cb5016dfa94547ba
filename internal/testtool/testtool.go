// Package testtool finds the programs that tests run and .ci/run
// installs (h2spec, grpcurl, nginx, HAProxy, promtool). Outside CI a
// missing one skips what needs it; under CI (the CI variable set) .ci/run
// has installed every one, so a missing one fails the test instead of
// letting it pass without having run.
package testtool

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Path returns where the program name is: on PATH, in /usr/sbin, or in
// go install's directory ($GOBIN, $GOPATH/bin, ~/go/bin). It returns ""
// when there is none, and fails the test under CI.
func Path(t testing.TB, name string) string {
	t.Helper()
	dirs := []string{"/usr/sbin", os.Getenv("GOBIN")}
	if gopath := os.Getenv("GOPATH"); gopath != "" {
		dirs = append(dirs, filepath.Join(filepath.SplitList(gopath)[0], "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; .ci/run installs it", name)
	}
	return ""
}

// Find is Path for a test that cannot run without the program: it is
// skipped when the program is missing outside CI.
func Find(t testing.TB, name string) string {
	t.Helper()
	p := Path(t, name)
	if p == "" {
		t.Skipf("%s is not installed (.ci/run installs it)", name)
	}
	return p
}
