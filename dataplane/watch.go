package dataplane

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"google.golang.org/grpc"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// Reconnect backoff of the watch: doubling from watchBackoffMin up to
// watchBackoffMax, each wait drawn from [d/2, d). The cap is low so that a
// control plane that comes back is followed again within a second,
// however long it was away.
const (
	watchBackoffMin = 100 * time.Millisecond
	watchBackoffMax = time.Second
)

// confirmEvery is how often the data plane reports its requests in flight
// on endpoints that take no new ones, while there are any.
const confirmEvery = 50 * time.Millisecond

// confirmTimeout bounds one ConfirmEndpoints call.
const confirmTimeout = 2 * time.Second

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
	broken := false
	for {
		progressed, err := p.watch(ctx, broken)
		if ctx.Err() != nil {
			return nil
		}
		broken = true
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
// it received anything, which resets the backoff. resumed says that an
// earlier one broke, for the log line when the watch is back.
func (p *Proxy) watch(ctx context.Context, resumed bool) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := &ancmv1.WatchEndpointsRequest{Node: p.node, Confirms: true}
	if t := p.table.Load(); t.synced && !p.resync {
		req.Epoch, req.Revision = t.epoch, t.revision
	}
	// WaitForReady: while the control plane is away the call waits for the
	// connection (whose reconnect backoff the caller bounds) instead of
	// failing at once, so the watch is back as soon as the connection is.
	stream, err := p.client.WatchEndpoints(ctx, req, grpc.WaitForReady(true))
	if err != nil {
		return false, err
	}
	p.logger.Debug("endpoint watch subscribed", "epoch", req.Epoch, "revision", req.Revision)
	kick := make(chan struct{}, 1)
	for {
		m, err := stream.Recv()
		if err != nil {
			return progressed, err
		}
		if !progressed {
			if resumed {
				p.logger.Info("endpoint watch is back", "epoch", m.GetEpoch(), "revision", m.GetRevision())
			}
			if sess := m.GetSession(); sess != "" {
				go p.confirm(ctx, sess, kick)
			}
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
		select {
		case kick <- struct{}{}:
		default:
		}
	}
}

// confirm tells the control plane which table revision this data plane
// routes by, each time it applies one (kick), and every confirmEvery the
// requests still in flight on endpoints that get no new ones, until there
// are none: the control plane stops an old instance only once every data
// plane has confirmed a table without it and has finished with it. It
// runs for one watch stream, whose session it names.
func (p *Proxy) confirm(ctx context.Context, session string, kick <-chan struct{}) {
	t := time.NewTicker(confirmEvery)
	defer t.Stop()
	var sentRev uint64
	sentLoads := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-t.C:
		}
		tab := p.table.Load()
		loads := leavingLoads(tab)
		if tab.revision == sentRev && len(loads) == 0 && !sentLoads {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, confirmTimeout)
		_, err := p.client.ConfirmEndpoints(cctx, &ancmv1.ConfirmEndpointsRequest{
			Session: session, Epoch: tab.epoch, Revision: tab.revision, Loads: loads,
		})
		cancel()
		if err != nil {
			p.logger.Debug("confirm endpoints", "revision", tab.revision, "error", err)
			sentRev = 0 // try again at the next tick
			continue
		}
		sentRev, sentLoads = tab.revision, len(loads) > 0
	}
}

// leavingLoads lists the requests in flight on endpoints that take no new
// ones (draining, or not ready).
func leavingLoads(t *table) []*ancmv1.EndpointLoad {
	var out []*ancmv1.EndpointLoad
	for _, a := range t.apps {
		for _, b := range a.endpoints {
			n := b.outstanding.Load()
			if n <= 0 || slices.Contains(a.usable, b) {
				continue
			}
			out = append(out, &ancmv1.EndpointLoad{App: a.name, Address: b.addr, InFlight: uint32(n)})
		}
	}
	return out
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
