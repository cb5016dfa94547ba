package controlplane

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

const (
	// offlinePoll is how often the offline file is looked for.
	offlinePoll = 250 * time.Millisecond
	// maxOfflineBody bounds the offline page published to data planes.
	maxOfflineBody = 1 << 20
	// failWindow is the rolling window of rapid_fails_per_minute.
	failWindow = time.Minute
	// eventTail is how many lines of output a failure event carries.
	eventTail = 5
)

// Sources of an app.
const (
	sourceConfig = "config"
	sourceAPI    = "api"
)

// app is one app under supervision. mu guards its fields and its
// instances' fields; opMu serialises operations that stop and start its
// instances (stop waits for goroutines that need mu).
type app struct {
	s    *Supervisor
	log  hclog.Logger
	opMu sync.Mutex

	mu            sync.Mutex
	cfg           config.App
	source        string
	logs          *appLog
	state         appState
	reason        string
	since         time.Time
	insts         []*instance
	run           *run
	stopping      bool // a restart or reconfiguration is stopping the instances
	stopped       bool // stopped by an operator
	deleted       bool
	failed        bool
	failures      []time.Time
	failTimer     *time.Timer
	offline       bool
	offlineBody   []byte
	offlineSeen   os.FileInfo // the offline file as last read
	lastTail      []string
	startFailures uint64        // failed starts so far, for Activate
	changed       chan struct{} // closed and replaced on every change
	bgCancel      context.CancelFunc
}

// run is one generation of an app's instance goroutines.
type run struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newApp(s *Supervisor, cfg config.App, source string) *app {
	a := &app{
		s:       s,
		log:     s.log.Named("app").With("app", cfg.Name),
		cfg:     cfg,
		source:  source,
		changed: make(chan struct{}),
	}
	a.logs = newAppLog(s.stateDir, cfg.Name, cfg.StdoutLog.Enabled, cfg.StdoutLog.MaxSize, cfg.StdoutLog.MaxFiles)
	a.resetInstancesLocked()
	return a
}

func (a *app) resetInstancesLocked() {
	a.insts = make([]*instance, a.cfg.Processes)
	for i := range a.insts {
		a.insts[i] = &instance{index: uint32(i)}
	}
}

// begin starts the app's background work: the offline watch, and eager
// start.
func (a *app) begin() {
	ctx, cancel := context.WithCancel(a.s.ctx)
	a.mu.Lock()
	a.bgCancel = cancel
	a.mu.Unlock()
	a.checkOffline()
	a.mu.Lock()
	if a.cfg.Start == config.StartEager && !a.offline {
		a.startRunLocked()
	}
	a.recomputeLocked("")
	a.mu.Unlock()
	a.s.prewarm(a)
	go a.watchOffline(ctx)
}

// end stops the app's background work and its instances, for delete and
// shutdown.
func (a *app) end() {
	a.mu.Lock()
	a.deleted = true
	if a.bgCancel != nil {
		a.bgCancel()
	}
	if a.failTimer != nil {
		a.failTimer.Stop()
	}
	a.mu.Unlock()
	a.opMu.Lock()
	a.stopRun()
	a.opMu.Unlock()
	a.s.discardStandbys(a)
	a.logs.close()
}

// startRunLocked starts a goroutine per instance, if none run.
func (a *app) startRunLocked() {
	if a.run != nil || a.deleted {
		return
	}
	ctx, cancel := context.WithCancel(a.s.ctx)
	r := &run{cancel: cancel}
	a.run = r
	for _, inst := range a.insts {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			a.runInstance(ctx, inst)
		}()
	}
}

// stopRun stops every instance gracefully and waits for them. The caller
// holds opMu and not mu.
func (a *app) stopRun() {
	a.mu.Lock()
	r := a.run
	if r != nil {
		a.stopping = true
		a.recomputeLocked("")
	}
	a.mu.Unlock()
	if r == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
	a.mu.Lock()
	a.run = nil
	a.stopping = false
	a.recomputeLocked("")
	a.mu.Unlock()
}

// derive computes the app's state from its flags and instances.
func (a *app) deriveLocked() (appState, string) {
	live, ready := false, false
	for _, in := range a.insts {
		switch in.state {
		case instStarting, instDraining, instStopping, instBackoff:
			live = true
		case instReady:
			live = true
			if in.healthy {
				ready = true
			}
		}
	}
	switch {
	case a.offline:
		return appOffline, fmt.Sprintf("offline file %s exists", a.offlinePath())
	case a.stopped && live:
		return appStopping, "stopping by operator request"
	case a.stopped:
		return appStopped, "stopped by operator"
	case a.failed:
		return appFailed, a.failedReasonLocked()
	case a.stopping:
		return appStopping, ""
	case a.run == nil:
		return appIdle, ""
	case ready:
		return appRunning, ""
	default:
		return appStarting, ""
	}
}

