package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ancm-dev/ancm/api/client"
	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// fakeApps is an AppService over a map, enough to drive ancmctl.
type fakeApps struct {
	ancmv1.UnimplementedAppServiceServer
	mu   sync.Mutex
	apps map[string]*ancmv1.App
}

func (f *fakeApps) get(name string) (*ancmv1.App, error) {
	a, ok := f.apps[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "app %q not found", name)
	}
	return a, nil
}

func (f *fakeApps) ApplyApp(_ context.Context, req *ancmv1.ApplyAppRequest) (*ancmv1.ApplyAppResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	spec := req.GetApp()
	if spec.GetCommand() == "reject-me" {
		st, _ := status.New(codes.InvalidArgument, "invalid app").WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "app.command", Description: "rejected"}},
		})
		return nil, st.Err()
	}
	change := ancmv1.ApplyChange_APPLY_CHANGE_ADDED
	if old, ok := f.apps[spec.GetName()]; ok {
		change = ancmv1.ApplyChange_APPLY_CHANGE_RESTARTED
		if proto.Equal(old.GetSpec(), spec) {
			change = ancmv1.ApplyChange_APPLY_CHANGE_UNCHANGED
		}
	}
	a := &ancmv1.App{Spec: spec, State: ancmv1.AppState_APP_STATE_IDLE, Source: "api"}
	if !req.GetDryRun() {
		f.apps[spec.GetName()] = a
	}
	return &ancmv1.ApplyAppResponse{App: a, Change: change}, nil
}

func (f *fakeApps) GetApp(_ context.Context, req *ancmv1.GetAppRequest) (*ancmv1.GetAppResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.get(req.GetName())
	return &ancmv1.GetAppResponse{App: a}, err
}

func (f *fakeApps) ListApps(context.Context, *ancmv1.ListAppsRequest) (*ancmv1.ListAppsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &ancmv1.ListAppsResponse{}
	for _, name := range slices.Sorted(mapsKeys(f.apps)) {
		resp.Apps = append(resp.Apps, f.apps[name])
	}
	return resp, nil
}

func (f *fakeApps) DeleteApp(_ context.Context, req *ancmv1.DeleteAppRequest) (*ancmv1.DeleteAppResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.get(req.GetName())
	if err == nil && !req.GetDryRun() {
		delete(f.apps, req.GetName())
	}
	return &ancmv1.DeleteAppResponse{App: a}, err
}

func (f *fakeApps) setState(name string, s ancmv1.AppState) (*ancmv1.App, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.get(name)
	if err != nil {
		return nil, err
	}
	a = proto.CloneOf(a)
	a.State = s
	if name == "broken" && s == ancmv1.AppState_APP_STATE_RUNNING {
		a.State, a.StateReason = ancmv1.AppState_APP_STATE_FAILED, "exited with code 1 at start"
	}
	f.apps[name] = a
	return a, nil
}

func (f *fakeApps) StartApp(_ context.Context, req *ancmv1.StartAppRequest) (*ancmv1.StartAppResponse, error) {
	a, err := f.setState(req.GetName(), ancmv1.AppState_APP_STATE_RUNNING)
	return &ancmv1.StartAppResponse{App: a}, err
}

func (f *fakeApps) StopApp(_ context.Context, req *ancmv1.StopAppRequest) (*ancmv1.StopAppResponse, error) {
	a, err := f.setState(req.GetName(), ancmv1.AppState_APP_STATE_STOPPED)
	return &ancmv1.StopAppResponse{App: a}, err
}

func (f *fakeApps) RestartApp(_ context.Context, req *ancmv1.RestartAppRequest) (*ancmv1.RestartAppResponse, error) {
	a, err := f.setState(req.GetName(), ancmv1.AppState_APP_STATE_RUNNING)
	return &ancmv1.RestartAppResponse{App: a}, err
}

func mapsKeys(m map[string]*ancmv1.App) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

type fakeSystem struct {
	ancmv1.UnimplementedSystemServiceServer
}

func (fakeSystem) GetInfo(context.Context, *ancmv1.GetInfoRequest) (*ancmv1.GetInfoResponse, error) {
	return &ancmv1.GetInfoResponse{Version: "v9.9.9-fake", Epoch: "fake-epoch", StateDir: "/tmp/fake", Pid: 4321}, nil
}

type fakeLogs struct {
	ancmv1.UnimplementedLogServiceServer
}

