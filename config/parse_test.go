package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ancm-dev/ancm/api/client"
)

func TestLoadFull(t *testing.T) {
	f, err := Load("testdata/full.hcl")
	if err != nil {
		t.Fatal(err)
	}
	base, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	want := &File{
		Path:           "testdata/full.hcl",
		Listen:         "0.0.0.0:8081",
		Control:        "tcp://127.0.0.1:9443",
		StateDir:       filepath.Join(base, "state"),
		LogLevel:       "debug",
		LogFormat:      "json",
		AccessLog:      true,
		MaxConnections: 5000,
		SendTimeout:    30 * time.Second,
		ControlTLS: &TLS{
			CertFile:     filepath.Join(base, "tls/server.pem"),
			KeyFile:      filepath.Join(base, "tls/server.key"),
			ClientCAFile: "/etc/ancm/ca.pem",
		},
	}
	if got := *f; got.Path != want.Path || got.Listen != want.Listen || got.Control != want.Control ||
		got.StateDir != want.StateDir || got.LogLevel != want.LogLevel || got.LogFormat != want.LogFormat ||
		got.AccessLog != want.AccessLog || got.MaxConnections != want.MaxConnections || got.SendTimeout != want.SendTimeout || got.Insecure || *got.ControlTLS != *want.ControlTLS {
		t.Errorf("settings:\n got %+v %+v\nwant %+v %+v", got, got.ControlTLS, want, want.ControlTLS)
	}

	hello := App{
		Name:                "hello",
		Command:             "./bin/hello",
		Args:                []string{"--port", "$PORT", "--greeting=${GREETING}"},
		Dir:                 filepath.Join(base, "apps/hello"),
		Env:                 map[string]string{"GREETING": "hi", "LOG_LEVEL": "debug"},
		Hosts:               []string{"hello.example.com", "*.hello.example.com"},
		PathPrefix:          "/hello",
		StripPrefix:         true,
		Start:               StartEager,
		Processes:           3,
		StartupTimeout:      30 * time.Second,
		ShutdownTimeout:     5 * time.Second,
		RequestTimeout:      90 * time.Second,
		RapidFailsPerMinute: 0,
		StopSignal:          "SIGINT",
		QueueSize:           0,
		OfflineFile:         "",
		ErrorDetail:         true,
		Compat:              "aspnetcore",
		Protocol:            "http1",
		Health:              Health{Path: "/healthz", Interval: 2 * time.Second},
		StdoutLog:           StdoutLog{Enabled: false, MaxSize: 512 << 10, MaxFiles: 10},
		Rollout:             Rollout{Strategy: RolloutRecreate, MaxSurge: 2, MinReady: 500 * time.Millisecond, DrainTimeout: time.Minute},
		InheritEnv:          true,
	}
	api := defaultApp("api")
	api.Command, api.Dir, api.PathPrefix = "/usr/bin/api", "/srv/api", "/api"
	beta := defaultApp("api-beta")
	beta.Command, beta.Dir, beta.PathPrefix, beta.Hosts = "/usr/bin/api", base, "/api", []string{"beta.example.com"}

	if len(f.Apps) != 3 {
		t.Fatalf("got %d apps, want 3", len(f.Apps))
	}
	for i, w := range []App{hello, api, beta} {
		if !f.Apps[i].Equal(w) {
			t.Errorf("app %d:\n got %+v\nwant %+v", i, f.Apps[i], w)
		}
	}
	if r := f.Apps[0].DeclRange; r.Filename != "testdata/full.hcl" || r.Start.Line != 18 || r.Start.Column != 1 {
		t.Errorf("hello DeclRange = %v, want testdata/full.hcl:16,1", r)
	}
	if a, ok := f.App("api-beta"); !ok || a.Name != "api-beta" {
		t.Errorf("File.App(api-beta) = %v, %v", a.Name, ok)
	}
}