func (a *app) failedReasonLocked() string {
	last := ""
	for _, in := range a.insts {
		if in.lastExit != nil && !in.lastExit.GetPlanned() {
			last = in.lastExit.GetReason()
		}
	}
	return fmt.Sprintf("%d failures within a minute (rapid_fails_per_minute = %d); last: %s", len(a.failures), a.cfg.RapidFailsPerMinute, last)
}

func (a *app) offlinePath() string {
	return filepath.Join(a.cfg.Dir, a.cfg.OfflineFile)
}

// recomputeLocked derives the app's state, moves to it through the state
// machine, publishes the app's route and wakes waiters. It is the one place
// an app's state changes.
func (a *app) recomputeLocked(reason string) {
	to, why := a.deriveLocked()
	if reason == "" {
		reason = why
	}
	if to != a.state {
		if err := checkAppMove(a.state, to); err != nil {
			// A bug in derive, not an input error: say so loudly, keep the
			// old state, and do not publish a state the machine forbids.
			a.log.Error("refused app state change", "error", err)
			return
		}
		from := a.state
		a.state, a.since = to, time.Now()
		a.reason = reason
		if from != ancmv1.AppState_APP_STATE_UNSPECIFIED {
			a.log.Debug("app state", "from", stateName(from), "to", stateName(to), "reason", reason)
			a.emitAppLocked(ancmv1.EventType_EVENT_TYPE_STATE_CHANGED, reason)
		}
	} else {
		a.reason = reason
	}
	if !a.deleted {
		a.s.table.set(a.routeLocked())
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// setInstanceState moves an instance through its state machine.
func (a *app) setInstanceState(inst *instance, to instanceState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.setInstanceStateLocked(inst, to)
}

func (a *app) setInstanceStateLocked(inst *instance, to instanceState) bool {
	if err := checkInstanceMove(inst.state, to); err != nil {
		a.log.Error("refused instance state change", "instance", inst.index, "error", err)
		return false
	}
	inst.state = to
	a.recomputeLocked("")
	return true
}

func (a *app) setStarting(inst *instance, pid, port int, token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	inst.pid, inst.port, inst.token = pid, port, token
	if pid != 0 {
		inst.startedAt = time.Now()
	}
	inst.readySince = time.Time{}
	inst.healthy = false
	a.setInstanceStateLocked(inst, instStarting)
}

func (a *app) setReady(inst *instance) {
	a.mu.Lock()
	defer a.mu.Unlock()
	inst.readySince = time.Now()
	inst.healthy = true
	a.setInstanceStateLocked(inst, instReady)
}

func (a *app) setHealthy(inst *instance, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	inst.healthy = ok
	a.recomputeLocked("")
}

// recordFailure counts an unplanned exit or failed start in the rolling
// minute. It returns true when the app has just become FAILED.
func (a *app) recordFailure(inst *instance, reason string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	a.pruneFailuresLocked(now)
	a.failures = append(a.failures, now)
	if len(a.failures) <= a.cfg.RapidFailsPerMinute || a.failed || a.stopped || a.deleted {
		return a.failed
	}
	a.failed = true
	a.lastTail = a.logs.tailText(inst.index, tailOnFailure)
	a.scheduleUnfailLocked(now)
	a.recomputeLocked("")
	a.log.Error("app failed: too many failures; not starting it again until the oldest ages out or an operator starts it", "failures", len(a.failures), "rapid_fails_per_minute", a.cfg.RapidFailsPerMinute, "last_reason", reason)
	a.emitAppLocked(ancmv1.EventType_EVENT_TYPE_FAILED, a.reason)
	go func() {
		a.opMu.Lock()
		defer a.opMu.Unlock()
		a.stopRun()
	}()
	return true
}

func (a *app) pruneFailuresLocked(now time.Time) {
	i := 0
	for i < len(a.failures) && now.Sub(a.failures[i]) >= failWindow {
		i++
	}
	a.failures = a.failures[i:]
}

// scheduleUnfailLocked clears FAILED when the oldest failure ages out.
func (a *app) scheduleUnfailLocked(now time.Time) {
	if a.failTimer != nil {
		a.failTimer.Stop()
	}
	d := failWindow - now.Sub(a.failures[0])
	a.failTimer = time.AfterFunc(d, func() {
		a.opMu.Lock()
		defer a.opMu.Unlock()
		a.mu.Lock()
		defer a.mu.Unlock()
		if !a.failed || a.deleted {
			return
		}
		a.pruneFailuresLocked(time.Now())
		a.failed = false
		a.log.Info("failures aged out; app may start again")
		if a.cfg.Start == config.StartEager && !a.stopped && !a.offline {
			a.startRunLocked()
		}
		a.recomputeLocked("failures aged out")
	})
}

// clearFailuresLocked forgets failures, for an operator start and a config
// change.
func (a *app) clearFailuresLocked() {
	a.failed = false
	a.failures = nil
	a.lastTail = nil
	if a.failTimer != nil {
		a.failTimer.Stop()
		a.failTimer = nil
	}
}

// watchOffline polls for the offline file.
func (a *app) watchOffline(ctx context.Context) {
	t := time.NewTicker(offlinePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.checkOffline()
		}
	}
}

// checkOffline takes the app offline when its offline file appears (drain
// and stop its instances) and back when the file goes.
func (a *app) checkOffline() {
	a.mu.Lock()
	name := a.cfg.OfflineFile
	path := a.offlinePath()
	was, seen := a.offline, a.offlineSeen
	a.mu.Unlock()
	var st os.FileInfo
	err := os.ErrNotExist
	if name != "" {
		st, err = os.Stat(path)
	}
	if err != nil {
		if was {
			a.setOffline(false, nil, nil)
		}
		return
	}
	if was && seen != nil && os.SameFile(seen, st) && seen.Size() == st.Size() && seen.ModTime().Equal(st.ModTime()) {
		return // the same page: nothing to read again
	}
	f, err := os.Open(path)
	if err != nil {
		return // gone between the stat and the open: the next poll sees it
	}
	body, _ := io.ReadAll(io.LimitReader(f, maxOfflineBody))
	f.Close()
	a.setOffline(true, body, st)
}

// setOffline takes the app offline with the page body (st is the file it
// was read from), or back online.
func (a *app) setOffline(on bool, body []byte, st os.FileInfo) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	was := a.offline
	a.offline, a.offlineBody, a.offlineSeen = on, body, st
	a.recomputeLocked("")
	a.mu.Unlock()
	switch {
	case on && !was:
		a.log.Info("offline file found; draining and stopping", "file", a.offlinePath())
		a.emit(ancmv1.EventType_EVENT_TYPE_OFFLINE, nil, "offline file "+a.offlinePath()+" exists")
		a.stopRun()
	case !on && was:
		a.log.Info("offline file removed; app may start again")
		a.mu.Lock()
		a.clearFailuresLocked()
		if a.cfg.Start == config.StartEager && !a.stopped {
			a.startRunLocked()
		}
		a.recomputeLocked("offline file removed")
		a.mu.Unlock()
		a.emit(ancmv1.EventType_EVENT_TYPE_ONLINE, nil, "offline file removed")
	}
}

