package sandbox

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// watchdog is the one helper process per daemon that outlives it: it
// holds the read end of a pipe whose write end only the daemon has, and
// when that reads EOF (the daemon exited, or was killed, even by SIGKILL)
// it kills every process in the daemon's cgroups, removes them, and exits.
type watchdog struct {
	cmd      *exec.Cmd
	lifeline *os.File // write end; closing it tells the watchdog to clean up
	done     chan struct{}
}

func startWatchdog(exe string, roots []string, lock *os.File) (*watchdog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{
		Path: exe,
		Args: append([]string{exe, WatchdogCommand}, roots...),
		// fd 3: the lifeline; fd 4: the state_dir lock, held until the
		// cleanup is done so that a new daemon waits for it.
		ExtraFiles: []*os.File{r, lock},
		Stderr:     os.Stderr,
		// Its own process group: a ^C to the daemon's terminal is not for
		// it; no Pdeathsig: it is meant to outlive the daemon.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("start watchdog: %w", err)
	}
	wd := &watchdog{cmd: cmd, lifeline: w, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(wd.done)
	}()
	return wd, nil
}

// stop tells the watchdog to clean up and waits for it, up to timeout.
func (wd *watchdog) stop(timeout time.Duration) error {
	wd.lifeline.Close()
	select {
	case <-wd.done:
		return nil
	case <-time.After(timeout):
		_ = wd.cmd.Process.Kill()
		return fmt.Errorf("watchdog did not finish within %s", timeout)
	}
}

// WatchdogMain is the watchdog's side: args are the cgroup roots to clean
// up, fd 3 the lifeline. It ignores the signals a terminal or a service
// manager sends to the daemon's group: only the lifeline ends it.
func WatchdogMain(args []string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)
	life := os.NewFile(3, "lifeline")
	if life == nil {
		return fail("watchdog: no lifeline on fd 3")
	}
	_, _ = io.Copy(io.Discard, life)
	if err := killTree(args, true); err != nil {
		return fail("watchdog: %v", err)
	}
	return 0
}
