package controlplane

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

// The test binary doubles as the app (go-plugin's helperProcess): with
// ANCM_CP_TEST_APP set it serves HTTP on $PORT and nothing else.
func TestMain(m *testing.M) {
	if os.Getenv("ANCM_CP_TEST_APP") == "1" {
		if os.Getenv("ANCM_CP_TEST_STUBBORN") == "1" {
			signal.Ignore(syscall.SIGTERM)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("helper app listening")
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, os.Getenv("ANCM_APP"))
		}))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// harness is a Supervisor behind a real gRPC server on a unix socket.
type harness struct {
	sup    *Supervisor
	conn   *grpc.ClientConn
	apps   ancmv1.AppServiceClient
	eps    ancmv1.EndpointServiceClient
	events ancmv1.EventServiceClient
}

func newHarness(t *testing.T, cfgApps string) *harness {
	t.Helper()
	dir := t.TempDir()
	sup, err := New(Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var apps []config.App
	if cfgApps != "" {
		f, err := config.Parse([]byte(cfgApps), filepath.Join(dir, "ancm.hcl"))
		if err != nil {
			t.Fatal(err)
		}
		apps = f.Apps
	}
	if err := sup.Load(apps); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	NewService(sup, "").Register(srv)
	go func() { _ = srv.Serve(ln) }()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sup.Shutdown(ctx)
		srv.Stop()
	})
	return &harness{sup: sup, conn: conn, apps: ancmv1.NewAppServiceClient(conn), eps: ancmv1.NewEndpointServiceClient(conn), events: ancmv1.NewEventServiceClient(conn)}
}

func helperSpec(name, prefix string) *ancmv1.AppSpec {
	exe, _ := os.Executable()
	return &ancmv1.AppSpec{
		Name:           name,
		Command:        exe,
		Dir:            "/",
		PathPrefix:     prefix,
		Env:            map[string]string{"ANCM_CP_TEST_APP": "1"},
		StartupTimeout: durationpb.New(10 * time.Second),
	}
}

// fieldOf returns the first field violation of an InvalidArgument error.
func fieldOf(t *testing.T, err error) string {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code = %s (%v), want InvalidArgument", st.Code(), err)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	t.Fatalf("InvalidArgument without a field violation: %v", err)
	return ""
}

func TestAPIErrorsNameTheField(t *testing.T) {
	h := newHarness(t, `
app "fromfile" {
  command = "/bin/true"
  path_prefix = "/file"
}
`)
	ctx := context.Background()

	_, err := h.apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{})
	if f := fieldOf(t, err); f != "app" {
		t.Errorf("missing app: field %q", f)
	}
	bad := helperSpec("bad", "/bad")
	bad.Processes = 101
	_, err = h.apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: bad})
	if f := fieldOf(t, err); f != "app.processes" {
		t.Errorf("processes=101: field %q", f)
	}
	bad = helperSpec("bad", "/bad")
	bad.ShutdownTimeout = durationpb.New(-time.Second)
	_, err = h.apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: bad})
	if f := fieldOf(t, err); f != "app.shutdown_timeout" {
		t.Errorf("negative shutdown_timeout: field %q", f)
	}
	bad = helperSpec("", "/bad")
	_, err = h.apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: bad})
	if f := fieldOf(t, err); f != "app.name" {
		t.Errorf("missing name: field %q", f)
	}
	// Same route as the config file's app.
	_, err = h.apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: helperSpec("clash", "/file")})
	if f := fieldOf(t, err); f != "app.path_prefix" {
		t.Errorf("route clash: field %q", f)
	}
	_, err = h.apps.GetApp(ctx, &ancmv1.GetAppRequest{})
	if f := fieldOf(t, err); f != "name" {
		t.Errorf("GetApp without name: field %q", f)
	}
	for name, call := range map[string]func() error{
		"get":      func() error { _, err := h.apps.GetApp(ctx, &ancmv1.GetAppRequest{Name: "nope"}); return err },
		"delete":   func() error { _, err := h.apps.DeleteApp(ctx, &ancmv1.DeleteAppRequest{Name: "nope"}); return err },
		"start":    func() error { _, err := h.apps.StartApp(ctx, &ancmv1.StartAppRequest{Name: "nope"}); return err },
		"activate": func() error { _, err := h.eps.Activate(ctx, &ancmv1.ActivateRequest{App: "nope"}); return err },
	} {
		if c := status.Code(call()); c != codes.NotFound {
			t.Errorf("%s of an unknown app: %s, want NotFound", name, c)
		}
	}
	_, err = h.apps.DeleteApp(ctx, &ancmv1.DeleteAppRequest{Name: "fromfile"})
	if c := status.Code(err); c != codes.FailedPrecondition {
		t.Errorf("delete of a config-file app: %s, want FailedPrecondition", c)
	}
	_, err = h.apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: &ancmv1.AppSpec{Name: "fromfile", Command: "/bin/true", Dir: "/"}})
	if c := status.Code(err); c != codes.FailedPrecondition {
		t.Errorf("apply over a config-file app: %s, want FailedPrecondition", c)
	}
	// None of the refused calls changed anything.
	list, err := h.apps.ListApps(ctx, &ancmv1.ListAppsRequest{})
	if err != nil || len(list.GetApps()) != 1 || list.GetApps()[0].GetSpec().GetName() != "fromfile" {
		t.Errorf("apps after refused calls: %v %v", list, err)
	}
}

