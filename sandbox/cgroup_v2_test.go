package sandbox

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The v2 driver's file writes, against a directory that stands in for
// /sys/fs/cgroup: this machine's cgroup2 mount has no controllers.
func TestV2WritesLimitsAndMovesTheDaemon(t *testing.T) {
	mnt := t.TempDir()
	own := filepath.Join(mnt, "system.slice", "ancmd.service")
	if err := os.MkdirAll(own, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{mnt, filepath.Join(mnt, "system.slice")} {
		if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := newV2(mnt, "/system.slice/ancmd.service", "ancm-x", 4242)
	if err := d.setup(); err != nil {
		t.Fatal(err)
	}
	read := func(p ...string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(append([]string{mnt}, p...)...))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := read("system.slice/ancmd.service/ancmd/cgroup.procs"); got != "4242" {
		t.Errorf("daemon moved: cgroup.procs = %q", got)
	}
	for _, p := range []string{"system.slice/ancmd.service/cgroup.subtree_control", "system.slice/ancmd.service/ancm-x/cgroup.subtree_control"} {
		if got := read(p); got != v2Controllers {
			t.Errorf("%s = %q, want %q", p, got, v2Controllers)
		}
	}

	g, err := d.create("web.0", Limits{Memory: 512 << 20, CPU: 1.5, Pids: 64})
	if err != nil {
		t.Fatal(err)
	}
	dir := "system.slice/ancmd.service/ancm-x/web.0/"
	for file, want := range map[string]string{
		"memory.max":       "536870912",
		"memory.swap.max":  "0",
		"memory.oom.group": "1",
		"cpu.max":          "150000 100000",
		"pids.max":         "64",
	} {
		if got := read(dir + file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if g.dir2 != filepath.Join(mnt, dir) || len(g.procs) != 0 {
		t.Errorf("group = %+v", g)
	}
	if err := os.WriteFile(filepath.Join(mnt, dir, "memory.events"), []byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := g.oomKills(); n != 1 {
		t.Errorf("oomKills = %d, want 1", n)
	}

	// Prepare: clone3 into the cgroup, no trampoline unless an rlimit
	// needs one.
	m := &Manager{exe: "/ancmd", drv: d}
	cmd := &exec.Cmd{Path: "/bin/app", Args: []string{"app", "-x"}}
	box, err := m.Prepare(cmd, Spec{Name: "web.1", User: "nobody", Limits: Limits{Memory: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	if !cmd.SysProcAttr.UseCgroupFD || cmd.SysProcAttr.CgroupFD <= 0 || cmd.Path != "/bin/app" {
		t.Errorf("want clone3 into the cgroup without a trampoline: %+v %s", cmd.SysProcAttr, cmd.Path)
	}
	if c := cmd.SysProcAttr.Credential; c == nil || c.Uid != 65534 {
		t.Errorf("credential = %+v, want nobody's", c)
	}
	if _, err := box.Release(); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(mnt, "system.slice/ancmd.service/ancm-x/web.1")) {
		t.Error("Release left the cgroup")
	}

	cmd = &exec.Cmd{Path: "/bin/app", Args: []string{"app"}}
	box, err = m.Prepare(cmd, Spec{Name: "web.2", Limits: Limits{OpenFiles: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Release()
	if _, err := (&Manager{closed: true}).Prepare(&exec.Cmd{Path: "/bin/app", Args: []string{"app"}}, Spec{Name: "x.0"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Prepare after Close = %v, want ErrClosed", err)
	}
	want := "/ancmd sandbox-exec -ppid"
	if got := strings.Join(cmd.Args, " "); cmd.Path != "/ancmd" || !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "-nofile 4096 -- /bin/app app") {
		t.Errorf("trampoline args = %q", got)
	}
}
