package sandbox

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStandbyRunsTheCommandInItsBox(t *testing.T) {
	needCgroups(t)
	m := newManager(t, t.TempDir())
	spec := Spec{Name: "warm.0", User: "nobody", Limits: Limits{Memory: 64 << 20, Pids: 32, OpenFiles: 1234}}
	sb, err := m.Warm(spec)
	if err != nil {
		t.Fatal(err)
	}
	out := output{newOutFile(t)}
	cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{"sh", "-c", "id -u; ulimit -n; pwd; echo $X; cat /proc/self/cgroup"},
		Env: []string{"X=from the message"}, Dir: "/tmp", Stdout: out.f, Stderr: out.f}
	box, err := sb.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 4 || lines[0] != "65534" || lines[1] != "1234" || lines[2] != "/tmp" || lines[3] != "from the message" {
		t.Errorf("output:\n%s", out)
	}
	if !regexpLine(out.String(), "memory", "/warm.0") || !regexpLine(out.String(), "pids", "/warm.0") {
		t.Errorf("not in its cgroups:\n%s", out)
	}
	if _, err := box.Release(); err != nil {
		t.Fatal(err)
	}

	// An unused standby goes without a trace.
	sb, err = m.Warm(Spec{Name: "warm.1", Limits: Limits{Pids: 16}})
	if err != nil {
		t.Fatal(err)
	}
	dirs := sb.box.Dirs()
	sb.Discard()
	for _, d := range dirs {
		if exists(d) {
			t.Errorf("%s left by Discard", d)
		}
	}
}

// What a standby saves on the start of an instance with limits: the
// trampoline's re-exec and, on v1, the kernel's wait in the cgroup
// migration. Logged, not asserted: timings belong to benchmarks.
func TestStandbySavesTheStartCost(t *testing.T) {
	needCgroups(t)
	if testing.Short() {
		t.Skip("timing")
	}
	m := newManager(t, t.TempDir())
	spec := Spec{Name: "cost.0", Limits: Limits{Memory: 512 << 20, CPU: 1, Pids: 512, OpenFiles: 4096}}
	var cold, warm []time.Duration
	for range 11 {
		cmd := &exec.Cmd{Path: "/bin/true", Args: []string{"true"}}
		start := time.Now()
		box, err := m.Prepare(cmd, spec)
		if err != nil {
			t.Fatal(err)
		}
		_ = cmd.Run()
		cold = append(cold, time.Since(start))
		_, _ = box.Release()

		sb, err := m.Warm(spec)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // let it get ready, as an idle app's would be
		cmd = &exec.Cmd{Path: "/bin/true", Args: []string{"true"}}
		start = time.Now()
		box, err = sb.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		warm = append(warm, time.Since(start))
		_, _ = box.Release()
	}
	slices.Sort(cold)
	slices.Sort(warm)
	t.Logf("start to exit of /bin/true with limits, median of 11: through Prepare %v, through a standby %v", cold[5], warm[5])
}
