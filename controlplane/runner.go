package controlplane

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/types/known/timestamppb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
	"github.com/ancm-dev/ancm/sandbox"
)

// runner runs one process of an instance and reports what happens to it to
// the app's owner: started, ready, health changes, exited. It decides
// nothing: restarts, drains and stops are the owner's, which asks for a
// stop by closing stop.
type runner struct {
	id    uint64
	index uint32
	gen   uint64
	spec  config.App
	logs  *appLog
	log   hclog.Logger
	spawn *spawner
	box   *sandbox.Manager // nil: no isolation (see isolation.go)
	post  func(event)

	stop     chan struct{}
	stopOnce sync.Once
}

// requestStop asks the runner to stop its process; asking twice is fine.
func (r *runner) requestStop() { r.stopOnce.Do(func() { close(r.stop) }) }

// run starts the process, waits for it to be ready, watches it and stops it
// when asked. It returns when the process has ended and its end has been
// reported. ctx ending is a stop too.
func (r *runner) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	cfg := &r.spec
	port, err := freePort()
	if err != nil {
		r.startFailed(fmt.Errorf("no free port: %w", err))
		return
	}
	token := newToken()
	base, err := baseEnv(cfg)
	if err != nil {
		r.startFailed(err)
		return
	}
	env := childEnv(base, cfg, r.index, port, token)
	lookup := envLookup(env)
	path, err := resolveCommand(os.Expand(cfg.Command, lookup), cfg.Dir, env)
	if err != nil {
		r.startFailed(err)
		return
	}
	args := make([]string, len(cfg.Args))
	for i, arg := range cfg.Args {
		args[i] = os.Expand(arg, lookup)
	}
	cmd := &exec.Cmd{Path: path, Args: append([]string{path}, args...), Dir: cfg.Dir, Env: env}
	box, err := isolate(r.box, cfg, r.index, r.id, cmd)
	if err != nil {
		r.startFailed(err)
		return
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_, _ = box.Release()
		r.startFailed(err)
		return
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		_, _ = box.Release()
		r.startFailed(err)
		return
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = box.Start(cmd, r.spawn.start) // through a standby when one is ready
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		_, _ = box.Release()
		r.startFailed(err)
		return
	}
	pid := cmd.Process.Pid
	captured := make(chan struct{}, 2)
	go func() { r.logs.capture(r.index, "stdout", outR); outR.Close(); captured <- struct{}{} }()
	go func() { r.logs.capture(r.index, "stderr", errR); errR.Close(); captured <- struct{}{} }()
	exitCh := make(chan exitStatus, 1)
	go func() {
		err := cmd.Wait()
		exitCh <- statusOf(cmd.ProcessState, err)
	}()
	r.log.Info("instance started", "instance", r.index, "generation", r.gen, "pid", pid, "port", port)
	r.post(evInstStarted{id: r.id, pid: pid, port: port, token: token})

	// ended reports the end once the process's last output is in (or after
	// a short wait, when a straggler in its group holds the pipes), so that
	// a failure's log tail has the app's last words.
	ended := func(st exitStatus, reason string, planned, startFailure bool) {
		_ = signalGroup(pid, syscall.SIGKILL)    // whatever it left in its group goes too
		st, reason = r.released(box, st, reason) // and whatever it left in its cgroup
		t := time.NewTimer(captureDrain)
		defer t.Stop()
	wait:
		for range 2 {
			select {
			case <-captured:
			case <-t.C:
				break wait
			}
		}
		r.report(st, reason, planned, startFailure)
	}

	p := &prober{port: port, token: token, path: cfg.Health.Path, compat: cfg.Compat}
	readyCtx, readyCancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	st, exited, last := p.waitReady(readyCtx, exitCh)
	timedOut := readyCtx.Err() != nil && ctx.Err() == nil
	readyCancel()
	switch {
	case exited:
		ended(st, "exited before it was ready: "+st.String(), false, true)
		return
	case ctx.Err() != nil:
		ended(r.stopProcess(pid, port, token, exitCh), "stopped", true, false)
		return
	case timedOut:
		_ = signalGroup(pid, syscall.SIGKILL)
		reason := fmt.Sprintf("not ready within startup_timeout (%s); last readiness answer: %s", cfg.StartupTimeout, readinessAnswer(last))
		ended(<-exitCh, reason, false, true)
		return
	}
	r.log.Info("instance ready", "instance", r.index, "generation", r.gen, "pid", pid, "port", port)
	r.post(evInstReady{id: r.id})

	var tick <-chan time.Time
	if cfg.Health.Path != "" {
		t := time.NewTicker(cfg.Health.Interval)
		defer t.Stop()
		tick = t.C
	}
	fails := 0
	for {
		select {
		case st := <-exitCh:
			ended(st, "crashed: "+st.String(), false, false)
			return
		case <-ctx.Done():
			ended(r.stopProcess(pid, port, token, exitCh), "stopped", true, false)
			return
		case <-tick:
			hctx, hcancel := context.WithTimeout(ctx, min(cfg.Health.Interval, 5*time.Second))
			err := p.check(hctx)
			hcancel()
			if ctx.Err() != nil {
				continue // stopping: handled above
			}
			if err == nil {
				if fails > 0 {
					fails = 0
					r.log.Info("instance healthy again", "instance", r.index)
					r.post(evInstHealth{id: r.id, ok: true})
				}
				continue
			}
			fails++
			r.log.Warn("health check failed", "instance", r.index, "failures", fails, "error", err)
			if fails == 1 {
				r.post(evInstHealth{id: r.id, ok: false})
			}
			if fails >= healthFailures {
				reason := fmt.Sprintf("%d health checks failed in a row: %v", fails, err)
				ended(r.stopProcess(pid, port, token, exitCh), reason, false, false)
				return
			}
		}
	}
}

