package controlplane

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

// Events are what an app's owner receives: API calls, what its instances
// report, offline-file changes and timers.
type event interface{ name() string }

type (
	evBegin struct { // the app was added
		offline bool
		body    []byte
	}
	evStart    struct{}                  // operator start
	evStop     struct{}                  // operator stop
	evRestart  struct{}                  // operator restart: a rollout of the same spec
	evApply    struct{ spec config.App } // a changed spec
	evRollback struct{ to uint64 }       // roll out an earlier generation's spec
	evActivate struct{}                  // a request needs an instance
	evOffline  struct {
		on   bool
		body []byte
	}
	evEnd struct{ remove bool } // delete (remove) or shutdown

	evInstStarted struct {
		id        uint64
		pid, port int
		token     string
	}
	evInstReady  struct{ id uint64 }
	evInstHealth struct {
		id uint64
		ok bool
	}
	evInstExited struct {
		id           uint64
		exit         *ancmv1.ExitStatus
		startFailure bool
		tail         []string
	}
	evBackoffDone struct {
		gen   uint64
		index uint32
	}
	evMinReady struct{ id uint64 } // an instance of a rollout may count now
	evDrained  struct {
		id     uint64
		reason string
	}
	evAgedOut struct{} // the oldest failure may have left the window
)

func (evBegin) name() string       { return "begin" }
func (evStart) name() string       { return "start" }
func (evStop) name() string        { return "stop" }
func (evRestart) name() string     { return "restart" }
func (evApply) name() string       { return "apply" }
func (evRollback) name() string    { return "rollback" }
func (evActivate) name() string    { return "activate" }
func (evOffline) name() string     { return "offline" }
func (evEnd) name() string         { return "end" }
func (evInstStarted) name() string { return "instance started" }
func (evInstReady) name() string   { return "instance ready" }
func (evInstHealth) name() string  { return "instance health" }
func (evInstExited) name() string  { return "instance exited" }
func (evBackoffDone) name() string { return "backoff done" }
func (evMinReady) name() string    { return "min_ready passed" }
func (evDrained) name() string     { return "drained" }
func (evAgedOut) name() string     { return "failures aged out" }

// Effects are what the owner carries out after a decision.
type effect interface{ effect() }

type (
	// effStart starts a process for an instance with the spec.
	effStart struct {
		id, gen uint64
		index   uint32
		spec    config.App
	}
	// effStop stops an instance's process: stop_signal, then SIGKILL.
	effStop struct{ id uint64 }
	// effDrain waits until every data plane has confirmed a table in which
	// the instance gets no new requests and has finished its requests, up
	// to timeout, and then reports evDrained.
	effDrain struct {
		id      uint64
		addr    string
		timeout time.Duration
	}
	// effTimer delivers ev after d.
	effTimer struct {
		d  time.Duration
		ev event
	}
	// effEmit publishes an event and logs it.
	effEmit struct {
		typ   ancmv1.EventType
		inst  *inst // nil for app events
		gen   uint64
		msg   string
		exit  *ancmv1.ExitStatus
		tail  []string
		level hclog.Level
	}
	// effSave stores the spec (applied apps only) and the history, and
	// tells the supervisor the spec its routes are checked against.
	effSave struct{}
	// effExit ends the owner: nothing runs any more.
	effExit struct{}
)

func (effStart) effect() {}
func (effStop) effect()  {}
func (effDrain) effect() {}
func (effTimer) effect() {}
func (effEmit) effect()  {}
func (effSave) effect()  {}
func (effExit) effect()  {}

// decision collects the effects of one step.
type decision struct {
	m    *model
	now  time.Time
	effs []effect
}

func (d *decision) do(e effect) { d.effs = append(d.effs, e) }

func (d *decision) emit(t ancmv1.EventType, i *inst, level hclog.Level, msg string) {
	e := effEmit{typ: t, gen: d.m.gen, msg: msg, level: level}
	if i != nil {
		c := *i
		e.inst, e.gen = &c, i.gen
	}
	d.do(e)
}

