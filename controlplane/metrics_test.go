package controlplane

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// TestMetricsCountCrash: a killed instance shows up as a restart with
// reason crashed, its starts in the start histogram, the app as running.
func TestMetricsCountCrash(t *testing.T) {
	h := newHarness(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := NewMetrics(ctx, h.sup)
	spec := helperSpec("web", "/")
	spec.Start = ancmv1.StartMode_START_MODE_EAGER
	if _, err := h.apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: spec}); err != nil {
		t.Fatal(err)
	}
	pid := waitReady(t, h, "web", 0)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitReady(t, h, "web", pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := testutil.GatherAndCount(registry(t, m), "ancm_app_start_duration_seconds")
		if err != nil {
			t.Fatal(err)
		}
		err = testutil.CollectAndCompare(m, strings.NewReader(`
# HELP ancm_app_restarts_total Restarts of the app's instances after an unplanned end, by reason.
# TYPE ancm_app_restarts_total counter
ancm_app_restarts_total{app="web",reason="crashed"} 1
ancm_app_restarts_total{app="web",reason="oom_killed"} 0
ancm_app_restarts_total{app="web",reason="start_failed"} 0
ancm_app_restarts_total{app="web",reason="startup_timeout"} 0
ancm_app_restarts_total{app="web",reason="unhealthy"} 0
`), "ancm_app_restarts_total")
		m.mu.Lock()
		starts := m.starts["web"]
		m.mu.Unlock()
		if err == nil && n == 1 && starts != nil && starts.count == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarts: %v; start histograms %d", err, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := testutil.CollectAndCompare(m, strings.NewReader(`
# HELP ancm_app_state 1 for the app's current state, 0 for the others.
# TYPE ancm_app_state gauge
ancm_app_state{app="web",state="failed"} 0
ancm_app_state{app="web",state="idle"} 0
ancm_app_state{app="web",state="offline"} 0
ancm_app_state{app="web",state="running"} 1
ancm_app_state{app="web",state="starting"} 0
ancm_app_state{app="web",state="stopped"} 0
ancm_app_state{app="web",state="stopping"} 0
`), "ancm_app_state"); err != nil {
		t.Error(err)
	}
	if lint, err := testutil.CollectAndLint(m); err != nil || len(lint) > 0 {
		t.Errorf("lint: %v %v", lint, err)
	}
}

// waitReady waits for instance 0 of app to be ready with a pid other
// than not, and returns it.
func waitReady(t *testing.T, h *harness, app string, not int) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		a, err := h.sup.Get(app)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range a.GetInstances() {
			if in.GetState() == ancmv1.InstanceState_INSTANCE_STATE_READY && int(in.GetPid()) != not && in.GetPid() > 0 {
				return int(in.GetPid())
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no ready instance: %v", app, a)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func registry(t *testing.T, c prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	return reg
}
