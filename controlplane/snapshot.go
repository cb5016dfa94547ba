package controlplane

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

func durpb(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func tspb(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// publishSnapshot publishes the app as readers see it. Only the owner
// calls it.
func (a *app) publishSnapshot() {
	m := &a.m
	a.snap.Store(&snapshot{
		app:     appProto(m, a.logs),
		spec:    m.spec,
		source:  m.source,
		logs:    a.logs,
		history: m.history, // never changed in place: next copies it first
	})
}

// appProto is the app as the API reports it: one row per index of the
// current generation, then the instances of other generations still
// draining.
func appProto(m *model, logs *appLog) *ancmv1.App {
	p := &ancmv1.App{
		Spec:        m.spec.Proto(),
		State:       m.state,
		StateReason: m.reason,
		StateSince:  tspb(m.since),
		Source:      m.source,
		LogTail:     m.lastTail,
		Generation:  m.gen,
		Rollout:     rolloutProto(m.last),
	}
	instProto := func(i *inst) *ancmv1.Instance {
		pi := &ancmv1.Instance{
			Index: i.index, State: i.state, Pid: int32(i.pid), Port: uint32(i.port), Generation: i.gen,
			StartedAt: tspb(i.started), ReadySince: tspb(i.readyAt),
		}
		if i.port != 0 {
			pi.Address = fmt.Sprintf("127.0.0.1:%d", i.port)
		}
		return pi
	}
	shown := map[uint64]bool{}
	for idx := range m.slots {
		s := &m.slots[idx]
		var pi *ancmv1.Instance
		for k := range m.insts {
			if i := &m.insts[k]; i.gen == m.gen && int(i.index) == idx {
				pi = instProto(i)
				shown[i.id] = true
			}
		}
		if pi == nil {
			pi = &ancmv1.Instance{Index: uint32(idx), State: instExited, Generation: m.gen}
			if s.backoff {
				pi.State = instBackoff
			}
		}
		pi.Restarts, pi.LastExit = s.restarts, s.lastExit
		if m.spec.StdoutLog.Enabled {
			pi.LogPath = logs.path(uint32(idx))
		}
		p.Restarts += s.restarts
		p.Instances = append(p.Instances, pi)
	}
	for k := range m.insts {
		if i := &m.insts[k]; !shown[i.id] {
			p.Instances = append(p.Instances, instProto(i))
		}
	}
	return p
}

func rolloutProto(r *rolloutRecord) *ancmv1.RolloutStatus {
	if r == nil {
		return nil
	}
	return &ancmv1.RolloutStatus{
		FromGeneration: r.from, ToGeneration: r.to, Result: r.result, Reason: r.reason, LogTail: r.tail,
		StartedAt: tspb(r.started), FinishedAt: tspb(r.finished),
	}
}

func historyProto(h []genRecord) []*ancmv1.Generation {
	out := make([]*ancmv1.Generation, 0, len(h))
	for _, g := range h {
		out = append(out, &ancmv1.Generation{
			Generation: g.gen, Time: tspb(g.at), Change: g.change, Result: g.result, Reason: g.reason, Spec: g.spec.Proto(),
		})
	}
	return out
}

// historyFromProto reads a stored history; entries whose spec no longer
// decodes are left out.
func historyFromProto(gens []*ancmv1.Generation) []genRecord {
	var out []genRecord
	for _, g := range gens {
		spec, err := config.AppFromProto(g.GetSpec())
		if err != nil {
			continue
		}
		r := genRecord{gen: g.GetGeneration(), change: g.GetChange(), result: g.GetResult(), reason: g.GetReason(), spec: spec}
		if g.GetTime() != nil {
			r.at = g.GetTime().AsTime()
		}
		if r.result == ancmv1.RolloutResult_ROLLOUT_RESULT_IN_PROGRESS {
			// The daemon stopped during the rollout; the stored spec is
			// the previous one's again (see Supervisor.Load).
			r.result, r.reason = ancmv1.RolloutResult_ROLLOUT_RESULT_FAILED, "the daemon stopped during the rollout"
		}
		out = append(out, r)
	}
	return out
}
