package config

import (
	"maps"
	"slices"
)

// defaultApp returns an app with every default of DESIGN.md filled in; Dir
// is left to the caller.
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
		Health:              Health{Interval: DefaultHealthInterval},
		StdoutLog:           StdoutLog{Enabled: true, MaxSize: DefaultLogMaxSize, MaxFiles: DefaultLogMaxFiles},
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
		a.Health == b.Health &&
		a.StdoutLog == b.StdoutLog &&
		a.User == b.User &&
		a.Group == b.Group &&
		a.EnvFile == b.EnvFile &&
		a.InheritEnv == b.InheritEnv &&
		a.Limits == b.Limits
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
