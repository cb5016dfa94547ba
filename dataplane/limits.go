package dataplane

import (
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// fdReserve is the number of file descriptors the data plane leaves to
// the rest of the process (the control API and its clients, app log
// files and pipes, the state store) however many clients connect.
const fdReserve = 512

// connectionBudget returns the number of client connections Serve may
// hold: max (DefaultMaxConnections when 0), lowered so that the clients
// and one instance connection each fit in the open-file limit with
// fdReserve descriptors to spare. ancmd raises the soft limit to the hard
// one at start (RaiseFileLimit); a budget that is still lowered is
// logged, as it means the host's limit is below what the config asks.
func connectionBudget(logger hclog.Logger, max int) int {
	if max <= 0 {
		max = DefaultMaxConnections
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return max
	}
	fit := (int64(lim.Cur) - fdReserve) / 2
	if fit < 1 {
		fit = 1
	}
	if int64(max) > fit {
		logger.Info("max_connections lowered to fit the open-file limit",
			"max_connections", max, "lowered_to", fit, "open_file_limit", lim.Cur, "reserve", fdReserve)
		return int(fit)
	}
	return max
}

// RaiseFileLimit raises the process's soft open-file limit to its hard
// limit and returns the limit in force. The Go runtime does the same at
// start on Linux; calling it says so in one place and reports the value.
func RaiseFileLimit() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}
