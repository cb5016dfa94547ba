package sandbox

import (
	"os/exec"
	"path/filepath"
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

// BenchmarkStandbyStart is what a standby saves on the start of an
// instance with limits (start to exit of /bin/true): the trampoline's
// re-exec and, on v1, the kernel's wait in the cgroup migration.
func BenchmarkStandbyStart(b *testing.B) {
	needCgroups(b)
	m := newManager(b, b.TempDir())
	spec := Spec{Name: "cost.0", Limits: Limits{Memory: 512 << 20, CPU: 1, Pids: 512, OpenFiles: 4096}}
	b.Run("prepare", func(b *testing.B) {
		for b.Loop() {
			cmd := &exec.Cmd{Path: "/bin/true", Args: []string{"true"}}
			box, err := m.Prepare(cmd, spec)
			if err != nil {
				b.Fatal(err)
			}
			_ = cmd.Run()
			_, _ = box.Release()
		}
	})
	b.Run("standby", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			sb, err := m.Warm(spec)
			if err != nil {
				b.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond) // idle, as an idle app's standby would be: not timed
			cmd := &exec.Cmd{Path: "/bin/true", Args: []string{"true"}}
			b.StartTimer()
			box, err := sb.Start(cmd)
			if err != nil {
				b.Fatal(err)
			}
			_ = cmd.Wait()
			b.StopTimer()
			_, _ = box.Release()
			b.StartTimer()
		}
	})
}

func TestPrepareTakesAPrewarmedStandby(t *testing.T) {
	needCgroups(t)
	m := newManager(t, t.TempDir())
	spec := Spec{Name: "pool.0", Limits: Limits{Pids: 64, OpenFiles: 2048}}
	m.Prewarm(spec)
	out := output{newOutFile(t)}
	cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{"sh", "-c", "ulimit -n; cat /proc/self/cgroup"}, Stdout: out.f}
	box, err := m.Prepare(cmd, spec)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Path != "/bin/sh" || box.standby == nil {
		t.Fatalf("Prepare did not take the standby: %s %v", cmd.Path, cmd.Args)
	}
	if err := box.Start(cmd, func(*exec.Cmd) error { t.Fatal("started without the standby"); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "2048\n") || !regexpLine(out.String(), "pids", "/pool.0.w1") {
		t.Errorf("output:\n%s", out)
	}
	if _, err := box.Release(); err != nil {
		t.Fatal(err)
	}

	// A standby warmed for other limits is not used, and goes.
	m.Prewarm(spec)
	other := spec
	other.Limits.Pids = 32
	cmd = &exec.Cmd{Path: "/bin/true", Args: []string{"true"}}
	box, err = m.Prepare(cmd, other)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Release()
	if box.standby != nil || cmd.Path == "/bin/true" {
		t.Errorf("a standby for other limits was used: %v", cmd.Args)
	}
	if d := filepathGlob(t, "/sys/fs/cgroup/pids/*/pool.0.w*"); len(d) != 0 {
		t.Errorf("the discarded standby's cgroup is left: %v", d)
	}
}

func filepathGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
