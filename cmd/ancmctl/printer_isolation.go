package main

import (
	"strconv"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// isolationRows prints the user, environment and limits keys of an app's
// config in `get`.
func isolationRows(row func(key, value string), s *ancmv1.AppSpec) {
	row("user", orDash(s.GetUser()))
	row("group", orDash(s.GetGroup()))
	row("env_file", orDash(s.GetEnvFile()))
	if s.InheritEnv == nil {
		row("inherit_env", "(default)")
	} else {
		row("inherit_env", strconv.FormatBool(s.GetInheritEnv()))
	}
	l := s.GetLimits()
	row("limits.memory", orDash(size(l.GetMemory())))
	cpu := ""
	if l.GetCpu() > 0 {
		cpu = strconv.FormatFloat(l.GetCpu(), 'g', -1, 64)
	}
	row("limits.cpu", orDash(cpu))
	row("limits.pids", orDash(uintText(l.GetPids())))
	open := ""
	if l.GetOpenFiles() > 0 {
		open = strconv.FormatUint(l.GetOpenFiles(), 10)
	}
	row("limits.open_files", orDash(open))
}
