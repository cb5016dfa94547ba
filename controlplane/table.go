package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// maxTombstones bounds the removals remembered for incremental watches; a
// watcher older than the oldest forgotten removal gets the full table.
const maxTombstones = 1024

// routeTable is the endpoint table that data planes follow: each app's route
// under a revision that is bumped on every change, and an epoch that is new
// with every daemon start (go-control-plane's snapshot cache, etcd's watch).
type routeTable struct {
	epoch string

	mu         sync.Mutex
	rev        uint64
	routes     map[string]*ancmv1.AppRoute
	tombstones map[string]uint64 // app -> revision of its removal
	compacted  uint64            // removals at or before this revision are forgotten
	changed    chan struct{}     // closed and replaced on every change
	closed     bool
}

func newRouteTable() *routeTable {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &routeTable{
		epoch:      hex.EncodeToString(b[:]),
		routes:     make(map[string]*ancmv1.AppRoute),
		tombstones: make(map[string]uint64),
		changed:    make(chan struct{}),
	}
}

// set publishes an app's route; it bumps the revision only when the route
// differs from the one published. It returns the table's revision.
func (t *routeTable) set(r *ancmv1.AppRoute) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.routes[r.GetApp()]; ok {
		r.Revision = old.GetRevision()
		if proto.Equal(old, r) {
			return t.rev
		}
	}
	t.rev++
	r.Revision = t.rev
	t.routes[r.GetApp()] = r
	delete(t.tombstones, r.GetApp())
	t.notifyLocked()
	return t.rev
}

// remove drops an app's route.
func (t *routeTable) remove(app string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.routes[app]; !ok {
		return
	}
	t.rev++
	delete(t.routes, app)
	t.tombstones[app] = t.rev
	if len(t.tombstones) > maxTombstones {
		// Forget the oldest removal; watchers from before it resync in full.
		oldest, at := "", uint64(0)
		for name, r := range t.tombstones {
			if oldest == "" || r < at {
				oldest, at = name, r
			}
		}
		delete(t.tombstones, oldest)
		t.compacted = at
	}
	t.notifyLocked()
}

func (t *routeTable) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// close ends every watch.
func (t *routeTable) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		t.notifyLocked()
	}
}

// revision returns the current revision.
func (t *routeTable) revision() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rev
}

// since returns what a watcher holding (epoch, rev) needs: the full table
// when it holds another epoch, a revision from the future or one older than
// the remembered removals; otherwise the routes changed after rev and the
// apps removed after it. ok is false when the watcher is current.
func (t *routeTable) since(epoch string, rev uint64) (resp *ancmv1.WatchEndpointsResponse, wait <-chan struct{}, closed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nil, true
	}
	resp = &ancmv1.WatchEndpointsResponse{Epoch: t.epoch, Revision: t.rev}
	if epoch != t.epoch || rev > t.rev || rev < t.compacted {
		resp.Full = true
		for _, r := range t.routes {
			resp.Apps = append(resp.Apps, r)
		}
		sortRoutes(resp.Apps)
		return resp, t.changed, false
	}
	if rev == t.rev {
		return nil, t.changed, false
	}
	for _, r := range t.routes {
		if r.GetRevision() > rev {
			resp.Apps = append(resp.Apps, r)
		}
	}
	for name, at := range t.tombstones {
		if at > rev {
			resp.Removed = append(resp.Removed, name)
		}
	}
	sortRoutes(resp.Apps)
	sort.Strings(resp.Removed)
	return resp, t.changed, false
}

func sortRoutes(rs []*ancmv1.AppRoute) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].GetApp() < rs[j].GetApp() })
}

// watch sends the table, then every change, until ctx ends or the table is
// closed. Routes are shared and never mutated after set, so they are sent
// without copying.
func (t *routeTable) watch(ctx context.Context, epoch string, rev uint64, send func(*ancmv1.WatchEndpointsResponse) error) error {
	for {
		resp, wait, closed := t.since(epoch, rev)
		if closed {
			return nil
		}
		if resp != nil {
			if err := send(resp); err != nil {
				return err
			}
			epoch, rev = resp.GetEpoch(), resp.GetRevision()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait:
		}
	}
}