// next is the app's decision function: the state that follows m when ev
// happens at now, and what to do about it. It refuses an event that is not
// possible in m's state with an error and leaves m as it was. It does no
// I/O and reads no clock.
func next(m model, ev event, now time.Time) (model, []effect, error) {
	n := m.clone()
	d := &decision{m: &n, now: now}
	if err := d.apply(ev); err != nil {
		return m, nil, fmt.Errorf("%s: %w", ev.name(), err)
	}
	d.reconcile()
	if err := d.derive(); err != nil {
		return m, nil, fmt.Errorf("%s: %w", ev.name(), err)
	}
	return n, d.effs, nil
}

func refused(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrPrecondition)...)
}

func (d *decision) apply(ev event) error {
	m := d.m
	if m.ending {
		switch ev.(type) {
		case evInstStarted, evInstReady, evInstHealth, evInstExited, evDrained, evEnd:
		default:
			return fmt.Errorf("app %q is being removed: %w", m.name, ErrClosed)
		}
	}
	switch e := ev.(type) {
	case evBegin:
		if m.state != ancmv1.AppState_APP_STATE_UNSPECIFIED {
			return refused("app %q has begun already", m.name)
		}
		m.want = m.spec.Start == config.StartEager
		m.offline, m.body = e.offline, e.body
	case evStart:
		if m.offline {
			return refused("app %q is offline: remove %s first", m.name, offlinePath(&m.spec))
		}
		m.stopped, m.want = false, true
		d.clearFailures()
		for i := range m.slots {
			m.slots[i].backoff, m.slots[i].inRow = false, 0 // at once, not after a backoff
		}
		d.emit(ancmv1.EventType_EVENT_TYPE_STARTED, nil, hclog.Info, "started by operator")
	case evStop:
		if m.stopped {
			return nil // stopped already: nothing to do, and no second event
		}
		m.stopped, m.want = true, false
		if m.rollout != nil {
			d.failRollout("stopped by operator", nil)
		}
	case evRestart:
		if err := d.canRoll(); err != nil {
			return err
		}
		if !d.running() {
			m.stopped, m.want = false, true
			d.clearFailures()
			for i := range m.slots {
				m.slots[i].restarts = 0
			}
			d.emit(ancmv1.EventType_EVENT_TYPE_RESTARTED, nil, hclog.Info, "restarted by operator")
			return nil
		}
		d.beginRollout(m.spec, "restart")
	case evApply:
		if m.rollout != nil {
			return refused("app %q: a rollout to generation %d is in progress", m.name, m.rollout.to)
		}
		d.change(e.spec, strings.Join(m.spec.RunChanges(e.spec), ", "), false)
	case evRollback:
		if err := d.canRoll(); err != nil {
			return err
		}
		h := d.rollbackTarget(e.to)
		if h == nil {
			if e.to == 0 {
				return refused("app %q has no earlier successful generation to roll back to", m.name)
			}
			return fmt.Errorf("app %q has no generation %d: %w", m.name, e.to, ErrNotFound)
		}
		spec := h.spec
		spec.DeclRange = m.spec.DeclRange
		d.change(spec, fmt.Sprintf("rollback to %d", h.gen), true)
	case evActivate:
		if !m.stopped && !m.failed && !m.offline {
			m.want = true
		}
	case evOffline:
		if !e.on && !m.offline {
			return refused("app %q is not offline", m.name)
		}
		was := m.offline
		m.offline, m.body = e.on, e.body
		switch {
		case e.on && !was:
			if m.rollout != nil {
				d.failRollout("the offline file appeared", nil)
			}
			d.emit(ancmv1.EventType_EVENT_TYPE_OFFLINE, nil, hclog.Info, "offline file "+offlinePath(&m.spec)+" exists")
		case !e.on:
			d.clearFailures()
			m.want = m.spec.Start == config.StartEager
			d.emit(ancmv1.EventType_EVENT_TYPE_ONLINE, nil, hclog.Info, "offline file removed")
		}
	case evEnd:
		m.ending, m.want = true, false
		m.removed = m.removed || e.remove
		if m.rollout != nil {
			why := "the daemon is shutting down"
			if e.remove {
				why = "the app is being deleted"
			}
			d.failRollout(why, nil)
		}
	case evInstStarted:
		i := m.find(e.id)
		if i == nil || i.state != instStarting || i.pid != 0 {
			return d.stale(e.id, "a process start")
		}
		i.pid, i.port, i.token, i.started = e.pid, e.port, e.token, d.now
		d.emit(ancmv1.EventType_EVENT_TYPE_STARTED, i, hclog.Info, fmt.Sprintf("pid %d on port %d", e.pid, e.port))
	case evInstReady:
		i := m.find(e.id)
		if i == nil || i.asked || i.state != instStarting {
			return d.stale(e.id, "readiness")
		}
		if err := moveInst(i, instReady); err != nil {
			return err
		}
		i.readyAt, i.healthy = d.now, true
		d.emit(ancmv1.EventType_EVENT_TYPE_READY, i, hclog.Info, fmt.Sprintf("ready on port %d", i.port))
		if r := m.rollout; r != nil && i.gen == r.to && r.minReady > 0 {
			d.do(effTimer{d: r.minReady, ev: evMinReady{id: i.id}})
		}
	case evInstHealth:
		i := m.find(e.id)
		if i == nil || (i.state != instReady && i.state != instDraining) {
			return d.stale(e.id, "a health check")
		}
		if r := m.rollout; r != nil && !e.ok && i.gen == r.to && !m.counts(i, d.now) {
			i.healthy = false
			d.failRollout(fmt.Sprintf("instance %d failed its health check before it counted", i.index), nil)
			return nil
		}
		i.healthy = e.ok
	case evInstExited:
		return d.exited(e)
	case evBackoffDone:
		if e.gen != m.gen || int(e.index) >= len(m.slots) || !m.slots[e.index].backoff {
			return refused("no backoff of instance %d of generation %d", e.index, e.gen)
		}
		m.slots[e.index].backoff = false
		if d.runs() {
			m.slots[e.index].restarts++
		}
	case evMinReady:
		i := m.find(e.id)
		if i == nil || i.state != instReady || m.rollout == nil {
			return d.stale(e.id, "min_ready")
		}
	case evDrained:
		i := m.find(e.id)
		if i == nil || i.state != instDraining {
			return d.stale(e.id, "a drain")
		}
		if err := moveInst(i, instStopping); err != nil {
			return err
		}
		d.do(effStop{id: i.id})
	case evAgedOut:
		if !m.failed {
			return refused("app %q is not failed", m.name)
		}
		d.prune()
		if len(m.failures) > m.spec.RapidFailsPerMinute {
			d.do(effTimer{d: m.failures[0].Add(m.window).Sub(d.now), ev: evAgedOut{}})
			return nil
		}
		m.failed = false
		m.want = m.spec.Start == config.StartEager
		d.emit(ancmv1.EventType_EVENT_TYPE_STATE_CHANGED, nil, hclog.Info, "failures aged out; app may start again")
	default:
		return fmt.Errorf("unknown event %T: %w", ev, ErrInvalid)
	}
	return nil
}

