package main

import (
	"os"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// A daemon that serves the data plane runs with the Go runtime's sysmon
// thread kept out of its deep sleep, by re-executing itself once at
// start with GODEBUG's schedtrace set to its largest period.
//
// Why: sysmon polls every 20 µs while any P runs, and sleeps until woken
// when every P is idle. The first system call after that wakes it again
// (entersyscall's futex wake) and puts it back at 20 µs, which the
// runtime does not let a program tune (golang/go#18236). A proxy at
// partial load goes idle and busy thousands of times a second: under
// h2load -c 64 (bench/cpu.sh's load) sysmon woke 4,500 times a second,
// and setting schedtrace took about a tenth off ancmd's CPU per request
// (19.2-20.2 -> 17.7-17.8 µs over HTTP/2, 14.6-14.7 -> 12.8-12.9 µs
// over HTTP/1.1 with TLS). With schedtrace set, sysmon never deep-
// sleeps; it backs off to its 10 ms period once it finds nothing to do,
// as in any program that always has a goroutine running, and woke 100
// times a second under the same load. An idle daemon makes about 50
// more context switches a second for it (188 against 141); its CPU, about
// half a percent of one, did not move (14 against 18 ticks in 30 s). docs/benchmarks.md, "The Go runtime's
// sysmon", has the runs.
//
// The period is the largest the runtime takes (2^31-1 ms, 24.8 days),
// counted from the host's boot: on a host up longer than that, the
// runtime prints one "SCHED" line to stderr at start and one every 24.8
// days. An operator who wants the runtime's own behaviour sets
// GODEBUG=schedtrace=0 (any schedtrace setting is left alone).
//
// The GODEBUG the daemon was started with is put back in its environment
// as soon as it runs again (runtime settings such as schedtrace are read
// once, at start), so apps that inherit it see the operator's, not this.
const (
	sysmonGODEBUG = "schedtrace=2147483647"
	// sysmonEnv carries the operator's GODEBUG across the re-exec: "-"
	// when it was unset, "=" and the value when it was set.
	sysmonEnv = "ANCMD_ORIGINAL_GODEBUG"
)

// reexecAllowed is set by main: a daemon started by tests in-process
// (run) must not replace the test binary.
var reexecAllowed bool

// sysmonQuiet tells whether this process was re-executed by quietSysmon.
var sysmonQuiet bool

// restoreGODEBUG puts back the GODEBUG the daemon was started with, when
// quietSysmon re-executed it; it runs first in main.
func restoreGODEBUG() {
	orig, ok := os.LookupEnv(sysmonEnv)
	if !ok {
		return
	}
	os.Unsetenv(sysmonEnv)
	if v, set := strings.CutPrefix(orig, "="); set {
		os.Setenv("GODEBUG", v)
	} else {
		os.Unsetenv("GODEBUG")
	}
	sysmonQuiet = true
}

// quietSysmon re-executes the daemon with sysmonGODEBUG added, unless
// that was done, GODEBUG already sets schedtrace, or main did not allow
// it. It returns only when it does not re-execute, or when exec fails (the
// daemon then runs as it is).
func quietSysmon() {
	if !reexecAllowed || sysmonQuiet {
		return
	}
	orig, set := os.LookupEnv("GODEBUG")
	for _, kv := range strings.Split(orig, ",") {
		if strings.HasPrefix(strings.TrimSpace(kv), "schedtrace=") {
			return
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	mark, debug := "-", sysmonGODEBUG
	if set {
		mark = "=" + orig
		if orig != "" {
			debug = orig + "," + sysmonGODEBUG
		}
	}
	env := make([]string, 0, len(os.Environ())+2)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") && !strings.HasPrefix(kv, sysmonEnv+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GODEBUG="+debug, sysmonEnv+"="+mark)
	_ = syscall.Exec(exe, os.Args, env)
}

// logSysmon says at debug level whether quietSysmon took effect.
func logSysmon(log hclog.Logger) {
	if sysmonQuiet {
		log.Debug("Go runtime's sysmon kept from deep sleep", "godebug", sysmonGODEBUG)
	}
}