func TestApplyDryRunUnchangedAndRestarted(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	spec := helperSpec("one", "/one")
	resp, err := h.apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: spec, DryRun: true})
	if err != nil || resp.GetChange() != ancmv1.ApplyChange_APPLY_CHANGE_ADDED {
		t.Fatalf("dry run: %v %v", resp, err)
	}
	if _, err := h.apps.GetApp(ctx, &ancmv1.GetAppRequest{Name: "one"}); status.Code(err) != codes.NotFound {
		t.Fatalf("a dry run created the app: %v", err)
	}
	for _, want := range []ancmv1.ApplyChange{ancmv1.ApplyChange_APPLY_CHANGE_ADDED, ancmv1.ApplyChange_APPLY_CHANGE_UNCHANGED} {
		resp, err := h.apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: spec})
		if err != nil || resp.GetChange() != want {
			t.Fatalf("apply: %v %v, want %s", resp.GetChange(), err, want)
		}
	}
	changed := proto.Clone(spec).(*ancmv1.AppSpec)
	changed.Env["X"] = "y"
	resp, err = h.apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: changed, DryRun: true})
	if err != nil || resp.GetChange() != ancmv1.ApplyChange_APPLY_CHANGE_RESTARTED {
		t.Fatalf("dry run of a change: %v %v", resp.GetChange(), err)
	}
	got, _ := h.apps.GetApp(ctx, &ancmv1.GetAppRequest{Name: "one"})
	if _, ok := got.GetApp().GetSpec().GetEnv()["X"]; ok {
		t.Errorf("a dry run changed the app")
	}
}

// However many Activate calls arrive for an idle app, one process starts,
// and every caller learns the revision that has it ready.
func TestConcurrentActivateStartsOneProcess(t *testing.T) {
	h := newHarness(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := h.apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: helperSpec("lazy", "/")}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	resps := make([]*ancmv1.ActivateResponse, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i], errs[i] = h.eps.Activate(ctx, &ancmv1.ActivateRequest{App: "lazy"})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || !resps[i].GetReady() || resps[i].GetRevision() == 0 {
			t.Fatalf("activate %d: %v %v", i, resps[i], errs[i])
		}
	}
	stream, err := h.events.WatchEvents(ctx, &ancmv1.WatchEventsRequest{App: "lazy"})
	if err != nil {
		t.Fatal(err)
	}
	started := 0
	for {
		resp, err := stream.Recv()
		if err != nil {
			break
		}
		if resp.GetEvent().GetType() == ancmv1.EventType_EVENT_TYPE_STARTED && resp.GetEvent().Instance != nil {
			started++
		}
	}
	if started != 1 {
		t.Errorf("%d processes started for %d concurrent activations, want 1", started, n)
	}
	// The table at the returned revision has the ready endpoint.
	w, err := h.eps.WatchEndpoints(ctx, &ancmv1.WatchEndpointsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !first.GetFull() || first.GetRevision() < resps[0].GetRevision() {
		t.Fatalf("first table: full=%v revision=%d", first.GetFull(), first.GetRevision())
	}
	r := first.GetApps()[0]
	if len(r.GetEndpoints()) != 1 || !r.GetEndpoints()[0].GetReady() || len(r.GetEndpoints()[0].GetToken()) < 16 {
		t.Errorf("route = %v, want one ready endpoint with a token", r)
	}
	resp, err := http.Get("http://" + r.GetEndpoints()[0].GetAddress() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// An RPC's deadline is honoured even when the change it asked for takes
// longer (here: stopping an app that ignores SIGTERM); the change still
// completes.
func TestApplyHonoursDeadline(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	spec := helperSpec("stubborn", "/")
	spec.Env["ANCM_CP_TEST_STUBBORN"] = "1"
	spec.Start = ancmv1.StartMode_START_MODE_EAGER
	spec.ShutdownTimeout = durationpb.New(time.Second)
	if _, err := h.apps.ApplyApp(ctx, &ancmv1.ApplyAppRequest{App: spec}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.apps.StartApp(ctx, &ancmv1.StartAppRequest{Name: "stubborn", Wait: true}); err != nil {
		t.Fatal(err)
	}
	changed := proto.Clone(spec).(*ancmv1.AppSpec)
	changed.Env["X"] = "y"
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := h.apps.ApplyApp(short, &ancmv1.ApplyAppRequest{App: changed})
	if c := status.Code(err); c != codes.DeadlineExceeded {
		t.Fatalf("apply past its deadline: %v, want DeadlineExceeded", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := h.apps.GetApp(ctx, &ancmv1.GetAppRequest{Name: "stubborn"})
		if err == nil && got.GetApp().GetSpec().GetEnv()["X"] == "y" && got.GetApp().GetState() == ancmv1.AppState_APP_STATE_RUNNING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change did not complete after the deadline: %v %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
