package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// testNow is the fixed clock of the golden tests.
var testNow = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

func ago(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(testNow.Add(-d)) }

func testPrinter(json bool) (*printer, *bytes.Buffer) {
	var buf bytes.Buffer
	return &printer{w: &buf, json: json, now: func() time.Time { return testNow }, loc: time.UTC}, &buf
}

// checkGolden compares got with testdata/NAME.golden, or rewrites the file
// with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func u32(n uint32) *uint32 { return &n }
func str(s string) *string { return &s }
func boolp(b bool) *bool   { return &b }

// testApps are an app of every shape: running with two instances, failed,
// idle with defaults only, stopped.
func testApps() []*ancmv1.App {
	return []*ancmv1.App{
		{
			Spec: &ancmv1.AppSpec{
				Name:                "hello",
				Command:             "./bin/hello",
				Args:                []string{"--port", "$PORT"},
				Dir:                 "/srv/hello",
				Env:                 map[string]string{"GREETING": "hi", "A_FIRST": "1"},
				Hosts:               []string{"hello.example.com", "*.hello.example.com"},
				PathPrefix:          "/",
				Start:               ancmv1.StartMode_START_MODE_EAGER,
				Processes:           2,
				StartupTimeout:      durationpb.New(120 * time.Second),
				ShutdownTimeout:     durationpb.New(10 * time.Second),
				RequestTimeout:      durationpb.New(90 * time.Second),
				RapidFailsPerMinute: u32(10),
				StopSignal:          "SIGTERM",
				QueueSize:           u32(100),
				OfflineFile:         str("app_offline.htm"),
				ErrorDetail:         true,
				Compat:              "aspnetcore",
				Health:              &ancmv1.HealthCheck{Path: "/healthz", Interval: durationpb.New(10 * time.Second)},
				StdoutLog:           &ancmv1.StdoutLog{Enabled: boolp(true), MaxSize: 10 << 20, MaxFiles: 5},
			},
			State:      ancmv1.AppState_APP_STATE_RUNNING,
			StateSince: ago(3*time.Hour + 12*time.Minute),
			Source:     "config",
			Restarts:   1,
			Generation: 3,
			Rollout:    &ancmv1.RolloutStatus{FromGeneration: 2, ToGeneration: 3, Result: ancmv1.RolloutResult_ROLLOUT_RESULT_SUCCEEDED},
			Instances: []*ancmv1.Instance{
				{
					Generation: 3,
					Index:      0, State: ancmv1.InstanceState_INSTANCE_STATE_READY, Pid: 4242, Port: 41001,
					Address: "127.0.0.1:41001", StartedAt: ago(3*time.Hour + 12*time.Minute + 3*time.Second),
					ReadySince: ago(3*time.Hour + 12*time.Minute), LogPath: "/var/lib/ancm/logs/hello/0.log",
				},
				{
					Index: 1, State: ancmv1.InstanceState_INSTANCE_STATE_READY, Pid: 4250, Port: 41002,
					Address: "127.0.0.1:41002", StartedAt: ago(5*time.Minute + 10*time.Second),
					ReadySince: ago(5 * time.Minute), Restarts: 1, LogPath: "/var/lib/ancm/logs/hello/1.log",
					LastExit: &ancmv1.ExitStatus{Code: 137, Signal: "SIGKILL", Reason: "crashed", Time: ago(5*time.Minute + 11*time.Second)},
				},
			},
		},
		{
			Spec: &ancmv1.AppSpec{
				Name: "worker", Command: "/usr/bin/worker", Dir: "/srv/worker", Processes: 1,
				OfflineFile: str(""), StdoutLog: &ancmv1.StdoutLog{Enabled: boolp(false)},
			},
			State:       ancmv1.AppState_APP_STATE_FAILED,
			StateReason: "11 failures in the last minute",
			StateSince:  ago(40 * time.Second),
			Source:      "api",
			Restarts:    11,
			Instances: []*ancmv1.Instance{{
				Index: 0, State: ancmv1.InstanceState_INSTANCE_STATE_EXITED, Restarts: 11,
				LastExit: &ancmv1.ExitStatus{Code: 1, Reason: "exited", Time: ago(41 * time.Second)},
				LogPath:  "/var/lib/ancm/logs/worker/0.log",
			}},
			LogTail: []string{"panic: no database", "goroutine 1 [running]:"},
		},
		{
			Spec:   &ancmv1.AppSpec{Name: "idle", Command: "idle"},
			State:  ancmv1.AppState_APP_STATE_IDLE,
			Source: "api",
		},
		{
			Spec:        &ancmv1.AppSpec{Name: "stopped", Command: "x", Processes: 3},
			State:       ancmv1.AppState_APP_STATE_STOPPED,
			StateReason: "stopped by operator",
			Source:      "api",
			Instances: []*ancmv1.Instance{{
				Index: 0, State: ancmv1.InstanceState_INSTANCE_STATE_EXITED,
				LastExit: &ancmv1.ExitStatus{Code: 143, Signal: "SIGTERM", Reason: "stopped", Planned: true, Time: ago(26 * time.Hour)},
			}},
		},
	}
}

