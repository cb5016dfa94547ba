package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func TestProtoRoundTrip(t *testing.T) {
	f, err := Load("testdata/full.hcl")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load("testdata/minimal.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range append(f.Apps, m.Apps...) {
		t.Run(a.Name, func(t *testing.T) {
			spec := a.Proto()
			// Through the wire, as a client would send it.
			raw, err := proto.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			var got ancmv1.AppSpec
			if err := proto.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			back, err := AppFromProto(&got)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(a) {
				t.Errorf("round trip:\n got %+v\nwant %+v", back, a)
			}
			if !proto.Equal(back.Proto(), spec) {
				t.Errorf("Proto of the round trip differs")
			}
		})
	}
}

func TestProtoFullyPopulated(t *testing.T) {
	a := defaultApp("a")
	a.Command, a.Dir, a.OfflineFile, a.QueueSize, a.RapidFailsPerMinute = "x", "/", "", 0, 0
	a.StdoutLog.Enabled = false
	spec := a.Proto()
	if spec.OfflineFile == nil || *spec.OfflineFile != "" {
		t.Errorf("offline_file = %v, want set to \"\"", spec.OfflineFile)
	}
	if spec.QueueSize == nil || spec.RapidFailsPerMinute == nil || spec.StdoutLog.Enabled == nil || *spec.StdoutLog.Enabled {
		t.Errorf("optional fields not set explicitly: %v", spec)
	}
	if spec.GetStartupTimeout().AsDuration() != DefaultStartupTimeout || spec.GetHealth().GetInterval().AsDuration() != DefaultHealthInterval {
		t.Errorf("durations not set: %v", spec)
	}
	if spec.Start != ancmv1.StartMode_START_MODE_ON_DEMAND || spec.StopSignal != "SIGTERM" || spec.PathPrefix != "/" {
		t.Errorf("defaults not set: %v", spec)
	}
	// Changing the spec does not change the app.
	a.Args, a.Hosts, a.Env = []string{"1"}, []string{"a.com"}, map[string]string{"A": "1"}
	spec = a.Proto()
	spec.Args[0], spec.Hosts[0], spec.Env["A"] = "2", "b.com", "2"
	if a.Args[0] != "1" || a.Hosts[0] != "a.com" || a.Env["A"] != "1" {
		t.Errorf("Proto shares slices or maps with the app")
	}
}