func (fakeLogs) TailLogs(req *ancmv1.TailLogsRequest, stream grpc.ServerStreamingServer[ancmv1.TailLogsResponse]) error {
	if req.GetApp() != "hello" {
		return status.Errorf(codes.NotFound, "app %q not found", req.GetApp())
	}
	lines := []*ancmv1.LogLine{
		{App: "hello", Instance: 0, Stream: "stdout", Text: "zero says hi"},
		{App: "hello", Instance: 1, Stream: "stderr", Text: "one says hi"},
	}
	if req.Instance != nil {
		lines = slices.DeleteFunc(lines, func(l *ancmv1.LogLine) bool { return l.GetInstance() != req.GetInstance() })
	}
	return stream.Send(&ancmv1.TailLogsResponse{Lines: lines})
}

type fakeEvents struct {
	ancmv1.UnimplementedEventServiceServer
}

func (fakeEvents) WatchEvents(req *ancmv1.WatchEventsRequest, stream grpc.ServerStreamingServer[ancmv1.WatchEventsResponse]) error {
	for _, e := range testEvents() {
		if req.GetApp() == "" || req.GetApp() == e.GetEvent().GetApp() {
			if err := stream.Send(e); err != nil {
				return err
			}
		}
	}
	return nil
}

type fakeEndpoints struct {
	ancmv1.UnimplementedEndpointServiceServer
}

func (fakeEndpoints) WatchEndpoints(_ *ancmv1.WatchEndpointsRequest, stream grpc.ServerStreamingServer[ancmv1.WatchEndpointsResponse]) error {
	if err := stream.Send(&ancmv1.WatchEndpointsResponse{Epoch: "fake-epoch", Revision: 3, Full: true, Apps: testRoutes()}); err != nil {
		return err
	}
	<-stream.Context().Done() // a real watch never ends by itself
	return nil
}

