package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/hashicorp/go-hclog"
)

// cgroupMount is where the kernel's cgroup hierarchies are mounted.
const cgroupMount = "/sys/fs/cgroup"

// lockWait bounds the wait for the state_dir lock: the watchdog of a
// daemon that was just killed holds it while it cleans up.
const lockWait = 5 * time.Second

// ErrNeedsRoot is wrapped when a spec asks for what only root can do.
var ErrNeedsRoot = errors.New("needs ancmd to run as root")

// ErrClosed is returned by Prepare after Close: the daemon's cgroups are
// gone.
var ErrClosed = errors.New("sandbox closed")

// Options configure a Manager.
type Options struct {
	Logger hclog.Logger
	// StateDir names the daemon: its cgroups are named after it, and its
	// lock is there.
	StateDir string
	// Exe is the binary re-executed as trampoline and watchdog; its main
	// must dispatch ExecCommand and WatchdogCommand. Default: this one.
	Exe string
	// NoCgroups runs without cgroups even as root: no limits but
	// open_files, and no cleanup beyond the process group.
	NoCgroups bool
}

// Manager prepares the commands of app instances and owns the daemon's
// cgroups and watchdog. It is safe for concurrent use.
type Manager struct {
	log  hclog.Logger
	exe  string
	drv  driver // nil without cgroups
	lock *os.File
	wd   *watchdog

	mu     sync.Mutex
	closed bool

	// spawn is the locked thread that starts standbys (standby.go).
	spawnOnce sync.Once
	spawn     chan spawnReq
	pool      pool
}

// New takes the state_dir's lock, removes whatever cgroups a previous
// daemon of this state_dir left (killing their processes), creates this
// daemon's cgroup root and starts its watchdog.
func New(opts Options) (*Manager, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.Named("sandbox")
	exe := opts.Exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	abs, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, err
	}
	lock, err := lockFile(filepath.Join(abs, "sandbox.lock"))
	if err != nil {
		return nil, err
	}
	m := &Manager{log: log, exe: exe, lock: lock}
	if os.Geteuid() == 0 && !opts.NoCgroups {
		m.drv, err = detect(rootName(abs))
		if err != nil {
			log.Warn("running without cgroups: no memory, cpu or pids limits", "error", err)
		}
	}
	if m.drv == nil {
		return m, nil
	}
	if left := procsUnder(m.drv.roots()); len(left) > 0 {
		log.Warn("killing processes a previous ancmd left", "pids", left)
	}
	if err := killTree(m.drv.roots(), true); err != nil {
		lock.Close()
		return nil, fmt.Errorf("sandbox: clean up a previous run: %w", err)
	}
	if err := m.drv.setup(); err != nil {
		// A read-only cgroup file system (a container): run, and refuse
		// the apps that need limits when they start, saying why.
		log.Warn("running without cgroups: no memory, cpu or pids limits", "error", err)
		m.drv = nil
		return m, nil
	}
	m.wd, err = startWatchdog(exe, m.drv.roots(), lock)
	if err != nil {
		_ = killTree(m.drv.roots(), true)
		lock.Close()
		return nil, err
	}
	log.Info("sandbox ready", "cgroups", m.drv.String(), "roots", m.drv.roots(), "watchdog_pid", m.wd.cmd.Process.Pid)
	return m, nil
}

// rootName is the daemon's cgroup name, the same for every run with one
// state_dir, so that a new run finds what an old one left.
func rootName(stateDir string) string {
	h := sha256.Sum256([]byte(stateDir))
	return "ancm-" + hex.EncodeToString(h[:6])
}

func detect(name string) (driver, error) {
	switch cgroups.Mode() {
	case cgroups.Unified:
		_, own, err := cgroups.ParseCgroupFileUnified("/proc/self/cgroup")
		if err != nil {
			return nil, err
		}
		return newV2(cgroupMount, own, name, os.Getpid()), nil
	case cgroups.Hybrid:
		_, own, err := cgroups.ParseCgroupFileUnified("/proc/self/cgroup")
		if err != nil {
			return nil, err
		}
		return newV1(cgroupMount, filepath.Join(cgroupMount, "unified", own), name)
	case cgroups.Legacy:
		return newV1(cgroupMount, "", name)
	}
	return nil, fmt.Errorf("no cgroup file system at %s", cgroupMount)
}

// lockFile takes an exclusive flock on path, waiting up to lockWait.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("sandbox: lock %s (another ancmd on this state_dir, or the watchdog of one still cleaning up): %w", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Cgroups names the cgroup version in use, or "" without cgroups.
func (m *Manager) Cgroups() string {
	if m.drv == nil {
		return ""
	}
	return m.drv.String()
}

