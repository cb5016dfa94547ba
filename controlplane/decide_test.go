package controlplane

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

// clock is the fake time of the decision tests.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testSpec(procs int) config.App {
	c := config.App{
		Name: "a", Command: "/bin/true", Dir: "/", PathPrefix: "/", Start: config.StartOnDemand,
		Processes: procs, StartupTimeout: time.Second, ShutdownTimeout: time.Second, RequestTimeout: time.Second,
		RapidFailsPerMinute: 0, StopSignal: "SIGTERM", QueueSize: 10, OfflineFile: "app_offline.htm",
		Health:    config.Health{Interval: time.Second},
		StdoutLog: config.StdoutLog{Enabled: true, MaxSize: 1 << 20, MaxFiles: 1},
		Rollout:   config.Rollout{Strategy: config.RolloutRolling, MaxSurge: 1, MinReady: 10 * time.Millisecond, DrainTimeout: time.Second},
	}
	return c
}

// driver runs events through next and keeps the effects.
type driver struct {
	t    *testing.T
	m    model
	now  time.Time
	effs []effect
}

func newDriver(t *testing.T, spec config.App) *driver {
	return &driver{t: t, m: newModel(spec, sourceAPI, 1, nil, t0), now: t0}
}

// must applies ev and fails the test when it is refused.
func (d *driver) must(ev event) []effect {
	d.t.Helper()
	m, effs, err := next(d.m, ev, d.now)
	if err != nil {
		d.t.Fatalf("%s in %s: %v", ev.name(), stateName(d.m.state), err)
	}
	d.m, d.effs = m, effs
	return effs
}

func (d *driver) advance(dt time.Duration) { d.now = d.now.Add(dt) }

// started reports the processes the last step started, as ids.
func started(effs []effect) []uint64 {
	var ids []uint64
	for _, e := range effs {
		if s, ok := e.(effStart); ok {
			ids = append(ids, s.id)
		}
	}
	return ids
}

func drained(effs []effect) []uint64 {
	var ids []uint64
	for _, e := range effs {
		if s, ok := e.(effDrain); ok {
			ids = append(ids, s.id)
		}
	}
	return ids
}

func emitted(effs []effect, t ancmv1.EventType) int {
	n := 0
	for _, e := range effs {
		if s, ok := e.(effEmit); ok && s.typ == t {
			n++
		}
	}
	return n
}

// up brings a started instance to ready.
func (d *driver) up(id uint64) {
	d.t.Helper()
	d.must(evInstStarted{id: id, pid: int(1000 + id), port: int(20000 + id), token: "t"})
	d.must(evInstReady{id: id})
}

// down reports a planned exit after a drain.
func (d *driver) gone(id uint64) []effect {
	d.t.Helper()
	i := d.m.find(id)
	if i == nil {
		d.t.Fatalf("no instance %d", id)
	}
	if i.state == instDraining {
		d.must(evDrained{id: id})
	}
	return d.must(evInstExited{id: id, exit: &ancmv1.ExitStatus{Reason: "stopped", Planned: true}})
}

// fixture drives a fresh app into a state.
func fixture(t *testing.T, state appState) *driver {
	d := newDriver(t, testSpec(1))
	d.must(evBegin{})
	if state == appIdle {
		return d
	}
	d.must(evActivate{})
	d.must(evInstStarted{id: 1, pid: 1001, port: 20001, token: "t"})
	if state == appStarting {
		return d
	}
	d.must(evInstReady{id: 1})
	switch state {
	case appStopping:
		d.must(evStop{})
	case appStopped:
		d.must(evStop{})
		d.gone(1)
	case appFailed:
		d.must(evInstExited{id: 1, exit: &ancmv1.ExitStatus{Reason: "crashed"}})
	case appOffline:
		d.must(evOffline{on: true, body: []byte("back soon")})
	}
	if d.m.state != state {
		t.Fatalf("fixture %s ended in %s", stateName(state), stateName(d.m.state))
	}
	return d
}