// startServer serves the fakes on a unix socket and returns its address.
func startServer(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ancm.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	apps := &fakeApps{apps: map[string]*ancmv1.App{}}
	for _, a := range testApps() {
		apps.apps[a.GetSpec().GetName()] = a
	}
	apps.apps["broken"] = &ancmv1.App{Spec: &ancmv1.AppSpec{Name: "broken", Command: "false"}, State: ancmv1.AppState_APP_STATE_STOPPED}
	srv := grpc.NewServer()
	ancmv1.RegisterAppServiceServer(srv, apps)
	ancmv1.RegisterSystemServiceServer(srv, fakeSystem{})
	ancmv1.RegisterLogServiceServer(srv, fakeLogs{})
	ancmv1.RegisterEventServiceServer(srv, fakeEvents{})
	ancmv1.RegisterEndpointServiceServer(srv, fakeEndpoints{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return "unix://" + sock
}

type result struct {
	code           int
	stdout, stderr string
}

func runArgs(args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// A bad $ANCM_ADDR is a usage error that names the variable.
func TestBadEnvAddr(t *testing.T) {
	t.Setenv(client.EnvAddr, "http://x")
	r := runArgs("apps")
	if r.code != exitUsage || !strings.Contains(r.stderr, `$ANCM_ADDR: "http://x": scheme "http" is not unix or tcp`) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestRunInProcess(t *testing.T) {
	addr := startServer(t)
	dir := t.TempDir()
	writeFile := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := writeFile("good.hcl", `
app "new" {
  command = "./bin/new"
}
app "idle" {
  command     = "idle"
  path_prefix = "/idle"
}
`)
	badSyntax := writeFile("bad.hcl", `app "x" { processes = 500 }`)
	rejected := writeFile("rejected.hcl", `app "r" { command = "reject-me" }`)

	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings
		stderr     string   // exact, "" for none
		stderrHave string   // substring
	}{
		{name: "apps", args: []string{"apps"}, stdout: []string{"APP ", "hello ", "RUNNING", "2/2", "4242,4250", "worker "}},
		{name: "ls alias", args: []string{"ls"}, stdout: []string{"hello "}},
		{name: "get", args: []string{"get", "hello"}, stdout: []string{"Name:         hello", "rapid_fails_per_minute", "/var/lib/ancm/logs/hello/1.log"}},
		{name: "get not found", args: []string{"get", "nope"}, code: 3, stderr: "ancmctl: app \"nope\" not found\n"},
		{name: "get missing arg", args: []string{"get"}, code: 2, stderr: "ancmctl: missing APP (see 'ancmctl get --help')\n"},
		{name: "unknown flag", args: []string{"apps", "--nope"}, code: 2, stderrHave: "unknown flag: --nope"},
		{name: "unknown command", args: []string{"frob"}, code: 2, stderrHave: `unknown command "frob"`},
		{name: "bad output", args: []string{"-o", "yaml", "apps"}, code: 2, stderrHave: `--output "yaml"`},
		{name: "bad addr", args: []string{"--addr", "nowhere", "apps"}, code: 2, stderrHave: "--addr"},
		{name: "http addr", args: []string{"--addr", "http://x", "apps"}, code: 2, stderrHave: `--addr: "http://x": scheme "http" is not unix or tcp`},
		{name: "addr without port number", args: []string{"--addr", "tcp://x:http", "apps"}, code: 2, stderrHave: `port "http" is not a number`},
		{name: "apply", args: []string{"apply", "-f", good}, stdout: []string{"new: added\n", "idle: restarted\n"}},
		{name: "apply dry run", args: []string{"apply", "--dry-run", "-f", good}, stdout: []string{"(dry run)"}},
		{name: "apply bad file", args: []string{"apply", "-f", badSyntax}, code: 4, stderrHave: "bad.hcl:1:"},
		{name: "apply missing file", args: []string{"apply", "-f", filepath.Join(dir, "none.hcl")}, code: 4, stderrHave: "none.hcl"},
		{name: "apply rejected", args: []string{"apply", "-f", rejected}, code: 4, stderr: "ancmctl: app \"r\": invalid app; app.command: rejected\n"},
		{name: "apply without -f", args: []string{"apply"}, code: 2, stderrHave: `"filename" not set`},
		{name: "start", args: []string{"start", "stopped"}, stdout: []string{"stopped ", "RUNNING"}},
		{name: "start failed", args: []string{"start", "broken"}, code: 5, stdout: []string{"FAILED"},
			stderr: "ancmctl: app broken failed to start: exited with code 1 at start\n"},
		{name: "start no wait", args: []string{"start", "--wait=false", "broken"}, stdout: []string{"FAILED"}},
		{name: "stop", args: []string{"stop", "hello"}, stdout: []string{"STOPPED"}},
		{name: "restart not found", args: []string{"restart", "nope"}, code: 3, stderrHave: "not found"},
		{name: "delete dry run", args: []string{"delete", "--dry-run", "worker"}, stdout: []string{"worker: deleted (dry run)\n"}},
		{name: "logs", args: []string{"logs", "hello"}, stdout: []string{"[0] zero says hi\n[1] one says hi\n"}},
		{name: "logs instance", args: []string{"logs", "--instance", "1", "hello"}, stdout: []string{"[1] one says hi\n"}},
		{name: "logs follow ended by the daemon", args: []string{"logs", "-f", "hello"}, code: 6, stdout: []string{"[0] zero says hi\n"},
			stderr: "ancmctl: the daemon ended the stream: ancmd is shutting down or restarting\n"},
		{name: "logs not found", args: []string{"logs", "nope"}, code: 3, stderrHave: "not found"},
		{name: "events", args: []string{"events", "--app", "worker"}, stdout: []string{"TIME ", "start_failed", "    | migrations pending"}},
		{name: "events follow ended by the daemon", args: []string{"events", "-f"}, code: 6, stdout: []string{"state_changed"},
			stderr: "ancmctl: the daemon ended the stream: ancmd is shutting down or restarting\n"},
		{name: "endpoints", args: []string{"endpoints"}, stdout: []string{"127.0.0.1:41002   no      yes"}},
		{name: "version", args: []string{"version"}, stdout: []string{"Client:", "v9.9.9-fake", "fake-epoch", "4321"}},
		{name: "completion bash", args: []string{"completion", "bash"}, stdout: []string{"ancmctl"}},
		{name: "completion zsh", args: []string{"completion", "zsh"}, stdout: []string{"#compdef ancmctl"}},
		{name: "complete app names", args: []string{"__complete", "get", ""}, stdout: []string{"hello\n", "worker\n"},
			stderrHave: "ShellCompDirectiveNoFileComp"},
		{name: "completion fish", args: []string{"completion", "fish"}, code: 2, stderrHave: "want bash or zsh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runArgs(append([]string{"--addr", addr}, tt.args...)...)
			if r.code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.code, r.stdout, r.stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
				}
			}
			switch {
			case tt.stderrHave != "":
				if !strings.Contains(r.stderr, tt.stderrHave) {
					t.Errorf("stderr lacks %q: %q", tt.stderrHave, r.stderr)
				}
			case r.stderr != tt.stderr:
				t.Errorf("stderr %q, want %q", r.stderr, tt.stderr)
			}
			if tt.code != 0 && tt.stderr == "" && tt.name != "apply bad file" && strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("want one line on stderr, got %q", r.stderr)
			}
			if tt.code != 0 && !strings.HasPrefix(r.stderr, "ancmctl: ") {
				t.Errorf("stderr %q does not start with ancmctl:", r.stderr)
			}
		})
	}
}