// Close kills whatever is left in the daemon's cgroups, removes them, and
// stops the watchdog. Instances should have been stopped first.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.closePool()
	var err error
	if m.wd != nil {
		// The watchdog cleans up when its lifeline closes, and exits.
		err = m.wd.stop(killTimeout + time.Second)
	}
	if m.drv != nil {
		err = errors.Join(err, killTree(m.drv.roots(), true))
	}
	m.lock.Close()
	return err
}

// Spec says how one instance is isolated.
type Spec struct {
	// Name is the instance's name ("APP.INDEX"): its standbys are kept
	// under it (Prewarm), and it names its cgroup.
	Name string
	// Run tells runs of one instance that are alive at once apart (during
	// a rollout an old and a new instance of one index run side by side):
	// when set, the cgroup is named Name.Run. The cgroup name is unique
	// among the daemon's live instances; a leftover of that name is killed.
	Run    uint64
	User   string // "" keeps the daemon's user
	Group  string // "" is the user's primary group
	Limits Limits
}

// Box is the isolation of one run of an instance: its cgroup, if any.
type Box struct {
	g       *group
	cgfd    *os.File
	standby *Standby // set by Prepare when a standby was ready; see Start
	once    sync.Once
	oom     bool
	err     error
}

// Prepare makes the instance's cgroup with its limits and rewrites cmd so
// that the app starts inside it, as its user, with its rlimits. cmd must
// be built with Path and Args (Args[0] included) and not started; start it
// with Box.Start, which uses a standby (Prewarm) when one is ready. After
// the process has ended, or when starting it failed, call Release.
func (m *Manager) Prepare(cmd *exec.Cmd, spec Spec) (*Box, error) {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if sb := m.take(spec); sb != nil {
		// cmd stays as it is: Box.Start hands it to the standby.
		sb.box.standby = sb
		return sb.box, nil
	}
	id, err := LookupIdentity(spec.User, spec.Group)
	if err != nil {
		return nil, err
	}
	if id != nil && os.Geteuid() != 0 {
		return nil, fmt.Errorf("user %q: %w", spec.User, ErrNeedsRoot)
	}
	l := spec.Limits
	b := &Box{}
	switch {
	case m.drv != nil:
		b.g, err = m.drv.create(spec.cgroupName(), l)
		if err != nil {
			return nil, err
		}
	case l.Memory > 0 || l.CPU > 0 || l.Pids > 0:
		return nil, fmt.Errorf("limits: memory, cpu and pids need cgroups, and ancmd as root: %w", ErrNoController)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if b.g != nil && b.g.dir2 != "" {
		// v2: clone3 puts the child in its cgroup as it is created.
		f, err := os.Open(b.g.dir2)
		if err != nil {
			b.Release()
			return nil, err
		}
		b.cgfd = f
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(f.Fd())
	}
	join := b.g != nil && len(b.g.procs) > 0
	if !join && l.OpenFiles == 0 {
		if id != nil {
			cmd.SysProcAttr.Credential = id.credential()
		}
		return b, nil
	}
	t := &trampoline{nofile: l.OpenFiles, id: id, ppid: os.Getpid(), dir: cmd.Dir, argv: append([]string{cmd.Path}, cmd.Args...)}
	cmd.Dir = ""
	if join {
		t.join = b.g.procs
	}
	cmd.Args = t.args(m.exe)
	cmd.Path = m.exe
	return b, nil
}

// Release kills every process left in the instance's cgroup (children,
// grandchildren, daemons that called setsid), removes the cgroup, and
// reports whether the kernel OOM-killed a process of it for its memory
// limit. It is idempotent, and a nil Box has nothing to release.
func (b *Box) Release() (oomKilled bool, err error) {
	if b == nil {
		return false, nil
	}
	b.once.Do(func() {
		if b.g != nil {
			b.g.stopWatching()
			b.oom = b.g.oomKills() > 0
			b.err = b.g.kill(true)
		}
		if b.cgfd != nil {
			b.cgfd.Close()
		}
	})
	return b.oom, b.err
}

// Kill kills every process in the instance's cgroup and leaves the cgroup
// in place; the instance's own process is among them.
func (b *Box) Kill() error {
	if b == nil || b.g == nil {
		return nil
	}
	return b.g.kill(false)
}

// Dirs are the instance's cgroup directories, for diagnostics and tests.
func (b *Box) Dirs() []string {
	if b == nil || b.g == nil {
		return nil
	}
	return b.g.dirs
}

// cgroupName is the name of the cgroup of a run.
func (s Spec) cgroupName() string {
	if s.Run == 0 {
		return s.Name
	}
	return s.Name + "." + strconv.FormatUint(s.Run, 10)
}
