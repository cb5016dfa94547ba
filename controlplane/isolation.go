package controlplane

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/ancm-dev/ancm/config"
	"github.com/ancm-dev/ancm/config/envfile"
	"github.com/ancm-dev/ancm/sandbox"
)

// This file is the control plane's side of the sandbox package: the
// environment an instance starts from, the calls around a process run
// (Prepare before it starts, Box.Start, Release after it ended), and the
// standbys of idle on-demand apps. The hook lines in instance.go and
// app.go call these and nothing else.

// minimalPath is the PATH of an app that does not inherit ancmd's
// environment and sets none itself: systemd's default.
const minimalPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// baseEnv is what an instance's environment starts from, before the app's
// env and the variables of the contract: ancmd's own environment (unless
// inherit_env is false; then a PATH alone, as systemd gives), then the
// user's HOME, USER and LOGNAME when the app has a user, then the
// env_file, read at every start.
func baseEnv(cfg *config.App) ([]string, error) {
	var env []string
	if cfg.InheritEnv {
		env = os.Environ()
	} else {
		env = []string{"PATH=" + minimalPath}
	}
	if cfg.User != "" {
		id, err := sandbox.LookupIdentity(cfg.User, cfg.Group)
		if err != nil {
			return nil, err
		}
		env = append(env, "HOME="+id.Home, "USER="+id.User, "LOGNAME="+id.User)
	}
	if cfg.EnvFile != "" {
		vars, err := envfile.Read(config.EnvFilePath(cfg))
		if err != nil {
			return nil, fmt.Errorf("env_file: %w", err)
		}
		for _, v := range vars {
			env = append(env, v.Name+"="+v.Value)
		}
	}
	return env, nil
}

// isolate puts cmd in a sandbox for one run of an instance: its cgroup
// with the app's limits, its user, its rlimits. Without a sandbox manager
// (controlplane tests), only apps that ask for none of these run.
//
// run tells this run's cgroup apart: during a rollout an instance of the
// old generation and one of the new run at once with the same index.
func isolate(sb *sandbox.Manager, cfg *config.App, index uint32, run uint64, cmd *exec.Cmd) (*sandbox.Box, error) {
	spec := sandboxSpec(cfg, index)
	spec.Run = run
	if sb == nil {
		if spec.User != "" || spec.Group != "" || spec.Limits != (sandbox.Limits{}) {
			return nil, fmt.Errorf("user, group and limits need the daemon's sandbox: %w", ErrPrecondition)
		}
		return nil, nil
	}
	return sb.Prepare(cmd, spec)
}

// prewarm readies a standby for each instance of an on-demand app that is
// added, so that its first start costs an exec, not the trampoline's
// re-exec and a cgroup migration (sandbox.Standby). Only starts that go
// through the trampoline get one.
func (s *Supervisor) prewarm(cfg config.App) {
	if s.sandbox == nil || cfg.Start != config.StartOnDemand {
		return
	}
	for i := range cfg.Processes {
		s.sandbox.Prewarm(sandboxSpec(&cfg, uint32(i)))
	}
}

// discardStandbys drops the standbys of an app that goes.
func (s *Supervisor) discardStandbys(name string) {
	if s.sandbox != nil {
		s.sandbox.DiscardStandbys(name + ".")
	}
}

// sandboxSpec is the isolation of one instance of an app.
func sandboxSpec(cfg *config.App, index uint32) sandbox.Spec {
	return sandbox.Spec{
		Name:  fmt.Sprintf("%s.%d", cfg.Name, index),
		User:  cfg.User,
		Group: cfg.Group,
		Limits: sandbox.Limits{
			Memory:    cfg.Limits.Memory,
			CPU:       cfg.Limits.CPU,
			Pids:      int64(cfg.Limits.Pids),
			OpenFiles: uint64(max(cfg.Limits.OpenFiles, 0)),
		},
	}
}

// released empties an instance's sandbox after its process ended: whatever
// it left (children, setsid daemons) is killed and its cgroup removed. An
// instance the kernel killed for its memory limit gets the reason
// "out of memory (limit 512MB)"; the app's owner emits oom_killed for it.
func (r *runner) released(box *sandbox.Box, st exitStatus, reason string) (exitStatus, string) {
	oom, err := box.Release()
	if err != nil {
		r.log.Error("instance's cgroup not emptied", "instance", r.index, "error", err)
	}
	if !oom {
		return st, reason
	}
	st.oom = true
	reason = fmt.Sprintf("out of memory (limit %s)", config.FormatSize(r.spec.Limits.Memory))
	r.log.Warn("instance killed for its memory limit", "instance", r.index, "limit", config.FormatSize(r.spec.Limits.Memory))
	return st, reason
}
