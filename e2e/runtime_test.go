package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// environ reads a process's environment as exec gave it.
func environ(t *testing.T, pid int) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(raw, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			env[k] = v
		}
	}
	return env
}

// The daemon re-executes itself once with the runtime setting that keeps
// sysmon out of deep sleep (cmd/ancmd/sysmon.go), keeps its pid, and gives
// its apps the GODEBUG the operator started it with; an operator's own
// schedtrace turns the re-exec off.
func TestDaemonQuietsSysmonAndAppsKeepGODEBUG(t *testing.T) {
	const quiet = "schedtrace=2147483647"
	cases := []struct {
		name       string
		env        []string // the operator's, on top of the test's
		daemon     string   // GODEBUG the daemon runs with ("" = unset)
		app        string   // GODEBUG its app gets ("" = unset)
		reexecuted bool
	}{
		{"unset", nil, quiet, os.Getenv("GODEBUG"), true},
		{"operator's", []string{"GODEBUG=madvdontneed=0"}, "madvdontneed=0," + quiet, "madvdontneed=0", true},
		{"operator's schedtrace", []string{"GODEBUG=schedtrace=0"}, "schedtrace=0", "schedtrace=0", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env == nil && os.Getenv("GODEBUG") != "" {
				t.Skip("the test's own environment sets GODEBUG")
			}
			d := prepareDaemon(t, helloApp)
			d.extraEnv = tc.env
			d.start("serve")

			env := environ(t, d.cmd.Process.Pid)
			if got := env["GODEBUG"]; got != tc.daemon {
				t.Errorf("daemon (pid %d, the one started) runs with GODEBUG=%q, want %q", d.cmd.Process.Pid, got, tc.daemon)
			}
			if _, marked := env["ANCMD_ORIGINAL_GODEBUG"]; marked != tc.reexecuted {
				t.Errorf("daemon re-executed: %v, want %v", marked, tc.reexecuted)
			}
			logged := strings.Contains(d.out.String(), "sysmon kept from deep sleep")
			if logged != tc.reexecuted {
				t.Errorf("debug line about sysmon logged: %v, want %v", logged, tc.reexecuted)
			}

			req, _ := http.NewRequest(http.MethodGet, d.url("/"), nil)
			if code, _, body := fetch(t, req); code != 200 {
				t.Fatalf("request: %d %s", code, body)
			}
			st := d.waitState("hello", "APP_STATE_RUNNING", 10*time.Second)
			app := environ(t, st.App.Instances[0].Pid)
			if got, ok := app["GODEBUG"]; got != tc.app || ok != (tc.app != "") {
				t.Errorf("app runs with GODEBUG=%q (set: %v), want %q", got, ok, tc.app)
			}
			if v, ok := app["ANCMD_ORIGINAL_GODEBUG"]; ok {
				t.Errorf("app inherited ANCMD_ORIGINAL_GODEBUG=%q", v)
			}
		})
	}

	t.Run("proxy", func(t *testing.T) {
		d := newDaemon(t, helloApp)
		_, out := d.startProxyOutput()
		waitFor(t, 10*time.Second, "the proxy's debug line about sysmon", func() bool {
			return strings.Contains(out.String(), "sysmon kept from deep sleep")
		})
	})
}