func TestDefaults(t *testing.T) {
	f, err := Load("testdata/minimal.hcl")
	if err != nil {
		t.Fatal(err)
	}
	base, _ := filepath.Abs("testdata")
	stateDir := client.DefaultStateDir()
	if f.Listen != DefaultListen || f.StateDir != stateDir || f.LogLevel != "info" || f.LogFormat != "text" ||
		f.AccessLog || f.Insecure || f.ControlTLS != nil {
		t.Errorf("settings = %+v", f)
	}
	if want := "unix://" + stateDir + "/ancm.sock"; f.Control != want {
		t.Errorf("control = %q, want %q", f.Control, want)
	}
	if f.Control != client.DefaultAddress() {
		t.Errorf("control = %q, want the address ancmctl finds by default, %q", f.Control, client.DefaultAddress())
	}
	want := App{
		Name:                "hello",
		Command:             "./hello",
		Dir:                 base,
		PathPrefix:          "/",
		Start:               StartOnDemand,
		Processes:           1,
		StartupTimeout:      120 * time.Second,
		ShutdownTimeout:     10 * time.Second,
		RequestTimeout:      2 * time.Minute,
		RapidFailsPerMinute: 10,
		StopSignal:          "SIGTERM",
		QueueSize:           100,
		OfflineFile:         "app_offline.htm",
		Protocol:            "http1",
		Health:              Health{Interval: 10 * time.Second},
		StdoutLog:           StdoutLog{Enabled: true, MaxSize: 10 << 20, MaxFiles: 5},
		Rollout:             Rollout{Strategy: RolloutRolling, MaxSurge: 1, MinReady: time.Second, DrainTimeout: 30 * time.Second},
		InheritEnv:          true,
	}
	if len(f.Apps) != 1 || !f.Apps[0].Equal(want) {
		t.Errorf("apps:\n got %+v\nwant %+v", f.Apps, want)
	}
}

func TestRelativePaths(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	src := []byte(`
state_dir = "st"
control   = "unix://run/ancm.sock"
app "a" {
  command = "x"
}
app "b" {
  command = "x"
  dir     = "../b/./c"
  path_prefix = "/b"
}
app "c" {
  command = "x"
  dir     = "/abs//c/"
  path_prefix = "/c"
}
`)
	for _, tc := range []struct {
		filename, base string
	}{
		{"/etc/ancm/ancm.hcl", "/etc/ancm"},
		{"conf/ancm.hcl", filepath.Join(cwd, "conf")},
		{"ancm.hcl", cwd},
		{"", cwd},
	} {
		t.Run(tc.filename, func(t *testing.T) {
			f, err := Parse(src, tc.filename)
			if err != nil {
				t.Fatal(err)
			}
			check := func(what, got, want string) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %q, want %q", what, got, want)
				}
			}
			check("state_dir", f.StateDir, filepath.Join(tc.base, "st"))
			check("control", f.Control, "unix://"+filepath.Join(tc.base, "run/ancm.sock"))
			check("dir of a", f.Apps[0].Dir, tc.base)
			check("dir of b", f.Apps[1].Dir, filepath.Join(filepath.Dir(tc.base), "b/c"))
			check("dir of c", f.Apps[2].Dir, "/abs/c")
		})
	}
}

func TestStateDirSetsControl(t *testing.T) {
	f, err := Parse([]byte(`state_dir = "/srv/ancm"`), "/etc/ancm.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if f.Control != "unix:///srv/ancm/ancm.sock" {
		t.Errorf("control = %q", f.Control)
	}
}

