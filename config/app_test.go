package config

import (
	"strings"
	"testing"
)

// RunChanges names the keys that change how an app runs, and only those.
func TestRunChanges(t *testing.T) {
	a := defaultApp("a")
	a.Command, a.Dir = "/bin/a", "/srv"
	for _, tc := range []struct {
		change func(*App)
		want   string
	}{
		{func(b *App) {}, ""},
		{func(b *App) { b.PathPrefix = "/x"; b.Hosts = []string{"h"}; b.RequestTimeout = 1 }, ""},
		{func(b *App) { b.Processes = 3; b.Rollout.MaxSurge = 2 }, ""},
		{func(b *App) { b.Env = map[string]string{"A": "1"} }, "env"},
		{func(b *App) { b.Args = []string{"x"}; b.Command = "/bin/b" }, "command,args"},
		{func(b *App) { b.Dir = "/other"; b.Compat = CompatASPNETCore }, "dir,compat"},
		{func(b *App) { b.StdoutLog.MaxFiles = 2 }, "stdout_log"},
		{func(b *App) { b.StripPrefix = true; b.QueueSize = 7 }, ""},
		{func(b *App) { b.Protocol = ProtocolH2C }, "protocol"},
		{func(b *App) { b.User = "nobody"; b.Limits.Pids = 64 }, "user,limits"},
		{func(b *App) { b.EnvFile = ".env" }, "env_file"},
	} {
		b := a
		tc.change(&b)
		if got := strings.Join(a.RunChanges(b), ","); got != tc.want {
			t.Errorf("RunChanges = %q, want %q", got, tc.want)
		}
	}
}