func (d *decision) stale(id uint64, what string) error {
	return fmt.Errorf("%s of instance %d, which is not in a state for it: %w", what, id, ErrIllegalTransition)
}

// runs reports whether the app should have instances.
func (d *decision) runs() bool {
	m := d.m
	return m.want && !m.stopped && !m.failed && !m.offline && !m.ending
}

// running reports whether an instance of the current generation is up.
func (d *decision) running() bool {
	for _, i := range d.m.insts {
		if i.gen == d.m.gen && !i.asked && (i.state == instReady || i.state == instStarting) {
			return true
		}
	}
	return false
}

func (d *decision) canRoll() error {
	m := d.m
	switch {
	case m.offline:
		return refused("app %q is offline: remove %s first", m.name, offlinePath(&m.spec))
	case m.rollout != nil:
		return refused("app %q: a rollout to generation %d is in progress", m.name, m.rollout.to)
	}
	return nil
}

func (d *decision) rollbackTarget(to uint64) *genRecord {
	m := d.m
	for k := len(m.history) - 1; k >= 0; k-- {
		h := &m.history[k]
		if to != 0 && h.gen == to {
			return h
		}
		if to == 0 && h.gen < m.gen && h.result == ancmv1.RolloutResult_ROLLOUT_RESULT_SUCCEEDED {
			return h
		}
	}
	return nil
}