func TestValidValues(t *testing.T) {
	for _, tc := range []struct {
		line  string
		check func(App) bool
	}{
		{`stop_signal = "TERM"`, func(a App) bool { return a.StopSignal == "SIGTERM" }},
		{`stop_signal = "sigterm"`, func(a App) bool { return a.StopSignal == "SIGTERM" }},
		{`stop_signal = "SIGKILL"`, func(a App) bool { return a.StopSignal == "SIGKILL" }},
		{`stop_signal = "quit"`, func(a App) bool { return a.StopSignal == "SIGQUIT" }},
		{`hosts = ["A.Example.COM", "*.Example.com"]`, func(a App) bool {
			return slices.Equal(a.Hosts, []string{"a.example.com", "*.example.com"})
		}},
		{`hosts = []`, func(a App) bool { return len(a.Hosts) == 0 }},
		{`path_prefix = "/a/b/"`, func(a App) bool { return a.PathPrefix == "/a/b" }},
		{`path_prefix = "//a//./b"`, func(a App) bool { return a.PathPrefix == "/a/b" }},
		{`path_prefix = "/"`, func(a App) bool { return a.PathPrefix == "/" }},
		{`processes = 100`, func(a App) bool { return a.Processes == 100 }},
		{`processes = 1`, func(a App) bool { return a.Processes == 1 }},
		{`rapid_fails_per_minute = 100`, func(a App) bool { return a.RapidFailsPerMinute == 100 }},
		{`queue_size = 0`, func(a App) bool { return a.QueueSize == 0 }},
		{`offline_file = "maint/down.htm"`, func(a App) bool { return a.OfflineFile == "maint/down.htm" }},
		{`offline_file = ""`, func(a App) bool { return a.OfflineFile == "" }},
		{`offline_file = null`, func(a App) bool { return a.OfflineFile == DefaultOfflineFile }},
		{`env = {}`, func(a App) bool { return len(a.Env) == 0 }},
		{`env = { _X1 = "a=b" }`, func(a App) bool { return a.Env["_X1"] == "a=b" }},
		{`compat = ""`, func(a App) bool { return a.Compat == "" }},
		{`startup_timeout = "1h30m"`, func(a App) bool { return a.StartupTimeout == 90*time.Minute }},
		{`stdout_log { max_size = 1024 }`, func(a App) bool { return a.StdoutLog.MaxSize == 1024 }},
		{`stdout_log { max_size = "1gb" }`, func(a App) bool { return a.StdoutLog.MaxSize == 1<<30 }},
		{`stdout_log { max_files = 1000 }`, func(a App) bool { return a.StdoutLog.MaxFiles == 1000 }},
		{`health { path = "/health?deep=1" }`, func(a App) bool { return a.Health.Path == "/health?deep=1" }},
		{`args = ["$${HOME}", "$PORT"]`, func(a App) bool { return slices.Equal(a.Args, []string{"${HOME}", "$PORT"}) }},
	} {
		t.Run(tc.line, func(t *testing.T) {
			src := fmt.Sprintf("app \"a\" {\n  command = \"x\"\n  %s\n}\n", tc.line)
			f, err := Parse([]byte(src), "/test.hcl")
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(f.Apps[0]) {
				t.Errorf("unexpected app %+v", f.Apps[0])
			}
		})
	}
}

func TestAppNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"a": true, "hello": true, "my_app.v2-1": true, "A9": true, "_x": true,
		strings.Repeat("a", 63): true,
		strings.Repeat("a", 64): false,
		"":                      false,
		".hidden":               false,
		"-flag":                 false,
		"a/b":                   false,
		"a b":                   false,
		"é":                     false,
		"..":                    false,
	} {
		src := fmt.Sprintf("app %q {\n  command = \"x\"\n}\n", name)
		_, err := Parse([]byte(src), "n.hcl")
		if (err == nil) != ok {
			t.Errorf("name %q: err = %v, want ok = %v", name, err, ok)
			continue
		}
		if !ok {
			wantDiag(t, err, Diagnostic{File: "n.hcl", Line: 1, Column: 5, App: name, Key: "name"})
		}
	}
}

