package e2e

import (
	"strings"
	"testing"
	"time"
)

// A start that is never ready fails `ancmctl start` (exit 5, though the app
// is not FAILED) with the last readiness answer: connection refused, or
// the status health.path gave.
func TestNeverReadyNamesLastReadinessAnswer(t *testing.T) {
	d := newDaemon(t, `
app "deaf" {
  command = "TESTAPP"
  args = ["never"]
  path_prefix = "/deaf"
  startup_timeout = "1s"
}
app "sick" {
  command = "TESTAPP"
  args = ["unhealthy-after", "0"]
  path_prefix = "/sick"
  startup_timeout = "1s"
  health {
    path = "/healthz"
  }
}
`)
	for _, tc := range []struct{ app, want string }{
		{"deaf", "last readiness answer: connection refused"},
		{"sick", "last readiness answer: health.path /healthz answered 503"},
	} {
		msg := d.ctlFails(5, "start", tc.app)
		if !strings.Contains(msg, "not ready within startup_timeout (1s)") || !strings.Contains(msg, tc.want) {
			t.Errorf("start %s: %q, want %q", tc.app, msg, tc.want)
		}
		if s := d.get(tc.app); s.App.State == "APP_STATE_FAILED" {
			t.Errorf("%s is FAILED after one failed start", tc.app)
		}
	}
}

// A separate proxy whose control plane was away follows it again soon
// after it is back, and says so in its log.
func TestProxyWatchIsBackQuickly(t *testing.T) {
	d := prepareDaemon(t, `
app "app" {
  command = "TESTAPP"
  args = ["serve"]
  start = "eager"
}
`)
	d.start("control")
	_, out := d.startProxyOutput()
	waitFor(t, 10*time.Second, "the first table", func() bool { return strings.Contains(out.String(), "endpoint table synced") })
	d.stop()
	// The outage itself (not a wait for a condition): 4s, long enough for
	// gRPC's default reconnect backoff to have grown past 2s.
	<-time.After(4 * time.Second)
	d.start("control")
	back := time.Now()
	waitFor(t, 5*time.Second, "the proxy's watch to be back", func() bool { return strings.Contains(out.String(), "endpoint watch is back") })
	if el := time.Since(back); el > 2*time.Second {
		t.Errorf("watch back %s after the control plane listened, want about a second at most", el)
	}
}

// A stop is one STOPPED event, however often it is asked for; the next
// stop after a start is another.
func TestStoppedEventOncePerStop(t *testing.T) {
	d := newDaemon(t, rolloutApp("web", "/", 2, "rolling", ""))
	d.waitState("web", "APP_STATE_RUNNING", 20*time.Second)
	d.mustCtl("stop", "--wait", "web")
	d.mustCtl("stop", "--wait", "web")
	if n := countEvents(t, d, "web", "EVENT_TYPE_STOPPED"); n != 1 {
		t.Errorf("%d STOPPED events after two stops, want 1", n)
	}
	d.mustCtl("start", "web")
	d.mustCtl("stop", "--wait", "web")
	if n := countEvents(t, d, "web", "EVENT_TYPE_STOPPED"); n != 2 {
		t.Errorf("%d STOPPED events after a start and a third stop, want 2", n)
	}
}