func testEvents() []*ancmv1.WatchEventsResponse {
	at := func(d time.Duration) *timestamppb.Timestamp {
		return timestamppb.New(testNow.Add(-d).Add(123 * time.Millisecond))
	}
	return []*ancmv1.WatchEventsResponse{
		{Event: &ancmv1.Event{Seq: 1, Time: at(3 * time.Hour), Type: ancmv1.EventType_EVENT_TYPE_APPLIED, App: "hello",
			AppState: ancmv1.AppState_APP_STATE_IDLE, Message: "added"}},
		{Event: &ancmv1.Event{Seq: 2, Time: at(3 * time.Hour), Type: ancmv1.EventType_EVENT_TYPE_STARTED, App: "hello",
			Instance: u32(0), AppState: ancmv1.AppState_APP_STATE_STARTING, InstanceState: ancmv1.InstanceState_INSTANCE_STATE_STARTING, Pid: 4242}},
		{Event: &ancmv1.Event{Seq: 3, Time: at(time.Minute), Type: ancmv1.EventType_EVENT_TYPE_EXITED, App: "worker",
			Instance: u32(0), AppState: ancmv1.AppState_APP_STATE_RUNNING, InstanceState: ancmv1.InstanceState_INSTANCE_STATE_EXITED, Pid: 5000,
			Exit: &ancmv1.ExitStatus{Code: 137, Signal: "SIGKILL", Reason: "startup timeout"}, Message: "not ready within 2m", LogTail: []string{"listening on :5000", "migrations pending"}}},
		{Event: &ancmv1.Event{Seq: 4, Time: at(40 * time.Second), Type: ancmv1.EventType_EVENT_TYPE_START_FAILED, App: "worker",
			AppState: ancmv1.AppState_APP_STATE_FAILED, Message: "rapid-fail limit reached"}},
		{Event: &ancmv1.Event{Seq: 5, Time: at(30 * time.Second), Type: ancmv1.EventType_EVENT_TYPE_STATE_CHANGED, App: "worker",
			AppState: ancmv1.AppState_APP_STATE_STARTING, Message: "started by an operator"}},
	}
}

// TestEventColumnsAligned prints an event of every type and state the API
// defines and checks that each column starts where its header does.
func TestEventColumnsAligned(t *testing.T) {
	var buf bytes.Buffer
	p := &printer{w: &buf, now: func() time.Time { return testNow }, loc: time.UTC}
	if err := p.EventHeader(); err != nil {
		t.Fatal(err)
	}
	header := strings.TrimSuffix(buf.String(), "\n")
	msgCol := strings.Index(header, "MESSAGE")
	for v := range ancmv1.EventType_name {
		for s := range ancmv1.InstanceState_name {
			buf.Reset()
			e := &ancmv1.Event{Time: timestamppb.New(testNow), Type: ancmv1.EventType(v), App: "hello", Instance: u32(0),
				InstanceState: ancmv1.InstanceState(s), AppState: ancmv1.AppState_APP_STATE_RUNNING, Pid: 42,
				Exit: &ancmv1.ExitStatus{Code: 1}, Message: "msg"}
			if err := p.Event(&ancmv1.WatchEventsResponse{Event: e}); err != nil {
				t.Fatal(err)
			}
			line := strings.TrimSuffix(buf.String(), "\n")
			if got := strings.Index(line, "msg"); got != msgCol {
				t.Errorf("%v/%v: message at column %d, header's at %d:\n%s\n%s", ancmv1.EventType(v), ancmv1.InstanceState(s), got, msgCol, header, line)
			}
		}
	}
}

