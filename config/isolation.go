package config

import (
	"fmt"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config/envfile"
)

// Bounds of the limits block.
const (
	MinMemoryLimit = 4 << 20
	MaxCPULimit    = 4096
	// MinPidsLimit leaves room for the trampoline, a Go program, which
	// joins the cgroup with its threads before it execs the app.
	MinPidsLimit   = 8
	MaxPidsLimit   = 1 << 22
	MaxOpenFiles   = 1 << 30
	minOpenFiles   = 16
	limitsNeedRoot = "needs ancmd to run as root: memory, cpu and pids limits are cgroups"
)

var limitsSchema = schema{attrs: []string{"memory", "cpu", "pids", "open_files"}}

// isolation decodes user, group, env_file, inherit_env and the limits
// block of an app.
func (s *scope) isolation(a *App) {
	s.str("user", &a.User)
	s.str("group", &a.Group)
	s.str("env_file", &a.EnvFile)
	s.boolean("inherit_env", &a.InheritEnv)
	if b := s.block("limits"); b != nil {
		l := s.nested(b.Body, "limits")
		l.checkKeys(limitsSchema)
		l.size("memory", &a.Limits.Memory)
		l.number("cpu", &a.Limits.CPU)
		l.integer("pids", &a.Limits.Pids)
		l.integer("open_files", &a.Limits.OpenFiles)
	}
}

func (s *scope) number(name string, dst *float64) {
	v, attr, ok := s.value(name)
	if !ok {
		return
	}
	if v.Type() != cty.Number {
		s.typeErr(attr, "a number", v)
		return
	}
	f, _ := v.AsBigFloat().Float64()
	*dst = f
}

// isolationFromProto copies the isolation fields of an AppSpec.
func isolationFromProto(spec *ancmv1.AppSpec, a *App, bad func(key, format string, args ...any)) {
	a.User = spec.GetUser()
	a.Group = spec.GetGroup()
	a.EnvFile = spec.GetEnvFile()
	if spec.InheritEnv != nil {
		a.InheritEnv = spec.GetInheritEnv()
	}
	if l := spec.GetLimits(); l != nil {
		if l.GetMemory() > math.MaxInt64 {
			bad("limits.memory", "%d bytes is too large", l.GetMemory())
		}
		a.Limits.Memory = int64(min(l.GetMemory(), math.MaxInt64))
		a.Limits.CPU = l.GetCpu()
		a.Limits.Pids = clampInt(uint64(l.GetPids()))
		a.Limits.OpenFiles = clampInt(l.GetOpenFiles())
	}
}

// euid is the user ancmd checks apps for; a variable for tests.
var euid = os.Geteuid

// checkIsolation checks the isolation keys of an app: the user and group
// exist, ancmd can switch to them, the env_file parses, the limits are in
// range.
func checkIsolation(a *App) []problem {
	var ps []problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, problem{key: key, msg: fmt.Sprintf(format, args...)})
	}
	root := euid() == 0
	for _, k := range []struct {
		key, v string
		lookup func(string) error
	}{{"user", a.User, lookupUser}, {"group", a.Group, lookupGroup}} {
		switch {
		case k.v == "":
		case strings.IndexByte(k.v, 0) >= 0:
			bad(k.key, "must not contain a NUL byte")
		case !root:
			bad(k.key, "needs ancmd to run as root (it runs as uid %d)", euid())
		default:
			if err := k.lookup(k.v); err != nil {
				bad(k.key, "%v", err)
			}
		}
	}
	if a.EnvFile != "" {
		if strings.IndexByte(a.EnvFile, 0) >= 0 {
			bad("env_file", "must not contain a NUL byte")
		} else if _, err := envfile.Read(EnvFilePath(a)); err != nil {
			bad("env_file", "%v", err)
		}
	}
	l := a.Limits
	switch {
	case l.Memory == 0:
	case l.Memory < MinMemoryLimit:
		bad("limits.memory", "must be at least 4MB, not %s", FormatSize(l.Memory))
	case !root:
		bad("limits.memory", limitsNeedRoot)
	}
	switch {
	case l.CPU == 0:
	case l.CPU < 0.01 || l.CPU > MaxCPULimit || math.IsNaN(l.CPU):
		bad("limits.cpu", "must be between 0.01 and %d cores, not %g", MaxCPULimit, l.CPU)
	case !root:
		bad("limits.cpu", limitsNeedRoot)
	}
	switch {
	case l.Pids == 0:
	case l.Pids < MinPidsLimit || l.Pids > MaxPidsLimit:
		bad("limits.pids", "must be between %d and %d, not %d", MinPidsLimit, MaxPidsLimit, l.Pids)
	case !root:
		bad("limits.pids", limitsNeedRoot)
	}
	if l.OpenFiles != 0 && (l.OpenFiles < minOpenFiles || l.OpenFiles > MaxOpenFiles) {
		bad("limits.open_files", "must be between %d and %d, not %d", minOpenFiles, MaxOpenFiles, l.OpenFiles)
	}
	return ps
}

// EnvFilePath is the app's env_file made absolute against its dir, or "".
func EnvFilePath(a *App) string {
	if a.EnvFile == "" || filepath.IsAbs(a.EnvFile) {
		return a.EnvFile
	}
	return filepath.Join(a.Dir, a.EnvFile)
}

func lookupUser(name string) error {
	if _, err := user.Lookup(name); err == nil {
		return nil
	}
	if _, err := strconv.ParseUint(name, 10, 32); err == nil {
		if _, err := user.LookupId(name); err == nil {
			return nil
		}
	}
	return fmt.Errorf("no such user %q", name)
}

func lookupGroup(name string) error {
	if _, err := user.LookupGroup(name); err == nil {
		return nil
	}
	if _, err := strconv.ParseUint(name, 10, 32); err == nil {
		if _, err := user.LookupGroupId(name); err == nil {
			return nil
		}
	}
	return fmt.Errorf("no such group %q", name)
}

// Warnings are what `ancmd validate` reports without refusing the file:
// apps that will run as root because ancmd does and they have no user.
func Warnings(f *File) []Diagnostic {
	if euid() != 0 {
		return nil
	}
	var ws []Diagnostic
	for _, a := range f.Apps {
		if a.User != "" {
			continue
		}
		ws = append(ws, Diagnostic{
			File: f.Path, Line: a.DeclRange.Start.Line, Column: a.DeclRange.Start.Column, App: a.Name, Key: "user",
			Message: "warning: the app will run as root, since ancmd runs as root and the app has no user key",
		})
	}
	return ws
}