// TestAppErrors checks each rule on a line of its own in an app block:
//
//	app "a" {
//	  command = "x"
//	  LINE
//	}
//
// The error must stand on line 3, at the column of `at` in LINE.
func TestAppErrors(t *testing.T) {
	for _, tc := range []struct {
		line, key, at, msg string
	}{
		{`processes = 0`, "processes", "0", "between 1 and 100"},
		{`processes = 101`, "processes", "101", "between 1 and 100"},
		{`processes = -1`, "processes", "-1", "between 1 and 100"},
		{`processes = 1.5`, "processes", "1.5", "whole number"},
		{`processes = 1e30`, "processes", "1e30", "out of range"},
		{`processes = 1e99999999`, "processes", "1e99999999", "out of range"},
		{`processes = 1.5e-99999999`, "processes", "1.5e-99999999", "whole number"},
		{`stdout_log { max_size = 1e99999999 }`, "stdout_log.max_size", "1e99999999", "whole number of bytes"},
		{`processes = "3"`, "processes", `"3"`, "must be a whole number, not a string"},
		{`processes = true`, "processes", `true`, "must be a whole number, not a bool"},
		{`rapid_fails_per_minute = 101`, "rapid_fails_per_minute", "101", "between 0 and 100"},
		{`rapid_fails_per_minute = -1`, "rapid_fails_per_minute", "-1", "between 0 and 100"},
		{`queue_size = -1`, "queue_size", "-1", "between 0 and"},
		{`startup_timeout = "0s"`, "startup_timeout", `"0s"`, "greater than 0"},
		{`startup_timeout = "-5s"`, "startup_timeout", `"-5s"`, "greater than 0"},
		{`shutdown_timeout = "0"`, "shutdown_timeout", `"0"`, "greater than 0"},
		{`request_timeout = "10"`, "request_timeout", `"10"`, "not a duration"},
		{`request_timeout = "soon"`, "request_timeout", `"soon"`, "not a duration"},
		{`request_timeout = 10`, "request_timeout", `10`, "duration string"},
		{`health { interval = "0s" }`, "health.interval", `"0s"`, "greater than 0"},
		{`health { interval = "-1m" }`, "health.interval", `"-1m"`, "greater than 0"},
		{`health { interval = "x" }`, "health.interval", `"x"`, "not a duration"},
		{`health { path = "healthz" }`, "health.path", `"healthz"`, `starting with "/"`},
		{`health { path = 1 }`, "health.path", `1`, "must be a string"},
		{`health { timeout = "1s" }`, "health.timeout", `timeout`, "unknown key"},
		{`start = "lazy"`, "start", `"lazy"`, `"on_demand" or "eager"`},
		{`start = "ON_DEMAND"`, "start", `"ON_DEMAND"`, `"on_demand" or "eager"`},
		{`compat = "iis"`, "compat", `"iis"`, `"aspnetcore"`},
		{`stop_signal = "SIGFOO"`, "stop_signal", `"SIGFOO"`, "not a known signal"},
		{`stop_signal = "15"`, "stop_signal", `"15"`, "not a known signal"},
		{`stop_signal = ""`, "stop_signal", `""`, "not a known signal"},
		{`stdout_log { max_size = "10XB" }`, "stdout_log.max_size", `"10XB"`, "unknown unit"},
		{`stdout_log { max_size = "512" }`, "stdout_log.max_size", `"512"`, "at least 1KB"},
		{`stdout_log { max_size = "1023B" }`, "stdout_log.max_size", `"1023B"`, "at least 1KB"},
		{`stdout_log { max_size = -5 }`, "stdout_log.max_size", `-5`, "whole number of bytes"},
		{`stdout_log { max_size = true }`, "stdout_log.max_size", `true`, "size"},
		{`stdout_log { max_files = 0 }`, "stdout_log.max_files", `0`, "between 1 and 1000"},
		{`stdout_log { max_files = 1001 }`, "stdout_log.max_files", `1001`, "between 1 and 1000"},
		{`stdout_log { enabled = "yes" }`, "stdout_log.enabled", `"yes"`, "true or false"},
		{`error_detail = 1`, "error_detail", `1`, "true or false"},
		{`hosts = ["https://a.example.com"]`, "hosts", `"https`, "no scheme"},
		{`hosts = ["a.example.com:8080"]`, "hosts", `"a.`, "no port"},
		{`hosts = ["a.example.com/x"]`, "hosts", `"a.`, "no path"},
		{`hosts = ["ok.com", ""]`, "hosts", `""`, "empty host"},
		{`hosts = ["ok.com", "a..b"]`, "hosts", `"a..b"`, "not a DNS name"},
		{`hosts = ["-a.com"]`, "hosts", `"-a.com"`, "not a DNS name"},
		{`hosts = ["a*.example.com"]`, "hosts", `"a*`, "wildcard"},
		{`hosts = ["*.*.example.com"]`, "hosts", `"*.*`, "wildcard"},
		{`hosts = ["*"]`, "hosts", `"*"`, "wildcard"},
		{`hosts = ["a.com", "A.com"]`, "hosts", `"A.com"`, "listed twice"},
		{`hosts = "a.com"`, "hosts", `"a.com"`, "list of strings"},
		{`hosts = ["a.com", 5]`, "hosts", `5`, "element 1 must be a string"},
		{`path_prefix = "api"`, "path_prefix", `"api"`, `must start with "/"`},
		{`path_prefix = ""`, "path_prefix", `""`, `must start with "/"`},
		{`path_prefix = "/a/../b"`, "path_prefix", `"/a`, `".."`},
		{`path_prefix = "/a?x=1"`, "path_prefix", `"/a`, "query"},
		{`path_prefix = "/a b"`, "path_prefix", `"/a`, "spaces"},
		{`offline_file = "/abs/off.htm"`, "offline_file", `"/abs`, "relative to dir"},
		{`offline_file = "../off.htm"`, "offline_file", `"..`, "inside dir"},
		{`env = { "1X" = "a" }`, "env", `"1X"`, "not a valid environment variable name"},
		{`env = { "A-B" = "a" }`, "env", `"A-B"`, "not a valid environment variable name"},
		{`env = { "" = "a" }`, "env", `""`, "not a valid environment variable name"},
		{`env = { A = 1 }`, "env", `A`, "value of A must be a string"},
		{`env = { A = "1", A = "2" }`, "env", `A = "2"`, "given twice"},
		{`env = ["A=1"]`, "env", `[`, "map of strings"},
		{`args = "--port"`, "args", `"--port"`, "list of strings"},
		{`args = ["a", null]`, "args", `null`, "element 1 must be a string, not null"},
		{`dir = ""`, "dir", `""`, "must not be empty"},
		{`dir = 5`, "dir", `5`, "must be a string"},
		{`procesess = 2`, "procesess", `procesess`, `did you mean "processes"?`},
		{`health = { path = "/" }`, "health", `health`, "must be a block"},
		{`stdout_log "x" {}`, "stdout_log", `"x"`, "takes no label"},
		{`command = "y"`, "command", `command`, "Attribute redefined"},
		{`offline_file = "${x}"`, "offline_file", `x`, "Variables not allowed"},
		{`offline_file = upper("a")`, "offline_file", `upper`, "Function calls not allowed"},
		{`frobnicate {}`, "frobnicate", `frobnicate`, "unknown block"},
		{`rollout { strategy = "blue-green" }`, "rollout.strategy", `"blue-green"`, `"rolling" or "recreate"`},
		{`rollout { max_surge = 2 }`, "rollout.max_surge", `2`, "between 1 and processes (1)"},
		{`rollout { max_surge = 0 }`, "rollout.max_surge", `0`, "between 1 and processes"},
		{`rollout { min_ready = "-1s" }`, "rollout.min_ready", `"-1s"`, "not be negative"},
		{`rollout { drain_timeout = "0s" }`, "rollout.drain_timeout", `"0s"`, "greater than 0"},
		{`rollout { surge = 1 }`, "rollout.surge", `surge`, "unknown key"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			src := fmt.Sprintf("app \"a\" {\n  command = \"x\"\n  %s\n}\n", tc.line)
			_, err := Parse([]byte(src), "t.hcl")
			col := strings.Index(tc.line, tc.at)
			if col < 0 {
				t.Fatalf("bad test: %q not in %q", tc.at, tc.line)
			}
			wantDiag(t, err, Diagnostic{File: "t.hcl", Line: 3, Column: 3 + col, App: "a", Key: tc.key, Message: tc.msg})
		})
	}
}

