package controlplane

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// Metrics are the control plane's lifecycle metrics. States and instances
// are read from Supervisor.List at scrape time; restarts and start
// durations are counted from the event stream, followed as WatchEvents
// follows it. Nothing here reaches into an app.
//
// ancm_app_generation and ancm_rollouts_total are not exported yet: apps
// have no generations before rollouts exist.
type Metrics struct {
	sup *Supervisor

	mu       sync.Mutex
	restarts map[restartKey]uint64
	rollouts map[restartKey]uint64 // by app and result
	starts   map[string]*startHist // by app
	started  map[instanceKey]time.Time
}

type restartKey struct{ app, reason string }

type instanceKey struct {
	app      string
	instance uint32
}

// Restart reasons of ancm_app_restarts_total: the contract's four and
// start_failed, a process that could not be started at all.
const (
	ReasonCrashed        = "crashed"
	ReasonUnhealthy      = "unhealthy"
	ReasonStartupTimeout = "startup_timeout"
	ReasonOOMKilled      = "oom_killed"
	ReasonStartFailed    = "start_failed"
)

// StartBuckets are the bounds, in seconds, of
// ancm_app_start_duration_seconds.
var StartBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

type startHist struct {
	count   uint64
	sum     float64
	buckets []uint64 // cumulative, by StartBuckets
}

// NewMetrics returns the lifecycle metrics of sup. They follow its events
// until ctx ends or the supervisor shuts down.
func NewMetrics(ctx context.Context, sup *Supervisor) *Metrics {
	m := &Metrics{sup: sup, restarts: map[restartKey]uint64{}, rollouts: map[restartKey]uint64{}, starts: map[string]*startHist{},
		started: map[instanceKey]time.Time{}}
	go m.follow(ctx)
	return m
}

// follow counts events, from the first one kept, and watches again from
// the last one seen when it fell behind.
func (m *Metrics) follow(ctx context.Context) {
	var seq uint64
	for {
		err := m.sup.events.watch(ctx, "", seq, true, func(e *ancmv1.Event) error {
			seq = e.GetSeq()
			m.observe(e)
			return nil
		})
		if !errors.Is(err, ErrLagged) {
			return // ctx ended, or the bus closed
		}
	}
}

// restartReasonOf classifies the message of a RESTARTED event of an
// instance, which is the reason its process ended (after "restarting after
// backoff D: " when a backoff came first). Until the supervisor gives a
// structured reason, it reads the words the runner writes; an OOM kill is
// the "oom_killed: " the decision function puts first.
func restartReasonOf(msg string) string {
	switch {
	case strings.Contains(msg, "OOM"), strings.Contains(msg, "oom kill"), strings.Contains(msg, "oom_kill"),
		strings.Contains(msg, "oom-kill"):
		return ReasonOOMKilled // as the cgroup's memory.events calls it
	case strings.Contains(msg, "health check"):
		return ReasonUnhealthy
	case strings.Contains(msg, "startup_timeout"), strings.Contains(msg, "startup timeout"):
		return ReasonStartupTimeout
	case strings.Contains(msg, "start failed"):
		return ReasonStartFailed
	default: // "crashed: ...", "exited before it was ready: ..."
		return ReasonCrashed
	}
}

// observe counts one event.
func (m *Metrics) observe(e *ancmv1.Event) {
	switch e.GetType() {
	case ancmv1.EventType_EVENT_TYPE_ROLLOUT_SUCCEEDED:
		m.mu.Lock()
		m.rollouts[restartKey{e.GetApp(), "succeeded"}]++
		m.mu.Unlock()
		return
	case ancmv1.EventType_EVENT_TYPE_ROLLOUT_FAILED:
		m.mu.Lock()
		m.rollouts[restartKey{e.GetApp(), "failed"}]++
		m.mu.Unlock()
		return
	}
	if e.Instance == nil {
		return // an app's event: applied, an operator's start or restart
	}
	k := instanceKey{e.GetApp(), e.GetInstance()}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e.GetType() {
	case ancmv1.EventType_EVENT_TYPE_RESTARTED:
		m.restarts[restartKey{e.GetApp(), restartReasonOf(e.GetMessage())}]++
	case ancmv1.EventType_EVENT_TYPE_STARTED:
		m.started[k] = e.GetTime().AsTime()
	case ancmv1.EventType_EVENT_TYPE_READY:
		t0, ok := m.started[k]
		if !ok {
			return
		}
		delete(m.started, k)
		d := e.GetTime().AsTime().Sub(t0).Seconds()
		h := m.starts[e.GetApp()]
		if h == nil {
			h = &startHist{buckets: make([]uint64, len(StartBuckets))}
			m.starts[e.GetApp()] = h
		}
		h.count++
		h.sum += d
		for i, b := range StartBuckets {
			if d <= b {
				h.buckets[i]++
			}
		}
	case ancmv1.EventType_EVENT_TYPE_EXITED, ancmv1.EventType_EVENT_TYPE_START_FAILED:
		delete(m.started, k)
	}
}

