package controlplane

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// spawner starts child processes from one OS thread that never exits.
// Pdeathsig fires when the thread that forked the child dies, not the
// process; Go may retire threads, so every fork happens on this locked one
// (golang/go#27505).
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread lives as long as the daemon.
		close(ready)
		for r := range s.reqs {
			r.done <- r.cmd.Start()
		}
	}()
	<-ready
	return s
}

// start starts cmd in its own process group, killed with SIGKILL when the
// daemon dies.
func (s *spawner) start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	done := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, done: done}
	// The runtime's child side checks, after setting Pdeathsig, that its
	// parent is still the daemon, so a daemon that dies during the fork
	// leaves no child behind.
	return <-done
}

// signalGroup sends sig to the process group led by pid. A group that is
// gone already is not an error: killing is idempotent.
func signalGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return fmt.Errorf("bad pid %d", pid)
	}
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// exitStatus is how a process ended.
type exitStatus struct {
	code   int32  // 128+signal when signalled, -1 when it never ran
	signal string // "SIGKILL", or "" when it exited
	err    error  // start error, or wait error
	at     time.Time
	oom    bool // the kernel killed it for its memory limit
}

func (e exitStatus) String() string {
	switch {
	case e.code == -1 && e.err != nil:
		return e.err.Error()
	case e.signal != "":
		return fmt.Sprintf("killed by %s (exit code %d)", e.signal, e.code)
	default:
		return fmt.Sprintf("exited with code %d", e.code)
	}
}

// statusOf reads a finished command's exit status.
func statusOf(ps *os.ProcessState, waitErr error) exitStatus {
	st := exitStatus{at: time.Now(), err: waitErr}
	if ps == nil {
		st.code = -1
		return st
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		st.code = int32(128 + int(ws.Signal()))
		st.signal = unix.SignalName(ws.Signal())
		return st
	}
	st.code = int32(ps.ExitCode())
	return st
}
