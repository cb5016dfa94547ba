package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Limits are the resource limits of one instance; a zero field is no
// limit.
type Limits struct {
	Memory    int64   // bytes
	CPU       float64 // cores' worth of CPU time
	Pids      int64   // processes and threads
	OpenFiles uint64  // RLIMIT_NOFILE, soft and hard
}

// cpuPeriod is the CFS period the CPU quota is a share of, in µs.
const cpuPeriod = 100000

// ErrNoController is wrapped when a limit needs a cgroup controller the
// host does not offer.
var ErrNoController = errors.New("cgroup controller not available")

// driver makes the cgroups of one daemon, under one root per hierarchy.
type driver interface {
	String() string
	// roots are the daemon's root directories, one per hierarchy.
	roots() []string
	// setup creates the roots; they are empty (cleaned) when it runs.
	setup() error
	// create makes the cgroup of one instance with its limits.
	create(name string, l Limits) (*group, error)
}

// group is the cgroup of one instance.
type group struct {
	dirs  []string // the same cgroup in each hierarchy
	procs []string // cgroup.procs files the trampoline joins (v1)
	// dir2 is the v2 directory, for clone3's CLONE_INTO_CGROUP.
	dir2 string
	// oomFile and oomKey locate the count of OOM kills.
	oomFile, oomKey string
	// oomWatch is the v1 eventfd that wakes on an OOM in the group.
	oomWatch *os.File

	killMu sync.Mutex // one kill of the group at a time
}

// kill kills every process of the group and with remove deletes it.
func (g *group) kill(remove bool) error {
	g.killMu.Lock()
	defer g.killMu.Unlock()
	return killTree(g.dirs, remove)
}

// stopWatching ends the OOM watch, if any.
func (g *group) stopWatching() {
	if g.oomWatch != nil {
		g.oomWatch.Close()
	}
}

// watchOOM makes an OOM kill in a v1 group kill the whole group, as
// memory.oom.group does on v2 and systemd's OOMPolicy=stop does for a
// unit: on v1 the kernel kills only the largest process, and when that is
// a worker the instance would live on, its OOM unreported. efd is an
// eventfd registered for memory.oom_control; it also wakes when the group
// is removed, so the counter decides.
func (g *group) watchOOM(efd uintptr) {
	if err := unix.SetNonblock(int(efd), true); err != nil {
		unix.Close(int(efd))
		return
	}
	g.oomWatch = os.NewFile(efd, "memory.oom_control eventfd")
	go func() {
		buf := make([]byte, 8)
		for {
			if _, err := g.oomWatch.Read(buf); err != nil {
				return // closed by Release
			}
			// The event comes as the group runs out of memory, the
			// kill a moment later.
			deadline := time.Now().Add(time.Second)
			for g.oomKills() == 0 && exists(g.oomFile) && time.Now().Before(deadline) {
				time.Sleep(pollInterval)
			}
			if g.oomKills() > 0 {
				_ = g.kill(false)
				return
			}
		}
	}()
}

// oomKills is how many processes of the group the kernel has killed for
// its memory limit.
func (g *group) oomKills() uint64 {
	if g.oomFile == "" {
		return 0
	}
	return readKey(g.oomFile, g.oomKey)
}

// v1Driver places instances in the memory, cpu, pids and freezer
// hierarchies of cgroup v1, each below the daemon's own cgroup there.
//
// On a hybrid host (a cgroup2 mount without controllers beside the v1
// ones, as systemd sets up) every instance is also created in a cgroup of
// the unified hierarchy, with clone3, at no cost: that one tracks all its
// processes and kills them with cgroup.kill. The v1 cgroups are then made
// only for the limits an app has, since joining one costs the trampoline
// and the kernel an RCU grace period (see docs/architecture.md).
type v1Driver struct {
	mnt  string         // where the hierarchies are mounted: /sys/fs/cgroup
	subs []cgroup1.Name // the ones mounted
	base cgroup1.Path   // the daemon's root in each
	// unified is the daemon's root in the unified hierarchy of a hybrid
	// host, or "".
	unified string
}

var v1Names = []cgroup1.Name{cgroup1.Memory, cgroup1.Cpu, cgroup1.Pids, cgroup1.Freezer}

