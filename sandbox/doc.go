// Package sandbox isolates app instances: the user they run as, a cgroup
// per instance with its memory, cpu and pids limits, RLIMIT_NOFILE, and
// the promise that no process an app starts outlives its instance or the
// daemon, even when the daemon is killed with SIGKILL.
//
// It is mechanics only: it knows nothing of apps, configs or restarts.
// The control plane decides when an instance starts and stops; this
// package makes the start happen inside a box and empties the box after.
//
// # The hook
//
// A supervisor needs three calls, whatever its structure:
//
//	m, err := sandbox.New(sandbox.Options{StateDir: dir})  // once, at daemon start
//	defer m.Close()                                        // after every instance stopped
//
//	cmd := &exec.Cmd{Path: path, Args: argv, Env: env, Dir: dir}
//	box, err := m.Prepare(cmd, sandbox.Spec{Name: "APP.INDEX", User: u, Limits: l})
//	err = box.Start(cmd, spawn) // spawn: the caller's own start (Setpgid, Pdeathsig)
//	// ... wait for cmd as usual ...
//	oomKilled, err := box.Release() // after the process ended, or its start failed
//
// and, optionally, two more for idle instances:
//
//	m.Prewarm(spec)            // an on-demand app was added: ready its first start
//	m.DiscardStandbys("APP.")  // the app is gone
//
// Box.Start starts cmd through a standby when Prepare found one (see
// below), and with spawn otherwise.
//
// Release kills whatever is left in the instance's cgroup (children,
// grandchildren, setsid daemons), removes the cgroup, and says whether the
// kernel killed a process of it for its memory limit, read from the
// cgroup's own counter (memory.oom_control on v1, memory.events on v2), not
// guessed from a SIGKILL. The daemon's binary must hand the hidden
// subcommands ExecCommand and WatchdogCommand to ExecMain and
// WatchdogMain.
//
// # How an instance gets into its cgroup before its first instruction
//
// On cgroup v2, clone3(CLONE_INTO_CGROUP) through SysProcAttr.UseCgroupFD
// creates the child in its cgroup, and SysProcAttr.Credential sets its
// user. On cgroup v1 there is no such flag, so Prepare rewrites the command
// into a re-exec of the daemon's own binary ("sandbox-exec", the
// trampoline): as root it writes its pid into the instance's cgroup.procs
// of each hierarchy, sets RLIMIT_NOFILE, drops to the app's groups and
// user, sets the parent-death signal again (a change of credentials clears
// it), and execs the app, which keeps its pid. The trampoline is also used
// on v2 when open_files is set, since no SysProcAttr field sets an rlimit.
//
// # Standbys
//
// On v1 the trampoline costs a re-exec of the daemon (~3 ms) and the
// kernel an RCU grace period on the first cgroup migration after a quiet
// while (7 to 15 ms measured). Prewarm pays both before the request comes:
// it starts a trampoline with -standby in a fresh cgroup of the instance
// (named NAME.wN, so it never meets a live instance's), which joins it,
// sets the rlimit, drops to the user, and waits on a socket. Prepare takes
// it when the spec (user, group, limits) still matches, and Box.Start sends
// it the path, argv, env and dir, with stdin, stdout and stderr as
// SCM_RIGHTS; it execs, and the caller gets cmd.Process as from
// cmd.Start. A start that needs no trampoline gets no standby.
//
// # Why nothing outlives the daemon
//
// New starts one watchdog per daemon ("sandbox-watchdog", the same binary
// again) in its own process group, outside every instance's cgroup, with
// the read end of a pipe whose write end only the daemon holds. When the
// daemon exits for any reason, SIGKILL included, the kernel closes that
// end; the watchdog reads EOF, kills every process in the daemon's cgroup
// tree (freezing it first on v1, cgroup.kill on v2), removes the cgroups,
// and exits. The cgroup, not the process tree, is what is killed: a
// process that daemonized, changed its process group or session, or was
// reparented, is still in it. The watchdog holds the state_dir's lock
// while it cleans, so a daemon restarted at once waits for it; and New
// kills and removes whatever an earlier daemon of the same state_dir left
// (its watchdog killed too, or a host crash mid-cleanup).
//
// The daemon's cgroups are named after its state_dir (ancm-HASH) and
// nested below the daemon's own cgroup in each hierarchy, so that two
// daemons on one host never touch each other's, and a daemon under
// systemd stays inside its unit.
//
// Without root, or without a cgroup file system, there are no cgroups:
// memory, cpu and pids limits are refused, open_files still works, and
// what is left of an instance is only what its process group gets.
package sandbox
