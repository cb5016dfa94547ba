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
	// Sandbox isolates instances (user, cgroup, limits); nil runs them
	// as the daemon's children with nothing more, and refuses apps that
	// ask for a user or limits.
	Sandbox *sandbox.Manager
}

// Supervisor owns the apps: their config, their processes, the endpoint
// table, the events and the store.
type Supervisor struct {
	log      hclog.Logger
	stateDir string
	spawner  *spawner
	sandbox  *sandbox.Manager
	table    *routeTable
	events   *eventBus
	store    *store
	started  time.Time

	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	apps   map[string]*app
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
	ctx, cancel := context.WithCancel(context.Background())
	return &Supervisor{
		log:      log.Named("supervisor"),
		stateDir: opts.StateDir,
		spawner:  newSpawner(),
		sandbox:  opts.Sandbox,
		table:    newRouteTable(),
		events:   newEventBus(),
		store:    st,
		started:  time.Now(),
		ctx:      ctx,
		cancel:   cancel,
		apps:     make(map[string]*app),
		closeC:   make(chan struct{}),
	}, nil
}

// Epoch is the endpoint table's epoch, new with every daemon start.
func (s *Supervisor) Epoch() string { return s.table.epoch }

// StartedAt is when the supervisor was created.
func (s *Supervisor) StartedAt() time.Time { return s.started }

// StateDir is the state directory.
func (s *Supervisor) StateDir() string { return s.stateDir }

// Load adds the config file's apps and the apps kept in the store, and
// starts the eager ones. A stored app whose name the config file now uses,
// or whose route conflicts with the file's, is skipped with an error logged.
func (s *Supervisor) Load(cfgApps []config.App) error {
	if err := config.CheckRoutes(cfgApps); err != nil {
		return err
	}
	all := append([]config.App(nil), cfgApps...)
	sources := make(map[string]string, len(cfgApps))
	for _, c := range cfgApps {
		sources[c.Name] = sourceConfig
	}
	specs, errs := s.store.list()
	for _, err := range errs {
		s.log.Error("skipping stored app", "error", err)
	}
	for _, spec := range specs {
		if _, ok := sources[spec.GetName()]; ok {
			s.log.Error("skipping stored app: the config file defines an app of that name", "app", spec.GetName())
			continue
		}
		c, err := config.AppFromProto(spec)
		if err != nil {
			s.log.Error("skipping stored app", "app", spec.GetName(), "error", err)
			continue
		}
		if err := config.CheckRoutes(append(all[:len(all):len(all)], c)); err != nil {
			s.log.Error("skipping stored app", "app", c.Name, "error", err)
			continue
		}
		all = append(all, c)
		sources[c.Name] = sourceAPI
	}
	s.mu.Lock()
	var added []*app
	for _, c := range all {
		if _, ok := s.apps[c.Name]; ok {
			continue
		}
		a := newApp(s, c, sources[c.Name])
		s.apps[c.Name] = a
		added = append(added, a)
	}
	s.mu.Unlock()
	for _, a := range added {
		a.begin()
		a.log.Info("app added", "source", a.source, "start", string(a.cfg.Start), "processes", a.cfg.Processes)
	}
	return nil
}

// Reload applies a re-read config file: apps it no longer has are removed,
// new ones added, changed ones restarted with their new config, the rest
// left alone. Nothing changes when the new set is invalid.
func (s *Supervisor) Reload(ctx context.Context, cfgApps []config.App) error {
	s.mu.Lock()
	var apiApps []config.App
	var gone []*app
	seen := make(map[string]bool, len(cfgApps))
	for _, c := range cfgApps {
		seen[c.Name] = true
	}
	for name, a := range s.apps {
		a.mu.Lock()
		src, cfg := a.source, a.cfg
		a.mu.Unlock()
		switch {
		case src == sourceAPI && seen[name]:
			s.mu.Unlock()
			return fmt.Errorf("app %q: defined in the config file and applied through the API; delete it with ancmctl first: %w", name, ErrPrecondition)
		case src == sourceAPI:
			apiApps = append(apiApps, cfg)
		case !seen[name]:
			gone = append(gone, a)
		}
	}
	s.mu.Unlock()
	if err := config.CheckRoutes(append(apiApps, cfgApps...)); err != nil {
		return err
	}
	for _, a := range gone {
		if _, err := s.remove(ctx, a.cfg.Name, sourceConfig); err != nil {
			return err
		}
	}
	for _, c := range cfgApps {
		if _, _, err := s.apply(ctx, c, sourceConfig, false); err != nil {
			return err
		}
	}
	return nil
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

// Get returns an app's config and status.
func (s *Supervisor) Get(name string) (*ancmv1.App, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.protoLocked(), nil
}

// List returns every app, by name.
func (s *Supervisor) List() []*ancmv1.App {
	s.mu.Lock()
	apps := make([]*app, 0, len(s.apps))
	for _, a := range s.apps {
		apps = append(apps, a)
	}
	s.mu.Unlock()
	out := make([]*ancmv1.App, 0, len(apps))
	for _, a := range apps {
		a.mu.Lock()
		out = append(out, a.protoLocked())
		a.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetSpec().GetName() < out[j].GetSpec().GetName() })
	return out
}

