package dataplane

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/dataplane/http1"
)

// Defaults used when the control plane leaves a duration unset.
const (
	defaultStartupTimeout = 120 * time.Second
	defaultRequestTimeout = 2 * time.Minute
)

// table is one immutable snapshot of the routing table. The watch loop is
// its only writer: it builds a successor and publishes it with an atomic
// swap, so requests read a table without taking a lock.
type table struct {
	epoch    string
	revision uint64
	// synced is false only for the empty table a Proxy starts with.
	synced bool

	apps map[string]*app

	// Routing indexes; see routing.go for the order they are consulted in.
	exact map[string][]*app // lower-case host -> apps, longest prefix first
	wild  map[string][]*app // ".example.com" -> apps, longest prefix first
	any   []*app            // apps without hosts, longest prefix first

	// next is closed when a successor table is published.
	next chan struct{}
}

func emptyTable() *table {
	return &table{apps: map[string]*app{}, next: make(chan struct{})}
}

// app is one AppRoute compiled for routing and proxying.
type app struct {
	name     string
	hosts    []string
	prefix   string
	strip    bool // strip_prefix: forward paths without prefix
	h2c      bool // protocol = "h2c": forwarded over cleartext HTTP/2
	state    ancmv1.AppState
	reason   string
	revision uint64

	// endpoints are all published endpoints; usable are the ready,
	// non-draining ones, the only ones that get new requests.
	endpoints []*backend
	usable    []*backend

	queueSize      int
	startupTimeout time.Duration
	requestTimeout time.Duration
	errorDetail    bool
	aspnet         bool
	offlineBody    []byte
	logTail        []string

	// stats are the app's counters (metrics.go), carried over from the
	// previous version of the route when its generation is the same.
	stats *appStats

	// rr breaks ties between equally loaded backends.
	rr atomic.Uint32
}

// serving reports whether requests can go straight to a backend.
func (a *app) serving() bool {
	return a.state == ancmv1.AppState_APP_STATE_RUNNING && len(a.usable) > 0
}

// backend is one app instance as the data plane tracks it. It outlives
// table revisions: a backend with the same address and token is carried
// over from one table to the next, so its outstanding-request count and
// ejection survive updates.
type backend struct {
	addr     string
	token    string
	instance uint32

	outstanding atomic.Int64
	// ejectedAt is the UnixNano time of a passive ejection, 0 when none;
	// ejectedRev is the app revision it happened at.
	ejectedAt  atomic.Int64
	ejectedRev atomic.Uint64
	// timeouts counts requests in a row that got no response head
	// within request_timeout; see ejectAfterTimeouts.
	timeouts atomic.Int32

	pool http1.Pool // idle connections to addr
}

func backendKey(addr, token string) string { return addr + "\x00" + token }

// apply returns the table that results from one WatchEndpoints message.
// A full message replaces the table; an incremental one upserts apps and
// removes the named ones. It returns an error for an incremental message
// of another epoch, which the caller answers by resubscribing from scratch.
func (t *table) apply(m *ancmv1.WatchEndpointsResponse) (*table, error) {
	if !m.GetFull() && (!t.synced || m.GetEpoch() != t.epoch) {
		return nil, fmt.Errorf("incremental update for epoch %q revision %d on table %q revision %d: %w",
			m.GetEpoch(), m.GetRevision(), t.epoch, t.revision, errWatchProtocol)
	}
	nt := &table{
		epoch:    m.GetEpoch(),
		revision: m.GetRevision(),
		synced:   true,
		apps:     make(map[string]*app, len(t.apps)+len(m.GetApps())),
		next:     make(chan struct{}),
	}
	if !m.GetFull() {
		for name, a := range t.apps {
			nt.apps[name] = a
		}
		for _, name := range m.GetRemoved() {
			delete(nt.apps, name)
		}
	}
	for _, r := range m.GetApps() {
		if r.GetApp() == "" {
			continue
		}
		old := t.apps[r.GetApp()]
		if old != nil && old.revision == r.GetRevision() && r.GetRevision() != 0 && m.GetEpoch() == t.epoch {
			// Unchanged (a full resync resends what we have).
			nt.apps[old.name] = old
			continue
		}
		nt.apps[r.GetApp()] = compileApp(r, old, m.GetRevision())
	}
	nt.index()
	return nt, nil
}

