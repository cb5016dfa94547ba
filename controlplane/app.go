package controlplane

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

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
	// inboxSize is how many messages an app's owner holds before senders
	// wait.
	inboxSize = 64
)

// Sources of an app.
const (
	sourceConfig = "config"
	sourceAPI    = "api"
)

// app is one app under supervision: a goroutine, its owner, that holds the
// app's model and is the only one to change it. API calls, what instances
// report, offline-file changes and timers are messages to it; each
// message's event goes through next, and the owner carries out the
// effects. Readers get the snapshot published after every step.
type app struct {
	s     *Supervisor
	name  string
	log   hclog.Logger
	inbox chan message
	done  chan struct{}
	snap  atomic.Pointer[snapshot]

	// Owned by the loop goroutine.
	m       model
	logs    *appLog
	oldLogs []*appLog // replaced by a stdout_log change; closed at the end
	logCfg  config.StdoutLog
	runners map[uint64]*runner
	waiters []*message
	seen    os.FileInfo // the offline file as last read
	wg      sync.WaitGroup
	exit    bool
}

// snapshot is the app as readers see it between two steps of its owner.
type snapshot struct {
	app     *ancmv1.App
	spec    config.App
	source  string
	logs    *appLog
	history []genRecord
}

// waitFunc tells whether a call is answered: given the model before its
// event and the model now, done and the call's error.
type waitFunc func(before, now *model) (done bool, err error)

// message is one event for the owner, with the reply of an API call.
type message struct {
	ev     event
	ctx    context.Context
	wait   waitFunc // nil: answered once applied
	before model
	reply  chan error // nil for reports and timers
}

func newApp(s *Supervisor, spec config.App, source string, gen uint64, history []genRecord) *app {
	a := &app{
		s:       s,
		name:    spec.Name,
		log:     s.log.Named("app").With("app", spec.Name),
		inbox:   make(chan message, inboxSize),
		done:    make(chan struct{}),
		runners: map[uint64]*runner{},
	}
	a.m = newModel(spec, source, gen, history, s.now())
	a.m.window = s.failWindow
	a.logs, a.logCfg = newAppLog(s.stateDir, spec.Name, spec.StdoutLog.Enabled, spec.StdoutLog.MaxSize, spec.StdoutLog.MaxFiles), spec.StdoutLog
	a.publishSnapshot()
	return a
}

// begin starts the owner.
func (a *app) begin() {
	on, body, _ := a.readOffline()
	_ = a.step(evBegin{offline: on, body: body})
	a.s.prewarm(a.m.spec) // standbys for an on-demand app's first start (isolation.go)
	go a.loop()
}

// post delivers a report or timer event; it never blocks once the owner is
// gone.
func (a *app) post(ev event) {
	select {
	case a.inbox <- message{ev: ev}:
	case <-a.done:
	}
}

// call sends an API event and waits for its answer or ctx.
func (a *app) call(ctx context.Context, ev event, wait waitFunc) error {
	reply, err := a.send(ctx, ev, wait)
	if err != nil {
		return err
	}
	return a.await(ctx, reply)
}

