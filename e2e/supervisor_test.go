package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An instance that crashes is restarted at once with a new pid.
func TestCrashRestartsWithNewPid(t *testing.T) {
	d := newDaemon(t, `
app "crashy" {
  command = "TESTAPP"
  args = ["crash-after", "1"]
}
`)
	code, body := get(t, d.url("/"))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	first := decodeReply(t, body).Pid
	// The app exits after answering; the next request must be served by a
	// new process.
	var second int
	waitFor(t, 20*time.Second, "a new instance after the crash", func() bool {
		code, body := get(t, d.url("/"))
		if code != 200 {
			return false
		}
		second = decodeReply(t, body).Pid
		return second != first
	})
	st := d.get("crashy")
	in := st.App.Instances[0]
	if in.Restarts < 1 || in.LastExit == nil || in.LastExit.Code != 3 || !strings.Contains(in.LastExit.Reason, "crashed") {
		t.Errorf("after crash: restarts=%d last_exit=%+v, want restarts>=1, code 3, crashed", in.Restarts, in.LastExit)
	}
	if alive(first) {
		t.Errorf("crashed pid %d still alive", first)
	}
}

// A signalled process records 128+signal and the signal's name.
func TestKilledInstanceRecordsSignal(t *testing.T) {
	d := newDaemon(t, `
app "victim" {
  command = "TESTAPP"
  args = ["serve"]
  start = "eager"
}
`)
	st := d.waitState("victim", "APP_STATE_RUNNING", 20*time.Second)
	pid := st.App.Instances[0].Pid
	_ = syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, 20*time.Second, "the instance to be restarted", func() bool {
		st = d.get("victim")
		in := st.App.Instances[0]
		return in.Pid != 0 && in.Pid != pid && in.State == "INSTANCE_STATE_READY"
	})
	le := st.App.Instances[0].LastExit
	if le == nil || le.Code != 128+9 || le.Signal != "SIGKILL" {
		t.Errorf("last_exit = %+v, want code 137 and SIGKILL", le)
	}
}

// An app that exits at once reaches FAILED after rapid_fails_per_minute
// failures; requests then get 502 at once, and `ancmctl start` clears it.
func TestRapidFailReachesFailedAndQuick502(t *testing.T) {
	d := newDaemon(t, `
app "flaky" {
  command = "TESTAPP"
  args = ["exit", "7"]
  rapid_fails_per_minute = 3
  error_detail = true
}
`)
	code, body := get(t, d.url("/"))
	if code != 502 {
		t.Fatalf("first request to an app that exits at once: %d, want 502", code)
	}
	if !strings.Contains(body, "flaky") {
		t.Errorf("502 page does not name the app:\n%s", body)
	}
	st := d.waitState("flaky", "APP_STATE_FAILED", 30*time.Second)
	if !strings.Contains(st.App.StateReason, "rapid_fails_per_minute") {
		t.Errorf("FAILED reason = %q", st.App.StateReason)
	}
	le := st.App.Instances[0].LastExit
	if le == nil || !strings.Contains(le.Reason, "exited before it was ready") || le.Code != 7 {
		t.Errorf("last_exit = %+v, want exited before ready with code 7", le)
	}
	start := time.Now()
	code, body = get(t, d.url("/"))
	if code != 502 {
		t.Fatalf("request to a FAILED app: %d, want 502", code)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("502 of a FAILED app took %s; it must not try to start it", el)
	}
	// error_detail shows the app's own last words.
	if !strings.Contains(body, "exiting at once as asked") {
		t.Errorf("502 page lacks the log tail with error_detail:\n%s", body)
	}
	// No start attempt while FAILED: the pid stays 0.
	if st := d.get("flaky"); st.App.Instances[0].Pid != 0 || st.App.State != "APP_STATE_FAILED" {
		t.Errorf("after a request to a FAILED app: %+v", st.App)
	}
	// An operator start clears the failures: the app is started again (and
	// fails again, which shows as new failed starts).
	before := countEvents(t, d, "flaky", "EVENT_TYPE_START_FAILED")
	if _, errOut, code := d.ctl("start", "--wait=false", "flaky"); code != 0 {
		t.Fatalf("ancmctl start: %d %s", code, errOut)
	}
	waitFor(t, 10*time.Second, "a start attempt after ancmctl start", func() bool {
		return countEvents(t, d, "flaky", "EVENT_TYPE_START_FAILED") > before
	})
}

// countEvents counts an app's kept events of one type.
func countEvents(t *testing.T, d *daemon, app, typ string) int {
	t.Helper()
	out, errOut, code := d.ctl("events", "--app", app, "-o", "json")
	if code != 0 {
		t.Fatalf("ancmctl events: %d %s", code, errOut)
	}
	return strings.Count(out, `"type":"`+typ+`"`) + strings.Count(out, `"type": "`+typ+`"`)
}