func testRoutes() []*ancmv1.AppRoute {
	return []*ancmv1.AppRoute{
		{App: "hello", Hosts: []string{"hello.example.com", "*.hello.example.com"}, PathPrefix: "/", State: ancmv1.AppState_APP_STATE_RUNNING,
			Endpoints: []*ancmv1.Endpoint{
				{Instance: 0, Address: "127.0.0.1:41001", State: ancmv1.InstanceState_INSTANCE_STATE_READY, Ready: true},
				{Instance: 1, Address: "127.0.0.1:41002", State: ancmv1.InstanceState_INSTANCE_STATE_DRAINING, Draining: true},
			}},
		{App: "idle", PathPrefix: "/idle", State: ancmv1.AppState_APP_STATE_IDLE},
	}
}

func testInfo() *ancmv1.GetInfoResponse {
	return &ancmv1.GetInfoResponse{Version: "v0.3.0", Commit: "abc1234", Epoch: "e-7f3a", StartedAt: ago(26 * time.Hour),
		StateDir: "/var/lib/ancm", Listen: "127.0.0.1:8080", Pid: 99}
}

func TestGoldenTables(t *testing.T) {
	apps := testApps()
	tests := []struct {
		name  string
		print func(p *printer) error
	}{
		{"apps", func(p *printer) error { return p.Apps(apps) }},
		{"apps_empty", func(p *printer) error { return p.Apps(nil) }},
		{"get", func(p *printer) error { return p.App(apps[0]) }},
		{"get_failed", func(p *printer) error { return p.App(apps[1]) }},
		{"get_defaults", func(p *printer) error { return p.App(apps[2]) }},
		{"apply", func(p *printer) error {
			for _, c := range []ancmv1.ApplyChange{ancmv1.ApplyChange_APPLY_CHANGE_ADDED, ancmv1.ApplyChange_APPLY_CHANGE_RESTARTED, ancmv1.ApplyChange_APPLY_CHANGE_UNCHANGED} {
				if err := p.Applied(&ancmv1.ApplyAppResponse{App: apps[0], Change: c}, false); err != nil {
					return err
				}
			}
			return p.Applied(&ancmv1.ApplyAppResponse{App: apps[1], Change: ancmv1.ApplyChange_APPLY_CHANGE_ADDED}, true)
		}},
		{"delete", func(p *printer) error {
			if err := p.Deleted("hello", &ancmv1.DeleteAppResponse{App: apps[0]}, false); err != nil {
				return err
			}
			return p.Deleted("worker", &ancmv1.DeleteAppResponse{App: apps[1]}, true)
		}},
		// start, stop and restart print the app they acted on.
		{"start", func(p *printer) error { return p.Apps(apps[:1]) }},
		{"stop", func(p *printer) error { return p.Apps(apps[3:4]) }},
		{"logs", func(p *printer) error {
			return p.LogLines(&ancmv1.TailLogsResponse{Lines: []*ancmv1.LogLine{
				{App: "hello", Instance: 0, Stream: "stdout", Text: "listening on 127.0.0.1:41001"},
				{App: "hello", Instance: 1, Stream: "stderr", Text: "warning: slow start\n"},
			}})
		}},
		{"events", func(p *printer) error {
			if err := p.EventHeader(); err != nil {
				return err
			}
			for _, e := range testEvents() {
				if err := p.Event(e); err != nil {
					return err
				}
			}
			return nil
		}},
		{"endpoints", func(p *printer) error { return p.Endpoints(testRoutes()) }},
		{"version", func(p *printer) error { return p.Version("v0.3.0", "unix:///var/lib/ancm/ancm.sock", testInfo()) }},
		{"version_unreachable", func(p *printer) error { return p.Version("v0.3.0", "unix:///var/lib/ancm/ancm.sock", nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, buf := testPrinter(false)
			if err := tt.print(p); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.name, buf.Bytes())
		})
	}
}

func TestGoldenJSON(t *testing.T) {
	apps := testApps()
	tests := []struct {
		name  string
		print func(p *printer) error
	}{
		{"apps_json", func(p *printer) error { return p.JSON(&ancmv1.ListAppsResponse{Apps: apps}) }},
		{"get_json", func(p *printer) error { return p.JSON(&ancmv1.GetAppResponse{App: apps[0]}) }},
		{"events_json", func(p *printer) error {
			for _, e := range testEvents() {
				if err := p.Event(e); err != nil {
					return err
				}
			}
			return nil
		}},
		{"endpoints_json", func(p *printer) error {
			return p.JSONLine(&ancmv1.WatchEndpointsResponse{Epoch: "e-7f3a", Revision: 7, Full: true, Apps: testRoutes()})
		}},
		{"version_json", func(p *printer) error { return p.Version("v0.3.0", "unix:///x", testInfo()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, buf := testPrinter(true)
			if err := tt.print(p); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.name, buf.Bytes())
		})
	}
}

