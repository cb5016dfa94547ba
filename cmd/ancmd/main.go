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
	"fmt"
	"os"

	"github.com/ancm-dev/ancm/sandbox"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	verb := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		verb, args = args[0], args[1:]
	}
	switch verb {
	case "serve":
		return runDaemon(args, true)
	case "control":
		return runDaemon(args, false)
	case "proxy":
		return runProxy(args)
	case "validate":
		return runValidate(args)
	case sandbox.ExecCommand: // hidden: the trampoline into an instance's cgroup
		return sandbox.ExecMain(args)
	case sandbox.WatchdogCommand: // hidden: kills the apps when the daemon dies
		return sandbox.WatchdogMain(args)
	case "version":
		fmt.Println("ancmd", version())
		return 0
	case "help":
		usage()
		return 0
	default:
		fmt.Fprintf(os.Stderr, "ancmd: unknown command %q\n", verb)
		usage()
		return 2
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  ancmd [serve] -c FILE                      run the control plane and the proxy
  ancmd control -c FILE                      run the control plane alone
  ancmd proxy --control ADDR --listen ADDR   run a data plane alone
  ancmd validate -c FILE                     check a config file
  ancmd version
`)
}
