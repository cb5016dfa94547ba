package sandbox

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The test binary is also the trampoline, the watchdog, and a stand-in
// daemon, as the ancmd binary is in production.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case ExecCommand:
			os.Exit(ExecMain(os.Args[2:]))
		case WatchdogCommand:
			os.Exit(WatchdogMain(os.Args[2:]))
		case "test-daemon":
			os.Exit(testDaemon(os.Args[2], os.Args[3]))
		}
	}
	os.Exit(m.Run())
}

func needCgroups(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := detect("probe"); err != nil {
		t.Skipf("no cgroups: %v", err)
	}
}

func newManager(t testing.TB, dir string) *Manager {
	t.Helper()
	m, err := New(Options{Logger: hclog.New(&hclog.LoggerOptions{Output: t.Output(), Level: hclog.Debug}), StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

func mark() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "ANCM_SANDBOX_TEST=" + hex.EncodeToString(b)
}

// output is a child's stdout and stderr, in a file: processes it leaves
// behind do not hold up Wait as they would a pipe.
type output struct{ f *os.File }

func (o output) String() string {
	b, _ := os.ReadFile(o.f.Name())
	return string(b)
}

func newOutFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// shell prepares sh -c script in a box and starts it.
func shell(t *testing.T, m *Manager, spec Spec, env, script string) (*exec.Cmd, *Box, output) {
	t.Helper()
	cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{"sh", "-c", script}, Env: []string{"PATH=/usr/bin:/bin", env}, Dir: "/"}
	f := newOutFile(t)
	out := output{f}
	cmd.Stdout, cmd.Stderr = f, f
	box, err := m.Prepare(cmd, spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		_, _ = box.Release()
		t.Fatal(err)
	}
	return cmd, box, out
}

func TestLimitsAndUserInForce(t *testing.T) {
	needCgroups(t)
	m := newManager(t, t.TempDir())
	spec := Spec{Name: "limits.0", User: "nobody", Limits: Limits{Memory: 64 << 20, CPU: 0.5, Pids: 32, OpenFiles: 1234}}
	cmd, box, out := shell(t, m, spec, mark(), "id -u; ulimit -n; ulimit -Hn; cat /proc/self/cgroup")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lines := strings.Split(out.String(), "\n")
	if lines[0] != "65534" || lines[1] != "1234" || lines[2] != "1234" {
		t.Errorf("uid, soft and hard nofile = %q, want 65534, 1234, 1234", lines[:3])
	}
	for _, sub := range []string{"memory", "pids", "cpu"} {
		if !strings.Contains(out.String(), sub+":") || !regexpLine(out.String(), sub, "/limits.0") {
			t.Errorf("not in its %s cgroup:\n%s", sub, out)
		}
	}
	want := map[string]string{"memory.limit_in_bytes": "67108864", "pids.max": "32", "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"}
	for file, v := range want {
		found := false
		for _, d := range box.Dirs() {
			if b, err := os.ReadFile(filepath.Join(d, file)); err == nil {
				found = true
				if got := strings.TrimSpace(string(b)); got != v {
					t.Errorf("%s = %s, want %s", file, got, v)
				}
			}
		}
		if !found {
			t.Errorf("%s not found in %v", file, box.Dirs())
		}
	}
	if oom, err := box.Release(); oom || err != nil {
		t.Errorf("Release = %v, %v", oom, err)
	}
	for _, d := range box.Dirs() {
		if exists(d) {
			t.Errorf("%s left behind", d)
		}
	}
}

// regexpLine reports whether a /proc/PID/cgroup line of the subsystem
// ends with suffix.
func regexpLine(text, sub, suffix string) bool {
	for line := range strings.SplitSeq(text, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] == sub && strings.HasSuffix(parts[2], suffix) {
			return true
		}
	}
	return false
}