// TestNextEveryStateAndEvent runs every event in every app state: the
// result is the state that follows, or "refused".
func TestNextEveryStateAndEvent(t *testing.T) {
	changed := testSpec(1)
	changed.Env = map[string]string{"V": "2"}
	moved := testSpec(1)
	moved.PathPrefix = "/moved"
	events := []struct {
		ev event
		// want per state, in the order of states below.
		want string
	}{
		//                                 IDLE      STARTING  RUNNING   STOPPING  STOPPED   FAILED    OFFLINE
		{evBegin{}, "refused  refused  refused  refused  refused  refused  refused"},
		{evStart{}, "STARTING STARTING RUNNING  STARTING STARTING STARTING refused"},
		{evStop{}, "STOPPED  STOPPING STOPPING STOPPING STOPPED  STOPPED  OFFLINE"},
		{evRestart{}, "STARTING STARTING RUNNING  STARTING STARTING STARTING refused"},
		{evApply{spec: changed}, "IDLE     STARTING RUNNING  STOPPING STOPPED  IDLE     OFFLINE"},
		{evApply{spec: moved}, "IDLE     STARTING RUNNING  STOPPING STOPPED  IDLE     OFFLINE"},
		{evRollback{}, "refused  refused  refused  refused  refused  refused  refused"},
		{evActivate{}, "STARTING STARTING RUNNING  STOPPING STOPPED  FAILED   OFFLINE"},
		{evOffline{on: true}, "OFFLINE  OFFLINE  OFFLINE  OFFLINE  OFFLINE  OFFLINE  OFFLINE"},
		{evOffline{on: false}, "refused  refused  refused  refused  refused  refused  STOPPING"},
		{evEnd{}, "IDLE     STOPPING STOPPING STOPPING STOPPED  FAILED   OFFLINE"},
		{evInstStarted{id: 1, pid: 1, port: 1}, "refused  refused  refused  refused  refused  refused  refused"},
		{evInstReady{id: 1}, "refused  RUNNING  refused  refused  refused  refused  refused"},
		{evInstHealth{id: 1, ok: false}, "refused  refused  STARTING STOPPING refused  refused  OFFLINE"},
		{evInstExited{id: 1, exit: &ancmv1.ExitStatus{Reason: "crashed"}}, "refused  FAILED   FAILED   STOPPED  refused  refused  OFFLINE"},
		{evBackoffDone{gen: 1, index: 0}, "refused  refused  refused  refused  refused  refused  refused"},
		{evMinReady{id: 1}, "refused  refused  refused  refused  refused  refused  refused"},
		{evDrained{id: 1}, "refused  refused  refused  STOPPING refused  refused  OFFLINE"},
		{evAgedOut{}, "refused  refused  refused  refused  refused  FAILED   refused"},
	}
	states := []appState{appIdle, appStarting, appRunning, appStopping, appStopped, appFailed, appOffline}
	for _, tc := range events {
		want := strings.Fields(tc.want)
		if len(want) != len(states) {
			t.Fatalf("%s: %d results for %d states", tc.ev.name(), len(want), len(states))
		}
		for k, st := range states {
			t.Run(fmt.Sprintf("%s/%s", stateName(st), tc.ev.name()), func(t *testing.T) {
				d := fixture(t, st)
				before := d.m
				m, _, err := next(d.m, tc.ev, d.now)
				got := stateName(m.state)
				if err != nil {
					got = "refused"
					if m.state != before.state || len(m.insts) != len(before.insts) {
						t.Errorf("a refused event changed the model")
					}
					if !errors.Is(err, ErrPrecondition) && !errors.Is(err, ErrIllegalTransition) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrClosed) {
						t.Errorf("refusal %v wraps no sentinel", err)
					}
				}
				if got != want[k] {
					t.Errorf("%s in %s: got %s (err %v), want %s", tc.ev.name(), stateName(st), got, err, want[k])
				}
			})
		}
	}
}

// Every move the app state machine allows or forbids.
func TestAppMovesTable(t *testing.T) {
	all := []appState{ancmv1.AppState_APP_STATE_UNSPECIFIED, appIdle, appStarting, appRunning, appStopping, appStopped, appFailed, appOffline}
	for _, from := range all {
		for _, to := range all {
			err := checkAppMove(from, to)
			if to == ancmv1.AppState_APP_STATE_UNSPECIFIED && from != to && err == nil {
				t.Errorf("%s -> UNSPECIFIED allowed", stateName(from))
			}
			if err != nil && !errors.Is(err, ErrIllegalTransition) {
				t.Errorf("%s -> %s: %v is not ErrIllegalTransition", stateName(from), stateName(to), err)
			}
		}
	}
}

