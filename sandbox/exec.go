package sandbox

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExecCommand and WatchdogCommand are the hidden subcommands of the
// daemon's binary that this package re-executes; the binary's main must
// hand them to ExecMain and WatchdogMain.
const (
	ExecCommand     = "sandbox-exec"
	WatchdogCommand = "sandbox-watchdog"
)

// trampoline is what the re-executed daemon does before it becomes the app.
type trampoline struct {
	join   []string // cgroup.procs files
	nofile uint64
	id     *Identity
	ppid   int
	dir    string   // entered as the app's user, as without a trampoline
	argv   []string // path, then argv with argv[0]
}

func (t *trampoline) args(exe string) []string {
	a := []string{exe, ExecCommand, "-ppid", strconv.Itoa(t.ppid)}
	for _, j := range t.join {
		a = append(a, "-join", j)
	}
	if t.nofile > 0 {
		a = append(a, "-nofile", strconv.FormatUint(t.nofile, 10))
	}
	if t.dir != "" {
		a = append(a, "-dir", t.dir)
	}
	if t.id != nil {
		a = append(a, "-uid", strconv.FormatUint(uint64(t.id.Uid), 10), "-gid", strconv.FormatUint(uint64(t.id.Gid), 10))
		if t.id.User != "" {
			gs := make([]string, len(t.id.Groups))
			for i, g := range t.id.Groups {
				gs[i] = strconv.FormatUint(uint64(g), 10)
			}
			a = append(a, "-groups", strings.Join(gs, ","))
		}
	}
	return append(append(a, "--"), t.argv...)
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// ExecMain is the trampoline: it joins the instance's cgroups, sets its
// rlimits, drops to the app's user and execs the app, in this order, so
// that the app's first instruction runs inside its limits. It returns only
// on failure, with 127 after a line on stderr (which is the app's captured
// output).
func ExecMain(args []string) int {
	// The parent-death signal belongs to the thread that sets it, and
	// after execve only the exec'ing thread is left: both on one thread.
	runtime.LockOSThread()
	fs := flag.NewFlagSet(ExecCommand, flag.ContinueOnError)
	var join listFlag
	fs.Var(&join, "join", "cgroup.procs file to join")
	ppid := fs.Int("ppid", 0, "expected parent")
	nofile := fs.Uint64("nofile", 0, "RLIMIT_NOFILE")
	uid := fs.Int64("uid", -1, "user id")
	gid := fs.Int64("gid", -1, "group id")
	groups := fs.String("groups", "", "supplementary groups, comma-separated; unset keeps them")
	dir := fs.String("dir", "", "working directory, entered after the change of user")
	standby := fs.Bool("standby", false, "wait for the command on fd 3 (see Standby)")
	if err := fs.Parse(args); err != nil || fs.NArg() < 2 && !*standby {
		return fail("usage: %s [flags] -- PATH ARGV0 [ARGS...]", ExecCommand)
	}
	self := []byte(strconv.Itoa(os.Getpid()))
	for _, f := range join {
		if err := os.WriteFile(f, self, 0); err != nil {
			return fail("join cgroup: %v", err)
		}
	}
	if *nofile > 0 {
		lim := &syscall.Rlimit{Cur: *nofile, Max: *nofile}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, lim); err != nil {
			var cur syscall.Rlimit
			_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur)
			return fail("open_files %d: %v (ancmd's hard limit is %d; raising it needs CAP_SYS_RESOURCE, and at most fs.nr_open)", *nofile, err, cur.Max)
		}
	}
	if isFlagSet(fs, "groups") {
		var gs []int
		for g := range strings.SplitSeq(*groups, ",") {
			if g == "" {
				continue
			}
			n, err := strconv.Atoi(g)
			if err != nil {
				return fail("bad group %q", g)
			}
			gs = append(gs, n)
		}
		if err := syscall.Setgroups(gs); err != nil {
			return fail("setgroups: %v", err)
		}
	}
	if *gid >= 0 {
		if err := syscall.Setgid(int(*gid)); err != nil {
			return fail("setgid %d: %v", *gid, err)
		}
	}
	if *uid >= 0 {
		if err := syscall.Setuid(int(*uid)); err != nil {
			return fail("setuid %d: %v", *uid, err)
		}
	}
	if *dir != "" {
		if err := os.Chdir(*dir); err != nil {
			return fail("dir: %v", err)
		}
	}
	// A change of credentials clears the parent-death signal; set it again,
	// then make sure the daemon did not die in between.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		return fail("pdeathsig: %v", err)
	}
	if *ppid > 0 && os.Getppid() != *ppid {
		return fail("the daemon is gone")
	}
	if *standby {
		msg, reply, err := awaitCommand()
		if err != nil {
			if reply != nil {
				return reply(err.Error())
			}
			return fail("standby: %v", err)
		}
		err = syscall.Exec(msg.Path, msg.Argv, msg.Env)
		return reply(fmt.Sprintf("exec %s: %v", msg.Path, err))
	}
	rest := fs.Args()
	err := syscall.Exec(rest[0], rest[1:], os.Environ())
	return fail("exec %s: %v", rest[0], err)
}

func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "ancm sandbox: "+format+"\n", args...)
	return 127
}