func TestMissingCommand(t *testing.T) {
	for _, tc := range []struct {
		src       string
		line, col int
	}{
		{"app \"a\" {\n}\n", 1, 1}, // at the block
		{"app \"a\" {\n  command = \"\"\n}\n", 2, 13},
		{"app \"a\" {\n  command = null\n}\n", 2, 13},
	} {
		_, err := Parse([]byte(tc.src), "t.hcl")
		wantDiag(t, err, Diagnostic{File: "t.hcl", Line: tc.line, Column: tc.col, App: "a", Key: "command", Message: "required"})
	}
	// A command of the wrong type is reported as such, not as missing too.
	_, err := Parse([]byte("app \"a\" {\n  command = 1\n}\n"), "t.hcl")
	if d := diagnostics(t, err); len(d) != 1 || !strings.Contains(d[0].Message, "must be a string") {
		t.Errorf("got %v, want one type error", d)
	}
}

func TestSettingsErrors(t *testing.T) {
	for _, tc := range []struct {
		src, key, at, msg string
	}{
		{`listen = "8080"`, "listen", `"8080"`, "HOST:PORT"},
		{`listen = "127.0.0.1:http"`, "listen", `"127`, "port must be a number"},
		{`listen = "127.0.0.1:70000"`, "listen", `"127`, "port must be a number"},
		{`listen = 8080`, "listen", `8080`, "must be a string"},
		{`control = "/run/ancm.sock"`, "control", `"/run`, "unix:///"},
		{`control = "http://x:1"`, "control", `"http`, "unix:///"},
		{`control = "unix://"`, "control", `"unix`, "empty socket path"},
		{`control = "tcp://localhost"`, "control", `"tcp`, "tcp://host:port"},
		{`control = "tcp://127.0.0.1:9000"`, "control", `"tcp`, "needs a control_tls block"},
		{`state_dir = ""`, "state_dir", `""`, "must not be empty"},
		{`log_level = "INFO"`, "log_level", `"INFO"`, "trace|debug|info|warn|error"},
		{`log_level = "warning"`, "log_level", `"warning"`, "trace|debug|info|warn|error"},
		{`log_format = "xml"`, "log_format", `"xml"`, "text|json"},
		{`access_log = "on"`, "access_log", `"on"`, "true or false"},
		{`insecure = 1`, "insecure", `1`, "true or false"},
		{`lsiten = ":80"`, "lsiten", `lsiten`, `did you mean "listen"?`},
		{`control_tls { cert_file = "c" }`, "control_tls.key_file", `control_tls`, "required"},
		{"control_tls {\ncert_file = \"c\"\n}", "control_tls.client_ca_file", `control_tls`, "required"},
		{`control_tls = {}`, "control_tls", `control_tls`, "must be a block"},
		{`app = {}`, "app", `app`, "must be a block"},
		{`app {}`, "app", `app`, "needs a name"},
		{`app "a" "b" {}`, "app", `"b"`, "one label"}, // App is "a", see below
	} {
		t.Run(tc.src, func(t *testing.T) {
			_, err := Parse([]byte("# settings\n"+tc.src+"\n"), "s.hcl")
			col := strings.Index(tc.src, tc.at)
			if col < 0 {
				t.Fatalf("bad test: %q not in %q", tc.at, tc.src)
			}
			app := ""
			if strings.HasPrefix(tc.src, `app "a"`) {
				app = "a"
			}
			wantDiag(t, err, Diagnostic{File: "s.hcl", Line: 2, Column: 1 + col, App: app, Key: tc.key, Message: tc.msg})
		})
	}
}