// Apply adds or changes an app applied through the API and keeps it in the
// store. An app from the config file cannot be changed this way.
func (s *Supervisor) Apply(ctx context.Context, c config.App, dryRun bool) (ancmv1.ApplyChange, *ancmv1.App, error) {
	return s.apply(ctx, c, sourceAPI, dryRun)
}

func (s *Supervisor) apply(ctx context.Context, c config.App, source string, dryRun bool) (ancmv1.ApplyChange, *ancmv1.App, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, nil, ErrClosed
	}
	existing := s.apps[c.Name]
	others := make([]config.App, 0, len(s.apps))
	for name, a := range s.apps {
		if name == c.Name {
			continue
		}
		a.mu.Lock()
		others = append(others, a.cfg)
		a.mu.Unlock()
	}
	s.mu.Unlock()

	if existing != nil {
		existing.mu.Lock()
		src := existing.source
		existing.mu.Unlock()
		if src != source {
			return 0, nil, fmt.Errorf("app %q is defined in the config file; change it there and send SIGHUP: %w", c.Name, ErrPrecondition)
		}
	}
	if err := config.CheckRoutes(append(others, c)); err != nil {
		return 0, nil, &FieldError{Field: "app.path_prefix", Message: err.Error()}
	}
	if existing == nil {
		if dryRun {
			a := newApp(s, c, source)
			return ancmv1.ApplyChange_APPLY_CHANGE_ADDED, a.protoLocked(), nil
		}
		if source == sourceAPI {
			if err := s.store.put(c.Proto()); err != nil {
				return 0, nil, fmt.Errorf("store app %q: %w", c.Name, err)
			}
		}
		a := newApp(s, c, source)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return 0, nil, ErrClosed
		}
		if _, raced := s.apps[c.Name]; raced {
			s.mu.Unlock()
			return 0, nil, fmt.Errorf("app %q: %w", c.Name, ErrExists)
		}
		s.apps[c.Name] = a
		s.mu.Unlock()
		a.begin()
		a.log.Info("app added", "source", source)
		a.emit(ancmv1.EventType_EVENT_TYPE_APPLIED, nil, "added")
		a.mu.Lock()
		defer a.mu.Unlock()
		return ancmv1.ApplyChange_APPLY_CHANGE_ADDED, a.protoLocked(), nil
	}

	a := existing
	a.mu.Lock()
	same := a.cfg.Equal(c)
	a.mu.Unlock()
	if same {
		a.mu.Lock()
		defer a.mu.Unlock()
		return ancmv1.ApplyChange_APPLY_CHANGE_UNCHANGED, a.protoLocked(), nil
	}
	if dryRun {
		preview := newApp(s, c, source)
		return ancmv1.ApplyChange_APPLY_CHANGE_RESTARTED, preview.protoLocked(), nil
	}
	if source == sourceAPI {
		if err := s.store.put(c.Proto()); err != nil {
			return 0, nil, fmt.Errorf("store app %q: %w", c.Name, err)
		}
	}
	err := finish(ctx, func() {
		a.reconfigure(c)
		a.emit(ancmv1.EventType_EVENT_TYPE_APPLIED, nil, "changed; restarted with the new config")
	})
	if err != nil {
		return 0, nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return ancmv1.ApplyChange_APPLY_CHANGE_RESTARTED, a.protoLocked(), nil
}

// reconfigure stops the app's instances, swaps in the new config and starts
// them again if they were running or the app is eager.
func (a *app) reconfigure(c config.App) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	wasRunning := a.run != nil
	a.mu.Unlock()
	a.stopRun()
	a.mu.Lock()
	old := a.cfg
	a.cfg = c
	if old.StdoutLog != c.StdoutLog {
		a.logs.close()
		a.logs = newAppLog(a.s.stateDir, c.Name, c.StdoutLog.Enabled, c.StdoutLog.MaxSize, c.StdoutLog.MaxFiles)
	}
	a.resetInstancesLocked()
	a.clearFailuresLocked()
	a.log.Info("app changed", "restart", wasRunning || c.Start == config.StartEager)
	if (wasRunning || c.Start == config.StartEager) && !a.stopped && !a.offline {
		a.startRunLocked()
	}
	a.recomputeLocked("config changed")
	a.mu.Unlock()
	a.checkOffline()
}

