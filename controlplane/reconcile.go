package controlplane

import (
	"fmt"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

// reconcile moves the instances toward what the model wants: processes
// instances of the current generation, none of any other, and during a
// rollout no fewer instances taking traffic than before. Old instances
// drain as new ones count; with the recreate strategy all old ones go
// first.
func (d *decision) reconcile() {
	m := d.m
	if !d.runs() {
		for k := range m.insts {
			d.retire(&m.insts[k])
		}
		d.finishEnd()
		return
	}
	procs := m.spec.Processes
	stale := func(i *inst) bool { return i.gen != m.gen || int(i.index) >= procs }
	active := func(i *inst) bool { return !i.asked && (i.state == instStarting || i.state == instReady) }

	// Old instances that take no traffic go at once.
	for k := range m.insts {
		if i := &m.insts[k]; stale(i) && active(i) && i.state != instReady {
			d.retire(i)
		}
	}
	recreate := m.rollout != nil && m.rollout.strategy == config.RolloutRecreate
	if recreate {
		left := false
		for k := range m.insts {
			i := &m.insts[k]
			if stale(i) {
				d.retire(i)
				left = true
			}
		}
		if left {
			return
		}
	}

	have := make(map[uint32]bool, procs)
	cur, staleReady, counted := 0, 0, 0
	for k := range m.insts {
		i := &m.insts[k]
		if !active(i) {
			continue
		}
		if stale(i) {
			staleReady++
			continue
		}
		have[i.index] = true
		cur++
		if m.counts(i, d.now) {
			counted++
		}
	}
	// Old instances drain as new ones count.
	keep := max(0, procs-counted)
	for k := len(m.insts) - 1; k >= 0 && staleReady > keep; k-- {
		if i := &m.insts[k]; stale(i) && active(i) {
			d.retire(i)
			staleReady--
		}
	}
	surge := procs
	if m.rollout != nil {
		surge = m.rollout.surge
	}
	for idx := range procs {
		if have[uint32(idx)] || m.slots[idx].backoff {
			continue
		}
		if cur+staleReady >= procs+surge {
			break
		}
		d.startInst(uint32(idx))
		cur++
	}
	if r := m.rollout; r != nil && counted >= procs {
		for k := range m.insts {
			if m.insts[k].gen != m.gen {
				return // old ones still draining
			}
		}
		d.endRollout(ancmv1.RolloutResult_ROLLOUT_RESULT_SUCCEEDED, "", nil)
		d.emit(ancmv1.EventType_EVENT_TYPE_ROLLOUT_SUCCEEDED, nil, hclog.Info,
			fmt.Sprintf("generation %d runs on %d instances; generation %d is gone", r.to, procs, r.from))
	}
}

func (d *decision) startInst(index uint32) {
	m := d.m
	m.nextID++
	i := inst{id: m.nextID, index: index, gen: m.gen}
	_ = moveInst(&i, instStarting) // from UNSPECIFIED: always legal
	m.insts = append(m.insts, i)
	d.do(effStart{id: i.id, gen: i.gen, index: index, spec: m.spec})
}

// retire takes an instance out: a ready one drains first, one that takes
// no traffic is stopped at once. Retiring one that is going is a no-op.
func (d *decision) retire(i *inst) {
	if i.asked {
		return
	}
	i.asked = true
	if i.state == instReady {
		_ = moveInst(i, instDraining)
		timeout := d.m.spec.Rollout.DrainTimeout
		if d.m.ending && !d.m.removed {
			// Shutdown: the table stays as it is (see app.step), so there
			// is nothing for data planes to confirm.
			timeout = 0
		}
		d.do(effDrain{id: i.id, addr: fmt.Sprintf("127.0.0.1:%d", i.port), timeout: timeout})
		return
	}
	_ = moveInst(i, instStopping)
	d.do(effStop{id: i.id})
}

// finishEnd ends the owner once an ending app has no instance left.
func (d *decision) finishEnd() {
	m := d.m
	if m.ending && len(m.insts) == 0 {
		d.do(effExit{})
	}
}

// derive computes the app's state from the model and checks the move
// against the app state machine.
func (d *decision) derive() error {
	m := d.m
	live := len(m.insts) > 0
	serving := false
	for k := range m.insts {
		if m.counts(&m.insts[k], d.now) {
			serving = true
		}
	}
	var to appState
	reason := ""
	switch {
	case m.offline:
		to, reason = appOffline, fmt.Sprintf("offline file %s exists", offlinePath(&m.spec))
	case m.stopped && live:
		to, reason = appStopping, "stopping by operator request"
	case m.stopped:
		to, reason = appStopped, "stopped by operator"
	case m.failed:
		to, reason = appFailed, d.failedReason()
	case m.ending && live:
		to = appStopping
	case m.ending:
		to = m.state
	case !m.want && live:
		to = appStopping
	case !m.want:
		to = appIdle
	case serving:
		to = appRunning
	default:
		to = appStarting
	}
	if to != m.state {
		if err := checkAppMove(m.state, to); err != nil {
			return err
		}
		from := m.state
		m.state, m.since = to, d.now
		if from != ancmv1.AppState_APP_STATE_UNSPECIFIED {
			d.emit(ancmv1.EventType_EVENT_TYPE_STATE_CHANGED, nil, hclog.Debug, stateName(from)+" -> "+stateName(to))
		}
		if to == appStopped {
			d.emit(ancmv1.EventType_EVENT_TYPE_STOPPED, nil, hclog.Info, "stopped by operator")
		}
	}
	m.reason = reason
	return nil
}

func offlinePath(c *config.App) string {
	return filepath.Join(c.Dir, c.OfflineFile)
}
