package controlplane

import (
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

var testBounds = []float64{0.01, 0.1, 1}

func report(node string, at, started time.Time, apps ...*ancmv1.AppTraffic) *ancmv1.ReportTrafficRequest {
	return &ancmv1.ReportTrafficRequest{Node: node, Time: timestamppb.New(at), Started: timestamppb.New(started),
		LatencyBounds: testBounds, Apps: apps}
}

func traffic(app string, ok, errs uint64, buckets []uint64, inFlight int64) *ancmv1.AppTraffic {
	return &ancmv1.AppTraffic{App: app, Status_2Xx: ok, Status_5Xx: errs, LatencyBuckets: buckets, InFlight: inFlight}
}

// TestTrafficWindow: two data planes' reports are summed per app over
// the window; a counter that went down counts from 0; a stream that
// ended stops counting towards in flight and ages out.
func TestTrafficWindow(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	st := newTrafficStore(clk.now)
	t0 := clk.t
	a, b := st.open(), st.open()
	// a started long ago: its first report is only a base.
	st.add(a, report("a", t0, t0.Add(-time.Hour), traffic("shop", 1000, 10, []uint64{900, 100, 10, 0}, 0)))
	// b started 1s ago: its counters were 0 then.
	st.add(b, report("b", t0, t0.Add(-time.Second), traffic("shop", 10, 0, []uint64{10, 0, 0, 0}, 2)))
	clk.t = t0.Add(10 * time.Second)
	st.add(a, report("a", clk.t, t0.Add(-time.Hour), traffic("shop", 1090, 20, []uint64{990, 110, 10, 0}, 3)))
	st.add(b, report("b", clk.t, t0.Add(-time.Second), traffic("shop", 110, 0, []uint64{110, 0, 0, 0}, 1)))

	got := st.summary(10 * time.Second)
	if len(got.GetNodes()) != 2 || len(got.GetApps()) != 1 {
		t.Fatalf("summary: %v", got)
	}
	s := got.GetApps()[0]
	// a: 100 requests in 10s (90 ok, 10 5xx); b: 100 since its report at
	// the window's start (its zero, a second before, is older).
	if s.GetRequests() != 200 || s.GetStatus_5Xx() != 10 || s.GetInFlight() != 4 {
		t.Errorf("counts: %v", s)
	}
	if want := 10.0 + 10.0; math.Abs(s.GetRequestsPerSecond()-want) > 0.01 {
		t.Errorf("rate %.2f, want %.2f", s.GetRequestsPerSecond(), want)
	}
	if math.Abs(s.GetShare_5Xx()-10.0/200) > 1e-9 {
		t.Errorf("5xx share %v", s.GetShare_5Xx())
	}
	// 190 of 200 bucketed requests are under 10ms, 10 in 10..100ms.
	if s.GetP50Seconds() <= 0 || s.GetP50Seconds() > 0.01 || s.GetP99Seconds() <= 0.01 || s.GetP99Seconds() > 0.1 {
		t.Errorf("p50 %v p99 %v", s.GetP50Seconds(), s.GetP99Seconds())
	}

	// a's route was made anew: its counters restart.
	clk.t = t0.Add(20 * time.Second)
	st.add(a, report("a", clk.t, t0.Add(-time.Hour), traffic("shop", 5, 0, []uint64{5, 0, 0, 0}, 0)))
	st.close(b)
	s = st.summary(10 * time.Second).GetApps()[0]
	// b's last report is the window's base: no rate of its own.
	if s.GetRequests() != 5 || s.GetInFlight() != 0 {
		t.Errorf("after reset and close: %v", s)
	}
	clk.t = t0.Add(2 * TrafficWindow)
	if got := st.summary(10 * time.Second); len(got.GetApps()) != 0 || len(st.streams) != 1 {
		t.Errorf("aged out: %v, %d streams", got, len(st.streams))
	}
}

func TestQuantile(t *testing.T) {
	for _, c := range []struct {
		q       float64
		buckets []uint64
		want    float64
	}{
		{0.5, []uint64{0, 0, 0, 0}, 0},
		{0.5, []uint64{10, 0, 0, 0}, 0.005},
		{0.5, []uint64{0, 10, 0, 0}, 0.055},
		{0.99, []uint64{99, 1, 0, 0}, 0.01},
		{0.99, []uint64{0, 0, 0, 5}, 1},
	} {
		if got := quantile(c.q, testBounds, c.buckets); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("quantile(%v, %v) = %v, want %v", c.q, c.buckets, got, c.want)
		}
	}
}

func TestRestartReason(t *testing.T) {
	for msg, want := range map[string]string{
		"crashed: exit status 1":                      ReasonCrashed,
		"exited before it was ready: exit status 2":   ReasonCrashed,
		"3 health checks failed in a row: status 500": ReasonUnhealthy,
		"not ready within startup_timeout (1s)":       ReasonStartupTimeout,
		"start failed: fork/exec /nope: no such file": ReasonStartFailed,
		"oom killed: memory.max reached":              ReasonOOMKilled,
	} {
		if got := restartReasonOf(msg); got != want {
			t.Errorf("restartReasonOf(%q) = %s, want %s", msg, got, want)
		}
	}
}