func newV1(mnt, unified, rootName string) (*v1Driver, error) {
	base := cgroup1.NestedPath(rootName)
	d := &v1Driver{mnt: mnt, base: base}
	if unified != "" {
		d.unified = filepath.Join(unified, rootName)
	}
	for _, n := range v1Names {
		if _, err := base(n); err != nil {
			continue
		}
		if exists(filepath.Join(mnt, string(n))) {
			d.subs = append(d.subs, n)
		}
	}
	if len(d.subs) == 0 {
		return nil, fmt.Errorf("cgroup v1: none of memory, cpu, pids, freezer is mounted under %s", mnt)
	}
	return d, nil
}

func (d *v1Driver) String() string { return "cgroup v1" }

func (d *v1Driver) dir(n cgroup1.Name, name string) string {
	p, _ := d.base(n)
	return filepath.Join(d.mnt, string(n), p, name)
}

func (d *v1Driver) has(n cgroup1.Name) bool {
	for _, s := range d.subs {
		if s == n {
			return true
		}
	}
	return false
}

func (d *v1Driver) roots() []string {
	out := make([]string, 0, len(d.subs)+1)
	for _, n := range d.subs {
		out = append(out, d.dir(n, ""))
	}
	if d.unified != "" {
		out = append(out, d.unified)
	}
	return out
}

func (d *v1Driver) setup() error {
	for _, r := range d.roots() {
		if err := os.MkdirAll(r, 0o755); err != nil {
			return fmt.Errorf("cgroup v1: %w", err)
		}
	}
	return nil
}

func (d *v1Driver) create(name string, l Limits) (*group, error) {
	for _, need := range []struct {
		on  bool
		sub cgroup1.Name
		key string
	}{{l.Memory > 0, cgroup1.Memory, "memory"}, {l.CPU > 0, cgroup1.Cpu, "cpu"}, {l.Pids > 0, cgroup1.Pids, "pids"}} {
		if need.on && !d.has(need.sub) {
			return nil, fmt.Errorf("limits.%s: %w: %s is not mounted", need.key, ErrNoController, need.sub)
		}
	}
	g := &group{}
	// Which v1 hierarchies the instance joins: all of them without a
	// unified hierarchy to track it, else those its limits need.
	var subs []cgroup1.Name
	for _, n := range d.subs {
		need := d.unified == "" ||
			n == cgroup1.Memory && l.Memory > 0 || n == cgroup1.Cpu && l.CPU > 0 || n == cgroup1.Pids && l.Pids > 0
		if need {
			subs = append(subs, n)
		}
	}
	if len(subs) > 0 && d.unified != "" && d.has(cgroup1.Freezer) {
		subs = append(subs, cgroup1.Freezer)
	}
	for _, n := range d.subs {
		dir := d.dir(n, name)
		g.dirs = append(g.dirs, dir) // all of them, for the cleanup of a leftover
		if slices.Contains(subs, n) {
			g.procs = append(g.procs, filepath.Join(dir, "cgroup.procs"))
		}
	}
	if d.unified != "" {
		g.dir2 = filepath.Join(d.unified, name)
		g.dirs = append(g.dirs, g.dir2)
	}
	if slices.Contains(subs, cgroup1.Memory) {
		g.oomFile, g.oomKey = filepath.Join(d.dir(cgroup1.Memory, name), "memory.oom_control"), "oom_kill"
	}
	// A cgroup of the same name left by a run that ended badly goes first.
	if err := killTree(g.dirs, true); err != nil {
		return nil, err
	}
	if g.dir2 != "" {
		if err := os.Mkdir(g.dir2, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup v2 %s: %w", name, err)
		}
	}
	if len(subs) == 0 {
		return g, nil
	}
	res := &specs.LinuxResources{}
	if l.Memory > 0 {
		m := l.Memory
		res.Memory = &specs.LinuxMemory{Limit: &m}
		if exists(filepath.Join(d.dir(cgroup1.Memory, ""), "memory.memsw.limit_in_bytes")) {
			// Memory and swap together: no swapping past the limit.
			res.Memory.Swap = &m
		}
	}
	if l.CPU > 0 {
		q, p := int64(l.CPU*cpuPeriod), uint64(cpuPeriod)
		res.CPU = &specs.LinuxCPU{Quota: &q, Period: &p}
	}
	if l.Pids > 0 {
		n := l.Pids
		res.Pids = &specs.LinuxPids{Limit: &n}
	}
	path := func(n cgroup1.Name) (string, error) {
		p, err := d.base(n)
		return filepath.Join(p, name), err
	}
	hier := func() ([]cgroup1.Subsystem, error) {
		var out []cgroup1.Subsystem
		for _, n := range subs {
			switch n {
			case cgroup1.Memory:
				out = append(out, cgroup1.NewMemory(d.mnt))
			case cgroup1.Cpu:
				out = append(out, cgroup1.NewCpu(d.mnt))
			case cgroup1.Pids:
				out = append(out, cgroup1.NewPids(d.mnt))
			case cgroup1.Freezer:
				out = append(out, cgroup1.NewFreezer(d.mnt))
			}
		}
		return out, nil
	}
	cg, err := cgroup1.New(path, res, cgroup1.WithHierarchy(hier), allowAny)
	if err != nil {
		_ = killTree(g.dirs, true)
		return nil, fmt.Errorf("cgroup v1 %s: %w", name, err)
	}
	if l.Memory > 0 {
		if efd, err := cg.OOMEventFD(); err == nil {
			g.watchOOM(efd)
		}
	}
	return g, nil
}

