package controlplane

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

const (
	// stableRun is how long an instance must stay ready for its backoff to
	// reset.
	stableRun = 10 * time.Second
	// backoffBase and backoffCap bound the delay between restarts after the
	// first, immediate one.
	backoffBase = 100 * time.Millisecond
	backoffCap  = 10 * time.Second
	// healthFailures is how many health checks in a row must fail before an
	// instance is restarted; the first failure takes it out of rotation.
	healthFailures = 3
	// drainGrace is how long a draining instance is left alone so that data
	// planes stop sending it requests before it is signalled.
	drainGrace = 200 * time.Millisecond
	// tailOnFailure is how many lines of output a failure carries.
	tailOnFailure = 20
	// captureDrain bounds the wait for an exited process's last output.
	captureDrain = 200 * time.Millisecond
)

// instance is one process slot of an app. Its fields are guarded by the
// app's mu; the goroutine running runInstance owns the process itself.
type instance struct {
	index      uint32
	state      instanceState
	pid        int
	port       int
	token      string
	startedAt  time.Time
	readySince time.Time
	restarts   uint32
	lastExit   *ancmv1.ExitStatus
	healthy    bool
}

// outcome is how one run of an instance's process ended.
type outcome struct {
	planned bool // stopped because asked
	stable  bool // it had been ready for stableRun
	reason  string
	oom     bool // killed for its memory limit
}

// backoff is the delay before the n-th restart in a row: none for the
// first, then doubling from backoffBase up to backoffCap, with ±25% jitter.
func backoff(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := backoffBase << min(n-2, 16)
	d = min(d, backoffCap)
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return d + jitter
}

func newToken() string {
	var b [16]byte
	_, _ = cryptoRead(b[:])
	return hex.EncodeToString(b[:])
}

var cryptoRead = crand.Read

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// resolveCommand finds the command: a path with a slash is taken relative to
// dir; a bare name is looked for in dir, then in PATH.
func resolveCommand(cmd, dir string, env []string) (string, error) {
	if strings.Contains(cmd, "/") {
		p := cmd
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := checkExecutable(p); err != nil {
			return "", err
		}
		return p, nil
	}
	if p := filepath.Join(dir, cmd); checkExecutable(p) == nil {
		return p, nil
	}
	path := os.Getenv("PATH")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, cmd)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in %s or PATH", cmd, dir)
}

func checkExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("command %s: %w", p, err)
	}
	if st.IsDir() {
		return fmt.Errorf("command %s is a directory", p)
	}
	if st.Mode()&0o111 == 0 {
		return fmt.Errorf("command %s is not executable", p)
	}
	return nil
}

// childEnv is the environment of an instance: base (see baseEnv), then
// the app's env, then the variables of the contract, which win.
func childEnv(base []string, cfg *config.App, index uint32, port int, token string) []string {
	env := base
	for k, v := range cfg.Env {
		env = append(env, k+"="+v)
	}
	p := strconv.Itoa(port)
	env = append(env,
		"PORT="+p,
		"ANCM_PORT="+p,
		"ANCM_TOKEN="+token,
		"ANCM_APP="+cfg.Name,
		"ANCM_INSTANCE="+strconv.Itoa(int(index)),
		"ANCM_PATH_BASE="+cfg.PathPrefix,
	)
	if cfg.Compat == "aspnetcore" {
		env = append(env,
			"ASPNETCORE_PORT="+p,
			"ASPNETCORE_TOKEN="+token,
			"ASPNETCORE_APPL_PATH="+cfg.PathPrefix,
			"ASPNETCORE_IIS_PHYSICAL_PATH="+cfg.Dir,
			// No Windows authentication: without this the IIS integration
			// middleware would trust an MS-ASPNETCORE-WINAUTHTOKEN header.
			"ASPNETCORE_IIS_HTTPAUTH=anonymous",
			"ASPNETCORE_IIS_WEBSOCKETS_SUPPORTED=true",
		)
	}
	return dedupeEnv(env)
}

