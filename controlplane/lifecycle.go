package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// Delete stops an app applied through the API and forgets it.
func (s *Supervisor) Delete(ctx context.Context, name string, dryRun bool) (*ancmv1.App, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, err
	}
	if a.snap.Load().source != sourceAPI {
		return nil, fmt.Errorf("app %q is defined in the config file; remove it there and send SIGHUP: %w", name, ErrPrecondition)
	}
	if dryRun {
		return a.snap.Load().app, nil
	}
	return s.remove(ctx, name, sourceAPI)
}

func (s *Supervisor) remove(ctx context.Context, name, source string) (*ancmv1.App, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, err
	}
	if source == sourceAPI {
		if err := s.store.delete(name); err != nil {
			return nil, fmt.Errorf("delete app %q from the store: %w", name, err)
		}
	}
	// Gone from routing at once (new requests get 404); in-flight ones
	// finish while the instances stop.
	s.mu.Lock()
	delete(s.apps, name)
	delete(s.specs, name)
	s.mu.Unlock()
	s.table.remove(name)
	a.log.Info("app deleted; stopping its instances")
	if err := a.call(ctx, evEnd{remove: true}, nil); err != nil {
		return nil, err
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("the app's instances go on stopping in the background: %w", ctx.Err())
	}
	s.events.publish(&ancmv1.Event{Type: ancmv1.EventType_EVENT_TYPE_DELETED, App: name, Message: "deleted", Generation: a.snap.Load().app.GetGeneration()})
	return a.snap.Load().app, nil
}

// Start starts an app's instances, clearing an operator stop and past
// failures. With wait it returns once an instance is ready; a start that
// failed is an error that wraps ErrStartFailed.
func (s *Supervisor) Start(ctx context.Context, name string, wait bool) (*ancmv1.App, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, err
	}
	var w waitFunc
	if wait {
		w = waitStarted
	}
	if err := a.call(ctx, evStart{}, w); err != nil {
		return nil, err
	}
	return a.snap.Load().app, nil
}

// waitStarted answers a waited start: once an instance is ready, or when a
// start failed or the app cannot start.
func waitStarted(before, now *model) (bool, error) {
	switch {
	case now.state == appRunning:
		return true, nil
	case now.startFails > before.startFails:
		return true, fmt.Errorf("app %q failed to start: %s: %w", now.name, now.lastFail, ErrStartFailed)
	case now.state == appFailed:
		return true, fmt.Errorf("app %q failed: %s: %w", now.name, now.reason, ErrStartFailed)
	case now.stopped, now.offline, now.ending:
		return true, fmt.Errorf("app %q is %s: %w", now.name, stateName(now.state), ErrStartFailed)
	}
	return false, nil
}

// Stop stops an app's instances; it stays STOPPED until started. With wait
// it returns once every instance has exited.
func (s *Supervisor) Stop(ctx context.Context, name string, wait bool) (*ancmv1.App, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, err
	}
	var w waitFunc
	if wait {
		// Done when every instance has exited, or when someone started the
		// app again meanwhile.
		w = func(_, now *model) (bool, error) { return len(now.insts) == 0 || !now.stopped, nil }
	}
	if err := a.call(ctx, evStop{}, w); err != nil {
		return nil, err
	}
	return a.snap.Load().app, nil
}

// Restart rolls the app out again with the same spec, one instance after
// the other; an app with nothing running is started. With wait it returns
// once the rollout (or the start) has ended.
func (s *Supervisor) Restart(ctx context.Context, name string, wait bool) (*ancmv1.App, *ancmv1.RolloutStatus, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, nil, err
	}
	if !wait {
		if err := a.call(ctx, evRestart{}, nil); err != nil {
			return nil, nil, err
		}
		sn := a.snap.Load()
		return sn.app, sn.app.GetRollout(), nil
	}
	var ro *rolloutRecord
	err = a.call(ctx, evRestart{}, func(before, now *model) (bool, error) {
		if now.lastGen == before.lastGen {
			return waitStarted(before, now)
		}
		if now.last.result == ancmv1.RolloutResult_ROLLOUT_RESULT_IN_PROGRESS {
			return false, nil
		}
		r := *now.last
		ro = &r
		if r.result == ancmv1.RolloutResult_ROLLOUT_RESULT_FAILED {
			return true, rolloutError(now.name, &r)
		}
		return true, nil
	})
	if err != nil && !errors.Is(err, ErrRolloutFailed) {
		return nil, nil, err
	}
	return a.snap.Load().app, rolloutProto(ro), err
}

// Activate starts an idle app and waits until it has a ready instance or
// has failed to start, bounded by its startup_timeout.
func (s *Supervisor) Activate(ctx context.Context, name string) (*ancmv1.ActivateResponse, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, err
	}
	sn := a.snap.Load()
	ctx, cancel := context.WithTimeout(ctx, sn.spec.StartupTimeout+time.Second)
	defer cancel()
	var resp *ancmv1.ActivateResponse
	err = a.call(ctx, evActivate{}, func(before, now *model) (bool, error) {
		r := &ancmv1.ActivateResponse{State: now.state, Reason: now.reason}
		switch {
		case now.state == appRunning:
			r.Ready = true
		case now.state == appFailed, now.state == appStopped, now.state == appOffline, now.ending:
		case now.state == appStopping && now.stopped:
		case now.startFails > before.startFails:
			r.Reason = now.lastFail
		default:
			return false, nil
		}
		if !r.Ready && now.spec.ErrorDetail {
			r.LogTail = append([]string(nil), now.lastTail...)
		}
		resp = r
		return true, nil
	})
	if err != nil {
		if ctx.Err() == nil {
			return nil, err
		}
		sn := a.snap.Load()
		resp = &ancmv1.ActivateResponse{State: sn.app.GetState(), Reason: "not ready within startup_timeout"}
	}
	resp.Revision, resp.Epoch = s.table.revision(), s.table.epoch
	return resp, nil
}