// An instance not ready within startup_timeout is killed, with its group,
// and counts as a failed start.
func TestStartupTimeoutKillsInstance(t *testing.T) {
	d := newDaemon(t, `
app "sleepy" {
  command = "TESTAPP"
  args = ["never"]
  startup_timeout = "1s"
  rapid_fails_per_minute = 1
}
`)
	start := time.Now()
	code, _ := get(t, d.url("/"))
	if code != 502 {
		t.Fatalf("got %d, want 502 after startup_timeout", code)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("request held %s, past startup_timeout", el)
	}
	st := d.get("sleepy")
	le := st.App.Instances[0].LastExit
	if le == nil || !strings.Contains(le.Reason, "startup_timeout") || le.Signal != "SIGKILL" {
		t.Errorf("last_exit = %+v, want startup_timeout and SIGKILL", le)
	}
}

// An app that ignores its stop signal is killed after shutdown_timeout,
// with the children in its group.
func TestStubbornAppKilledAfterShutdownTimeout(t *testing.T) {
	d := prepareDaemon(t, "")
	childFile := filepath.Join(d.dir, "child.pid")
	d.writeConfig(`
app "stubborn" {
  command = "TESTAPP"
  args = ["stubborn"]
  start = "eager"
  shutdown_timeout = "1s"
}
app "forker" {
  command = "TESTAPP"
  args = ["fork"]
  start = "eager"
  path_prefix = "/fork"
  env = { CHILD_PID_FILE = "` + childFile + `" }
}
`)
	d.start("serve")
	st := d.waitState("stubborn", "APP_STATE_RUNNING", 20*time.Second)
	pid := st.App.Instances[0].Pid
	d.waitState("forker", "APP_STATE_RUNNING", 20*time.Second)
	var child int
	waitFor(t, 10*time.Second, "the forked child's pid", func() bool {
		b, err := os.ReadFile(childFile)
		child, _ = strconv.Atoi(string(b))
		return err == nil && child > 0
	})

	start := time.Now()
	if _, errOut, code := d.ctl("stop", "--wait", "stubborn"); code != 0 {
		t.Fatalf("ancmctl stop: %d %s", code, errOut)
	}
	el := time.Since(start)
	st = d.get("stubborn")
	if st.App.State != "APP_STATE_STOPPED" {
		t.Errorf("state after stop = %s, want STOPPED", st.App.State)
	}
	le := st.App.Instances[0].LastExit
	if le == nil || le.Signal != "SIGKILL" {
		t.Errorf("last_exit = %+v, want SIGKILL after shutdown_timeout", le)
	}
	if el < time.Second {
		t.Errorf("stop took %s, less than shutdown_timeout: the app was not given its time", el)
	}
	if alive(pid) {
		t.Errorf("stubborn pid %d alive after stop", pid)
	}
	// Operator stop: 503 until started.
	if code, _ := get(t, d.url("/")); code != 503 {
		t.Errorf("request to a stopped app: %d, want 503", code)
	}

	if _, errOut, code := d.ctl("stop", "--wait", "forker"); code != 0 {
		t.Fatalf("ancmctl stop forker: %d %s", code, errOut)
	}
	waitFor(t, 10*time.Second, "the forked child to die with its group", func() bool { return !alive(child) })
}

