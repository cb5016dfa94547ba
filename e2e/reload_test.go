package e2e

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGHUP re-reads the config file and applies only what changed; a config
// with errors changes nothing.
func TestSIGHUPAppliesOnlyWhatChanged(t *testing.T) {
	d := newDaemon(t, `
app "kept" {
  command = "TESTAPP"
  args = ["serve"]
  path_prefix = "/kept"
  start = "eager"
}
app "changed" {
  command = "TESTAPP"
  args = ["serve"]
  path_prefix = "/changed"
  env = { GREETING = "old" }
  start = "eager"
}
app "removed" {
  command = "TESTAPP"
  args = ["serve"]
  path_prefix = "/removed"
}
`)
	kept := d.waitState("kept", "APP_STATE_RUNNING", 20*time.Second).App.Instances[0].Pid
	changed := d.waitState("changed", "APP_STATE_RUNNING", 20*time.Second).App.Instances[0].Pid

	d.writeConfig(`
app "kept" {
  command = "TESTAPP"
  args = ["serve"]
  path_prefix = "/kept"
  start = "eager"
}
app "changed" {
  command = "TESTAPP"
  args = ["serve"]
  path_prefix = "/changed"
  env = { GREETING = "new" }
  start = "eager"
}
app "added" {
  command = "TESTAPP"
  args = ["serve"]
  path_prefix = "/added"
}
`)
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 20*time.Second, "the reload", func() bool {
		_, _, code := d.ctl("get", "removed")
		_, _, addedCode := d.ctl("get", "added")
		return code == 3 && addedCode == 0
	})
	// The changed app is rolled out to generation 2 while the reload goes
	// on; the old instance answers until the new one counts.
	waitFor(t, 20*time.Second, "the changed app's rollout", func() bool {
		s := d.get("changed")
		return s.App.Generation == "2" && s.App.Rollout != nil && s.App.Rollout.Result == "ROLLOUT_RESULT_SUCCEEDED"
	})
	code, body := get(t, d.url("/changed/x"))
	if code != 200 || decodeReply(t, body).Greeting != "new" {
		t.Errorf("changed app after reload: %d %s", code, body)
	}
	if pid := d.get("changed").App.Instances[0].Pid; pid == changed {
		t.Errorf("changed app was not restarted (pid %d)", pid)
	}
	if pid := d.get("kept").App.Instances[0].Pid; pid != kept {
		t.Errorf("unchanged app was restarted: pid %d -> %d", kept, pid)
	}
	if code, _ := get(t, d.url("/removed/x")); code != 404 {
		t.Errorf("removed app still routed: %d", code)
	}
	if code, _ := get(t, d.url("/added/x")); code != 200 {
		t.Errorf("added app: %d", code)
	}

	// A config with an error changes nothing.
	d.writeConfig(`
app "kept" {
  command = "TESTAPP"
  processes = 0
}
`)
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the refused reload in the log", func() bool {
		return strings.Contains(d.out.String(), "reload refused")
	})
	if !strings.Contains(d.out.String(), "processes") {
		t.Errorf("refused reload does not name the key:\n%s", d.out.String())
	}
	if pid := d.get("kept").App.Instances[0].Pid; pid != kept {
		t.Errorf("kept app restarted by a refused reload")
	}
	if _, _, code := d.ctl("get", "added"); code != 0 {
		t.Errorf("a refused reload removed an app")
	}
}

// A SIGHUP applies a new log_level at once and names each setting that
// needs a restart of ancmd, keeping its old value, instead of logging
// "config reloaded" as if all had been applied.
func TestSIGHUPSettings(t *testing.T) {
	d := prepareDaemon(t, helloApp)
	write := func(level, listen string) {
		src := fmt.Sprintf("listen = %q\ncontrol = %q\nstate_dir = %q\nlog_level = %q\n%s",
			listen, d.control, d.dir, level, strings.ReplaceAll(helloApp, "TESTAPP", bin.testapp))
		if err := os.WriteFile(d.config, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("warn", d.listen)
	d.start("serve")
	if strings.Contains(d.out.String(), "[INFO]") {
		t.Fatalf("info lines at log_level warn:\n%s", d.out.String())
	}

	other := freeAddr(t)
	write("debug", other)
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	// An info line shows only if debug is in force.
	waitFor(t, 10*time.Second, "the reload's log lines", func() bool {
		out := d.out.String()
		return strings.Contains(out, "log level changed: from=warn to=debug") &&
			strings.Contains(out, "config reloaded")
	})
	out := d.out.String()
	want := fmt.Sprintf("config change needs a restart of ancmd; keeping the old value: key=listen running=%s file=%s", d.listen, other)
	if !strings.Contains(out, "[WARN]") || !strings.Contains(out, want) {
		t.Errorf("no warning %q:\n%s", want, out)
	}
	if code, _ := get(t, d.url("/")); code != 200 {
		t.Errorf("the old listen address after the reload: %d", code)
	}
}
