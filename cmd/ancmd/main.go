// Command ancmd is the ancm daemon: the control plane that supervises apps
// and serves the ancm.v1 API, and the data-plane proxy in front of them.
//
//	ancmd [serve] -c FILE                    control plane and proxy together
//	ancmd control -c FILE                    the control plane alone
//	ancmd proxy --control ADDR --listen ADDR a data plane alone
//	ancmd validate -c FILE                   check a config file
//	ancmd version
package main

import (
	"io"
	"os"

	"github.com/ancm-dev/ancm/controlplane"
	"github.com/ancm-dev/ancm/internal/buildinfo"
	"github.com/ancm-dev/ancm/sandbox"
)

func init() {
	bi := buildinfo.Read()
	controlplane.Version = bi.Version
	controlplane.Commit = bi.ShortRevision()
	if bi.Modified && bi.Revision != "" {
		controlplane.Commit += "-dirty"
	}
}

func main() {
	restoreGODEBUG()
	reexecAllowed = true
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one ancmd command line and returns its exit code: 0, 1 when
// the daemon could not start or stopped on an error, 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		// Hidden verbs of the sandbox, run by ancmd itself with arguments
		// of their own: no flags of ancmd's apply.
		switch args[0] {
		case sandbox.ExecCommand: // the trampoline into an instance's cgroup
			return sandbox.ExecMain(args[1:])
		case sandbox.WatchdogCommand: // kills the apps when the daemon dies
			return sandbox.WatchdogMain(args[1:])
		}
	}
	setGCPercent()
	root := rootCommand(stdout, stderr)
	root.SetArgs(args)
	return exitCode(root.Execute(), stderr)
}
