package config

import (
	"maps"
	"slices"
)

// defaultApp returns an app with every default of docs/configuration.md
// filled in; Dir is left to the caller.
func defaultApp(name string) App {
	return App{
		Name:                name,
		PathPrefix:          DefaultPathPrefix,
		Start:               StartOnDemand,
		Processes:           DefaultProcesses,
		StartupTimeout:      DefaultStartupTimeout,
		ShutdownTimeout:     DefaultShutdownTimeout,
		RequestTimeout:      DefaultRequestTimeout,
		RapidFailsPerMinute: DefaultRapidFailsPerMinute,
		StopSignal:          DefaultStopSignal,
		QueueSize:           DefaultQueueSize,
		OfflineFile:         DefaultOfflineFile,
		Protocol:            ProtocolHTTP1,
		Health:              Health{Interval: DefaultHealthInterval},
		StdoutLog:           StdoutLog{Enabled: true, MaxSize: DefaultLogMaxSize, MaxFiles: DefaultLogMaxFiles},
		Rollout:             Rollout{Strategy: RolloutRolling, MaxSurge: DefaultMaxSurge, MinReady: DefaultMinReady, DrainTimeout: DefaultDrainTimeout},
		InheritEnv:          true,
	}
}

// Equal reports whether two apps have the same configuration. DeclRange is
// not compared, and a nil slice or map equals an empty one: an app read
// from a file and the same app stored through the API are equal.
func (a App) Equal(b App) bool {
	return a.Name == b.Name &&
		a.Command == b.Command &&
		slices.Equal(a.Args, b.Args) &&
		a.Dir == b.Dir &&
		maps.Equal(a.Env, b.Env) &&
		slices.Equal(a.Hosts, b.Hosts) &&
		a.PathPrefix == b.PathPrefix &&
		a.StripPrefix == b.StripPrefix &&
		a.Start == b.Start &&
		a.Processes == b.Processes &&
		a.StartupTimeout == b.StartupTimeout &&
		a.ShutdownTimeout == b.ShutdownTimeout &&
		a.RequestTimeout == b.RequestTimeout &&
		a.RapidFailsPerMinute == b.RapidFailsPerMinute &&
		a.StopSignal == b.StopSignal &&
		a.QueueSize == b.QueueSize &&
		a.OfflineFile == b.OfflineFile &&
		a.ErrorDetail == b.ErrorDetail &&
		a.Compat == b.Compat &&
		a.Protocol == b.Protocol &&
		a.Health == b.Health &&
		a.StdoutLog == b.StdoutLog &&
		a.User == b.User &&
		a.Group == b.Group &&
		a.EnvFile == b.EnvFile &&
		a.InheritEnv == b.InheritEnv &&
		a.Limits == b.Limits &&
		a.Rollout == b.Rollout
}

// RunChanges names what differs between two apps in how they run (the
// command, its arguments, dir, environment, user, limits, compat,
// protocol, output capture): a change that needs
// new processes, rolled out as a new generation. Routing, timeouts and the
// other keys change in place. It returns nil when there is none.
func (a App) RunChanges(b App) []string {
	var out []string
	if a.Command != b.Command {
		out = append(out, "command")
	}
	if !slices.Equal(a.Args, b.Args) {
		out = append(out, "args")
	}
	if a.Dir != b.Dir {
		out = append(out, "dir")
	}
	if !maps.Equal(a.Env, b.Env) {
		out = append(out, "env")
	}
	if a.Compat != b.Compat {
		out = append(out, "compat")
	}
	if a.Protocol != b.Protocol {
		// h2c apps are probed and spoken to otherwise: a rollout.
		out = append(out, "protocol")
	}
	if a.User != b.User || a.Group != b.Group {
		out = append(out, "user")
	}
	if a.EnvFile != b.EnvFile || a.InheritEnv != b.InheritEnv {
		out = append(out, "env_file")
	}
	if a.Limits != b.Limits {
		out = append(out, "limits")
	}
	if a.StdoutLog != b.StdoutLog {
		// The log files an instance writes to are opened for its life.
		out = append(out, "stdout_log")
	}
	return out
}

// App returns the app with the given name, or false.
func (f *File) App(name string) (App, bool) {
	for _, a := range f.Apps {
		if a.Name == name {
			return a, true
		}
	}
	return App{}, false
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
