package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// killTimeout bounds how long killing a cgroup tree may take: SIGKILL is
// quick, a process stuck in the kernel (D state) is not.
const killTimeout = 5 * time.Second

// pollInterval is how often a tree being killed is looked at again.
const pollInterval = time.Millisecond

// killTree kills every process in the cgroup directories dirs and their
// descendants, and with remove deletes the directories afterwards. The
// dirs are the same cgroup in each v1 hierarchy, or one v2 directory.
//
// On v2 it writes cgroup.kill; on v1 it freezes the tree (when a freezer
// directory is among dirs) so that nothing forks while the list of
// processes is read, sends SIGKILL to each, and thaws it, repeating until
// the tree is empty. A tree that is gone already is no error: killing is
// idempotent.
func killTree(dirs []string, remove bool) error {
	var live []string
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			live = append(live, d)
		}
	}
	if len(live) == 0 {
		return nil
	}
	var frozen []string
	for _, d := range live {
		if exists(filepath.Join(d, "cgroup.kill")) {
			_ = os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0)
		}
		if exists(filepath.Join(d, "freezer.state")) && freeze(d) {
			frozen = append(frozen, d)
		}
	}
	deadline := time.Now().Add(killTimeout)
	var err error
	for {
		pids := procsUnder(live)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		// Frozen tasks take their SIGKILL when thawed.
		for _, d := range frozen {
			thaw(d)
		}
		frozen = nil
		if time.Now().After(deadline) {
			err = fmt.Errorf("cgroup %s: processes %v still alive after %s", live[0], pids, killTimeout)
			break
		}
		time.Sleep(pollInterval)
	}
	for _, d := range frozen {
		thaw(d)
	}
	if err != nil || !remove {
		return err
	}
	for _, d := range live {
		if rerr := removeTree(d); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// freeze sets a v1 freezer cgroup FROZEN and waits briefly for it; false
// when it did not get there (a task in uninterruptible sleep), in which
// case killing goes on without it.
func freeze(dir string) bool {
	state := filepath.Join(dir, "freezer.state")
	deadline := time.Now().Add(100 * time.Millisecond)
	for {
		if err := os.WriteFile(state, []byte("FROZEN"), 0); err != nil {
			return false
		}
		b, err := os.ReadFile(state)
		if err != nil {
			return false
		}
		if strings.TrimSpace(string(b)) == "FROZEN" {
			return true
		}
		if time.Now().After(deadline) {
			thaw(dir)
			return false
		}
		time.Sleep(pollInterval)
	}
}

func thaw(dir string) {
	_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
}

// procsUnder lists the processes of the cgroups below (and at) dirs.
func procsUnder(dirs []string) []int {
	var pids []int
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			b, rerr := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if rerr != nil {
				return nil
			}
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				if n, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && n > 0 {
					pids = append(pids, n)
				}
			}
			return nil
		})
	}
	slices.Sort(pids)
	return slices.Compact(pids)
}

// removeTree removes a cgroup directory and the ones below it, deepest
// first. A cgroup directory is removed with rmdir even though it lists
// files; the kernel may refuse for a moment after its last task exits, so
// EBUSY is retried briefly.
func removeTree(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range dirs {
		if err := rmdirCgroup(d); err != nil {
			return err
		}
	}
	return nil
}

func rmdirCgroup(dir string) error {
	deadline := time.Now().Add(time.Second)
	for {
		err := syscall.Rmdir(dir)
		switch {
		case err == nil, errors.Is(err, syscall.ENOENT):
			return nil
		case errors.Is(err, syscall.ENOTEMPTY) && !isCgroupFS(dir):
			// A plain directory (the tests' stand-in for cgroupfs) holds
			// the files the code wrote.
			return os.RemoveAll(dir)
		case errors.Is(err, syscall.EBUSY) && time.Now().Before(deadline):
			time.Sleep(pollInterval)
		default:
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
	}
}

func isCgroupFS(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == 0x27e0eb /* CGROUP_SUPER_MAGIC */ || st.Type == 0x63677270 /* CGROUP2_SUPER_MAGIC */
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// readKey reads "KEY N" lines (memory.oom_control, memory.events) and
// returns N for key, or 0.
func readKey(file, key string) uint64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