func TestRunJSON(t *testing.T) {
	addr := startServer(t)
	r := runArgs("--addr", addr, "-o", "json", "apps")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var list ancmv1.ListAppsResponse
	if err := jsonUnmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("apps -o json: %v\n%s", err, r.stdout)
	}
	if len(list.GetApps()) != 5 {
		t.Errorf("got %d apps, want 5", len(list.GetApps()))
	}

	// Streams: one object per line.
	for _, args := range [][]string{{"events"}, {"logs", "hello"}, {"endpoints"}} {
		r := runArgs(append([]string{"--addr", addr, "-o", "json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
		}
		for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
			if !json.Valid([]byte(l)) {
				t.Errorf("%v: line is not one JSON object: %q", args, l)
			}
		}
	}

	r = runArgs("--addr", addr, "-o", "json", "version")
	var v struct {
		Client struct{ Version string }
		Server struct {
			Version string
			Epoch   string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, r.stdout)
	}
	if v.Client.Version == "" || v.Server.Version != "v9.9.9-fake" || v.Server.Epoch != "fake-epoch" {
		t.Errorf("version -o json = %+v", v)
	}
}

func TestRunUnavailable(t *testing.T) {
	addr := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"apps"}, {"get", "hello"}, {"logs", "hello"}, {"events"}, {"endpoints"}} {
		r := runArgs(append([]string{"--addr", addr}, args...)...)
		if r.code != exitUnavailable {
			t.Errorf("%v: exit %d, want %d (%s)", args, r.code, exitUnavailable, r.stderr)
		}
		if want := "(is ancmd running? tried " + addr + ")\n"; !strings.HasPrefix(r.stderr, "ancmctl: ") || !strings.HasSuffix(r.stderr, want) {
			t.Errorf("%v: stderr %q, want a line ending in %q", args, r.stderr, want)
		}
	}

	// version still prints the client's version.
	r := runArgs("--addr", addr, "version")
	if r.code != exitUnavailable || !strings.Contains(r.stdout, "Client:") || strings.Contains(r.stdout, "Server:") {
		t.Errorf("version: exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestAddressPrecedence(t *testing.T) {
	addr := startServer(t)
	bogus := "unix://" + filepath.Join(t.TempDir(), "bogus.sock")

	// $ANCM_ADDR when there is no flag.
	t.Setenv(client.EnvAddr, addr)
	if r := runArgs("apps"); r.code != 0 {
		t.Errorf("env: exit %d: %s", r.code, r.stderr)
	}
	// The flag over $ANCM_ADDR.
	t.Setenv(client.EnvAddr, bogus)
	if r := runArgs("--addr", addr, "apps"); r.code != 0 {
		t.Errorf("flag over env: exit %d: %s", r.code, r.stderr)
	}
	if r := runArgs("apps"); r.code != exitUnavailable || !strings.Contains(r.stderr, bogus) {
		t.Errorf("env: exit %d, stderr %q; want the env address tried", r.code, r.stderr)
	}
	// The default address with neither.
	t.Setenv(client.EnvAddr, "")
	c := newCLI(nil, &bytes.Buffer{}, &bytes.Buffer{})
	if got, want := c.address(), client.DefaultAddress(); got != want {
		t.Errorf("default address %q, want %q", got, want)
	}
	c.addr = addr
	if got := c.address(); got != addr {
		t.Errorf("flag address %q, want %q", got, addr)
	}
}

func TestEveryCommandHasExample(t *testing.T) {
	root := newCLI(nil, &bytes.Buffer{}, &bytes.Buffer{}).rootCommand()
	if root.Example == "" || !strings.Contains(root.Long, "Exit codes:") {
		t.Error("root command lacks an example or the exit code table")
	}
	for _, cmd := range root.Commands() {
		if cmd.Name() == "help" {
			continue
		}
		if cmd.Example == "" {
			t.Errorf("%s has no Example", cmd.Name())
		}
	}
}

func TestManPages(t *testing.T) {
	dir := t.TempDir()
	r := runArgs("man", dir)
	if r.code != 0 {
		t.Fatalf("man: exit %d: %s", r.code, r.stderr)
	}
	for _, name := range []string{"ancmctl.1", "ancmctl-logs.1", "ancmctl-apply.1"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
}