// change takes a new spec: in place when it changes nothing about how the
// app runs, otherwise as a new generation, rolled out when instances run.
func (d *decision) change(spec config.App, what string, force bool) {
	m := d.m
	if m.failed {
		m.want = spec.Start == config.StartEager // on demand: the next request starts it
	}
	d.clearFailures()
	if what == "" && !force {
		m.spec = spec
		d.resize()
		d.do(effSave{})
		d.emit(ancmv1.EventType_EVENT_TYPE_APPLIED, nil, hclog.Info, "changed in place")
		return
	}
	if d.running() {
		d.beginRollout(spec, what)
		d.emit(ancmv1.EventType_EVENT_TYPE_APPLIED, nil, hclog.Info, "changed: "+what+"; rolling out generation "+fmt.Sprint(m.gen))
		return
	}
	m.lastGen++
	m.gen = m.lastGen
	m.spec = spec
	m.slots = make([]slot, spec.Processes)
	m.addHistory(genRecord{gen: m.gen, at: d.now, change: what, result: ancmv1.RolloutResult_ROLLOUT_RESULT_SUCCEEDED, reason: "nothing ran: no rollout", spec: spec})
	d.do(effSave{})
	d.emit(ancmv1.EventType_EVENT_TYPE_APPLIED, nil, hclog.Info, "changed: "+what+"; generation "+fmt.Sprint(m.gen))
}

// resize fits the slots to the spec's processes.
func (d *decision) resize() {
	m := d.m
	for len(m.slots) < m.spec.Processes {
		m.slots = append(m.slots, slot{})
	}
	m.slots = m.slots[:m.spec.Processes]
}

func (d *decision) clearFailures() {
	m := d.m
	m.failed, m.failures, m.lastTail = false, nil, nil
}

func (d *decision) prune() {
	m := d.m
	k := 0
	for k < len(m.failures) && d.now.Sub(m.failures[k]) >= m.window {
		k++
	}
	m.failures = m.failures[k:]
}

func (d *decision) beginRollout(spec config.App, what string) {
	m := d.m
	m.lastGen++
	r := &rollout{
		from: m.gen, to: m.lastGen, prevSpec: m.spec, prevSlots: m.slots,
		strategy: spec.Rollout.Strategy, surge: max(spec.Rollout.MaxSurge, 1), minReady: spec.Rollout.MinReady,
		started: d.now,
	}
	m.rollout = r
	m.spec, m.gen = spec, r.to
	m.slots = make([]slot, spec.Processes)
	m.last = &rolloutRecord{from: r.from, to: r.to, result: ancmv1.RolloutResult_ROLLOUT_RESULT_IN_PROGRESS, started: d.now}
	m.addHistory(genRecord{gen: r.to, at: d.now, change: what, result: ancmv1.RolloutResult_ROLLOUT_RESULT_IN_PROGRESS, spec: spec})
	d.do(effSave{})
	d.emit(ancmv1.EventType_EVENT_TYPE_ROLLOUT_STARTED, nil, hclog.Info,
		fmt.Sprintf("rolling out generation %d (%s) from %d, strategy %s", r.to, what, r.from, r.strategy))
}

func (d *decision) endRollout(result ancmv1.RolloutResult, reason string, tail []string) {
	m := d.m
	r := m.rollout
	m.rollout = nil
	m.rollouts++
	m.last = &rolloutRecord{from: r.from, to: r.to, result: result, reason: reason, tail: tail, started: r.started, finished: d.now}
	for k := range m.history {
		if m.history[k].gen == r.to {
			m.history[k].result, m.history[k].reason = result, reason
		}
	}
	d.do(effSave{})
}