// stopProcess stops the process: the IIS shutdown event for compat apps,
// stop_signal to the group, SIGKILL to the group after shutdown_timeout.
// The owner has drained the instance before it asks for this.
func (r *runner) stopProcess(pid, port int, token string, exitCh <-chan exitStatus) exitStatus {
	cfg := &r.spec
	deadline := time.Now().Add(cfg.ShutdownTimeout)
	if cfg.Compat == config.CompatASPNETCore {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if err := sendIISShutdown(ctx, port, token, cfg.PathPrefix); err != nil {
			r.log.Debug("iisintegration shutdown event", "instance", r.index, "error", err)
		}
		cancel()
	}
	sig, err := config.ParseSignal(cfg.StopSignal)
	if err != nil {
		sig = syscall.SIGTERM
	}
	if err := signalGroup(pid, sig); err != nil {
		r.log.Warn("stop signal", "instance", r.index, "pid", pid, "error", err)
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case st := <-exitCh:
		return st
	case <-t.C:
		r.log.Warn("instance ignored its stop signal; killing its process group", "instance", r.index, "pid", pid, "signal", cfg.StopSignal, "shutdown_timeout", cfg.ShutdownTimeout)
		_ = signalGroup(pid, syscall.SIGKILL)
		return <-exitCh
	}
}

// startFailed reports a start that never produced a process.
func (r *runner) startFailed(err error) {
	r.report(exitStatus{code: -1, err: err, at: time.Now()}, "start failed: "+err.Error(), false, true)
}

func (r *runner) report(st exitStatus, reason string, planned, startFailure bool) {
	es := &ancmv1.ExitStatus{Code: st.code, Signal: st.signal, Reason: reason, Time: timestamppb.New(st.at), Planned: planned, OomKilled: st.oom}
	var tail []string
	switch {
	case planned:
		r.log.Info("instance stopped", "instance", r.index, "generation", r.gen, "exit_code", st.code, "signal", st.signal)
	case startFailure:
		r.logs.note(r.index, "[ancm: "+reason+"]")
		r.log.Warn("instance failed to start", "instance", r.index, "generation", r.gen, "reason", reason)
	default:
		r.log.Warn("instance exited", "instance", r.index, "generation", r.gen, "exit_code", st.code, "signal", st.signal, "reason", reason)
	}
	if !planned {
		tail = r.logs.tailText(r.index, tailOnFailure)
	}
	r.post(evInstExited{id: r.id, exit: es, startFailure: startFailure, tail: tail})
}