// More than rapid_fails_per_minute failures in the window fail the app; it
// may start again once the oldest ages out, here in milliseconds.
func TestRapidFailsAgeOut(t *testing.T) {
	spec := testSpec(1)
	spec.RapidFailsPerMinute = 2
	spec.Start = config.StartEager
	d := newDriver(t, spec)
	d.m.window = 50 * time.Millisecond
	d.must(evBegin{})
	id := started(d.effs)[0]
	for n := 1; n <= 3; n++ {
		d.up(id)
		d.advance(time.Millisecond)
		effs := d.must(evInstExited{id: id, exit: &ancmv1.ExitStatus{Reason: "crashed"}})
		if n < 3 {
			if d.m.state == appFailed {
				t.Fatalf("failed after %d failures, limit 2", n)
			}
			if d.m.slots[0].backoff {
				d.must(evBackoffDone{gen: 1, index: 0})
			}
			ids := started(d.effs)
			if len(ids) != 1 {
				t.Fatalf("failure %d: no restart (effects %v)", n, effs)
			}
			id = ids[0]
			continue
		}
		if d.m.state != appFailed || emitted(effs, ancmv1.EventType_EVENT_TYPE_FAILED) != 1 {
			t.Fatalf("after 3 failures: %s", stateName(d.m.state))
		}
	}
	// Too early: the oldest failure is still in the window.
	d.advance(40 * time.Millisecond)
	d.must(evAgedOut{})
	if d.m.state != appFailed {
		t.Fatalf("aged out early: %s", stateName(d.m.state))
	}
	d.advance(20 * time.Millisecond)
	d.must(evAgedOut{})
	if d.m.state != appStarting || len(started(d.effs)) != 1 {
		t.Fatalf("after the window: %s, started %v", stateName(d.m.state), started(d.effs))
	}
}

// A stop emits one STOPPED event, however often it is asked for.
func TestStoppedOncePerStop(t *testing.T) {
	d := fixture(t, appRunning)
	n := emitted(d.must(evStop{}), ancmv1.EventType_EVENT_TYPE_STOPPED)
	n += emitted(d.must(evStop{}), ancmv1.EventType_EVENT_TYPE_STOPPED)
	n += emitted(d.gone(1), ancmv1.EventType_EVENT_TYPE_STOPPED)
	n += emitted(d.must(evStop{}), ancmv1.EventType_EVENT_TYPE_STOPPED)
	if n != 1 || d.m.state != appStopped {
		t.Errorf("%d STOPPED events, state %s; want 1, STOPPED", n, stateName(d.m.state))
	}
}

// serving counts the instances that take traffic.
func (d *driver) serving() int {
	n := 0
	for k := range d.m.insts {
		if d.m.counts(&d.m.insts[k], d.now) {
			n++
		}
	}
	return n
}

// running brings up an eager app of procs instances.
func running(t *testing.T, spec config.App) *driver {
	spec.Start = config.StartEager
	d := newDriver(t, spec)
	d.must(evBegin{})
	for _, id := range started(d.effs) {
		d.up(id)
	}
	if d.m.state != appRunning || d.serving() != spec.Processes {
		t.Fatalf("not running: %s, %d serving", stateName(d.m.state), d.serving())
	}
	return d
}