// dedupeEnv keeps the last value of each variable.
func dedupeEnv(env []string) []string {
	seen := make(map[string]int, len(env))
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := seen[k]; ok {
			out[i] = kv
			continue
		}
		seen[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func envLookup(env []string) func(string) string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

// runInstance owns one instance slot until ctx ends: it starts the process,
// restarts it after unplanned exits with backoff, and stops it when asked.
func (a *app) runInstance(ctx context.Context, inst *instance) {
	inRow := 0
	for {
		o := a.runOnce(ctx, inst)
		if o.planned || ctx.Err() != nil {
			return
		}
		if a.recordFailure(inst, o.reason) {
			return // the app is FAILED; enterFailed stops the rest
		}
		if o.stable {
			inRow = 0
		}
		inRow++
		if d := backoff(inRow); d > 0 {
			a.setInstanceState(inst, instBackoff)
			a.log.Warn("restarting after backoff", "instance", inst.index, "delay", d.Round(time.Millisecond), "reason", o.reason)
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				a.setInstanceState(inst, instExited)
				return
			case <-t.C:
			}
		}
		a.mu.Lock()
		inst.restarts++
		a.mu.Unlock()
		a.emit(ancmv1.EventType_EVENT_TYPE_RESTARTED, inst, restartReason(o))
	}
}

// runOnce starts the process once, waits for it to be ready, watches it, and
// returns when it has ended.
func (a *app) runOnce(ctx context.Context, inst *instance) outcome {
	a.mu.Lock()
	cfg := a.cfg
	logs := a.logs
	a.mu.Unlock()

	port, err := freePort()
	if err != nil {
		return a.startFailed(inst, fmt.Errorf("no free port: %w", err))
	}
	token := newToken()
	base, err := baseEnv(&cfg)
	if err != nil {
		a.setStarting(inst, 0, port, token)
		return a.startFailed(inst, err)
	}
	env := childEnv(base, &cfg, inst.index, port, token)
	lookup := envLookup(env)
	path, err := resolveCommand(os.Expand(cfg.Command, lookup), cfg.Dir, env)
	if err != nil {
		a.setStarting(inst, 0, port, token)
		return a.startFailed(inst, err)
	}
	args := make([]string, len(cfg.Args))
	for i, arg := range cfg.Args {
		args[i] = os.Expand(arg, lookup)
	}
	cmd := &exec.Cmd{Path: path, Args: append([]string{path}, args...), Dir: cfg.Dir, Env: env}
	box, err := a.s.isolate(&cfg, inst.index, cmd)
	if err != nil {
		a.setStarting(inst, 0, port, token)
		return a.startFailed(inst, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_, _ = box.Release()
		return a.startFailed(inst, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		_, _ = box.Release()
		return a.startFailed(inst, err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	a.setStarting(inst, 0, port, token)
	err = box.Start(cmd, a.s.spawner.start)
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		_, _ = box.Release()
		return a.startFailed(inst, err)
	}
	pid := cmd.Process.Pid
	a.setStarting(inst, pid, port, token)
	captured := make(chan struct{}, 2)
	go func() { logs.capture(inst.index, "stdout", outR); outR.Close(); captured <- struct{}{} }()
	go func() { logs.capture(inst.index, "stderr", errR); errR.Close(); captured <- struct{}{} }()
	// ended records the end of the process once its last output is in (or
	// after a short wait, when a straggler in its group holds the pipes),
	// so that the failure's log tail has the app's last words.
	ended := func(st exitStatus, reason string, planned, startFailure bool) outcome {
		st, reason = a.released(box, inst, &cfg, st, reason)
		t := time.NewTimer(captureDrain)
		defer t.Stop()
		for range 2 {
			select {
			case <-captured:
			case <-t.C:
				return a.exited(inst, st, reason, planned, startFailure)
			}
		}
		return a.exited(inst, st, reason, planned, startFailure)
	}
	a.log.Info("instance started", "instance", inst.index, "pid", pid, "port", port)
	a.emit(ancmv1.EventType_EVENT_TYPE_STARTED, inst, fmt.Sprintf("pid %d on port %d", pid, port))

	exitCh := make(chan exitStatus, 1)
	go func() {
		err := cmd.Wait()
		exitCh <- statusOf(cmd.ProcessState, err)
	}()

	p := &prober{port: port, token: token, path: cfg.Health.Path, compat: cfg.Compat}
	readyCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	st, exited := p.waitReady(readyCtx, exitCh)
	timedOut := readyCtx.Err() != nil && ctx.Err() == nil
	cancel()
	switch {
	case exited:
		// It ended before it was ever ready: a failed start. Whatever it
		// left in its group goes with it.
		_ = signalGroup(pid, syscall.SIGKILL)
		reason := "exited before it was ready: " + st.String()
		return ended(st, reason, false, true)
	case ctx.Err() != nil:
		st := a.stopProcess(inst, &cfg, pid, port, token, exitCh)
		return ended(st, "stopped", true, false)
	case timedOut:
		_ = signalGroup(pid, syscall.SIGKILL)
		st := <-exitCh
		reason := fmt.Sprintf("not ready within startup_timeout (%s)", cfg.StartupTimeout)
		return ended(st, reason, false, true)
	}

	a.setReady(inst)
	readyAt := time.Now()
	a.log.Info("instance ready", "instance", inst.index, "pid", pid, "port", port)
	a.emit(ancmv1.EventType_EVENT_TYPE_READY, inst, fmt.Sprintf("ready on port %d", port))

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
			_ = signalGroup(pid, syscall.SIGKILL)
			o := ended(st, "crashed: "+st.String(), false, false)
			o.stable = time.Since(readyAt) >= stableRun
			return o
		case <-ctx.Done():
			st := a.stopProcess(inst, &cfg, pid, port, token, exitCh)
			return ended(st, "stopped", true, false)
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
					a.setHealthy(inst, true)
					a.log.Info("instance healthy again", "instance", inst.index)
				}
				continue
			}
			fails++
			a.log.Warn("health check failed", "instance", inst.index, "failures", fails, "error", err)
			if fails == 1 {
				a.setHealthy(inst, false)
			}
			if fails >= healthFailures {
				reason := fmt.Sprintf("%d health checks failed in a row: %v", fails, err)
				a.emit(ancmv1.EventType_EVENT_TYPE_UNHEALTHY, inst, reason)
				st := a.stopProcess(inst, &cfg, pid, port, token, exitCh)
				o := ended(st, reason, false, false)
				o.stable = time.Since(readyAt) >= stableRun
				return o
			}
		}
	}
}

