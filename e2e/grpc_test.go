package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// Tools such as grpcurl need server reflection and the standard health
// service on the control socket.
func TestReflectionAndHealth(t *testing.T) {
	d := newDaemon(t, helloApp)
	conn, err := grpc.NewClient(d.control, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v %v, want SERVING", hc, err)
	}

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range resp.GetListServicesResponse().GetService() {
		got[s.GetName()] = true
	}
	for _, want := range []string{"ancm.v1.AppService", "ancm.v1.EndpointService", "ancm.v1.LogService", "ancm.v1.EventService", "ancm.v1.SystemService", "grpc.health.v1.Health"} {
		if !got[want] {
			t.Errorf("reflection does not list %s (got %v)", want, got)
		}
	}
}

// Followers of the watch streams end when the daemon shuts down, saying so
// in one line and with exit 6 (daemon not reachable), so that a script
// following them knows the stream did not simply run out.
func TestFollowersSayWhenTheDaemonStops(t *testing.T) {
	d := newDaemon(t, helloApp)
	if code, _ := get(t, d.url("/")); code != 200 {
		t.Fatal("warm-up failed")
	}
	streams := map[string]*streamProc{
		"events -f":    d.ctlStream("events", "-f"),
		"logs -f":      d.ctlStream("logs", "-f", "hello"),
		"endpoints -f": d.ctlStream("endpoints", "-f"),
	}
	waitFor(t, 10*time.Second, "the followers to print", func() bool {
		for _, p := range streams {
			if p.out.String() == "" {
				return false
			}
		}
		return true
	})
	d.stop()
	for name, p := range streams {
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 6 {
				t.Errorf("ancmctl %s after shutdown: %v, want exit 6\n%s", name, err, p.out.String())
			}
			if want := "ancmctl: the daemon ended the stream: ancmd is shutting down or restarting\n"; !strings.HasSuffix(p.out.String(), want) {
				t.Errorf("ancmctl %s after shutdown does not end with %q:\n%s", name, want, p.out.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("ancmctl %s still running 10s after the daemon stopped", name)
		}
	}
}

// Several data planes can follow one control plane.
func TestTwoProxiesFollowOneControlPlane(t *testing.T) {
	d := prepareDaemon(t, helloApp)
	d.start("control")
	for _, listen := range []string{d.startProxy(), d.startProxy()} {
		waitFor(t, 20*time.Second, "proxy "+listen+" to serve the app", func() bool {
			code, body := get(t, "http://"+listen+"/")
			return code == 200 && decodeReply(t, body).App == "hello"
		})
	}
}