// A rolling restart of 3 instances with max_surge 1 starts one new
// instance at a time, drains an old one only when a new one counts, never
// has fewer than 3 taking traffic, and ends with generation 2 alone.
func TestRollingRollout(t *testing.T) {
	d := running(t, testSpec(3))
	old := map[uint64]bool{}
	for _, i := range d.m.insts {
		old[i.id] = true
	}
	effs := d.must(evRestart{})
	if emitted(effs, ancmv1.EventType_EVENT_TYPE_ROLLOUT_STARTED) != 1 || d.m.gen != 2 {
		t.Fatalf("no rollout: gen %d", d.m.gen)
	}
	ids := started(effs)
	for round := 0; round < 3; round++ {
		if len(ids) != 1 {
			t.Fatalf("round %d: %d new instances started, want 1 (max_surge)", round, len(ids))
		}
		d.up(ids[0])
		if n := d.serving(); n != 3 {
			t.Fatalf("round %d: %d serving before min_ready", round, n)
		}
		d.advance(10 * time.Millisecond)
		effs := d.must(evMinReady{id: ids[0]})
		dr := drained(effs)
		if len(dr) != 1 || !old[dr[0]] {
			t.Fatalf("round %d: drained %v, want one old instance", round, dr)
		}
		if n := d.serving(); n != 3 {
			t.Fatalf("round %d: %d serving after the drain began, want 3", round, n)
		}
		ids = started(effs)
		d.gone(dr[0])
		if round == 2 && len(ids) != 0 {
			t.Fatalf("a fourth new instance: %v", ids)
		}
	}
	if d.m.rollout != nil || d.m.last.result != ancmv1.RolloutResult_ROLLOUT_RESULT_SUCCEEDED || len(d.m.insts) != 3 {
		t.Fatalf("rollout not done: %+v, %d instances", d.m.last, len(d.m.insts))
	}
	for _, i := range d.m.insts {
		if i.gen != 2 {
			t.Errorf("instance %d of generation %d left", i.id, i.gen)
		}
	}
	if h := d.m.history; len(h) != 2 || h[1].result != ancmv1.RolloutResult_ROLLOUT_RESULT_SUCCEEDED || h[1].change != "restart" {
		t.Errorf("history = %+v", h)
	}
}

// A new instance that crashes before it counts fails the rollout: the
// spec and generation go back, old instances never stopped serving.
func TestFailedRolloutReverts(t *testing.T) {
	spec := testSpec(2)
	d := running(t, spec)
	bad := spec
	bad.Args = []string{"crash"}
	d.must(evApply{spec: bad})
	id := started(d.effs)[0]
	d.must(evInstStarted{id: id, pid: 9, port: 9, token: "t"})
	effs := d.must(evInstExited{id: id, exit: &ancmv1.ExitStatus{Reason: "exited before it was ready: exited with code 3"}, startFailure: true, tail: []string{"boom"}})
	if emitted(effs, ancmv1.EventType_EVENT_TYPE_ROLLOUT_FAILED) != 1 {
		t.Fatalf("no rollout_failed")
	}
	if d.m.gen != 1 || len(d.m.spec.Args) != 0 || d.m.lastGen != 2 {
		t.Errorf("after the failure: gen %d, args %v, last gen %d", d.m.gen, d.m.spec.Args, d.m.lastGen)
	}
	if d.m.state != appRunning || d.serving() != 2 || len(started(effs)) != 0 || len(drained(effs)) != 0 {
		t.Errorf("old instances disturbed: %s, %d serving", stateName(d.m.state), d.serving())
	}
	if l := d.m.last; l.result != ancmv1.RolloutResult_ROLLOUT_RESULT_FAILED || !strings.Contains(l.reason, "exited with code 3") || len(l.tail) != 1 {
		t.Errorf("last rollout = %+v", l)
	}
	if len(d.m.failures) != 0 {
		t.Errorf("a failed rollout counted as rapid failures: %v", d.m.failures)
	}
	// No save of the failed spec as the app's: the store keeps the old one.
	if h := d.m.history[len(d.m.history)-1]; h.gen != 2 || h.result != ancmv1.RolloutResult_ROLLOUT_RESULT_FAILED {
		t.Errorf("history = %+v", d.m.history)
	}
	// Rollback to the failed generation is allowed (the operator asks).
	d.must(evRollback{to: 2})
	if d.m.gen != 3 || len(d.m.spec.Args) != 1 {
		t.Errorf("rollback to 2: gen %d, args %v", d.m.gen, d.m.spec.Args)
	}
}