func TestControl(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`control = "tcp://127.0.0.1:9000"` + "\ninsecure = true", "tcp://127.0.0.1:9000"},
		{`control = "tcp://[::1]:9000"` + "\ncontrol_tls {\ncert_file = \"c\"\nkey_file = \"k\"\nclient_ca_file = \"ca\"\n}", "tcp://[::1]:9000"},
		{`control = "unix:///run/ancm/ancm.sock"`, "unix:///run/ancm/ancm.sock"},
		{`control = "unix://ancm.sock"`, "unix:///etc/ancm/ancm.sock"},
	} {
		f, err := Parse([]byte(tc.src), "/etc/ancm/ancm.hcl")
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if f.Control != tc.want {
			t.Errorf("%s: control = %q, want %q", tc.src, f.Control, tc.want)
		}
	}
}

// TestEveryError checks that every problem is reported, in order of
// position, with its own position and key.
func TestEveryError(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // LINE:COL app key, as in the output
	}{
		{"testdata/invalid_types.hcl", []string{
			`1:10: listen:`,
			`2:14: access_log:`,
			`5:15: app "hello": command: must be a string, not a list`,
			`6:15: app "hello": processes: must be a whole number, not a string`,
			`7:15: app "hello": hosts: must be a list of strings`,
			`9:16: app "hello": health.interval: must be a duration string`,
		}},
		{"testdata/invalid_keys.hcl", []string{
			`1:1: lsiten: unknown key; did you mean "listen"?`,
			`5:3: app "hello": procesess: unknown key; did you mean "processes"?`,
			`8:5: app "hello": health.timeout: unknown key`,
			`10:3: app "hello": stdout_log: must be a block`,
			`11:3: app "hello": healthcheck: unknown block`,
		}},
		{"testdata/invalid_routes.hcl", []string{
			`7:17: app "b": path_prefix: path prefix "/" on any host is already claimed by app "a" (testdata/invalid_routes.hcl:1:1)`,
			`15:1: app "d": path_prefix: path prefix "/" on host "*.example.com" is already claimed by app "c" (testdata/invalid_routes.hcl:10:1)`,
			`20:5: app "a": name: another app with this name is at line 1`,
		}},
		{"testdata/invalid_syntax.hcl", []string{
			`2:21: app "hello": command: Invalid multi-line string`,
			`2:21: app "hello": command: Unterminated template string`,
			`3:2: app "hello": command: Invalid multi-line string`,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(tc.file)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], tc.file+":"+w) {
					t.Errorf("error %d:\n got %s\nwant %s:%s...", i, lines[i], tc.file, w)
				}
			}
			if d := diagnostics(t, err); len(d) != len(lines) {
				t.Errorf("%d diagnostics for %d lines", len(d), len(lines))
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.hcl")
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("err = %v, want a not-exist error that is not ErrInvalid", err)
	}
}

