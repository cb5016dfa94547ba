package e2e

import (
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// What docs/operations.md says about `start` and `logs` after a failed
// start, pinned: when the code changes, the doc lines must change with it.
// ancmctl's own tests cover exit 5 for an app that shows FAILED.
func TestStartAndLogsAfterAFailedStart(t *testing.T) {
	d := newDaemon(t, `
app "flaky" {
  command     = "TESTAPP"
  args        = ["exit", "1"]
  path_prefix = "/flaky"
}
app "broken" {
  command                = "TESTAPP"
  args                   = ["exit", "1"]
  path_prefix            = "/broken"
  rapid_fails_per_minute = 0
}
`)
	// Below the rapid-fail limit: start returns after the failed start and
	// exits 5 with the reason, the app restarting.
	out, errOut, code := d.ctl("start", "flaky")
	if code != 5 || !strings.Contains(errOut, "exited") {
		t.Errorf("start flaky: exit %d, want 5 with the reason\n%s%s", code, out, errOut)
	}
	if _, _, code := d.ctl("stop", "flaky"); code != 0 {
		t.Errorf("stop flaky: exit %d", code)
	}

	// At the limit: FAILED. A follower of the logs sees ancmd's note about
	// the failed start; the files, which a later tail reads, hold only the
	// app's own output.
	if _, errOut, code := d.ctl("start", "broken"); code != 5 {
		t.Errorf("start broken: exit %d: %s", code, errOut)
	}
	// The follower may subscribe after a start's failure: start again until
	// it has seen one.
	follow := d.ctlStream("logs", "-f", "broken")
	last := time.Now()
	waitFor(t, 20*time.Second, "the note in logs -f", func() bool {
		if strings.Contains(follow.out.String(), "[0] [ancm: exited before it was ready: exited with code 1]") {
			return true
		}
		if time.Since(last) > 500*time.Millisecond {
			d.ctl("start", "broken")
			last = time.Now()
		}
		return false
	})
	tail := d.mustCtl("logs", "broken")
	if strings.Contains(tail, "[ancm:") {
		t.Errorf("logs (from the files) shows a note:\n%s", tail)
	}
	if !strings.Contains(tail, "[0] ") {
		t.Errorf("logs shows none of the app's output:\n%s", tail)
	}
}

// `systemctl reload` of a unit running `ancmd proxy` sends SIGHUP: the
// proxy has no file to re-read and must not die of it.
func TestProxySurvivesSIGHUP(t *testing.T) {
	d := prepareDaemon(t, helloApp)
	d.start("control")
	listen := freeAddr(t)
	proxy := exec.Command(bin.ancmd, "proxy", "--control", d.control, "--listen", listen)
	out := newSyncBuffer()
	proxy.Stdout, proxy.Stderr = out, out
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- proxy.Wait() }()
	t.Cleanup(func() {
		_ = proxy.Process.Kill()
		<-done
	})
	waitFor(t, 20*time.Second, "the proxy to listen", func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if code, _ := get(t, "http://"+listen+"/"); code != 200 {
		t.Fatalf("GET through the proxy: %d", code)
	}
	_ = proxy.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the proxy to note the SIGHUP", func() bool {
		return strings.Contains(out.String(), "SIGHUP ignored")
	})
	if code, _ := get(t, "http://"+listen+"/"); code != 200 {
		t.Errorf("GET after SIGHUP: %d\n%s", code, out.String())
	}
	_ = proxy.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Errorf("proxy exit after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("proxy still running 20s after SIGTERM")
	}
}
