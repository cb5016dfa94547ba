package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ctlConfigApp is the app of the config file in the ancmctl tests.
const ctlConfigApp = `
app "fromfile" {
  command = "TESTAPP"
  args    = ["serve"]
  path_prefix = "/file"
  startup_timeout = "10s"
  shutdown_timeout = "5s"
}
`

// ctlApps is an apply file with two apps; GREETING is the knob the tests
// turn to change one of them.
func ctlApps(betaGreeting string, extra string) string {
	return fmt.Sprintf(`
app "alpha" {
  command = "TESTAPP"
  args    = ["serve"]
  path_prefix = "/alpha"
  startup_timeout = "10s"
  shutdown_timeout = "5s"
}

app "beta" {
  command = "TESTAPP"
  args    = ["serve"]
  env     = { GREETING = %q }
  path_prefix = "/beta"
  startup_timeout = "10s"
  shutdown_timeout = "5s"
}
%s`, betaGreeting, extra)
}

// writeApplyFile writes an apply file into the daemon's directory.
func (d *daemon) writeApplyFile(name, src string) string {
	d.t.Helper()
	p := filepath.Join(d.dir, name)
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(src, "TESTAPP", bin.testapp)), 0o644); err != nil {
		d.t.Fatal(err)
	}
	return p
}

