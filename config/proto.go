package config

import (
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// Proto returns the app as an AppSpec with every field set, defaults
// included, so that what a client reads back is what runs.
func (a App) Proto() *ancmv1.AppSpec {
	start := ancmv1.StartMode_START_MODE_ON_DEMAND
	if a.Start == StartEager {
		start = ancmv1.StartMode_START_MODE_EAGER
	}
	return &ancmv1.AppSpec{
		Name:                a.Name,
		Command:             a.Command,
		Args:                slices.Clone(a.Args),
		Dir:                 a.Dir,
		Env:                 maps.Clone(a.Env),
		Hosts:               slices.Clone(a.Hosts),
		PathPrefix:          a.PathPrefix,
		Start:               start,
		Processes:           uint32(max(a.Processes, 0)),
		StartupTimeout:      durationpb.New(a.StartupTimeout),
		ShutdownTimeout:     durationpb.New(a.ShutdownTimeout),
		RequestTimeout:      durationpb.New(a.RequestTimeout),
		RapidFailsPerMinute: proto.Uint32(uint32(max(a.RapidFailsPerMinute, 0))),
		StopSignal:          a.StopSignal,
		QueueSize:           proto.Uint32(uint32(max(a.QueueSize, 0))),
		OfflineFile:         proto.String(a.OfflineFile),
		ErrorDetail:         a.ErrorDetail,
		StripPrefix:         a.StripPrefix,
		Protocol:            a.Protocol,
		Compat:              a.Compat,
		Health: &ancmv1.HealthCheck{
			Path:     a.Health.Path,
			Interval: durationpb.New(a.Health.Interval),
		},
		StdoutLog: &ancmv1.StdoutLog{
			Enabled:  proto.Bool(a.StdoutLog.Enabled),
			MaxSize:  uint64(max(a.StdoutLog.MaxSize, 0)),
			MaxFiles: uint32(max(a.StdoutLog.MaxFiles, 0)),
		},
		Rollout: &ancmv1.RolloutPolicy{
			Strategy:     a.Rollout.Strategy,
			MaxSurge:     uint32(max(a.Rollout.MaxSurge, 0)),
			MinReady:     durationpb.New(a.Rollout.MinReady),
			DrainTimeout: durationpb.New(a.Rollout.DrainTimeout),
		},
		User:       a.User,
		Group:      a.Group,
		EnvFile:    a.EnvFile,
		InheritEnv: proto.Bool(a.InheritEnv),
		Limits: &ancmv1.Limits{
			Memory:    uint64(max(a.Limits.Memory, 0)),
			Cpu:       a.Limits.CPU,
			Pids:      uint32(max(a.Limits.Pids, 0)),
			OpenFiles: uint64(max(a.Limits.OpenFiles, 0)),
		},
	}
}

// AppFromProto turns an AppSpec received through the API into an App:
// unset fields take the defaults of the config file (see the comments in
// types.proto), then the rules of the config file apply. Dir must be
// absolute; an empty dir means "/". The error is FieldErrors, one
// *FieldError per problem, with proto field paths such as "app.processes".
func AppFromProto(spec *ancmv1.AppSpec) (App, error) {
	if spec == nil {
		return App{}, FieldErrors{{Field: "app", Message: "required"}}
	}
	var errs FieldErrors
	failed := map[string]bool{}
	bad := func(key, format string, args ...any) {
		failed[key] = true
		errs = append(errs, &FieldError{Field: "app." + key, Message: fmt.Sprintf(format, args...)})
	}

	a := defaultApp(spec.GetName())
	a.Command = spec.GetCommand()
	a.Args = slices.Clone(spec.GetArgs())
	a.Env = maps.Clone(spec.GetEnv())
	a.Hosts = slices.Clone(spec.GetHosts())
	a.ErrorDetail = spec.GetErrorDetail()
	a.StripPrefix = spec.GetStripPrefix()
	if p := spec.GetProtocol(); p != "" {
		a.Protocol = p
	}
	a.Compat = spec.GetCompat()

	switch dir := spec.GetDir(); {
	case dir == "":
		a.Dir = "/"
	case !filepath.IsAbs(dir):
		bad("dir", "%q must be an absolute path: an app applied through the API has no config file to be relative to", dir)
	default:
		a.Dir = filepath.Clean(dir)
	}
	if p := spec.GetPathPrefix(); p != "" {
		a.PathPrefix = p
	}
	switch spec.GetStart() {
	case ancmv1.StartMode_START_MODE_UNSPECIFIED, ancmv1.StartMode_START_MODE_ON_DEMAND:
		a.Start = StartOnDemand
	case ancmv1.StartMode_START_MODE_EAGER:
		a.Start = StartEager
	default:
		bad("start", "unknown start mode %d", spec.GetStart())
	}
	if n := spec.GetProcesses(); n != 0 {
		a.Processes = clampInt(uint64(n))
	}
	fromDuration := func(key string, d *durationpb.Duration, dst *time.Duration) {
		if d == nil {
			return
		}
		if err := d.CheckValid(); err != nil {
			bad(key, "invalid duration: %v", err)
			return
		}
		*dst = d.AsDuration()
	}
	fromDuration("startup_timeout", spec.GetStartupTimeout(), &a.StartupTimeout)
	fromDuration("shutdown_timeout", spec.GetShutdownTimeout(), &a.ShutdownTimeout)
	fromDuration("request_timeout", spec.GetRequestTimeout(), &a.RequestTimeout)
	if spec.RapidFailsPerMinute != nil {
		a.RapidFailsPerMinute = clampInt(uint64(spec.GetRapidFailsPerMinute()))
	}
	if s := spec.GetStopSignal(); s != "" {
		a.StopSignal = s
	}
	if spec.QueueSize != nil {
		a.QueueSize = clampInt(uint64(spec.GetQueueSize()))
	}
	if spec.OfflineFile != nil {
		a.OfflineFile = spec.GetOfflineFile()
	}
	if h := spec.GetHealth(); h != nil {
		a.Health.Path = h.GetPath()
		fromDuration("health.interval", h.GetInterval(), &a.Health.Interval)
	}
	if l := spec.GetStdoutLog(); l != nil {
		if l.Enabled != nil {
			a.StdoutLog.Enabled = l.GetEnabled()
		}
		switch n := l.GetMaxSize(); {
		case n > math.MaxInt64:
			bad("stdout_log.max_size", "%d bytes is too large", n)
		case n != 0:
			a.StdoutLog.MaxSize = int64(n)
		}
		if n := l.GetMaxFiles(); n != 0 {
			a.StdoutLog.MaxFiles = clampInt(uint64(n))
		}
	}

	if r := spec.GetRollout(); r != nil {
		if r.GetStrategy() != "" {
			a.Rollout.Strategy = r.GetStrategy()
		}
		if n := r.GetMaxSurge(); n != 0 {
			a.Rollout.MaxSurge = clampInt(uint64(n))
		}
		fromDuration("rollout.min_ready", r.GetMinReady(), &a.Rollout.MinReady)
		fromDuration("rollout.drain_timeout", r.GetDrainTimeout(), &a.Rollout.DrainTimeout)
	}
	isolationFromProto(spec, &a, bad)

	for _, p := range checkApp(&a) {
		if !failed[p.key] {
			errs = append(errs, &FieldError{Field: "app." + p.key, Message: p.msg})
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(x, y *FieldError) int {
			return fieldNumber(x.Field) - fieldNumber(y.Field)
		})
		return App{}, errs
	}
	return a, nil
}

// fieldNumber orders field paths as the fields of AppSpec are numbered.
func fieldNumber(path string) int {
	key, _ := strings.CutPrefix(path, "app.")
	key, _, _ = strings.Cut(key, ".")
	if key == "name" {
		return 0
	}
	if i := slices.Index(appSchema.attrs, key); i >= 0 {
		return 1 + i
	}
	return 1 + len(appSchema.attrs) + slices.Index(appSchema.blocks, key)
}

// clampInt converts an API integer to int, clamped so that range checks
// still refuse it.
func clampInt(n uint64) int {
	return int(min(n, math.MaxInt32))
}