// processes = N runs N instances, each with its own port, token and index,
// and requests are spread over them.
func TestMultipleInstances(t *testing.T) {
	d := newDaemon(t, `
app "multi" {
  command = "TESTAPP"
  args = ["serve"]
  processes = 3
  start = "eager"
}
`)
	waitFor(t, 20*time.Second, "3 ready instances", func() bool {
		st := d.get("multi")
		n := 0
		for _, in := range st.App.Instances {
			if in.State == "INSTANCE_STATE_READY" {
				n++
			}
		}
		return n == 3
	})
	seen := map[string]appReply{}
	for i := 0; i < 60 && len(seen) < 3; i++ {
		code, body := get(t, d.url("/"))
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		r := decodeReply(t, body)
		seen[r.Instance] = r
	}
	if len(seen) != 3 {
		t.Fatalf("requests reached instances %v, want all 3", keys(seen))
	}
	ports, tokens := map[string]bool{}, map[string]bool{}
	for _, r := range seen {
		ports[r.Port] = true
		tokens[r.Token] = true
	}
	if len(ports) != 3 || len(tokens) != 3 {
		t.Errorf("instances share ports or tokens: %d ports, %d tokens", len(ports), len(tokens))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// While the offline file exists the app is stopped and its content served
// with 503; when it goes, the next request starts the app.
func TestOfflineFileRoundTrip(t *testing.T) {
	appDir := t.TempDir()
	d := newDaemon(t, `
app "site" {
  command = "TESTAPP"
  args = ["serve"]
  dir = "`+appDir+`"
}
`)
	code, body := get(t, d.url("/"))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	pid := decodeReply(t, body).Pid
	page := "<h1>Back soon</h1>"
	if err := os.WriteFile(filepath.Join(appDir, "app_offline.htm"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	var hdr http.Header
	waitFor(t, 5*time.Second, "the offline page", func() bool {
		req, _ := http.NewRequest(http.MethodGet, d.url("/"), nil)
		var b string
		code, hdr, b = fetch(t, req)
		body = b
		return code == 503
	})
	if body != page || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Errorf("offline answer: %q %q", hdr.Get("Content-Type"), body)
	}
	d.waitState("site", "APP_STATE_OFFLINE", 5*time.Second)
	waitFor(t, 10*time.Second, "the app to be stopped while offline", func() bool { return !alive(pid) })
	// A changed page is served as it changes.
	page2 := "<h1>Back at noon</h1>"
	if err := os.WriteFile(filepath.Join(appDir, "app_offline.htm"), []byte(page2), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the changed offline page", func() bool {
		code, body := get(t, d.url("/"))
		return code == 503 && body == page2
	})
	if err := os.Remove(filepath.Join(appDir, "app_offline.htm")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the app back from offline", func() bool {
		s := d.get("site")
		return s.App.State == "APP_STATE_IDLE"
	})
	code, body = get(t, d.url("/"))
	if code != 200 {
		t.Fatalf("after offline file removed: %d %s", code, body)
	}
	if decodeReply(t, body).Pid == pid {
		t.Errorf("the old process answered after offline")
	}
}

// An instance whose health checks fail is taken out of rotation and
// restarted.
func TestFailingHealthCheckRestarts(t *testing.T) {
	d := newDaemon(t, `
app "sick" {
  command = "TESTAPP"
  args = ["unhealthy-after", "2"]
  start = "eager"
  health {
    path = "/healthz"
    interval = "100ms"
  }
}
`)
	st := d.waitState("sick", "APP_STATE_RUNNING", 20*time.Second)
	pid := st.App.Instances[0].Pid
	waitFor(t, 20*time.Second, "a restart after failed health checks", func() bool {
		st = d.get("sick")
		return st.App.Instances[0].Restarts >= 1 && st.App.Instances[0].Pid != pid
	})
	le := st.App.Instances[0].LastExit
	if le == nil || !strings.Contains(le.Reason, "health checks failed") {
		t.Errorf("last_exit = %+v, want health checks failed", le)
	}
}

// An app that floods stdout neither stalls nor crashes the daemon.
func TestFloodingAppDoesNotStallDaemon(t *testing.T) {
	d := newDaemon(t, `
app "flood" {
  command = "TESTAPP"
  args = ["flood"]
  start = "eager"
  stdout_log {
    max_size = "64KB"
    max_files = 2
  }
}
app "calm" {
  command = "TESTAPP"
  args = ["serve"]
  path_prefix = "/calm"
}
`)
	d.waitState("flood", "APP_STATE_RUNNING", 20*time.Second)
	for i := 0; i < 20; i++ {
		code, body := get(t, d.url("/calm/x"))
		if code != 200 {
			t.Fatalf("calm app through a flooding neighbour: %d %s", code, body)
		}
	}
	out, _, code := d.ctl("logs", "--tail", "3", "flood")
	if code != 0 || !strings.Contains(out, "flood flood") {
		t.Errorf("ancmctl logs of the flooding app: exit %d\n%s", code, out)
	}
	names, _ := filepath.Glob(filepath.Join(d.dir, "logs", "flood", "flood.0.log*"))
	if len(names) == 0 || len(names) > 3 {
		t.Errorf("log files %v, want rotation keeping 2", names)
	}
	for _, n := range names {
		if fi, err := os.Stat(n); err == nil && fi.Size() > 80<<10 {
			t.Errorf("%s is %d bytes, over max_size", n, fi.Size())
		}
	}
}

// An app applied through the API is kept in the store and survives a
// restart of the daemon.
func TestAppliedAppSurvivesRestart(t *testing.T) {
	d := newDaemon(t, "")
	file := filepath.Join(d.dir, "apply.hcl")
	src := strings.ReplaceAll(`
app "applied" {
  command = "TESTAPP"
  args = ["serve"]
  path_prefix = "/applied"
}
`, "TESTAPP", bin.testapp)
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := d.ctl("apply", "-f", file); code != 0 {
		t.Fatalf("apply: %d %s %s", code, out, errOut)
	}
	waitFor(t, 5*time.Second, "the applied app to route", func() bool {
		code, _ := get(t, d.url("/applied/x"))
		return code == 200
	})
	d.stop()
	d.start("serve")
	code, body := get(t, d.url("/applied/x"))
	if code != 200 || decodeReply(t, body).App != "applied" {
		t.Fatalf("after daemon restart: %d %s", code, body)
	}
}