// alive lists the processes (zombies aside) whose environment has env.
func alive(env string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !bytes.Contains(b, []byte(env+"\x00")) {
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 && st[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitGone polls until no process has env, up to d.
func waitGone(t *testing.T, env string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		left := alive(env)
		if len(left) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("processes %v still alive after %s", left, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitCount(t *testing.T, env string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(alive(env)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %v of %d processes started", alive(env), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const family = "sleep 1000 & (sleep 1000 &) ; setsid sleep 1000 & wait"

func TestReleaseKillsTheWholeTree(t *testing.T) {
	needCgroups(t)
	m := newManager(t, t.TempDir())
	env := mark()
	cmd, box, _ := shell(t, m, Spec{Name: "tree.0"}, env, family)
	waitCount(t, env, 4)
	// The instance's own process ends; what it started lives on until
	// Release.
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
	if len(alive(env)) != 3 {
		t.Fatalf("want 3 descendants alive before Release, have %v", alive(env))
	}
	if _, err := box.Release(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, env, time.Second)
}

func TestOOMKillIsReported(t *testing.T) {
	needCgroups(t)
	m := newManager(t, t.TempDir())
	// tail keeps the last "line" of a stream with no newline in memory.
	cmd, box, out := shell(t, m, Spec{Name: "oom.0", Limits: Limits{Memory: 16 << 20}}, mark(), "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd ended $?")
	_ = cmd.Wait()
	// dd goes first, then the instance with it (cgroup v2's
	// memory.oom.group, the watch on v1).
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL || strings.Contains(out.String(), "dd ended") {
		t.Errorf("the instance was not killed with dd: %v, output %q", cmd.ProcessState, out)
	}
	oom, err := box.Release()
	if err != nil {
		t.Fatal(err)
	}
	if !oom {
		t.Fatalf("no OOM kill reported; output %q", out)
	}
}

func TestPidsLimitStopsAForkBomb(t *testing.T) {
	needCgroups(t)
	m := newManager(t, t.TempDir())
	env := mark()
	cmd, box, _ := shell(t, m, Spec{Name: "bomb.0", Limits: Limits{Pids: 20}}, env, "while :; do sleep 1000 & done 2>/dev/null")
	// pids.events counts the forks the limit refused.
	var events string
	for _, d := range box.Dirs() {
		if exists(filepath.Join(d, "pids.events")) {
			events = filepath.Join(d, "pids.events")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for readKey(events, "max") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no fork refused within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(alive(env)); n > 20 {
		t.Errorf("%d processes alive under pids = 20", n)
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
	if _, err := box.Release(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, env, time.Second)
}

// testDaemon stands in for ancmd: it starts a family of processes in a
// box, prints their marker, and waits to be killed.
func testDaemon(stateDir, env string) int {
	m, err := New(Options{StateDir: stateDir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{"sh", "-c", family}, Env: []string{"PATH=/usr/bin:/bin", env}}
	if _, err := m.Prepare(cmd, Spec{Name: "family.0", User: "nobody"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("watchdog %d\n", m.wd.cmd.Process.Pid)
	select {}
}

func startTestDaemon(t *testing.T, dir, env string) (*exec.Cmd, int) {
	t.Helper()
	d := exec.Command(os.Args[0], "test-daemon", dir, env)
	stdout, err := d.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.Stderr = os.Stderr
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Process.Kill(); _ = d.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "watchdog "))
	waitCount(t, env, 4)
	return d, wd
}

func TestNothingOutlivesADaemonKilledBySIGKILL(t *testing.T) {
	needCgroups(t)
	dir, env := t.TempDir(), mark()
	d, _ := startTestDaemon(t, dir, env)
	_ = d.Process.Signal(syscall.SIGKILL)
	_ = d.Wait()
	took := waitGone(t, env, time.Second)
	t.Logf("all gone %s after SIGKILL", took)
}

func TestANewDaemonCleansUpAfterAnOldOne(t *testing.T) {
	needCgroups(t)
	dir, env := t.TempDir(), mark()
	d, wd := startTestDaemon(t, dir, env)
	// The watchdog goes first, so that nothing cleans up but the next run.
	_ = syscall.Kill(wd, syscall.SIGKILL)
	_ = d.Process.Signal(syscall.SIGKILL)
	_ = d.Wait()
	if len(alive(env)) == 0 {
		t.Fatal("the family died with its daemon; nothing left to clean up")
	}
	newManager(t, dir)
	waitGone(t, env, time.Second)
}

// On a hybrid host an app without limits is tracked by the unified
// hierarchy alone: clone3 puts it there, no trampoline runs.
func TestHybridPlainAppNeedsNoTrampoline(t *testing.T) {
	needCgroups(t)
	m := newManager(t, t.TempDir())
	d, ok := m.drv.(*v1Driver)
	if !ok || d.unified == "" {
		t.Skip("not a hybrid host")
	}
	env := mark()
	cmd, box, out := shell(t, m, Spec{Name: "plain.0", User: "nobody"}, env, "id -u; cat /proc/self/cgroup; "+family)
	if cmd.Path != "/bin/sh" || !cmd.SysProcAttr.UseCgroupFD {
		t.Errorf("want sh itself, cloned into its cgroup: %s %+v", cmd.Path, cmd.SysProcAttr)
	}
	waitCount(t, env, 4)
	if s := out.String(); !strings.HasPrefix(s, "65534\n") || !regexpLine(s, "", "/plain.0") {
		t.Errorf("output:\n%s", s)
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
	if _, err := box.Release(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, env, time.Second)
}

// On v1 an OOM kill of a process that is not the instance's own ends the
// whole instance, as memory.oom.group does on v2.
func TestAnOOMKilledWorkerEndsTheInstance(t *testing.T) {
	needCgroups(t)
	m := newManager(t, t.TempDir())
	env := mark()
	cmd, box, out := shell(t, m, Spec{Name: "worker.0", Limits: Limits{Memory: 16 << 20}}, env,
		"dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo worker died; sleep 1000")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("the instance lived on after its worker's OOM kill: %q", out)
	}
	if oom, err := box.Release(); err != nil || !oom {
		t.Errorf("Release = %v, %v; want an OOM kill", oom, err)
	}
	waitGone(t, env, time.Second)
}