// Recreate stops every old instance before a new one starts.
func TestRecreateRollout(t *testing.T) {
	spec := testSpec(2)
	spec.Rollout.Strategy = config.RolloutRecreate
	d := running(t, spec)
	effs := d.must(evRestart{})
	if len(drained(effs)) != 2 || len(started(effs)) != 0 {
		t.Fatalf("recreate: drained %v, started %v", drained(effs), started(effs))
	}
	if d.m.state != appStarting {
		t.Errorf("state while recreating: %s, want STARTING (requests wait)", stateName(d.m.state))
	}
	ids := append([]uint64(nil), drained(effs)...)
	d.gone(ids[0])
	if len(started(d.effs)) != 0 {
		t.Fatalf("a new instance started while an old one runs")
	}
	d.gone(ids[1])
	news := started(d.effs)
	if len(news) != 2 {
		t.Fatalf("started %v after the old ones went", news)
	}
	for _, id := range news {
		d.up(id)
	}
	d.advance(10 * time.Millisecond)
	d.must(evMinReady{id: news[0]})
	if d.m.rollout != nil || d.m.last.result != ancmv1.RolloutResult_ROLLOUT_RESULT_SUCCEEDED {
		t.Errorf("recreate not done: %+v", d.m.last)
	}
}

// A change of routing alone is made in place: no new generation.
func TestApplyInPlace(t *testing.T) {
	d := running(t, testSpec(1))
	moved := testSpec(1)
	moved.PathPrefix = "/moved"
	effs := d.must(evApply{spec: moved})
	if d.m.gen != 1 || len(started(effs)) != 0 || d.route(t).GetPathPrefix() != "/moved" {
		t.Errorf("in place: gen %d, started %v", d.m.gen, started(effs))
	}
	// Fewer processes: the extra ones drain, no rollout.
	d2 := running(t, testSpec(3))
	effs = d2.must(evApply{spec: testSpec(1)})
	if d2.m.gen != 1 || len(drained(effs)) != 2 {
		t.Errorf("scale down: gen %d, drained %v", d2.m.gen, drained(effs))
	}
}

func (d *driver) route(t *testing.T) *ancmv1.AppRoute {
	t.Helper()
	return d.m.route(d.now)
}

// Random sequences of events never wedge an app: a report that an
// instance exited, got ready or drained, in the state where it can, is
// never refused, and the model stays consistent.
func TestNextRandomSequences(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		spec := testSpec(1 + int(seed%3))
		spec.RapidFailsPerMinute = int(seed % 4)
		if seed%2 == 0 {
			spec.Rollout.Strategy = config.RolloutRecreate
		}
		d := newDriver(t, spec)
		d.m.window = 30 * time.Millisecond
		d.must(evBegin{})
		for step := 0; step < 1500; step++ {
			d.advance(time.Duration(rng.IntN(5)) * time.Millisecond)
			var ev event
			var mustAccept bool
			if len(d.m.insts) > 0 && rng.IntN(3) > 0 {
				i := d.m.insts[rng.IntN(len(d.m.insts))]
				switch {
				case i.state == instStarting && i.pid == 0:
					ev, mustAccept = evInstStarted{id: i.id, pid: int(i.id), port: int(i.id), token: "t"}, true
				case i.state == instStarting && !i.asked && rng.IntN(4) > 0:
					ev, mustAccept = evInstReady{id: i.id}, true
				case i.state == instDraining:
					ev, mustAccept = evDrained{id: i.id}, true
				case i.state == instReady && rng.IntN(5) == 0:
					ev = evInstHealth{id: i.id, ok: rng.IntN(2) == 0}
				case i.state == instReady && rng.IntN(3) == 0:
					ev = evMinReady{id: i.id}
				default:
					ev, mustAccept = evInstExited{id: i.id, exit: &ancmv1.ExitStatus{Reason: "x"}, startFailure: i.readyAt.IsZero()}, true
				}
			} else {
				changed := spec
				changed.Env = map[string]string{"N": fmt.Sprint(step)}
				scaled := spec
				scaled.Processes = 1 + rng.IntN(3)
				if rng.IntN(2) == 0 {
					scaled.Env = changed.Env // scaled and rolled out at once
				}
				pool := []event{
					evStart{}, evStop{}, evRestart{}, evApply{spec: changed}, evApply{spec: scaled}, evRollback{}, evActivate{},
					evOffline{on: true}, evOffline{on: false}, evAgedOut{},
					evBackoffDone{gen: d.m.gen, index: uint32(rng.IntN(len(d.m.slots)))},
				}
				ev = pool[rng.IntN(len(pool))]
			}
			m, effs, err := next(d.m, ev, d.now)
			if err != nil {
				if mustAccept {
					t.Fatalf("seed %d step %d: %s refused in %s: %v", seed, step, ev.name(), stateName(d.m.state), err)
				}
				continue
			}
			d.m, d.effs = m, effs
			seen := map[uint64]bool{}
			for _, i := range d.m.insts {
				if seen[i.id] {
					t.Fatalf("seed %d step %d: instance %d twice", seed, step, i.id)
				}
				seen[i.id] = true
				if i.state == instExited || i.state == ancmv1.InstanceState_INSTANCE_STATE_UNSPECIFIED {
					t.Fatalf("seed %d step %d: live instance in %s", seed, step, stateName(i.state))
				}
			}
			if len(d.m.slots) != d.m.spec.Processes {
				t.Fatalf("seed %d step %d: %d slots for %d processes", seed, step, len(d.m.slots), d.m.spec.Processes)
			}
			if r := d.m.rollout; r != nil && (d.m.stopped || d.m.offline || d.m.failed || d.m.ending || !d.m.want) {
				t.Fatalf("seed %d step %d: a rollout goes on while nothing may run: %+v", seed, step, d.m)
			}
			if (d.m.rollout != nil) != (d.m.last != nil && d.m.last.result == ancmv1.RolloutResult_ROLLOUT_RESULT_IN_PROGRESS) {
				t.Fatalf("seed %d step %d: rollout %v, last %+v", seed, step, d.m.rollout, d.m.last)
			}
			if step%300 == 299 {
				settles(t, d, seed, step)
			}
		}
	}
}