// Delete stops an app applied through the API and forgets it.
func (s *Supervisor) Delete(ctx context.Context, name string, dryRun bool) (*ancmv1.App, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	src := a.source
	p := a.protoLocked()
	a.mu.Unlock()
	if src != sourceAPI {
		return nil, fmt.Errorf("app %q is defined in the config file; remove it there and send SIGHUP: %w", name, ErrPrecondition)
	}
	if dryRun {
		return p, nil
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
	a.mu.Lock()
	a.deleted = true
	a.mu.Unlock()
	s.mu.Lock()
	delete(s.apps, name)
	s.mu.Unlock()
	s.table.remove(name)
	a.log.Info("app deleted; stopping its instances")
	err = finish(ctx, func() {
		a.end()
		a.emit(ancmv1.EventType_EVENT_TYPE_DELETED, nil, "deleted")
	})
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.protoLocked(), nil
}

// finish runs op to its end even when ctx ends first, and then returns
// ctx's error: the caller's deadline is honoured while the change, which
// must not stop half-way, completes in the background.
func finish(ctx context.Context, op func()) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		op()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the change goes on in the background: %w", ctx.Err())
	}
}

// Start starts an app's instances, clearing an operator stop and past
// failures. With wait it returns once an instance is ready or a start failed.
func (s *Supervisor) Start(ctx context.Context, name string, wait bool) (*ancmv1.App, error) {
	return s.operatorStart(ctx, name, wait, false)
}

// Stop stops an app's instances; it stays STOPPED until started.
func (s *Supervisor) Stop(ctx context.Context, name string, wait bool) (*ancmv1.App, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.stopped = true
	a.recomputeLocked("stopped by operator")
	a.mu.Unlock()
	a.log.Info("app stopping by operator request")
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.opMu.Lock()
		defer a.opMu.Unlock()
		a.stopRun()
		a.emit(ancmv1.EventType_EVENT_TYPE_STOPPED, nil, "stopped by operator")
	}()
	if wait {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Get(name)
}

// Restart stops every instance and starts them again.
func (s *Supervisor) Restart(ctx context.Context, name string, wait bool) (*ancmv1.App, error) {
	return s.operatorStart(ctx, name, wait, true)
}

// operatorStart is Start, and with restart first stops what runs.
func (s *Supervisor) operatorStart(ctx context.Context, name string, wait, restart bool) (*ancmv1.App, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, err
	}
	a.opMu.Lock()
	a.mu.Lock()
	offline := a.offline
	a.mu.Unlock()
	if offline {
		a.opMu.Unlock()
		return nil, fmt.Errorf("app %q is offline: remove %s first: %w", name, a.offlinePath(), ErrPrecondition)
	}
	verb, ev := "started", ancmv1.EventType_EVENT_TYPE_STARTED
	if restart {
		verb, ev = "restarted", ancmv1.EventType_EVENT_TYPE_RESTARTED
		a.stopRun()
	}
	a.mu.Lock()
	a.stopped = false
	a.clearFailuresLocked()
	if restart {
		a.resetRestartsLocked()
	}
	a.startRunLocked()
	fails := a.startFailures
	a.recomputeLocked(verb + " by operator")
	a.mu.Unlock()
	a.opMu.Unlock()
	a.log.Info("app " + verb + " by operator")
	a.emit(ev, nil, verb+" by operator")
	if wait {
		err := a.waitFor(ctx, func() bool {
			return a.state == appRunning || a.state == appFailed || a.startFailures > fails || a.stopped || a.deleted
		})
		if err != nil {
			return nil, err
		}
	}
	return s.Get(name)
}

func (a *app) resetRestartsLocked() {
	for _, in := range a.insts {
		in.restarts = 0
	}
}

// Activate starts an idle app and waits until it has a ready instance or
// has failed to start, bounded by its startup_timeout.
func (s *Supervisor) Activate(ctx context.Context, name string) (*ancmv1.ActivateResponse, error) {
	a, err := s.get(name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	timeout := a.cfg.StartupTimeout
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	return a.activate(ctx), nil
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
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, a := range apps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.end()
			}()
		}
		wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.New("apps did not stop in time")
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

// Closed is closed when Shutdown has run.
func (s *Supervisor) Closed() <-chan struct{} { return s.closeC }