// mustCtl runs ancmctl and fails the test unless it exits 0.
func (d *daemon) mustCtl(args ...string) string {
	d.t.Helper()
	out, errOut, code := d.ctl(args...)
	if code != 0 {
		d.t.Fatalf("ancmctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// ctlFails runs ancmctl, wants exit code want and a one-line reason on
// stderr, and returns that line.
func (d *daemon) ctlFails(want int, args ...string) string {
	d.t.Helper()
	out, errOut, code := d.ctl(args...)
	if code != want {
		d.t.Fatalf("ancmctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
	}
	checkOneLine(d.t, errOut)
	return errOut
}

func checkOneLine(t *testing.T, stderr string) {
	t.Helper()
	if !strings.HasPrefix(stderr, "ancmctl: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr = %q, want one line starting with \"ancmctl: \"", stderr)
	}
}

// appliedLines parses apply's table output into app -> outcome.
func appliedLines(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		name, what, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("apply output line %q: want \"APP: outcome\"", l)
		}
		m[name] = what
	}
	return m
}

// streamProc is an ancmctl that keeps running (logs -f, events -f).
type streamProc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func (d *daemon) ctlStream(args ...string) *streamProc {
	d.t.Helper()
	cmd := exec.Command(bin.ancmctl, append([]string{"--addr", d.control}, args...)...)
	p := &streamProc{cmd: cmd, out: newSyncBuffer()}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(p.kill)
	return p
}

func (p *streamProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// running starts an app with ancmctl and returns its instance 0's pid.
func (d *daemon) running(app string) int {
	d.t.Helper()
	d.mustCtl("start", app)
	s := d.waitState(app, "APP_STATE_RUNNING", 15*time.Second)
	if len(s.App.Instances) == 0 || s.App.Instances[0].Pid == 0 {
		d.t.Fatalf("%s running without a pid: %+v", app, s.App)
	}
	return s.App.Instances[0].Pid
}

func TestCtlVerbs(t *testing.T) {
	d := newDaemon(t, ctlConfigApp)

	// apps, ls, get.
	for _, verb := range []string{"apps", "ls"} {
		out := d.mustCtl(verb)
		if !strings.HasPrefix(out, "APP") || !regexp.MustCompile(`(?m)^fromfile\s+config\s+IDLE\s`).MatchString(out) {
			t.Errorf("%s:\n%s\nwant a table with fromfile config IDLE", verb, out)
		}
	}
	if out := d.mustCtl("get", "fromfile"); !strings.Contains(out, "Name:") || !strings.Contains(out, "fromfile") || !regexp.MustCompile(`Source:\s+config`).MatchString(out) {
		t.Errorf("get fromfile:\n%s", out)
	}

	// apply: added, unchanged, then one changed app restarted.
	file := d.writeApplyFile("apps.hcl", ctlApps("one", ""))
	if got := appliedLines(t, d.mustCtl("apply", "-f", file)); got["alpha"] != "added" || got["beta"] != "added" || len(got) != 2 {
		t.Errorf("first apply = %v, want both added", got)
	}
	if got := appliedLines(t, d.mustCtl("apply", "-f", file)); got["alpha"] != "unchanged" || got["beta"] != "unchanged" {
		t.Errorf("second apply = %v, want both unchanged", got)
	}
	file = d.writeApplyFile("apps.hcl", ctlApps("two", ""))
	if got := appliedLines(t, d.mustCtl("apply", "-f", file)); got["alpha"] != "unchanged" || got["beta"] != "restarted" {
		t.Errorf("apply with beta changed = %v, want alpha unchanged, beta restarted", got)
	}
	if out := d.mustCtl("get", "beta"); !strings.Contains(out, "GREETING=two") {
		t.Errorf("get beta after apply:\n%s\nwant GREETING=two", out)
	}

	// apply --dry-run reports and changes nothing.
	dry := d.writeApplyFile("dry.hcl", ctlApps("three", `
app "gamma" {
  command = "TESTAPP"
  path_prefix = "/gamma"
}
`))
	got := appliedLines(t, d.mustCtl("apply", "--dry-run", "-f", dry))
	if got["beta"] != "restarted (dry run)" || got["gamma"] != "added (dry run)" || got["alpha"] != "unchanged (dry run)" {
		t.Errorf("dry run = %v", got)
	}
	if out := d.mustCtl("get", "beta"); !strings.Contains(out, "GREETING=two") || strings.Contains(out, "three") {
		t.Errorf("get beta after a dry run:\n%s\nwant the old config (GREETING=two)", out)
	}
	if msg := d.ctlFails(3, "get", "gamma"); !strings.Contains(msg, "gamma") {
		t.Errorf("get gamma after dry run: %q", msg)
	}

	// delete, and NotFound after.
	if out := d.mustCtl("delete", "alpha"); out != "alpha: deleted\n" {
		t.Errorf("delete alpha = %q", out)
	}
	d.ctlFails(3, "get", "alpha")
	d.ctlFails(3, "delete", "alpha")
	// An app from the config file belongs to the file.
	if msg := d.ctlFails(5, "delete", "fromfile"); !strings.Contains(msg, "config file") {
		t.Errorf("delete fromfile: %q, want a hint at the config file", msg)
	}
	d.mustCtl("get", "fromfile")

	// start, restart, stop.
	pid1 := d.running("beta")
	out := d.mustCtl("restart", "beta")
	if !regexp.MustCompile(`(?m)^beta\s+api\s+RUNNING\s`).MatchString(out) {
		t.Errorf("restart beta:\n%s", out)
	}
	s := d.waitState("beta", "APP_STATE_RUNNING", 15*time.Second)
	pid2 := s.App.Instances[0].Pid
	if pid2 == pid1 || pid2 == 0 {
		t.Errorf("pid after restart = %d, before %d: want a new process", pid2, pid1)
	}

	// logs --tail: the app's own first line. A restart is a rollout: the
	// old instance of index 0 stops after the new one started, and both
	// write to the log of index 0, so its last words come after.
	// The old instance's last words are captured as it goes: poll for them.
	last2 := func() bool {
		out = d.mustCtl("logs", "--tail", "2", "beta")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return len(lines) == 2 && strings.HasPrefix(lines[0], "[0] testapp serve starting pid="+strconv.Itoa(pid2))
	}
	deadline := time.Now().Add(10 * time.Second)
	for !last2() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !last2() {
		t.Errorf("logs --tail 2 beta = %q, want the start line of pid %d, then the old one stopping", out, pid2)
	}
	if out := d.mustCtl("logs", "--tail", "0", "beta"); strings.TrimSpace(out) != "" {
		t.Errorf("logs --tail 0 beta printed old lines: %q", out)
	}
	out = d.mustCtl("logs", "--tail", "100", "beta")
	if !strings.Contains(out, "pid="+strconv.Itoa(pid1)) || !strings.Contains(out, "pid="+strconv.Itoa(pid2)) {
		t.Errorf("logs --tail 100 beta lacks one of the starts:\n%s", out)
	}

	// endpoints: the running app and its address.
	addr := fmt.Sprintf("127.0.0.1:%d", s.App.Instances[0].Port)
	out = d.mustCtl("endpoints")
	if !regexp.MustCompile(`(?m)^beta\s.*` + regexp.QuoteMeta(addr) + `\s+yes\s`).MatchString(out) {
		t.Errorf("endpoints:\n%s\nwant beta at %s, ready", out, addr)
	}

	// logs -f and events -f see what happens next.
	logs := d.ctlStream("logs", "-f", "--tail", "2", "beta")
	events := d.ctlStream("events", "-f", "--app", "beta", "-o", "json")
	waitFor(t, 10*time.Second, "logs -f to print the current start line", func() bool {
		return strings.Contains(logs.out.String(), "pid="+strconv.Itoa(pid2))
	})
	d.mustCtl("restart", "beta")
	s = d.waitState("beta", "APP_STATE_RUNNING", 15*time.Second)
	pid3 := s.App.Instances[0].Pid
	waitFor(t, 10*time.Second, "logs -f to print the new start line", func() bool {
		return strings.Contains(logs.out.String(), "[0] testapp serve starting pid="+strconv.Itoa(pid3))
	})
	waitFor(t, 10*time.Second, "events -f to show the new instance start", func() bool {
		return hasEvent(events.out.String(), "EVENT_TYPE_STARTED", pid3)
	})
	logs.kill()
	events.kill()

	// events: the backlog has started and ready.
	out = d.mustCtl("events", "--app", "beta")
	if !strings.HasPrefix(out, "TIME") || !regexp.MustCompile(`(?m)\sbeta\s+0\s+started\s`).MatchString(out) || !regexp.MustCompile(`(?m)\sbeta\s+0\s+ready\s`).MatchString(out) {
		t.Errorf("events --app beta:\n%s\nwant started and ready", out)
	}

	d.mustCtl("stop", "--wait", "beta")
	if s := d.get("beta"); s.App.State != "APP_STATE_STOPPED" || alive(pid3) {
		t.Errorf("after stop --wait: state %s, pid %d alive=%v", s.App.State, pid3, alive(pid3))
	}

	// version: client and server.
	out = d.mustCtl("version")
	if !strings.Contains(out, "Client:") || !strings.Contains(out, "Server:") || !strings.Contains(out, d.control) {
		t.Errorf("version:\n%s", out)
	}
	if out := d.mustCtl("completion", "bash"); len(out) < 100 || !strings.Contains(out, "ancmctl") {
		t.Errorf("completion bash: %d bytes", len(out))
	}

	// Failures and their exit codes.
	d.ctlFails(2, "get")
	d.ctlFails(2, "get", "a", "b")
	d.ctlFails(2, "apps", "-o", "yaml")
	d.ctlFails(2, "no-such-verb")
	d.ctlFails(3, "get", "nope")
	d.ctlFails(3, "logs", "nope")
	bad := d.writeApplyFile("bad.hcl", "app \"broken\" {\n  command = \"TESTAPP\"\n  colour = \"blue\"\n}\n")
	_, errOut, code := d.ctl("apply", "-f", bad)
	if code != 4 || !strings.Contains(errOut, bad+":3") || !strings.Contains(errOut, "colour") {
		t.Errorf("apply bad.hcl: exit %d, stderr %q; want 4 and %s:3 naming colour", code, errOut, bad)
	}
	if _, _, code := d.ctl("get", "broken"); code != 3 {
		t.Errorf("an app from a refused file exists: get exit %d", code)
	}
}

// hasEvent reports whether JSON lines of events -f hold an event of type
// typ for pid.
func hasEvent(out, typ string, pid int) bool {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var e struct {
			Event struct {
				Type string `json:"type"`
				Pid  int    `json:"pid"`
			} `json:"event"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event.Type == typ && e.Event.Pid == pid {
			return true
		}
	}
	return false
}

func TestCtlDaemonNotRunning(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(bin.ancmctl, "--addr", "unix://"+filepath.Join(dir, "ancm.sock"), "apps")
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 6 {
		t.Fatalf("ancmctl apps without a daemon: %v, want exit 6; stderr %q", err, stderr.String())
	}
	checkOneLine(t, stderr.String())
	if !strings.Contains(stderr.String(), "is ancmd running?") {
		t.Errorf("stderr = %q, want the hint", stderr.String())
	}
}

// An app applied through the API is stored in state_dir and comes back,
// and serves, after the daemon restarts.
func TestCtlAppliedAppSurvivesRestart(t *testing.T) {
	d := newDaemon(t, "")
	file := d.writeApplyFile("keep.hcl", `
app "keep" {
  command = "TESTAPP"
  args    = ["serve"]
  env     = { GREETING = "kept" }
  path_prefix = "/keep"
  startup_timeout = "10s"
  shutdown_timeout = "5s"
}
`)
	if out := d.mustCtl("apply", "-f", file); out != "keep: added\n" {
		t.Fatalf("apply = %q", out)
	}
	if code, body := get(t, d.url("/keep/x")); code != 200 || decodeReply(t, body).Greeting != "kept" {
		t.Fatalf("before restart: %d %s", code, body)
	}

	d.stop()
	if d.exitErr != nil {
		t.Fatalf("ancmd after SIGTERM: %v, want exit 0\n%s", d.exitErr, d.out.String())
	}
	d.start("serve")

	if out := d.mustCtl("get", "keep"); !strings.Contains(out, "GREETING=kept") || !regexp.MustCompile(`Source:\s+api`).MatchString(out) {
		t.Errorf("get keep after restart:\n%s", out)
	}
	code, body := get(t, d.url("/keep/x"))
	if code != 200 {
		t.Fatalf("after restart: %d %s", code, body)
	}
	if r := decodeReply(t, body); r.Greeting != "kept" || r.App != "keep" {
		t.Errorf("after restart: app %q greeting %q", r.App, r.Greeting)
	}
}