// compileApp turns a route into an app, carrying over the backends of the
// previous version of the same app.
// An app without its own revision takes the message's.
func compileApp(r *ancmv1.AppRoute, old *app, msgRevision uint64) *app {
	a := &app{
		name:           r.GetApp(),
		prefix:         normalizePrefix(r.GetPathPrefix()),
		strip:          r.GetStripPrefix(),
		h2c:            r.GetProtocol() == "h2c",
		state:          r.GetState(),
		reason:         r.GetStateReason(),
		revision:       r.GetRevision(),
		queueSize:      int(r.GetQueueSize()),
		startupTimeout: defaultStartupTimeout,
		requestTimeout: defaultRequestTimeout,
		errorDetail:    r.GetErrorDetail(),
		aspnet:         strings.EqualFold(r.GetCompat(), "aspnetcore"),
		offlineBody:    r.GetOfflineBody(),
		logTail:        r.GetLogTail(),
	}
	a.stats = routeStats(a.name, routeGeneration(r), old)
	if a.revision == 0 {
		a.revision = msgRevision
	}
	if d := r.GetStartupTimeout(); d != nil && d.AsDuration() > 0 {
		a.startupTimeout = d.AsDuration()
	}
	if d := r.GetRequestTimeout(); d != nil && d.AsDuration() > 0 {
		a.requestTimeout = d.AsDuration()
	}
	for _, h := range r.GetHosts() {
		if h = normalizeHost(h); h != "" {
			a.hosts = append(a.hosts, h)
		}
	}
	var prev map[string]*backend
	if old != nil && len(old.endpoints) > 0 {
		prev = make(map[string]*backend, len(old.endpoints))
		for _, b := range old.endpoints {
			prev[backendKey(b.addr, b.token)] = b
		}
	}
	for _, ep := range r.GetEndpoints() {
		if ep.GetAddress() == "" {
			continue
		}
		b := prev[backendKey(ep.GetAddress(), ep.GetToken())]
		if b == nil {
			b = &backend{addr: ep.GetAddress(), token: ep.GetToken(), instance: ep.GetInstance()}
			b.pool.Addr = b.addr
		}
		a.endpoints = append(a.endpoints, b)
		if !ep.GetReady() || ep.GetDraining() {
			continue
		}
		// Published ready at a newer revision than the ejection: the
		// control plane vouches for it again.
		if b.ejectedAt.Load() != 0 && a.revision > b.ejectedRev.Load() {
			b.ejectedAt.Store(0)
		}
		a.usable = append(a.usable, b)
	}
	return a
}

// routeGeneration is the generation of the app a route publishes: its
// current one. During a rolling rollout the old generation's instances are
// still in the route, and their traffic counts for the new generation (the
// counters are per app; per endpoint generation is the next step).
func routeGeneration(r *ancmv1.AppRoute) uint64 { return r.GetGeneration() }

// index builds the routing indexes from t.apps.
func (t *table) index() {
	t.exact = map[string][]*app{}
	t.wild = map[string][]*app{}
	t.any = nil
	for _, a := range t.apps {
		if len(a.hosts) == 0 {
			t.any = append(t.any, a)
			continue
		}
		for _, h := range a.hosts {
			if suffix, ok := strings.CutPrefix(h, "*"); ok && strings.HasPrefix(suffix, ".") {
				t.wild[suffix] = append(t.wild[suffix], a)
				continue
			}
			t.exact[h] = append(t.exact[h], a)
		}
	}
	sortApps(t.any)
	for _, list := range t.exact {
		sortApps(list)
	}
	for _, list := range t.wild {
		sortApps(list)
	}
}

// sortApps orders apps by prefix length, longest first, then by name so
// that the order never depends on map iteration.
func sortApps(list []*app) {
	sort.Slice(list, func(i, j int) bool {
		if len(list[i].prefix) != len(list[j].prefix) {
			return len(list[i].prefix) > len(list[j].prefix)
		}
		return list[i].name < list[j].name
	})
}

// idleConnTimeout is how long a pooled instance connection may stay idle.
const idleConnTimeout = 90 * time.Second

// sweepPools closes connections idle for longer than idleConnTimeout, and
// every idle connection of backends that left the table. seen holds the
// backends of the last sweep; the new set is returned.
func (p *Proxy) sweepPools(seen map[*backend]bool) map[*backend]bool {
	now := time.Now()
	cur := map[*backend]bool{}
	for _, a := range p.table.Load().apps {
		for _, b := range a.endpoints {
			cur[b] = true
			b.pool.CloseIdle(now.Add(-idleConnTimeout))
		}
	}
	for b := range seen {
		if !cur[b] {
			b.pool.CloseIdle(now.Add(time.Hour))
		}
	}
	return cur
}