// activate starts the app if it is idle and waits until it has a ready
// instance, a start of it fails, or it cannot start.
func (a *app) activate(ctx context.Context) *ancmv1.ActivateResponse {
	a.mu.Lock()
	if a.state == appIdle && !a.deleted {
		a.log.Debug("activating")
		a.startRunLocked()
		a.recomputeLocked("activated by a request")
	}
	failuresAtStart := a.startFailures
	a.mu.Unlock()
	for {
		a.mu.Lock()
		resp := &ancmv1.ActivateResponse{State: a.state, Reason: a.reason, Revision: a.s.table.revision(), Epoch: a.s.table.epoch}
		done := true
		switch {
		case a.state == appRunning:
			resp.Ready = true
		case a.state == appFailed, a.state == appStopped, a.state == appOffline, a.deleted:
		case a.state == appStopping && a.stopped:
		case a.startFailures > failuresAtStart:
			resp.Reason = a.lastExitReasonLocked()
		default:
			done = false
		}
		if done && !resp.Ready && a.cfg.ErrorDetail {
			resp.LogTail = append([]string(nil), a.lastTail...)
		}
		wait := a.changed
		a.mu.Unlock()
		if done {
			return resp
		}
		select {
		case <-ctx.Done():
			return &ancmv1.ActivateResponse{State: resp.State, Reason: "not ready within startup_timeout", Revision: resp.Revision, Epoch: resp.Epoch}
		case <-wait:
		}
	}
}

