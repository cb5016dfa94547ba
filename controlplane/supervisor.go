package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
	"github.com/ancm-dev/ancm/sandbox"
)

// Options configure a Supervisor.
type Options struct {
	Logger hclog.Logger
	// StateDir holds the store and captured logs; it is created if missing.
	StateDir string
	// Clock is the time the apps' decisions see; nil means time.Now.
	Clock func() time.Time
	// Sandbox isolates instances (user, cgroup, limits); nil runs them
	// as the daemon's children with nothing more, and refuses apps that
	// ask for a user or limits.
	Sandbox *sandbox.Manager
}

// Supervisor owns the apps: their config, their processes, the endpoint
// table, the events and the store. Each app is run by its own goroutine
// (see app.go); the Supervisor's lock guards only the set of apps and the
// specs their routes are checked against.
type Supervisor struct {
	log        hclog.Logger
	stateDir   string
	spawner    *spawner
	sandbox    *sandbox.Manager
	table      *routeTable
	events     *eventBus
	store      *store
	planes     *planes
	started    time.Time
	now        func() time.Time
	failWindow time.Duration

	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	apps   map[string]*app
	specs  map[string]config.App // what each app's routes are checked as
	closed bool
	closeC chan struct{}
}

// New opens the state store and returns a Supervisor with no apps; Load
// adds the config file's and the stored ones.
func New(opts Options) (*Supervisor, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	st, err := openStore(opts.StateDir)
	if err != nil {
		return nil, err
	}
	now := opts.Clock
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Supervisor{
		log:        log.Named("supervisor"),
		stateDir:   opts.StateDir,
		spawner:    newSpawner(),
		sandbox:    opts.Sandbox,
		table:      newRouteTable(),
		events:     newEventBus(),
		store:      st,
		planes:     newPlanes(),
		started:    time.Now(),
		now:        now,
		failWindow: failWindow,
		ctx:        ctx,
		cancel:     cancel,
		apps:       make(map[string]*app),
		specs:      make(map[string]config.App),
		closeC:     make(chan struct{}),
	}, nil
}

// Epoch is the endpoint table's epoch, new with every daemon start.
func (s *Supervisor) Epoch() string { return s.table.epoch }

// StartedAt is when the supervisor was created.
func (s *Supervisor) StartedAt() time.Time { return s.started }

// StateDir is the state directory.
func (s *Supervisor) StateDir() string { return s.stateDir }

// Closed is closed when Shutdown has run.
func (s *Supervisor) Closed() <-chan struct{} { return s.closeC }

// Load adds the config file's apps and the apps kept in the store, and
// starts the eager ones. A stored app whose name the config file now uses,
// or whose route conflicts with the file's, is skipped with an error logged.
func (s *Supervisor) Load(cfgApps []config.App) error {
	if err := config.CheckRoutes(cfgApps); err != nil {
		return err
	}
	type loaded struct {
		c       config.App
		source  string
		gen     uint64
		history []genRecord
	}
	all := make([]loaded, 0, len(cfgApps))
	checked := append([]config.App(nil), cfgApps...)
	names := make(map[string]bool, len(cfgApps))
	for _, c := range cfgApps {
		all = append(all, loaded{c: c, source: sourceConfig})
		names[c.Name] = true
	}
	specs, errs := s.store.list()
	for _, err := range errs {
		s.log.Error("skipping stored app", "error", err)
	}
	for _, spec := range specs {
		if names[spec.GetName()] {
			s.log.Error("skipping stored app: the config file defines an app of that name", "app", spec.GetName())
			continue
		}
		c, err := config.AppFromProto(spec)
		if err != nil {
			s.log.Error("skipping stored app", "app", spec.GetName(), "error", err)
			continue
		}
		if err := config.CheckRoutes(append(checked[:len(checked):len(checked)], c)); err != nil {
			s.log.Error("skipping stored app", "app", c.Name, "error", err)
			continue
		}
		checked = append(checked, c)
		hist := historyFromProto(s.store.history(c.Name))
		var gen uint64
		for _, h := range hist {
			if h.result == ancmv1.RolloutResult_ROLLOUT_RESULT_SUCCEEDED {
				gen = max(gen, h.gen)
			}
		}
		all = append(all, loaded{c: c, source: sourceAPI, gen: gen, history: hist})
	}
	s.mu.Lock()
	var added []*app
	for _, l := range all {
		if _, ok := s.apps[l.c.Name]; ok {
			continue
		}
		a := newApp(s, l.c, l.source, l.gen, l.history)
		s.apps[l.c.Name], s.specs[l.c.Name] = a, l.c
		added = append(added, a)
	}
	s.mu.Unlock()
	for _, a := range added {
		a.begin()
		sn := a.snap.Load()
		a.log.Info("app added", "source", sn.source, "start", string(sn.spec.Start), "processes", sn.spec.Processes, "generation", sn.app.GetGeneration())
	}
	return nil
}