func TestAppFromProtoDefaults(t *testing.T) {
	a, err := AppFromProto(&ancmv1.AppSpec{Name: "a", Command: "/bin/a"})
	if err != nil {
		t.Fatal(err)
	}
	want := defaultApp("a")
	want.Command, want.Dir = "/bin/a", "/"
	if !a.Equal(want) {
		t.Errorf("got  %+v\nwant %+v", a, want)
	}

	a, err = AppFromProto(&ancmv1.AppSpec{
		Name:                "b",
		Command:             "/bin/b",
		Dir:                 "/srv//b/",
		Hosts:               []string{"B.Example.com"},
		PathPrefix:          "/b/",
		StopSignal:          "hup",
		OfflineFile:         proto.String(""),
		QueueSize:           proto.Uint32(0),
		RapidFailsPerMinute: proto.Uint32(0),
		Health:              &ancmv1.HealthCheck{Path: "/h"},
		StdoutLog:           &ancmv1.StdoutLog{Enabled: proto.Bool(false)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.Dir != "/srv/b" || a.Hosts[0] != "b.example.com" || a.PathPrefix != "/b" || a.StopSignal != "SIGHUP" ||
		a.OfflineFile != "" || a.QueueSize != 0 || a.RapidFailsPerMinute != 0 ||
		a.Health != (Health{Path: "/h", Interval: DefaultHealthInterval}) ||
		a.StdoutLog != (StdoutLog{Enabled: false, MaxSize: DefaultLogMaxSize, MaxFiles: DefaultLogMaxFiles}) {
		t.Errorf("got %+v", a)
	}
}

func TestAppFromProtoErrors(t *testing.T) {
	valid := func() *ancmv1.AppSpec { return &ancmv1.AppSpec{Name: "a", Command: "/bin/a"} }
	for _, tc := range []struct {
		field, msg string
		edit       func(*ancmv1.AppSpec)
	}{
		{"app.name", "must not be empty", func(s *ancmv1.AppSpec) { s.Name = "" }},
		{"app.name", "must not start with", func(s *ancmv1.AppSpec) { s.Name = ".a" }},
		{"app.name", "use letters", func(s *ancmv1.AppSpec) { s.Name = "a/b" }},
		{"app.command", "required", func(s *ancmv1.AppSpec) { s.Command = "" }},
		{"app.dir", "must be an absolute path", func(s *ancmv1.AppSpec) { s.Dir = "srv/a" }},
		{"app.env", "not a valid environment variable name", func(s *ancmv1.AppSpec) { s.Env = map[string]string{"A=B": "1"} }},
		{"app.hosts", "no port", func(s *ancmv1.AppSpec) { s.Hosts = []string{"a.com:80"} }},
		{"app.path_prefix", `must start with "/"`, func(s *ancmv1.AppSpec) { s.PathPrefix = "a" }},
		{"app.start", "unknown start mode", func(s *ancmv1.AppSpec) { s.Start = 9 }},
		{"app.processes", "between 1 and 100", func(s *ancmv1.AppSpec) { s.Processes = 101 }},
		{"app.processes", "between 1 and 100", func(s *ancmv1.AppSpec) { s.Processes = 1 << 31 }},
		{"app.startup_timeout", "greater than 0", func(s *ancmv1.AppSpec) { s.StartupTimeout = durationpb.New(0) }},
		{"app.shutdown_timeout", "greater than 0", func(s *ancmv1.AppSpec) { s.ShutdownTimeout = durationpb.New(-time.Second) }},
		{"app.request_timeout", "invalid duration", func(s *ancmv1.AppSpec) { s.RequestTimeout = &durationpb.Duration{Seconds: 1, Nanos: -1} }},
		{"app.rapid_fails_per_minute", "between 0 and 100", func(s *ancmv1.AppSpec) { s.RapidFailsPerMinute = proto.Uint32(101) }},
		{"app.stop_signal", "not a known signal", func(s *ancmv1.AppSpec) { s.StopSignal = "SIGNOPE" }},
		{"app.queue_size", "between 0 and", func(s *ancmv1.AppSpec) { s.QueueSize = proto.Uint32(1 << 30) }},
		{"app.offline_file", "relative to dir", func(s *ancmv1.AppSpec) { s.OfflineFile = proto.String("/x.htm") }},
		{"app.compat", `"aspnetcore"`, func(s *ancmv1.AppSpec) { s.Compat = "iis" }},
		{"app.health.path", `starting with "/"`, func(s *ancmv1.AppSpec) { s.Health = &ancmv1.HealthCheck{Path: "h"} }},
		{"app.health.interval", "greater than 0", func(s *ancmv1.AppSpec) {
			s.Health = &ancmv1.HealthCheck{Interval: durationpb.New(0)}
		}},
		{"app.stdout_log.max_size", "at least 1KB", func(s *ancmv1.AppSpec) { s.StdoutLog = &ancmv1.StdoutLog{MaxSize: 10} }},
		{"app.stdout_log.max_size", "too large", func(s *ancmv1.AppSpec) { s.StdoutLog = &ancmv1.StdoutLog{MaxSize: 1 << 63} }},
		{"app.stdout_log.max_files", "between 1 and 1000", func(s *ancmv1.AppSpec) { s.StdoutLog = &ancmv1.StdoutLog{MaxFiles: 1001} }},
	} {
		t.Run(tc.field+" "+tc.msg, func(t *testing.T) {
			spec := valid()
			tc.edit(spec)
			_, err := AppFromProto(spec)
			var fes FieldErrors
			if !errors.As(err, &fes) || len(fes) != 1 {
				t.Fatalf("err = %v, want FieldErrors with one error", err)
			}
			if fes[0].Field != tc.field || !strings.Contains(fes[0].Message, tc.msg) {
				t.Errorf("got %q: %q, want %q: ...%q...", fes[0].Field, fes[0].Message, tc.field, tc.msg)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe != fes[0] {
				t.Errorf("errors.As(*FieldError) = %v", fe)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
		})
	}

	if _, err := AppFromProto(nil); err == nil || err.Error() != "app: required" {
		t.Errorf("AppFromProto(nil) = %v", err)
	}

	// Every problem is reported, in field order.
	_, err := AppFromProto(&ancmv1.AppSpec{
		StdoutLog: &ancmv1.StdoutLog{MaxFiles: 5000},
		Processes: 500,
		Dir:       "rel",
	})
	want := []string{"app.name", "app.command", "app.dir", "app.processes", "app.stdout_log.max_files"}
	var fes FieldErrors
	if !errors.As(err, &fes) || len(fes) != len(want) {
		t.Fatalf("err = %v, want %d errors", err, len(want))
	}
	for i, w := range want {
		if fes[i].Field != w {
			t.Errorf("error %d on %q, want %q (%v)", i, fes[i].Field, w, err)
		}
	}
}

func TestEqual(t *testing.T) {
	base := func() App {
		a := defaultApp("a")
		a.Command, a.Dir = "x", "/"
		a.Args, a.Env, a.Hosts = []string{"1"}, map[string]string{"A": "1"}, []string{"a.com"}
		return a
	}
	a := base()
	if !a.Equal(base()) {
		t.Fatal("an app differs from its copy")
	}
	b := base()
	b.DeclRange.Start.Line = 5
	if !a.Equal(b) {
		t.Error("DeclRange is compared")
	}
	e1, e2 := defaultApp("a"), defaultApp("a")
	e1.Args, e1.Env, e1.Hosts = nil, nil, nil
	e2.Args, e2.Env, e2.Hosts = []string{}, map[string]string{}, []string{}
	if !e1.Equal(e2) {
		t.Error("nil and empty differ")
	}
	for name, edit := range map[string]func(*App){
		"name":         func(a *App) { a.Name = "b" },
		"command":      func(a *App) { a.Command = "y" },
		"args":         func(a *App) { a.Args = []string{"2"} },
		"dir":          func(a *App) { a.Dir = "/x" },
		"env":          func(a *App) { a.Env = map[string]string{"A": "2"} },
		"hosts":        func(a *App) { a.Hosts = nil },
		"path_prefix":  func(a *App) { a.PathPrefix = "/x" },
		"strip_prefix": func(a *App) { a.StripPrefix = true },
		"protocol":     func(a *App) { a.Protocol = ProtocolH2C },
		"start":        func(a *App) { a.Start = StartEager },
		"processes":    func(a *App) { a.Processes = 2 },
		"startup":      func(a *App) { a.StartupTimeout++ },
		"shutdown":     func(a *App) { a.ShutdownTimeout++ },
		"request":      func(a *App) { a.RequestTimeout++ },
		"rapid":        func(a *App) { a.RapidFailsPerMinute++ },
		"stop_signal":  func(a *App) { a.StopSignal = "SIGINT" },
		"queue_size":   func(a *App) { a.QueueSize++ },
		"offline_file": func(a *App) { a.OfflineFile = "" },
		"error_detail": func(a *App) { a.ErrorDetail = true },
		"compat":       func(a *App) { a.Compat = "aspnetcore" },
		"health":       func(a *App) { a.Health.Path = "/h" },
		"interval":     func(a *App) { a.Health.Interval++ },
		"enabled":      func(a *App) { a.StdoutLog.Enabled = false },
		"max_size":     func(a *App) { a.StdoutLog.MaxSize++ },
		"max_files":    func(a *App) { a.StdoutLog.MaxFiles++ },
	} {
		b := base()
		edit(&b)
		if a.Equal(b) || b.Equal(a) {
			t.Errorf("a change of %s is not seen", name)
		}
	}
}