// settles checks that an app whose instances all behave (start, get ready,
// drain, stop) comes to rest: no rollout left, and exactly its processes
// of the current generation ready when it runs, none when it does not.
func settles(t *testing.T, d0 *driver, seed uint64, step int) {
	t.Helper()
	d := *d0
	for round := 0; round < 100; round++ {
		d.advance(time.Second)
		var evs []event
		for _, i := range d.m.insts {
			switch {
			case i.state == instStarting && i.pid == 0:
				evs = append(evs, evInstStarted{id: i.id, pid: 1, port: int(i.id), token: "t"})
			case i.state == instStarting:
				evs = append(evs, evInstReady{id: i.id})
			case i.state == instReady:
				evs = append(evs, evMinReady{id: i.id})
			case i.state == instDraining:
				evs = append(evs, evDrained{id: i.id})
			case i.state == instStopping:
				evs = append(evs, evInstExited{id: i.id, exit: &ancmv1.ExitStatus{Reason: "stopped", Planned: true}})
			}
		}
		for k, s := range d.m.slots {
			if s.backoff {
				evs = append(evs, evBackoffDone{gen: d.m.gen, index: uint32(k)})
			}
		}
		if d.m.failed {
			evs = append(evs, evAgedOut{})
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if m, effs, err := next(d.m, ev, d.now); err == nil {
				d.m, d.effs = m, effs
			}
		}
	}
	m := &d.m
	if m.rollout != nil {
		t.Fatalf("seed %d step %d: a rollout to %d never ends", seed, step, m.rollout.to)
	}
	runs := m.want && !m.stopped && !m.failed && !m.offline && !m.ending
	ready := 0
	for _, i := range m.insts {
		if i.gen == m.gen && i.state == instReady && int(i.index) < m.spec.Processes {
			ready++
		}
	}
	switch {
	case runs && (ready != m.spec.Processes || len(m.insts) != ready):
		t.Fatalf("seed %d step %d: at rest with %d of %d ready, %d live", seed, step, ready, m.spec.Processes, len(m.insts))
	case !runs && len(m.insts) != 0:
		t.Fatalf("seed %d step %d: at rest with %d live instances while nothing may run", seed, step, len(m.insts))
	}
}