// TestJSONStable checks that JSON output is the same bytes every time, that
// it parses, and that it round-trips to the same message.
func TestJSONStable(t *testing.T) {
	msg := &ancmv1.ListAppsResponse{Apps: testApps()}
	var first []byte
	for i := range 20 {
		p, buf := testPrinter(true)
		if err := p.JSON(msg); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = bytes.Clone(buf.Bytes())
			continue
		}
		if !bytes.Equal(buf.Bytes(), first) {
			t.Fatalf("run %d differs:\n%s\nfirst:\n%s", i, buf.Bytes(), first)
		}
	}
	if !json.Valid(first) {
		t.Fatalf("not valid JSON:\n%s", first)
	}
	if !strings.Contains(string(first), `"rapid_fails_per_minute": 10`) {
		t.Errorf("want proto field names:\n%s", first)
	}
	var back ancmv1.ListAppsResponse
	if err := jsonUnmarshal(first, &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&back, msg) {
		t.Error("JSON does not round-trip")
	}

	// Stream output: one object per line, each valid on its own.
	p, buf := testPrinter(true)
	for _, e := range testEvents() {
		if err := p.Event(e); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(testEvents()) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(testEvents()), buf)
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("line is not JSON: %s", l)
		}
	}
}

func TestAge(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{45 * time.Second, "45s"},
		{60 * time.Second, "1m"},
		{5*time.Minute + 10*time.Second, "5m10s"},
		{3 * time.Hour, "3h"},
		{3*time.Hour + 12*time.Minute + 59*time.Second, "3h12m"},
		{50 * time.Hour, "2d2h"},
		{48 * time.Hour, "2d"},
	}
	for _, tt := range tests {
		if got := age(tt.d); got != tt.want {
			t.Errorf("age(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestEndpointTable(t *testing.T) {
	var tab endpointTable
	if tab.apply(&ancmv1.WatchEndpointsResponse{Revision: 1, Apps: testRoutes()[:1]}) {
		t.Fatal("a delta before the full table was taken as a table")
	}
	if !tab.apply(&ancmv1.WatchEndpointsResponse{Revision: 2, Full: true, Apps: testRoutes()}) {
		t.Fatal("full table not taken")
	}
	tab.apply(&ancmv1.WatchEndpointsResponse{Revision: 3, Removed: []string{"hello"},
		Apps: []*ancmv1.AppRoute{{App: "new"}, {App: "idle", State: ancmv1.AppState_APP_STATE_RUNNING}}})
	var names []string
	for _, r := range tab.routes() {
		names = append(names, r.GetApp()+"="+appState(r.GetState()))
	}
	if got, want := strings.Join(names, " "), "idle=RUNNING new=-"; got != want {
		t.Errorf("table = %q, want %q", got, want)
	}
}

func testTraffic() *ancmv1.GetTrafficResponse {
	return &ancmv1.GetTrafficResponse{
		WindowSeconds: 10,
		Nodes:         []string{"ancmd", "edge-1"},
		Apps: []*ancmv1.AppTrafficSummary{
			{App: "", Requests: 4, RequestsPerSecond: 0.4, P50Seconds: 0.0006, P99Seconds: 0.00099},
			{App: "shop", Requests: 8123, RequestsPerSecond: 812.3, P50Seconds: 0.0018, P99Seconds: 0.024,
				Status_2Xx: 8115, Status_5Xx: 8, Share_5Xx: 8.0 / 8123, InFlight: 7,
				State: ancmv1.AppState_APP_STATE_RUNNING, InstancesReady: 2, Instances: 2},
			{App: "idle", State: ancmv1.AppState_APP_STATE_IDLE},
		},
	}
}

func TestTopGolden(t *testing.T) {
	p, buf := testPrinter(false)
	if err := p.Traffic(testTraffic()); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "top", buf.Bytes())
	p, buf = testPrinter(true)
	if err := p.JSON(testTraffic()); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "top_json", buf.Bytes())
}
