package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Isolation: users, limits, env files, and no orphan ever (issue 14).
// These need root and cgroups, as ancmd does for them.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("isolation needs ancmd to run as root")
	}
	if _, err := os.Stat("/sys/fs/cgroup/pids"); err != nil {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
			t.Skip("no cgroup file system")
		}
	}
}

// openToAll lets a non-root app reach the test's binaries and dirs, which
// MkdirTemp makes 0700.
func openToAll(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func newMarker() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// marked lists the live processes (zombies aside) whose environment has
// ISOLATION_MARK=mark: an app and everything it started.
func marked(mark string) []int {
	needle := []byte("ISOLATION_MARK=" + mark + "\x00")
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err == nil && bytes.Contains(b, needle) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitNoneMarked polls until no process has the mark, and says how long
// that took.
func waitNoneMarked(t *testing.T, mark string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		left := marked(mark)
		if len(left) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("processes %v still alive after %s", left, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type isolationReply struct {
	Uid        int                `json:"uid"`
	Gid        int                `json:"gid"`
	NofileSoft uint64             `json:"nofile_soft"`
	NofileHard uint64             `json:"nofile_hard"`
	Cgroup     string             `json:"cgroup"`
	Env        map[string]*string `json:"env"`
}

// cgroupFile reads a file of the cgroup a /proc/self/cgroup text puts the
// app in, for one v1 controller (or the v2 one, with sub "").
func cgroupFile(t *testing.T, procCgroup, sub, file string) string {
	t.Helper()
	for line := range strings.SplitSeq(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[1] != sub {
			continue
		}
		dir := filepath.Join("/sys/fs/cgroup", sub, parts[2])
		if sub == "" {
			dir = filepath.Join("/sys/fs/cgroup", parts[2])
		}
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	t.Fatalf("no %q line in %q", sub, procCgroup)
	return ""
}

func TestAppRunsAsItsUserWithItsLimitsAndEnvFile(t *testing.T) {
	needRoot(t)
	d := prepareDaemon(t, `
app "boxed" {
  command     = "TESTAPP"
  args        = ["serve"]
  dir         = "DIR"
  user        = "nobody"
  env_file    = "app.env"
  inherit_env = false
  env         = { GREETING = "from env" }
  limits {
    memory     = "256MB"
    cpu        = 0.5
    pids       = 64
    open_files = 4096
  }
}
`)
	openToAll(t, bin.dir, d.dir)
	env := "# the app's env file\nexport GREETING='from the file'\nONLY_IN_FILE=\"yes\"\n"
	if err := os.WriteFile(filepath.Join(d.dir, "app.env"), []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(d.config)
	if err := os.WriteFile(d.config, bytes.ReplaceAll(src, []byte("DIR"), []byte(d.dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.extraEnv = []string{"ANCMD_ONLY=secret"}
	d.start("serve")

	code, body := get(t, d.url("/isolation?k=GREETING&k=ONLY_IN_FILE&k=ANCMD_ONLY&k=HOME&k=USER&k=PATH"))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var r isolationReply
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if r.Uid != 65534 {
		t.Errorf("uid = %d, want 65534 (nobody)", r.Uid)
	}
	str := func(p *string) string {
		if p == nil {
			return "<unset>"
		}
		return *p
	}
	for k, want := range map[string]string{"GREETING": "from env", "ONLY_IN_FILE": "yes", "ANCMD_ONLY": "<unset>", "USER": "nobody", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"} {
		if got := str(r.Env[k]); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if r.NofileSoft != 4096 || r.NofileHard != 4096 {
		t.Errorf("RLIMIT_NOFILE = %d/%d, want 4096/4096", r.NofileSoft, r.NofileHard)
	}
	if strings.Contains(r.Cgroup, "0::/\n") && !strings.Contains(r.Cgroup, "pids:") {
		t.Skip("cgroup v2 host: the v1 files below do not apply")
	}
	for _, c := range []struct{ sub, file, want string }{
		{"memory", "memory.limit_in_bytes", strconv.Itoa(256 << 20)},
		{"pids", "pids.max", "64"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
	} {
		if got := cgroupFile(t, r.Cgroup, c.sub, c.file); got != c.want {
			t.Errorf("%s of the app's own cgroup = %s, want %s", c.file, got, c.want)
		}
	}
	// An on-demand app whose start needs the trampoline starts through
	// the standby readied when it was added, in its cgroup NAME.wN.
	if !strings.Contains(r.Cgroup, "/boxed.0.w") {
		t.Errorf("the app is not in a standby's cgroup of its own:\n%s", r.Cgroup)
	}
	// Its captured log stays the operator's.
	st := d.get("boxed")
	if fi, err := os.Stat(st.App.Instances[0].LogPath); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("log file %s: %v, want owned by root", st.App.Instances[0].LogPath, err)
	}
}

func TestValidateRefusesAMissingUserAndWarnsAboutRoot(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ancm.hcl")
	src := "app \"x\" {\n  command = \"/bin/true\"\n  user    = \"no-such-user-e2e\"\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin.ancmd, "validate", "-c", path).CombinedOutput()
	if want := path + `:3:13: app "x": user: no such user "no-such-user-e2e"`; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("validate: %v\n%s\nwant %s", err, out, want)
	}
	src = "app \"x\" {\n  command = \"/bin/true\"\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin.ancmd, "validate", "-c", path).CombinedOutput()
	if want := path + `:1:1: app "x": user: warning: the app will run as root`; err != nil || !strings.Contains(string(out), want) {
		t.Errorf("validate: %v\n%s\nwant exit 0 and %s", err, out, want)
	}
}

func TestAnAppPastItsMemoryLimitIsOOMKilledAndRestarted(t *testing.T) {
	needRoot(t)
	d := newDaemon(t, `
app "hog" {
  command = "TESTAPP"
  args    = ["serve"]
  limits {
    memory = "64MB"
  }
}
`)
	code, body := get(t, d.url("/"))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	first := decodeReply(t, body).Pid
	if code, _ := get(t, d.url("/alloc?mb=256")); code == 200 {
		t.Fatal("allocated 256MB under a 64MB limit")
	}
	var st appStatus
	waitFor(t, 10*time.Second, "the OOM kill to be recorded", func() bool {
		st = d.get("hog")
		in := st.App.Instances[0]
		return in.Restarts >= 1 || in.LastExit != nil
	})
	in := st.App.Instances[0]
	if in.LastExit == nil || in.LastExit.Reason != "out of memory (limit 64MB)" {
		t.Errorf("last exit = %+v, want reason \"out of memory (limit 64MB)\"", in.LastExit)
	}
	events, _, _ := d.ctl("events", "--app", "hog")
	t.Logf("events:\n%s", events)
	if !strings.Contains(events, "oom_killed") || !strings.Contains(events, "oom_killed: out of memory (limit 64MB)") {
		t.Errorf("events lack oom_killed and the restart reason:\n%s", events)
	}
	code, body = get(t, d.url("/"))
	if code != 200 || decodeReply(t, body).Pid == first {
		t.Errorf("after the OOM kill: %d %s, want a new instance serving", code, body)
	}
}

func TestPidsLimitStopsAForkBombAndStopKillsItAll(t *testing.T) {
	needRoot(t)
	mark := newMarker()
	d := newDaemon(t, fmt.Sprintf(`
app "bomb" {
  command         = "/bin/bash"
  args            = ["-c", "while :; do sleep 1000 & done 2>/dev/null"]
  start           = "eager"
  startup_timeout = "60s"
  env             = { ISOLATION_MARK = %q }
  limits {
    pids = 32
  }
}
`, mark))
	var pid int
	waitFor(t, 10*time.Second, "the bomb to start", func() bool {
		st := d.get("bomb")
		pid = st.App.Instances[0].Pid
		return pid > 0
	})
	// The pid is the trampoline's until it has joined its cgroups and
	// exec'd the app.
	var cg []byte
	waitFor(t, 10*time.Second, "the bomb to be in its cgroup", func() bool {
		var err error
		cg, err = os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		return err == nil && (bytes.Contains(cg, []byte(":pids:/")) && bytes.Contains(cg, []byte("/bomb.0.")) && !bytes.Contains(cg, []byte(":pids:/\n")))
	})
	if !bytes.Contains(cg, []byte(":pids:")) {
		t.Skip("cgroup v2 host: the v1 files below do not apply")
	}
	waitFor(t, 10*time.Second, "the pids limit to refuse a fork", func() bool {
		return !strings.HasSuffix(cgroupFile(t, string(cg), "pids", "pids.events"), " 0")
	})
	if n := len(marked(mark)); n > 32 {
		t.Errorf("%d processes under pids = 32", n)
	}
	if _, errOut, code := d.ctl("stop", "bomb"); code != 0 {
		t.Fatalf("stop: %s", errOut)
	}
	took := waitNoneMarked(t, mark, time.Second)
	t.Logf("fork bomb gone %s after ancmctl stop returned", took)
}

const familyApp = `
app "family" {
  command = "TESTAPP"
  args    = ["family"]
  start   = "eager"
  user    = "nobody"
  env     = { ISOLATION_MARK = %q }
}
`

// startFamily starts an app with a child, a grandchild and a setsid
// daemon, and waits for all four processes.
func startFamily(t *testing.T) (*daemon, string) {
	t.Helper()
	mark := newMarker()
	d := prepareDaemon(t, fmt.Sprintf(familyApp, mark))
	// The app enters its dir (the config's) as its user.
	openToAll(t, bin.dir, d.dir)
	d.start("serve")
	d.waitState("family", "APP_STATE_RUNNING", 20*time.Second)
	waitFor(t, 10*time.Second, "the app and its 3 descendants", func() bool { return len(marked(mark)) == 4 })
	return d, mark
}

func TestStopLeavesNoProcessOfTheApp(t *testing.T) {
	needRoot(t)
	d, mark := startFamily(t)
	if _, errOut, code := d.ctl("stop", "family"); code != 0 {
		t.Fatalf("stop: %s", errOut)
	}
	waitNoneMarked(t, mark, time.Second)
}

func TestKill9OfAncmdLeavesNoProcessOfTheApp(t *testing.T) {
	needRoot(t)
	d, mark := startFamily(t)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	took := waitNoneMarked(t, mark, time.Second)
	t.Logf("every process of the app gone %s after kill -9 of ancmd", took)

	// A new ancmd on the same state_dir starts the app again.
	d.start("serve")
	d.waitState("family", "APP_STATE_RUNNING", 20*time.Second)
}

func TestARestartedAncmdCleansUpWhatADeadOneLeft(t *testing.T) {
	needRoot(t)
	d, mark := startFamily(t)
	// Kill the watchdog first, as a host's OOM killer or an operator's
	// kill -9 of the whole group might, so nothing cleans up at once.
	wd := watchdogOf(t, d.cmd.Process.Pid)
	_ = syscall.Kill(wd, syscall.SIGKILL)
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
	left := marked(mark)
	if len(left) == 0 {
		t.Fatal("nothing was left to clean up")
	}
	d.start("serve")
	// The new ancmd starts the eager app again, with the same mark: what
	// must go are the processes the dead one left.
	waitFor(t, 2*time.Second, fmt.Sprintf("the processes %v a dead ancmd left to be killed", left), func() bool {
		for _, pid := range left {
			if alive(pid) {
				return false
			}
		}
		return true
	})
	// Its output reaches the test through a pipe, a moment after the kill.
	waitFor(t, 5*time.Second, "ancmd to say it cleaned up", func() bool {
		return strings.Contains(d.out.String(), "killing processes a previous ancmd left")
	})
}

// watchdogOf finds the sandbox watchdog ancmd pid started.
func watchdogOf(t *testing.T, ppid int) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if bytes.Contains(cmdline, []byte("sandbox-watchdog")) && bytes.Contains(status, []byte(fmt.Sprintf("\nPPid:\t%d\n", ppid))) {
			return pid
		}
	}
	t.Fatal("no watchdog found")
	return 0
}

// The issue's own report: gunicorn's workers kept serving for ~25 s after
// kill -9 of ancmd. They are in the instance's cgroup now.
func TestGunicornWorkersDieWithAKilledAncmd(t *testing.T) {
	needRoot(t)
	r := recipes[0]
	if r.dir != "gunicorn-flask" {
		t.Fatalf("recipes[0] is %s", r.dir)
	}
	if why := r.skip(); why != "" {
		t.Skip(why)
	}
	mark := newMarker()
	open := fmt.Sprintf("app %q {", r.app)
	apps := strings.Replace(recipeConfig(t, r), open, fmt.Sprintf("%s\n  env = { ISOLATION_MARK = %q, GUNICORN_CMD_ARGS = \"--workers 3\" }\n", open, mark), 1)
	d := startDaemon(t, apps)
	if code, body := get(t, d.url("/")); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	waitFor(t, 10*time.Second, "gunicorn's master and 3 workers", func() bool { return len(marked(mark)) >= 4 })
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	took := waitNoneMarked(t, mark, time.Second)
	t.Logf("gunicorn's master and workers gone %s after kill -9 of ancmd", took)
}