// stopProcess stops a running instance: drain, stop_signal to the group,
// SIGKILL to the group after shutdown_timeout. It returns the exit status.
func (a *app) stopProcess(inst *instance, cfg *config.App, pid, port int, token string, exitCh <-chan exitStatus) exitStatus {
	deadline := time.Now().Add(cfg.ShutdownTimeout)
	a.mu.Lock()
	wasReady := inst.state == instReady
	a.mu.Unlock()
	if wasReady {
		a.setInstanceState(inst, instDraining)
		t := time.NewTimer(min(drainGrace, cfg.ShutdownTimeout/4))
		select {
		case st := <-exitCh:
			t.Stop()
			_ = signalGroup(pid, syscall.SIGKILL)
			return st
		case <-t.C:
		}
	}
	a.setInstanceState(inst, instStopping)
	if cfg.Compat == "aspnetcore" {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if err := sendIISShutdown(ctx, port, token, cfg.PathPrefix); err != nil {
			a.log.Debug("iisintegration shutdown event", "instance", inst.index, "error", err)
		}
		cancel()
	}
	sig, err := config.ParseSignal(cfg.StopSignal)
	if err != nil {
		sig = syscall.SIGTERM
	}
	if err := signalGroup(pid, sig); err != nil {
		a.log.Warn("stop signal", "instance", inst.index, "pid", pid, "error", err)
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case st := <-exitCh:
		// The leader is gone; children left in its group go too.
		_ = signalGroup(pid, syscall.SIGKILL)
		return st
	case <-t.C:
		a.log.Warn("instance ignored its stop signal; killing its process group", "instance", inst.index, "pid", pid, "signal", cfg.StopSignal, "shutdown_timeout", cfg.ShutdownTimeout)
		_ = signalGroup(pid, syscall.SIGKILL)
		return <-exitCh
	}
}

// sendIISShutdown sends the IIS integration shutdown event the ASP.NET Core
// Module sends before it stops a process.
func sendIISShutdown(ctx context.Context, port int, token, pathBase string) error {
	u := fmt.Sprintf("http://127.0.0.1:%d%s/iisintegration", port, strings.TrimSuffix(pathBase, "/"))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("MS-ASPNETCORE-EVENT", "shutdown")
	req.Header.Set("MS-ASPNETCORE-TOKEN", token)
	req.Header.Set("ANCM-Token", token)
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("answered %d, want 202", resp.StatusCode)
	}
	return nil
}

// startFailed records a start that never produced a process.
func (a *app) startFailed(inst *instance, err error) outcome {
	st := exitStatus{code: -1, err: err, at: time.Now()}
	return a.exited(inst, st, "start failed: "+err.Error(), false, true)
}

// exited records the end of an instance's process.
func (a *app) exited(inst *instance, st exitStatus, reason string, planned, startFailure bool) outcome {
	es := &ancmv1.ExitStatus{Code: st.code, Signal: st.signal, Reason: reason, Time: timestamppb.New(st.at), Planned: planned, OomKilled: st.oom}
	a.mu.Lock()
	inst.lastExit = es
	pid := inst.pid
	inst.pid = 0
	inst.healthy = false
	if !planned {
		a.lastTail = a.logs.tailText(inst.index, tailOnFailure)
		if startFailure {
			a.startFailures++
		}
	}
	a.mu.Unlock()
	a.setInstanceState(inst, instExited)
	evType := ancmv1.EventType_EVENT_TYPE_EXITED
	switch {
	case planned:
		a.log.Info("instance stopped", "instance", inst.index, "exit_code", st.code, "signal", st.signal)
	case startFailure:
		evType = ancmv1.EventType_EVENT_TYPE_START_FAILED
		a.logs.note(inst.index, "[ancm: "+reason+"]")
		a.log.Warn("instance failed to start", "instance", inst.index, "reason", reason)
	default:
		a.log.Warn("instance exited", "instance", inst.index, "exit_code", st.code, "signal", st.signal, "reason", reason)
	}
	a.emitExit(evType, inst, pid, es)
	return outcome{planned: planned, reason: reason, oom: st.oom}
}