func (a *app) lastExitReasonLocked() string {
	var last *ancmv1.ExitStatus
	for _, in := range a.insts {
		if in.lastExit != nil && !in.lastExit.GetPlanned() && (last == nil || in.lastExit.GetTime().AsTime().After(last.GetTime().AsTime())) {
			last = in.lastExit
		}
	}
	if last == nil {
		return a.reason
	}
	return last.GetReason()
}

// waitFor waits until pred holds for the app, or ctx ends.
func (a *app) waitFor(ctx context.Context, pred func() bool) error {
	for {
		a.mu.Lock()
		ok := pred()
		wait := a.changed
		a.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait:
		}
	}
}

// routeLocked is the app's entry in the endpoint table.
func (a *app) routeLocked() *ancmv1.AppRoute {
	r := &ancmv1.AppRoute{
		App:            a.cfg.Name,
		Hosts:          a.cfg.Hosts,
		PathPrefix:     a.cfg.PathPrefix,
		State:          a.state,
		StateReason:    a.reason,
		QueueSize:      uint32(a.cfg.QueueSize),
		StartupTimeout: durationpb.New(a.cfg.StartupTimeout),
		RequestTimeout: durationpb.New(a.cfg.RequestTimeout),
		ErrorDetail:    a.cfg.ErrorDetail,
		Compat:         a.cfg.Compat,
	}
	if a.offline {
		r.OfflineBody = a.offlineBody
	}
	if a.cfg.ErrorDetail && a.state == appFailed {
		r.LogTail = a.lastTail
	}
	for _, in := range a.insts {
		if in.state != instReady && in.state != instDraining {
			continue
		}
		r.Endpoints = append(r.Endpoints, &ancmv1.Endpoint{
			Instance: in.index,
			Address:  fmt.Sprintf("127.0.0.1:%d", in.port),
			Token:    in.token,
			State:    in.state,
			Ready:    in.state == instReady && in.healthy,
			Draining: in.state == instDraining,
		})
	}
	return r
}

// protoLocked is the app as the API reports it.
func (a *app) protoLocked() *ancmv1.App {
	p := &ancmv1.App{
		Spec:        a.cfg.Proto(),
		State:       a.state,
		StateReason: a.reason,
		StateSince:  timestamppb.New(a.since),
		Source:      a.source,
		LogTail:     a.lastTail,
	}
	for _, in := range a.insts {
		pi := &ancmv1.Instance{
			Index:    in.index,
			State:    in.state,
			Pid:      int32(in.pid),
			Port:     uint32(in.port),
			Restarts: in.restarts,
			LastExit: in.lastExit,
		}
		if in.port != 0 {
			pi.Address = fmt.Sprintf("127.0.0.1:%d", in.port)
		}
		if !in.startedAt.IsZero() {
			pi.StartedAt = timestamppb.New(in.startedAt)
		}
		if !in.readySince.IsZero() {
			pi.ReadySince = timestamppb.New(in.readySince)
		}
		if a.cfg.StdoutLog.Enabled {
			pi.LogPath = a.logs.path(in.index)
		}
		if pi.State == ancmv1.InstanceState_INSTANCE_STATE_UNSPECIFIED {
			pi.State = instExited
		}
		p.Restarts += in.restarts
		p.Instances = append(p.Instances, pi)
	}
	return p
}

// eventLocked is an event of the app, and of inst when it is not nil, as
// they are now.
func (a *app) eventLocked(t ancmv1.EventType, inst *instance, msg string) *ancmv1.Event {
	e := &ancmv1.Event{Type: t, App: a.cfg.Name, AppState: a.state, Message: msg}
	if inst != nil {
		idx := inst.index
		e.Instance = &idx
		e.InstanceState = inst.state
		e.Pid = int32(inst.pid)
	}
	return e
}

func (a *app) emit(t ancmv1.EventType, inst *instance, msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.s.events.publish(a.eventLocked(t, inst, msg))
}

// emitExit records an instance's end; pid is the process that ended (the
// instance has none any more).
func (a *app) emitExit(t ancmv1.EventType, inst *instance, pid int, es *ancmv1.ExitStatus) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.eventLocked(t, inst, es.GetReason())
	e.Pid, e.Exit = int32(pid), es
	if !es.GetPlanned() {
		e.LogTail = a.logs.tailText(inst.index, eventTail)
	}
	a.s.events.publish(e)
}

func (a *app) emitAppLocked(t ancmv1.EventType, msg string) {
	a.s.events.publish(a.eventLocked(t, nil, msg))
}