var (
	descAppState = prometheus.NewDesc("ancm_app_state",
		"1 for the app's current state, 0 for the others.", []string{"app", "state"}, nil)
	descAppInstances = prometheus.NewDesc("ancm_app_instances",
		"The app's instances per state.", []string{"app", "state"}, nil)
	descAppRestarts = prometheus.NewDesc("ancm_app_restarts_total",
		"Restarts of the app's instances after an unplanned end, by reason.", []string{"app", "reason"}, nil)
	descAppStart = prometheus.NewDesc("ancm_app_start_duration_seconds",
		"Time from an instance's exec to its readiness.", []string{"app"}, nil)
	descAppGeneration = prometheus.NewDesc("ancm_app_generation",
		"The generation the app's spec belongs to (one more with every rollout).", []string{"app"}, nil)
	descRollouts = prometheus.NewDesc("ancm_rollouts_total",
		"Rollouts that ended, by result (succeeded, failed).", []string{"app", "result"}, nil)
	descApps = prometheus.NewDesc("ancm_apps",
		"Apps the control plane supervises.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAppState, descAppInstances, descAppRestarts, descAppStart, descApps, descAppGeneration, descRollouts} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	apps := m.sup.List()
	ch <- prometheus.MustNewConstMetric(descApps, prometheus.GaugeValue, float64(len(apps)))
	for _, a := range apps {
		name := a.GetSpec().GetName()
		ch <- prometheus.MustNewConstMetric(descAppGeneration, prometheus.GaugeValue, float64(a.GetGeneration()), name)
		for v, s := range ancmv1.AppState_name {
			if v == 0 {
				continue
			}
			x := 0.0
			if ancmv1.AppState(v) == a.GetState() {
				x = 1
			}
			ch <- prometheus.MustNewConstMetric(descAppState, prometheus.GaugeValue, x, name, stateLabel(s, "APP_STATE_"))
		}
		per := map[ancmv1.InstanceState]int{}
		for _, in := range a.GetInstances() {
			per[in.GetState()]++
		}
		for v, s := range ancmv1.InstanceState_name {
			if v == 0 {
				continue
			}
			ch <- prometheus.MustNewConstMetric(descAppInstances, prometheus.GaugeValue,
				float64(per[ancmv1.InstanceState(v)]), name, stateLabel(s, "INSTANCE_STATE_"))
		}
	}
	known := make(map[string]bool, len(apps))
	for _, a := range apps {
		known[a.GetSpec().GetName()] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range known {
		// Every reason from the first scrape on, so that a rate over the
		// first restart is not lost.
		for _, r := range []string{ReasonCrashed, ReasonUnhealthy, ReasonStartupTimeout, ReasonOOMKilled, ReasonStartFailed} {
			ch <- prometheus.MustNewConstMetric(descAppRestarts, prometheus.CounterValue,
				float64(m.restarts[restartKey{name, r}]), name, r)
		}
		for _, r := range []string{"succeeded", "failed"} {
			ch <- prometheus.MustNewConstMetric(descRollouts, prometheus.CounterValue,
				float64(m.rollouts[restartKey{name, r}]), name, r)
		}
		h := m.starts[name]
		if h == nil {
			h = &startHist{buckets: make([]uint64, len(StartBuckets))}
		}
		cum := make(map[float64]uint64, len(StartBuckets))
		for i, b := range StartBuckets {
			cum[b] = h.buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(descAppStart, h.count, h.sum, cum, name)
	}
}

// stateLabel turns APP_STATE_RUNNING into "running".
func stateLabel(enum, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(enum, prefix))
}