func TestParseApps(t *testing.T) {
	src := []byte(`
# Settings are allowed in an applied file, and ignored, even bad ones.
control = "tcp://0.0.0.0:1"
listen  = "nonsense"

app "a" {
  command = "./a"
  dir     = "sub"
}
app "b" {
  command     = "./b"
  path_prefix = "/b"
}
`)
	apps, err := ParseApps(src, "/srv/apply/apps.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 || apps[0].Name != "a" || apps[1].Name != "b" {
		t.Fatalf("apps = %+v", apps)
	}
	if apps[0].Dir != "/srv/apply/sub" || apps[1].Dir != "/srv/apply" {
		t.Errorf("dirs = %q, %q", apps[0].Dir, apps[1].Dir)
	}

	for _, tc := range []struct {
		src  string
		want Diagnostic
	}{
		{"listen = \":80\"\n", Diagnostic{File: "x.hcl", Line: 1, Column: 1, Message: "no app block"}},
		{"", Diagnostic{File: "x.hcl", Line: 1, Column: 1, Message: "no app block"}},
		{"bogus = 1\napp \"a\" {\n command = \"x\"\n}\n", Diagnostic{File: "x.hcl", Line: 1, Column: 1, Key: "bogus", Message: "unknown key"}},
		{"app \"a\" {\n  processes = 0\n}\n", Diagnostic{File: "x.hcl", Line: 1, Column: 1, App: "a", Key: "command", Message: "required"}},
		{"app \"a\" {\n  command = \"x\"\n  processes = 0\n}\n", Diagnostic{File: "x.hcl", Line: 3, Column: 15, App: "a", Key: "processes", Message: "between"}},
		{"app \"a\" {\n  command = \"x\"\n}\napp \"b\" {\n  command = \"x\"\n}\n", Diagnostic{File: "x.hcl", Line: 4, Column: 1, App: "b", Key: "path_prefix", Message: `already claimed by app "a"`}},
		{"app \"a\" {\n  command = \"x\"\n}\napp \"a\" {\n  command = \"x\"\n}\n", Diagnostic{File: "x.hcl", Line: 4, Column: 5, App: "a", Key: "name", Message: "another app"}},
	} {
		_, err := ParseApps([]byte(tc.src), "x.hcl")
		wantDiag(t, err, tc.want)
	}
}

// wantDiag fails unless err is an *Error with a diagnostic at want's
// position, app and key whose message contains want.Message.
func wantDiag(t *testing.T, err error, want Diagnostic) {
	t.Helper()
	ds := diagnostics(t, err)
	for _, d := range ds {
		if d.File == want.File && d.Line == want.Line && d.Column == want.Column && d.App == want.App &&
			d.Key == want.Key && strings.Contains(d.Message, want.Message) {
			if !strings.Contains(err.Error(), d.String()) {
				t.Errorf("Error() does not contain %q", d.String())
			}
			return
		}
	}
	t.Errorf("no diagnostic like %q in:\n%v", want.String(), err)
}

func diagnostics(t *testing.T, err error) []Diagnostic {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *Error", err, err)
	}
	return e.Diagnostics
}

func TestDiagnosticString(t *testing.T) {
	for _, tc := range []struct {
		d    Diagnostic
		want string
	}{
		{Diagnostic{File: "a.hcl", Line: 3, Column: 5, App: "x", Key: "processes", Message: "bad"}, `a.hcl:3:5: app "x": processes: bad`},
		{Diagnostic{File: "a.hcl", Line: 1, Column: 1, Key: "listen", Message: "bad"}, `a.hcl:1:1: listen: bad`},
		{Diagnostic{File: "a.hcl", Line: 2, Column: 9, Message: "Invalid expression"}, `a.hcl:2:9: Invalid expression`},
		{Diagnostic{Line: 2, Column: 9, Message: "m"}, `2:9: m`},
		{Diagnostic{App: "x", Key: "path_prefix", Message: "m"}, `app "x": path_prefix: m`},
	} {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
