package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// App writes everything about one app: status, config and instances.
func (p *printer) App(a *ancmv1.App) error {
	s := a.GetSpec()
	if s == nil {
		s = &ancmv1.AppSpec{}
	}
	tw := p.table()
	fmt.Fprintf(tw, "Name:\t%s\n", s.GetName())
	fmt.Fprintf(tw, "State:\t%s\n", appState(a.GetState()))
	if a.GetStateSince() != nil {
		fmt.Fprintf(tw, "Since:\t%s\n", p.timeAgo(a.GetStateSince()))
	}
	if a.GetStateReason() != "" {
		fmt.Fprintf(tw, "Reason:\t%s\n", a.GetStateReason())
	}
	fmt.Fprintf(tw, "Source:\t%s\n", orDash(a.GetSource()))
	fmt.Fprintf(tw, "Restarts:\t%d\n", a.GetRestarts())
	if g := a.GetGeneration(); g != 0 {
		fmt.Fprintf(tw, "Generation:\t%d\n", g)
	}
	if ro := a.GetRollout(); ro != nil {
		line := fmt.Sprintf("%d -> %d %s", ro.GetFromGeneration(), ro.GetToGeneration(), rolloutResult(ro.GetResult()))
		if ro.GetReason() != "" {
			line += ": " + oneLine(ro.GetReason())
		}
		fmt.Fprintf(tw, "Rollout:\t%s\n", line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(p.w, "\nConfig:")
	tw = p.table()
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	row("command", s.GetCommand())
	row("args", quotedList(s.GetArgs()))
	row("dir", orDefault(s.GetDir()))
	env := make([]string, 0, len(s.GetEnv()))
	for k, v := range s.GetEnv() {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	if len(env) == 0 {
		row("env", "-")
	}
	for i, kv := range env {
		if i == 0 {
			row("env", kv)
		} else {
			row("", kv)
		}
	}
	if len(s.GetHosts()) == 0 {
		row("hosts", "(any)")
	} else {
		row("hosts", strings.Join(s.GetHosts(), ", "))
	}
	row("path_prefix", orDefault(s.GetPathPrefix()))
	row("strip_prefix", strconv.FormatBool(s.GetStripPrefix()))
	row("start", startMode(s.GetStart()))
	row("processes", orDefault(uintText(s.GetProcesses())))
	row("startup_timeout", duration(s.GetStartupTimeout()))
	row("shutdown_timeout", duration(s.GetShutdownTimeout()))
	row("request_timeout", duration(s.GetRequestTimeout()))
	if s.RapidFailsPerMinute == nil {
		row("rapid_fails_per_minute", "(default)")
	} else {
		row("rapid_fails_per_minute", strconv.Itoa(int(s.GetRapidFailsPerMinute())))
	}
	row("stop_signal", orDefault(s.GetStopSignal()))
	if s.QueueSize == nil {
		row("queue_size", "(default)")
	} else {
		row("queue_size", strconv.Itoa(int(s.GetQueueSize())))
	}
	switch {
	case s.OfflineFile == nil:
		row("offline_file", "(default)")
	case s.GetOfflineFile() == "":
		row("offline_file", `"" (disabled)`)
	default:
		row("offline_file", s.GetOfflineFile())
	}
	row("error_detail", strconv.FormatBool(s.GetErrorDetail()))
	row("compat", orDash(s.GetCompat()))
	row("protocol", orDefault(s.GetProtocol()))
	isolationRows(row, s)
	row("health.path", orDash(s.GetHealth().GetPath()))
	row("health.interval", duration(s.GetHealth().GetInterval()))
	if s.GetStdoutLog() == nil || s.GetStdoutLog().Enabled == nil {
		row("stdout_log.enabled", "(default)")
	} else {
		row("stdout_log.enabled", strconv.FormatBool(s.GetStdoutLog().GetEnabled()))
	}
	row("stdout_log.max_size", orDefault(size(s.GetStdoutLog().GetMaxSize())))
	row("stdout_log.max_files", orDefault(uintText(s.GetStdoutLog().GetMaxFiles())))
	if r := s.GetRollout(); r != nil {
		row("rollout.strategy", orDefault(r.GetStrategy()))
		row("rollout.max_surge", orDefault(uintText(r.GetMaxSurge())))
		row("rollout.min_ready", duration(r.GetMinReady()))
		row("rollout.drain_timeout", duration(r.GetDrainTimeout()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(p.w, "\nInstances:")
	if len(a.GetInstances()) == 0 {
		fmt.Fprintln(p.w, "  none")
	} else {
		tw = p.table()
		fmt.Fprintln(tw, "  INDEX\tGEN\tSTATE\tPID\tPORT\tREADY SINCE\tRESTARTS\tLAST EXIT\tLOG")
		for _, in := range a.GetInstances() {
			gen := "-"
			if g := in.GetGeneration(); g != 0 {
				gen = strconv.FormatUint(g, 10)
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
				in.GetIndex(), gen, instanceState(in.GetState()), orDash(intText(in.GetPid())),
				orDash(uintText(in.GetPort())), p.timeAgo(in.GetReadySince()), in.GetRestarts(),
				exitText(in.GetLastExit()), orDash(in.GetLogPath()))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(a.GetLogTail()) > 0 {
		fmt.Fprintln(p.w, "\nLast failure output:")
		for _, l := range a.GetLogTail() {
			fmt.Fprintf(p.w, "  %s\n", l)
		}
	}
	return nil
}
