package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

// History returns an app's generations, oldest first.
func (s *Supervisor) History(name string) ([]*ancmv1.Generation, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, err
	}
	return historyProto(a.snap.Load().history), nil
}

// Apply adds or changes an app applied through the API and keeps it in the
// store. An app from the config file cannot be changed this way. A change
// that needs new processes is rolled out, and Apply returns when the
// rollout has ended (or ctx, while it goes on); a failed one is an error
// that wraps ErrRolloutFailed.
func (s *Supervisor) Apply(ctx context.Context, c config.App, dryRun bool) (ancmv1.ApplyChange, *ancmv1.App, *ancmv1.RolloutStatus, error) {
	return s.apply(ctx, c, sourceAPI, dryRun)
}

func (s *Supervisor) apply(ctx context.Context, c config.App, source string, dryRun bool) (ancmv1.ApplyChange, *ancmv1.App, *ancmv1.RolloutStatus, error) {
	change, a, wait, err := s.change(ctx, c, source, dryRun)
	if err != nil || wait == nil {
		return change, a, nil, err
	}
	ro, err := wait(ctx)
	if err != nil && !errors.Is(err, ErrRolloutFailed) {
		return 0, nil, nil, err
	}
	return change, s.snapshotOf(c.Name, a), ro, err
}

// pending waits for the rollout a change started, if any, and returns its
// status (nil when it started none).
type pending func(context.Context) (*ancmv1.RolloutStatus, error)

// change checks c and hands it to its app; the rollout it may start goes
// on, and wait waits for it (nil when there is nothing to wait for).
func (s *Supervisor) change(ctx context.Context, c config.App, source string, dryRun bool) (ancmv1.ApplyChange, *ancmv1.App, pending, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, nil, nil, ErrClosed
	}
	existing := s.apps[c.Name]
	if existing != nil && existing.snap.Load().source != source {
		s.mu.Unlock()
		return 0, nil, nil, fmt.Errorf("app %q is defined in the config file; change it there and send SIGHUP: %w", c.Name, ErrPrecondition)
	}
	if err := s.checkRoutesLocked(c); err != nil {
		s.mu.Unlock()
		return 0, nil, nil, err
	}
	if existing == nil {
		if dryRun {
			s.mu.Unlock()
			m := newModel(c, source, 1, nil, s.now())
			return ancmv1.ApplyChange_APPLY_CHANGE_ADDED, appProto(&m, newAppLog(s.stateDir, c.Name, false, 0, 0)), nil, nil
		}
		// Checked and inserted under one lock: two applies of the same
		// route cannot both pass.
		a := newApp(s, c, source, 1, nil)
		s.apps[c.Name], s.specs[c.Name] = a, c
		s.mu.Unlock()
		if source == sourceAPI {
			if err := s.store.save(c.Name, c.Proto(), historyProto(a.snap.Load().history)); err != nil {
				s.mu.Lock()
				delete(s.apps, c.Name)
				delete(s.specs, c.Name)
				s.mu.Unlock()
				return 0, nil, nil, fmt.Errorf("store app %q: %w", c.Name, err)
			}
		}
		a.begin()
		a.log.Info("app added", "source", source)
		s.events.publish(&ancmv1.Event{Type: ancmv1.EventType_EVENT_TYPE_APPLIED, App: c.Name, Message: "added", Generation: 1})
		return ancmv1.ApplyChange_APPLY_CHANGE_ADDED, a.snap.Load().app, nil, nil
	}
	a := existing
	prev := a.snap.Load().spec
	if prev.Equal(c) {
		s.mu.Unlock()
		return ancmv1.ApplyChange_APPLY_CHANGE_UNCHANGED, a.snap.Load().app, nil, nil
	}
	if dryRun {
		s.mu.Unlock()
		m := newModel(c, source, 1, nil, s.now())
		return applyChange(prev, c), appProto(&m, a.snap.Load().logs), nil, nil
	}
	s.specs[c.Name] = c // reserved for the change; the owner notes what it runs
	s.mu.Unlock()
	wait, err := s.startRollout(ctx, a, evApply{spec: c})
	if err != nil {
		s.noteSpec(c.Name, a.snap.Load().spec)
		return 0, nil, nil, err
	}
	return applyChange(prev, c), a.snap.Load().app, wait, nil
}