// failRollout goes back to the previous generation's spec; the instances
// of the failed one are replaced by old ones as reconcile sees fit.
func (d *decision) failRollout(reason string, tail []string) {
	m := d.m
	r := m.rollout
	d.endRollout(ancmv1.RolloutResult_ROLLOUT_RESULT_FAILED, reason, tail)
	m.spec, m.gen, m.slots = r.prevSpec, r.from, r.prevSlots
	d.resize()
	d.emit(ancmv1.EventType_EVENT_TYPE_ROLLOUT_FAILED, nil, hclog.Error,
		fmt.Sprintf("rollout to generation %d failed: %s; back to generation %d", r.to, reason, r.from))
}

// exited handles the end of an instance's process.
func (d *decision) exited(e evInstExited) error {
	m := d.m
	i := m.find(e.id)
	if i == nil {
		return d.stale(e.id, "an exit")
	}
	if err := moveInst(i, instExited); err != nil {
		return err
	}
	c := *i
	m.drop(e.id)
	planned := c.asked
	typ, level := ancmv1.EventType_EVENT_TYPE_EXITED, hclog.Warn
	switch {
	case planned:
		level = hclog.Info
	case e.startFailure:
		typ = ancmv1.EventType_EVENT_TYPE_START_FAILED
	}
	d.do(effEmit{typ: typ, inst: &c, gen: c.gen, msg: e.exit.GetReason(), exit: e.exit, tail: e.tail, level: level})
	if e.exit.GetOomKilled() {
		// From the cgroup's OOM events (sandbox), not guessed from SIGKILL.
		d.emit(ancmv1.EventType_EVENT_TYPE_OOM_KILLED, &c, hclog.Warn, e.exit.GetReason())
	}
	if c.gen == m.gen && int(c.index) < len(m.slots) {
		m.slots[c.index].lastExit = e.exit
	}
	if planned {
		return nil
	}
	m.lastFail, m.lastTail = e.exit.GetReason(), e.tail
	if e.startFailure {
		m.startFails++
	}
	if r := m.rollout; r != nil && c.gen == r.to && !m.counts(&c, d.now) {
		why := fmt.Sprintf("instance %d of generation %d: %s", c.index, c.gen, e.exit.GetReason())
		d.failRollout(why, e.tail)
		return nil
	}
	if m.ending || m.stopped {
		return nil
	}
	d.prune()
	m.failures = append(m.failures, d.now)
	if len(m.failures) > m.spec.RapidFailsPerMinute && !m.failed {
		m.failed = true
		if m.rollout != nil {
			d.failRollout("the app failed", e.tail)
		}
		d.emit(ancmv1.EventType_EVENT_TYPE_FAILED, nil, hclog.Error, d.failedReason())
		d.do(effTimer{d: m.failures[0].Add(m.window).Sub(d.now), ev: evAgedOut{}})
		return nil
	}
	if c.gen != m.gen || int(c.index) >= len(m.slots) {
		return nil
	}
	s := &m.slots[c.index]
	if !c.readyAt.IsZero() && d.now.Sub(c.readyAt) >= stableRun {
		s.inRow = 0
	}
	s.inRow++
	if delay := backoffDelay(s.inRow); delay > 0 {
		s.backoff = true
		d.do(effTimer{d: delay, ev: evBackoffDone{gen: c.gen, index: c.index}})
		d.emit(ancmv1.EventType_EVENT_TYPE_RESTARTED, &c, hclog.Warn, fmt.Sprintf("restarting after backoff %s: %s", delay, restartReason(e.exit)))
		return nil
	}
	s.restarts++
	d.emit(ancmv1.EventType_EVENT_TYPE_RESTARTED, &c, hclog.Info, restartReason(e.exit))
	return nil
}

func (d *decision) failedReason() string {
	m := d.m
	return fmt.Sprintf("%d failures within a minute (rapid_fails_per_minute = %d); last: %s", len(m.failures), m.spec.RapidFailsPerMinute, m.lastFail)
}

// restartReason is the reason a restart gives: oom_killed for an instance
// the kernel killed for its memory limit, else why the last run ended.
func restartReason(exit *ancmv1.ExitStatus) string {
	if exit.GetOomKilled() {
		return "oom_killed: " + exit.GetReason()
	}
	return exit.GetReason()
}