// Reload applies a re-read config file: apps it no longer has are removed,
// new ones added, changed ones rolled out, the rest left alone. Nothing
// changes when the new set is invalid. A failed rollout of one app does not
// keep the others from changing; the errors are joined.
func (s *Supervisor) Reload(ctx context.Context, cfgApps []config.App) error {
	s.mu.Lock()
	var apiApps []config.App
	var gone []string
	seen := make(map[string]bool, len(cfgApps))
	for _, c := range cfgApps {
		seen[c.Name] = true
	}
	for name, a := range s.apps {
		src := a.snap.Load().source
		switch {
		case src == sourceAPI && seen[name]:
			s.mu.Unlock()
			return fmt.Errorf("app %q: defined in the config file and applied through the API; delete it with ancmctl first: %w", name, ErrPrecondition)
		case src == sourceAPI:
			apiApps = append(apiApps, s.specs[name])
		case !seen[name]:
			gone = append(gone, name)
		}
	}
	s.mu.Unlock()
	if err := config.CheckRoutes(append(apiApps, cfgApps...)); err != nil {
		return err
	}
	for _, name := range gone {
		if _, err := s.remove(ctx, name, sourceConfig); err != nil {
			return err
		}
	}
	// Every change is made first, one app after the other, then the
	// rollouts they started are waited for together.
	var errs []error
	var waits []pending
	for _, c := range cfgApps {
		_, _, wait, err := s.change(ctx, c, sourceConfig, false)
		if err != nil {
			// One app that cannot change now (a rollout of it runs) keeps
			// none of the others from changing.
			errs = append(errs, err)
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return errors.Join(errs...)
			}
			continue
		}
		if wait != nil {
			waits = append(waits, wait)
		}
	}
	for _, wait := range waits {
		if _, err := wait(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Supervisor) get(name string) (*app, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	a, ok := s.apps[name]
	if !ok {
		return nil, fmt.Errorf("app %q: %w", name, ErrNotFound)
	}
	return a, nil
}

// noteSpec records the spec an app runs now, for the route checks of
// later applies.
func (s *Supervisor) noteSpec(name string, c config.App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.apps[name]; ok {
		s.specs[name] = c
	}
}

// Get returns an app's config and status.
func (s *Supervisor) Get(name string) (*ancmv1.App, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, err
	}
	return a.snap.Load().app, nil
}

// List returns every app, by name.
func (s *Supervisor) List() []*ancmv1.App {
	s.mu.Lock()
	out := make([]*ancmv1.App, 0, len(s.apps))
	for _, a := range s.apps {
		out = append(out, a.snap.Load().app)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].GetSpec().GetName() < out[j].GetSpec().GetName() })
	return out
}

// Shutdown stops every app gracefully, in parallel, ends the watch streams
// and closes the store. ctx bounds the wait; apps still running when it ends
// are killed by the Pdeathsig of their processes when the daemon exits.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	apps := make([]*app, 0, len(s.apps))
	for _, a := range s.apps {
		apps = append(apps, a)
	}
	s.mu.Unlock()
	s.log.Info("stopping apps", "apps", len(apps))
	var err error
	for _, a := range apps {
		if cerr := a.call(ctx, evEnd{}, nil); cerr != nil && !errors.Is(cerr, ErrClosed) {
			err = errors.New("apps did not stop in time")
		}
	}
	for _, a := range apps {
		select {
		case <-a.done:
		case <-ctx.Done():
			err = errors.New("apps did not stop in time")
		}
	}
	s.cancel()
	close(s.closeC)
	s.table.close()
	s.events.close()
	if cerr := s.store.close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
