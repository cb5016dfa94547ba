package dataplane

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// activateGrace is added to startup_timeout for the Activate RPC, so the
// control plane's own verdict (a failed start) arrives before ours.
const activateGrace = 5 * time.Second

// gate holds the requests of one app that wait for it to start, and the
// one Activate RPC they all wait on.
type gate struct {
	waiting int
	act     *activation
}

// activation is one in-flight Activate RPC and the table catch-up after
// it. done is closed when err is final.
type activation struct {
	done chan struct{}
	err  error
}

// admit handles a request for an app that cannot take it right now: it
// answers at once for FAILED, STOPPED, STOPPING and OFFLINE apps, and for
// the others (IDLE, STARTING, RUNNING without a ready instance) waits in
// the app's queue for one shared activation. It returns the app as the
// table has it once an instance is ready.
func (p *Proxy) admit(ctx context.Context, a *app) (*app, error) {
	if err := stateError(a); err != nil {
		return nil, err
	}

	p.mu.Lock()
	g := p.gates[a.name]
	if g == nil {
		g = &gate{}
		p.gates[a.name] = g
	}
	act := g.act
	if act == nil {
		act = &activation{done: make(chan struct{})}
		g.act = act
		go p.activate(a, g, act)
	}
	if g.waiting >= a.queueSize {
		p.mu.Unlock()
		p.stats.queueRejections.Add(1)
		if a.stats != nil {
			a.stats.queueRejected.Add(1)
		}
		return nil, newError(ErrQueueFull, a, nil)
	}
	g.waiting++
	p.mu.Unlock()
	p.stats.queued.Add(1)
	defer func() {
		p.stats.queued.Add(-1)
		p.mu.Lock()
		g.waiting--
		if g.waiting == 0 && g.act == nil && p.gates[a.name] == g {
			delete(p.gates, a.name)
		}
		p.mu.Unlock()
	}()

	// The control plane bounds the start by startup_timeout and answers
	// Activate with the reason; this timer is only the backstop for a
	// control plane that does not answer.
	timer := time.NewTimer(a.startupTimeout + activateGrace)
	defer timer.Stop()
	for {
		select {
		case <-act.done:
		case <-ctx.Done():
			return nil, newError(context.Canceled, a, ctx.Err())
		case <-timer.C:
			re := newError(ErrStartFailed, a, nil)
			re.reason = fmt.Sprintf("no ready instance within startup_timeout (%s)", a.startupTimeout)
			return nil, re
		}
		if act.err != nil {
			return nil, act.err
		}
		na := p.table.Load().apps[a.name]
		if na == nil {
			return nil, newError(ErrNoRoute, a, nil)
		}
		if na.serving() {
			return na, nil
		}
		if err := stateError(na); err != nil {
			return nil, err
		}
		// The control plane answered ready, but a newer table has no
		// ready instance: the instance went away in between (it crashed
		// before the control plane saw it). Wait for the next start.
		p.mu.Lock()
		if g.act == nil {
			g.act = &activation{done: make(chan struct{})}
			go p.activate(na, g, g.act)
		}
		act = g.act
		p.mu.Unlock()
	}
}

// stateError is the answer for an app state that gets no activation.
func stateError(a *app) error {
	var kind error
	switch a.state {
	case ancmv1.AppState_APP_STATE_FAILED:
		kind = ErrFailed
	case ancmv1.AppState_APP_STATE_STOPPED, ancmv1.AppState_APP_STATE_STOPPING:
		kind = ErrStopped
	case ancmv1.AppState_APP_STATE_OFFLINE:
		kind = ErrOffline
	default:
		return nil
	}
	re := newError(kind, a, nil)
	re.reason = a.reason
	return re
}

// activate runs the one Activate RPC of an activation and then waits until
// the table shows the instance it reported (revision >= the one returned,
// or a ready instance of the app), so that no waiter is let through to a
// table that does not have the instance yet.
func (p *Proxy) activate(a *app, g *gate, act *activation) {
	defer func() {
		p.mu.Lock()
		g.act = nil
		if g.waiting == 0 && p.gates[a.name] == g {
			delete(p.gates, a.name)
		}
		p.mu.Unlock()
		close(act.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), a.startupTimeout+activateGrace)
	defer cancel()
	p.stats.activations.Add(1)
	p.logger.Debug("activating app", "app", a.name, "state", a.state.String())
	resp, err := p.callActivate(ctx, a.name)
	switch {
	case err != nil:
		kind := ErrStartFailed
		if status.Code(err) == codes.NotFound {
			kind = ErrNoRoute
		}
		act.err = newError(kind, a, err)
		p.logger.Debug("activate failed", "app", a.name, "error", err)
		return
	case !resp.GetReady():
		re := newError(ErrStartFailed, a, nil)
		switch resp.GetState() {
		case ancmv1.AppState_APP_STATE_FAILED:
			re.kind = ErrFailed
		case ancmv1.AppState_APP_STATE_STOPPED, ancmv1.AppState_APP_STATE_STOPPING:
			re.kind = ErrStopped
		case ancmv1.AppState_APP_STATE_OFFLINE:
			re.kind = ErrOffline
			if na := p.table.Load().apps[a.name]; na != nil {
				re.app = na // the current offline body
			}
		}
		re.reason = resp.GetReason()
		re.logTail = resp.GetLogTail()
		act.err = re
		p.logger.Debug("app not activated", "app", a.name, "state", resp.GetState().String(), "reason", resp.GetReason())
		return
	}
	if e := resp.GetEpoch(); e != "" && e != p.table.Load().epoch {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	if !p.waitTable(ctx, resp.GetEpoch(), resp.GetRevision()) {
		re := newError(ErrUnavailable, a, nil)
		re.reason = fmt.Sprintf("endpoint table did not reach revision %d", resp.GetRevision())
		act.err = re
		p.logger.Warn("endpoint table behind activation", "app", a.name, "revision", resp.GetRevision())
	}
}

// callActivate calls Activate, waiting through a control plane that is
// away or shutting down (a restart) until ctx ends, so that a request
// waits for the app instead of failing. Other errors end it at once.
func (p *Proxy) callActivate(ctx context.Context, name string) (*ancmv1.ActivateResponse, error) {
	delay := 20 * time.Millisecond
	for {
		// WaitForReady: no connection yet is waited for, not an error.
		resp, err := p.client.Activate(ctx, &ancmv1.ActivateRequest{App: name}, grpc.WaitForReady(true))
		if status.Code(err) != codes.Unavailable {
			return resp, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		delay = min(delay*2, time.Second)
	}
}

// waitTable waits until the table holds the control plane's table at
// revision rev of epoch (any epoch when it is ""), where the instance
// Activate reported is. It reports false when ctx ends first.
func (p *Proxy) waitTable(ctx context.Context, epoch string, rev uint64) bool {
	for {
		t := p.table.Load()
		if t.synced && (epoch == "" || t.epoch == epoch) && t.revision >= rev {
			return true
		}
		select {
		case <-t.next:
		case <-ctx.Done():
			return false
		}
	}
}