// v2Driver places instances in the unified hierarchy, below the daemon's
// own cgroup. A v2 cgroup with processes cannot hand controllers to its
// children, so setup moves the daemon into a leaf of its own, "ancmd",
// beside the root of the instances (systemd's Delegate=yes allows this).
type v2Driver struct {
	mnt  string // /sys/fs/cgroup
	own  string // the daemon's cgroup, "/system.slice/ancmd.service"
	name string // the root's name below own
	pid  int    // the process to move into the leaf
}

func newV2(mnt, own, rootName string, pid int) *v2Driver {
	return &v2Driver{mnt: mnt, own: filepath.Clean("/" + own), name: rootName, pid: pid}
}

// v2Controllers are the controllers the instances' limits use.
var v2Controllers = "+cpu +memory +pids"

func (d *v2Driver) String() string { return "cgroup v2" }

func (d *v2Driver) root() string { return filepath.Join(d.own, d.name) }

func (d *v2Driver) roots() []string { return []string{filepath.Join(d.mnt, d.root())} }

func (d *v2Driver) setup() error {
	ownDir := filepath.Join(d.mnt, d.own)
	if d.own != "/" {
		leaf := filepath.Join(ownDir, "ancmd")
		if err := os.MkdirAll(leaf, 0o755); err != nil {
			return fmt.Errorf("cgroup v2: %w", err)
		}
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(d.pid)), 0o644); err != nil {
			return fmt.Errorf("cgroup v2: move the daemon into %s: %w", leaf, err)
		}
	}
	rootDir := filepath.Join(d.mnt, d.root())
	if err := os.MkdirAll(rootDir, 0o755); err != nil {
		return fmt.Errorf("cgroup v2: %w", err)
	}
	for _, dir := range []string{ownDir, rootDir} {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(v2Controllers), 0o644); err != nil {
			return fmt.Errorf("cgroup v2: enable %s in %s: %w", v2Controllers, dir, err)
		}
	}
	return nil
}

func (d *v2Driver) create(name string, l Limits) (*group, error) {
	dir := filepath.Join(d.mnt, d.root(), name)
	g := &group{dirs: []string{dir}, dir2: dir, oomFile: filepath.Join(dir, "memory.events"), oomKey: "oom_kill"}
	if err := killTree(g.dirs, true); err != nil {
		return nil, err
	}
	res := &cgroup2.Resources{}
	if l.Memory > 0 {
		m, swap, group := l.Memory, int64(0), true
		// OOMGroup: the kernel kills the whole instance, not one of its
		// processes, as systemd's OOMPolicy=kill.
		res.Memory = &cgroup2.Memory{Max: &m, Swap: &swap, OOMGroup: &group}
	}
	if l.CPU > 0 {
		q, p := int64(l.CPU*cpuPeriod), uint64(cpuPeriod)
		res.CPU = &cgroup2.CPU{Max: cgroup2.NewCPUMax(&q, &p)}
	}
	if l.Pids > 0 {
		res.Pids = &cgroup2.Pids{Max: l.Pids}
	}
	if _, err := cgroup2.NewManager(d.mnt, filepath.Join(d.root(), name), res); err != nil {
		_ = killTree(g.dirs, true)
		return nil, fmt.Errorf("cgroup v2 %s: %w", name, err)
	}
	return g, nil
}

// allowAny lets a cgroup be made in the hierarchies that are there, without
// the devices controller cgroup1 wants by default.
func allowAny(c *cgroup1.InitConfig) error {
	c.InitCheck = cgroup1.AllowAny
	return nil
}
