package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A Standby is a trampoline started ahead of time for the next run of an
// instance: already in the instance's cgroups, with its rlimits, as its
// user, waiting for the command to exec. Start then costs a message and an
// exec, not a re-exec of the daemon and a cgroup migration, which on v1
// waits for an RCU grace period (see docs/architecture.md). It is not
// wired into the control plane yet: a supervisor would Warm an app's
// instances when it becomes idle and after each exit, and Discard them
// when the app is stopped, changed or deleted.
type Standby struct {
	m    *Manager
	spec Spec
	box  *Box
	proc *os.Process
	sock *os.File // our end of the socketpair
	cmd  *exec.Cmd
}

// standbyMsg is what Start sends: the command, with the child's stdin,
// stdout and stderr as SCM_RIGHTS beside it.
type standbyMsg struct {
	Path string   `json:"path"`
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
}

// Warm starts a standby for spec. Setpgid and a parent-death signal are
// set on it, as the control plane's spawner sets them on an app.
func (m *Manager) Warm(spec Spec) (*Standby, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "standby"), os.NewFile(uintptr(fds[1]), "standby")
	defer theirs.Close()
	// Prepare a placeholder command: it gives the trampoline's flags, and
	// the real argv comes later over the socket.
	cmd := &exec.Cmd{Path: "/", Args: []string{"/"}}
	box, err := m.Prepare(cmd, spec)
	if err != nil {
		ours.Close()
		return nil, err
	}
	if cmd.Path != m.exe {
		// No trampoline is needed for this spec (v2 without open_files,
		// or no limits on a hybrid host): force one, for the wait.
		t := &trampoline{ppid: os.Getpid(), argv: []string{"/", "/"}}
		cmd.Args, cmd.Path = t.args(m.exe), m.exe
		if id := cmd.SysProcAttr.Credential; id != nil {
			cmd.Args = insertFlags(cmd.Args, "-uid", fmt.Sprint(id.Uid), "-gid", fmt.Sprint(id.Gid), "-groups", joinGroups(id.Groups))
			cmd.SysProcAttr.Credential = nil
		}
	}
	// The trampoline's argv ends "-- / /": in standby mode it takes its
	// command from the socket instead.
	cmd.Args = insertFlags(cmd.Args[:len(cmd.Args)-2], "-standby")
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := m.startLocked(cmd); err != nil {
		ours.Close()
		_, _ = box.Release()
		return nil, err
	}
	return &Standby{m: m, spec: spec, box: box, proc: cmd.Process, sock: ours, cmd: cmd}, nil
}

// insertFlags puts flags right after the subcommand, before "--".
func insertFlags(args []string, flags ...string) []string {
	out := append([]string{}, args[:2]...)
	out = append(out, flags...)
	return append(out, args[2:]...)
}

func joinGroups(gs []uint32) string {
	s := make([]string, len(gs))
	for i, g := range gs {
		s[i] = fmt.Sprint(g)
	}
	return strings.Join(s, ",")
}

// Spec is what the standby was warmed for; a supervisor discards it when
// the app's spec has changed.
func (s *Standby) Spec() Spec { return s.spec }

// Start makes the standby exec cmd (Path, Args, Env, Dir, and Stdin,
// Stdout, Stderr as *os.File or nil) and sets cmd.Process as cmd.Start
// would, so that cmd.Wait works. The Box is the instance's, to Release
// after the process ended. A standby starts at most one command.
func (s *Standby) Start(cmd *exec.Cmd) (*Box, error) {
	files := []any{cmd.Stdin, cmd.Stdout, cmd.Stderr}
	var fds []int
	for i, f := range files {
		switch f := f.(type) {
		case nil:
			fds = append(fds, -1)
		case *os.File:
			fds = append(fds, int(f.Fd()))
		default:
			return nil, fmt.Errorf("standby: stdio %d must be an *os.File, not %T", i, f)
		}
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	for i := range fds {
		if fds[i] < 0 {
			fds[i] = int(null.Fd())
		}
	}
	msg, err := json.Marshal(standbyMsg{Path: cmd.Path, Argv: cmd.Args, Env: cmd.Env, Dir: cmd.Dir})
	if err != nil {
		return nil, err
	}
	if err := unix.Sendmsg(int(s.sock.Fd()), msg, unix.UnixRights(fds...), nil, 0); err != nil {
		s.Discard()
		return nil, fmt.Errorf("standby: %w", err)
	}
	// The trampoline's end closes when it execs (close-on-exec); before
	// that it may send why it could not.
	reply, _ := io.ReadAll(s.sock)
	s.sock.Close()
	if len(reply) > 0 {
		_ = s.cmd.Wait()
		_, _ = s.box.Release()
		return nil, fmt.Errorf("standby: %s", reply)
	}
	cmd.Process = s.proc
	// The standby's own exec.Cmd must not be waited for as well.
	s.cmd = nil
	return s.box, nil
}

// Discard kills an unused standby and removes its cgroup.
func (s *Standby) Discard() {
	if s.cmd == nil {
		return
	}
	s.sock.Close()
	_ = s.proc.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
	_, _ = s.box.Release()
}

// startLocked starts cmd from one OS thread that never exits: the
// parent-death signal is tied to the thread that forked (golang/go#27505).
func (m *Manager) startLocked(cmd *exec.Cmd) error {
	m.spawnOnce.Do(func() {
		m.spawn = make(chan spawnReq)
		go func() {
			runtime.LockOSThread()
			for r := range m.spawn {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	m.spawn <- spawnReq{cmd: cmd, done: done}
	return <-done
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// awaitCommand is the trampoline's standby side: it reads the command and
// its stdio from fd 3, puts the stdio in place and enters dir; the caller
// then execs. Errors go back over the socket.
func awaitCommand() (*standbyMsg, func(string) int, error) {
	sock := os.NewFile(3, "standby")
	if sock == nil {
		return nil, nil, errors.New("no socket on fd 3")
	}
	reply := func(msg string) int {
		_, _ = sock.WriteString(msg)
		return 127
	}
	buf := make([]byte, 1<<20)
	oob := make([]byte, unix.CmsgSpace(3*4))
	n, oobn, _, _, err := unix.Recvmsg(3, buf, oob, 0)
	if err != nil || n == 0 {
		return nil, nil, fmt.Errorf("no command: %v", err)
	}
	var msg standbyMsg
	if err := json.Unmarshal(buf[:n], &msg); err != nil {
		return nil, nil, fmt.Errorf("bad command: %v", err)
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(cmsgs) != 1 {
		return nil, nil, fmt.Errorf("no stdio: %v", err)
	}
	fds, err := unix.ParseUnixRights(&cmsgs[0])
	if err != nil || len(fds) != 3 {
		return nil, nil, fmt.Errorf("want 3 fds: %v", err)
	}
	for i, fd := range fds {
		if fd == i {
			continue
		}
		if err := unix.Dup3(fd, i, 0); err != nil {
			return nil, reply, fmt.Errorf("stdio: %v", err)
		}
		unix.Close(fd)
	}
	syscall.CloseOnExec(3)
	if msg.Dir != "" {
		if err := os.Chdir(msg.Dir); err != nil {
			return nil, reply, fmt.Errorf("dir: %v", err)
		}
	}
	return &msg, reply, nil
}
