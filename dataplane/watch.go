package dataplane

import (
	"context"
	"math/rand/v2"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// Reconnect backoff of the watch: doubling from watchBackoffMin up to
// watchBackoffMax, each wait drawn from [d/2, d).
const (
	watchBackoffMin = 100 * time.Millisecond
	watchBackoffMax = 5 * time.Second
)

// Run follows the control plane's endpoint table until ctx is done: it
// subscribes with WatchEndpoints, applies every message, and when the
// stream breaks keeps serving from the last table while it resubscribes
// with capped, jittered backoff, resuming from the epoch and revision it
// has. It returns nil when ctx is done.
func (p *Proxy) Run(ctx context.Context) error {
	if p.reportEvery > 0 {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() { defer close(done); p.report(ctx) }()
	}
	backoff := watchBackoffMin
	for {
		progressed, err := p.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			backoff = watchBackoffMin
		}
		wait := backoff/2 + rand.N(backoff/2)
		p.logger.Warn("endpoint watch broken, resubscribing", "error", err, "backoff", wait)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		case <-p.kick:
			timer.Stop()
		}
		backoff = min(backoff*2, watchBackoffMax)
	}
}

// watch runs one subscription until it breaks. progressed reports whether
// it received anything, which resets the backoff.
func (p *Proxy) watch(ctx context.Context) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := &ancmv1.WatchEndpointsRequest{Node: p.node}
	if t := p.table.Load(); t.synced && !p.resync {
		req.Epoch, req.Revision = t.epoch, t.revision
	}
	stream, err := p.client.WatchEndpoints(ctx, req)
	if err != nil {
		return false, err
	}
	p.logger.Debug("endpoint watch subscribed", "epoch", req.Epoch, "revision", req.Revision)
	for {
		m, err := stream.Recv()
		if err != nil {
			return progressed, err
		}
		progressed = true
		nt, err := p.table.Load().apply(m)
		if err != nil {
			// Out of step with the server: start over with a full table.
			p.resync = true
			return progressed, err
		}
		if m.GetFull() {
			p.resync = false
		}
		p.publish(nt, m)
	}
}

// publish swaps in a new table and wakes whoever waits for one.
func (p *Proxy) publish(nt *table, m *ancmv1.WatchEndpointsResponse) {
	old := p.table.Swap(nt)
	p.retire(old, nt)
	close(old.next)
	p.logger.Debug("endpoint table updated", "epoch", nt.epoch, "revision", nt.revision,
		"full", m.GetFull(), "apps", len(m.GetApps()), "removed", len(m.GetRemoved()))
	p.syncOnce.Do(func() {
		p.logger.Info("endpoint table synced", "epoch", nt.epoch, "revision", nt.revision, "apps", len(nt.apps))
		close(p.synced)
	})
}
