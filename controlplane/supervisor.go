package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

// Options configure a Supervisor.
type Options struct {
	Logger hclog.Logger
	// StateDir holds the store and captured logs; it is created if missing.
	StateDir string
	// Clock is the time the apps' decisions see; nil means time.Now.
	Clock func() time.Time
}

// Supervisor owns the apps: their config, their processes, the endpoint
// table, the events and the store. Each app is run by its own goroutine
// (see app.go); the Supervisor's lock guards only the set of apps and the
// specs their routes are checked against.
type Supervisor struct {
	log        hclog.Logger
	stateDir   string
	spawner    *spawner
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
			return errors.Join(append(errs, err)...)
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
			m := newModel(c, source, 1, nil)
			return ancmv1.ApplyChange_APPLY_CHANGE_ADDED, appProto(&m, newAppLog(s.stateDir, c.Name, false, 0, 0)), nil, nil
		}
		// Checked and inserted under one lock: two applies of the same
		// route cannot both pass.
		a := newApp(s, c, source, 1, nil)
		s.apps[c.Name], s.specs[c.Name] = a, c
		s.mu.Unlock()
		if source == sourceAPI {
			err := s.store.put(c.Proto())
			if err == nil {
				err = s.store.putHistory(c.Name, historyProto(a.snap.Load().history))
			}
			if err != nil {
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
		m := newModel(c, source, 1, nil)
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
	s.events.publish(&ancmv1.Event{Type: ancmv1.EventType_EVENT_TYPE_DELETED, App: name, Message: "deleted"})
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
		w = func(_, now *model) (bool, error) { return len(now.insts) == 0, nil }
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