// snapshotOf is the app as it is now, or app when it is gone.
func (s *Supervisor) snapshotOf(name string, app *ancmv1.App) *ancmv1.App {
	if a, err := s.get(name); err == nil {
		return a.snap.Load().app
	}
	return app
}

func applyChange(prev, c config.App) ancmv1.ApplyChange {
	if len(prev.RunChanges(c)) == 0 {
		return ancmv1.ApplyChange_APPLY_CHANGE_CHANGED
	}
	return ancmv1.ApplyChange_APPLY_CHANGE_RESTARTED
}

// checkRoutesLocked checks c's route against every other app's.
func (s *Supervisor) checkRoutesLocked(c config.App) error {
	others := make([]config.App, 0, len(s.specs))
	for name, o := range s.specs {
		if name != c.Name {
			others = append(others, o)
		}
	}
	if err := config.CheckRoutes(append(others, c)); err != nil {
		return &FieldError{Field: "app.path_prefix", Message: err.Error()}
	}
	return nil
}

// startRollout sends ev, which may start a rollout, and returns once the
// owner has taken it; wait waits until the rollout it started has ended.
func (s *Supervisor) startRollout(ctx context.Context, a *app, ev event) (pending, error) {
	accepted := make(chan struct{})
	var once sync.Once
	var ro atomic.Pointer[rolloutRecord] // written by the owner, read by wait however it ends
	reply, err := a.send(ctx, ev, func(before, now *model) (bool, error) {
		once.Do(func() { close(accepted) })
		if now.lastGen == before.lastGen || now.last == nil || now.last.to <= before.lastGen {
			return true, nil // no rollout
		}
		if now.last.result == ancmv1.RolloutResult_ROLLOUT_RESULT_IN_PROGRESS {
			return false, nil
		}
		r := *now.last
		ro.Store(&r)
		if r.result == ancmv1.RolloutResult_ROLLOUT_RESULT_FAILED {
			return true, rolloutError(a.name, &r)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	// A refused event is answered without a wait: then the reply comes
	// first.
	select {
	case <-accepted:
	case err := <-reply:
		if err != nil {
			return nil, err
		}
		return func(context.Context) (*ancmv1.RolloutStatus, error) { return nil, nil }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-a.done:
		return nil, a.gone()
	}
	return func(ctx context.Context) (*ancmv1.RolloutStatus, error) {
		err := a.await(ctx, reply)
		return rolloutProto(ro.Load()), err
	}, nil
}

func rolloutError(name string, r *rolloutRecord) error {
	msg := fmt.Sprintf("app %q: rollout to generation %d failed: %s; generation %d keeps running", name, r.to, r.reason, r.from)
	if n := len(r.tail); n > 0 {
		msg += "; last output: " + strings.Join(r.tail[max(0, n-3):], " | ")
	}
	return fmt.Errorf("%s: %w", msg, ErrRolloutFailed)
}

// Rollback rolls out an earlier generation's spec (to = 0: the last
// successful one before the current) as a new generation.
func (s *Supervisor) Rollback(ctx context.Context, name string, to uint64) (*ancmv1.App, *ancmv1.RolloutStatus, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, nil, err
	}
	sn := a.snap.Load()
	if sn.source != sourceAPI {
		return nil, nil, fmt.Errorf("app %q is defined in the config file; change it there and send SIGHUP: %w", name, ErrPrecondition)
	}
	for k := len(sn.history) - 1; k >= 0; k-- {
		g := sn.history[k]
		if to == 0 && g.gen < sn.app.GetGeneration() && g.result == ancmv1.RolloutResult_ROLLOUT_RESULT_SUCCEEDED {
			to = g.gen // what the owner picks too
		}
		if g.gen != to {
			continue
		}
		c := g.spec
		s.mu.Lock()
		err = s.checkRoutesLocked(c)
		if err == nil {
			s.specs[name] = c
		}
		s.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
		break
	}
	wait, err := s.startRollout(ctx, a, evRollback{to: to})
	if err != nil {
		s.noteSpec(name, a.snap.Load().spec)
		return nil, nil, err
	}
	ro, err := wait(ctx)
	if err != nil && !errors.Is(err, ErrRolloutFailed) {
		return nil, nil, err
	}
	return a.snap.Load().app, ro, err
}
