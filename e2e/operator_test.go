package e2e

import (
	"strings"
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
	// exits 0, the app restarting.
	out, errOut, code := d.ctl("start", "flaky")
	if code != 0 || !strings.Contains(out, "flaky") {
		t.Errorf("start flaky: exit %d, want 0\n%s%s", code, out, errOut)
	}
	if _, _, code := d.ctl("stop", "flaky"); code != 0 {
		t.Errorf("stop flaky: exit %d", code)
	}

	// At the limit: FAILED. A follower of the logs sees ancmd's note about
	// the failed start; the files, which a later tail reads, hold only the
	// app's own output.
	// The wait ends at the first failed start; the app may not show FAILED
	// yet (the lifecycle rework closes that gap), so start exits 0 or 5.
	if _, errOut, code := d.ctl("start", "broken"); code != 0 && (code != 5 || !strings.Contains(errOut, "failed to start")) {
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