// send hands an API event to the owner; its answer comes on reply. The
// owner drops the wait when ctx ends.
func (a *app) send(ctx context.Context, ev event, wait waitFunc) (<-chan error, error) {
	msg := message{ev: ev, ctx: ctx, wait: wait, reply: make(chan error, 1)}
	select {
	case a.inbox <- msg:
		return msg.reply, nil
	case <-a.done:
		return nil, a.gone()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// await waits for the answer of a sent event, or ctx.
func (a *app) await(ctx context.Context, reply <-chan error) error {
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-a.done:
		select {
		case err := <-reply:
			return err
		default:
			return a.gone()
		}
	}
}

func (a *app) gone() error {
	return errors.Join(ErrClosed, errors.New("app "+a.name+" is gone"))
}

func (a *app) loop() {
	defer close(a.done)
	t := time.NewTicker(offlinePoll)
	defer t.Stop()
	for !a.exit {
		select {
		case msg := <-a.inbox:
			a.handle(msg)
		case <-t.C:
			if on, body, changed := a.readOffline(); changed {
				if err := a.step(evOffline{on: on, body: body}); err != nil {
					a.log.Debug("offline change refused", "error", err)
				}
			}
			a.answerWaiters()
		}
	}
	a.wg.Wait()
	a.s.discardStandbys(a.name)
	a.logs.close()
	for _, l := range a.oldLogs {
		l.close()
	}
	for _, w := range a.waiters {
		ok, err := w.wait(&w.before, &a.m)
		if !ok {
			err = a.gone()
		}
		w.reply <- err
	}
	a.waiters = nil
}

func (a *app) handle(msg message) {
	before := a.m
	err := a.step(msg.ev)
	if msg.reply == nil {
		if err != nil {
			a.log.Debug("event refused", "error", err)
		}
		return
	}
	if err != nil || msg.wait == nil {
		msg.reply <- err
		return
	}
	if _, ok := msg.ev.(evApply); ok {
		// A changed offline_file is looked at before the answer.
		if on, body, changed := a.readOffline(); changed {
			_ = a.step(evOffline{on: on, body: body})
		}
	}
	msg.before = before
	a.waiters = append(a.waiters, &msg)
	a.answerWaiters()
}

// step runs one event through next and carries out the effects.
func (a *app) step(ev event) error {
	now := a.s.now()
	n, effs, err := next(a.m, ev, now)
	if err != nil {
		return err
	}
	a.m = n
	// An ending app's route stays as it was: a deleted one is gone from
	// the table already, and at shutdown data planes keep what they have
	// and wait for the next control plane rather than answer 503.
	rev := a.s.table.revision()
	if !n.ending {
		rev = a.s.table.set(n.route(now))
	}
	for _, e := range effs {
		a.carry(e, rev)
	}
	a.publishSnapshot()
	a.answerWaiters()
	return nil
}

func (a *app) answerWaiters() {
	keep := a.waiters[:0]
	for _, w := range a.waiters {
		ok, err := w.wait(&w.before, &a.m)
		switch {
		case ok:
			w.reply <- err
		case w.ctx != nil && w.ctx.Err() != nil:
			w.reply <- w.ctx.Err()
		default:
			keep = append(keep, w)
		}
	}
	a.waiters = keep
}

// carry carries out one effect. rev is the table revision that holds the
// model the effect came from.
func (a *app) carry(e effect, rev uint64) {
	switch e := e.(type) {
	case effStart:
		if l := e.spec.StdoutLog; l != a.logCfg {
			// Instances of the old generation keep the files they have
			// open until they stop.
			a.oldLogs = append(a.oldLogs, a.logs)
			a.logs, a.logCfg = newAppLog(a.s.stateDir, a.name, l.Enabled, l.MaxSize, l.MaxFiles), l
		}
		r := &runner{id: e.id, index: e.index, gen: e.gen, spec: e.spec, logs: a.logs, log: a.log,
			spawn: a.s.spawner, box: a.s.sandbox, post: a.post, stop: make(chan struct{})}
		a.runners[e.id] = r
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			r.run(a.s.ctx)
		}()
	case effStop:
		if r := a.runners[e.id]; r != nil {
			r.requestStop()
		}
	case effDrain:
		epoch := a.s.table.epoch
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			why := a.s.planes.waitDrained(a.s.ctx, epoch, rev, e.addr, e.timeout)
			a.log.Debug("instance drained", "address", e.addr, "revision", rev, "result", why)
			a.post(evDrained{id: e.id, reason: why})
		}()
	case effTimer:
		d := e.d
		if _, ok := e.ev.(evBackoffDone); ok {
			d = jitter(d)
		}
		time.AfterFunc(d, func() { a.post(e.ev) })
	case effEmit:
		a.emit(e)
	case effSave:
		a.save()
	case effExit:
		a.exit = true
	}
	a.forgetRunners()
}

// forgetRunners drops the runners of instances the model no longer has.
func (a *app) forgetRunners() {
	for id := range a.runners {
		if a.m.find(id) == nil {
			delete(a.runners, id)
		}
	}
}

func (a *app) emit(e effEmit) {
	m := &a.m
	ev := &ancmv1.Event{Type: e.typ, App: a.name, AppState: m.state, Message: e.msg, Generation: e.gen, Exit: e.exit}
	if i := e.inst; i != nil {
		idx := i.index
		ev.Instance, ev.InstanceState, ev.Pid = &idx, i.state, int32(i.pid)
	}
	if len(e.tail) > 0 {
		ev.LogTail = e.tail[max(0, len(e.tail)-eventTail):]
	}
	a.s.events.publish(ev)
	if e.inst == nil {
		a.log.Log(e.level, e.msg, "event", eventName(e.typ), "generation", e.gen)
	}
}

// save keeps an applied app's spec and history in the store, and gives the
// supervisor the spec its route checks use.
func (a *app) save() {
	m := &a.m
	a.s.noteSpec(a.name, m.spec)
	if m.source != sourceAPI || m.removed {
		return
	}
	// The spec of a rollout is stored once it has succeeded: a daemon that
	// dies during one comes back with the spec that ran before.
	var spec *ancmv1.AppSpec
	if m.rollout == nil {
		spec = m.spec.Proto()
	}
	if err := a.s.store.save(a.name, spec, historyProto(m.history)); err != nil {
		a.log.Error("store app", "error", err)
	}
}

// readOffline looks at the offline file. changed is false when it is as
// last read.
func (a *app) readOffline() (on bool, body []byte, changed bool) {
	c := &a.m.spec
	if c.OfflineFile == "" {
		changed = a.seen != nil || a.m.offline
		a.seen = nil
		return false, nil, changed
	}
	path := offlinePath(c)
	st, err := os.Stat(path)
	if err != nil {
		changed = a.seen != nil || a.m.offline
		a.seen = nil
		return false, nil, changed
	}
	if seen := a.seen; seen != nil && a.m.offline && os.SameFile(seen, st) && seen.Size() == st.Size() && seen.ModTime().Equal(st.ModTime()) {
		return true, a.m.body, false
	}
	f, err := os.Open(path)
	if err != nil {
		return a.m.offline, a.m.body, false // gone between the stat and the open: the next poll sees it
	}
	body, _ = io.ReadAll(io.LimitReader(f, maxOfflineBody))
	f.Close()
	a.seen = st
	return true, body, true
}

func eventName(t ancmv1.EventType) string {
	n := t.String()
	if len(n) > len("EVENT_TYPE_") {
		return n[len("EVENT_TYPE_"):]
	}
	return n
}
