package dataplane

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/controlplane"
)

// testCP is a small real control plane for tests: a gRPC EndpointService
// on loopback with a settable table, following the WatchEndpoints contract
// (full table for a new or foreign epoch, then only what is newer), and an
// Activate whose behaviour a test sets and whose calls it counts.
type testCP struct {
	ancmv1.UnimplementedEndpointServiceServer

	srv  *grpc.Server
	addr string

	mu      sync.Mutex
	epoch   string
	rev     uint64
	apps    map[string]*ancmv1.AppRoute
	removed map[string]uint64 // app -> revision it was removed at
	changed chan struct{}     // closed on every change

	traffic *controlplane.TrafficService // the real one: reports arrive there

	activations atomic.Int32
	onActivate  func(ctx context.Context, app string) (*ancmv1.ActivateResponse, error)
}

var epochSeq atomic.Int32

// startCP serves a testCP on addr ("127.0.0.1:0" for any port).
func startCP(t testing.TB, addr string) *testCP {
	t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Rebinding a just-closed address can take a moment.
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	cp := &testCP{
		srv:     grpc.NewServer(),
		addr:    ln.Addr().String(),
		epoch:   fmt.Sprintf("epoch-%d", epochSeq.Add(1)),
		apps:    map[string]*ancmv1.AppRoute{},
		removed: map[string]uint64{},
		changed: make(chan struct{}),
	}
	ancmv1.RegisterEndpointServiceServer(cp.srv, cp)
	cp.traffic = controlplane.NewTrafficService(nil)
	cp.traffic.Register(cp.srv)
	go func() { _ = cp.srv.Serve(ln) }()
	t.Cleanup(cp.stop)
	return cp
}

// stop ends the server and every stream at once.
func (cp *testCP) stop() { cp.srv.Stop() }

// set upserts routes at a new revision and returns it.
func (cp *testCP) set(routes ...*ancmv1.AppRoute) uint64 {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.rev++
	for _, r := range routes {
		r = proto.Clone(r).(*ancmv1.AppRoute)
		r.Revision = cp.rev
		cp.apps[r.GetApp()] = r
		delete(cp.removed, r.GetApp())
	}
	cp.bump()
	return cp.rev
}

// remove deletes apps at a new revision and returns it.
func (cp *testCP) remove(names ...string) uint64 {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.rev++
	for _, n := range names {
		delete(cp.apps, n)
		cp.removed[n] = cp.rev
	}
	cp.bump()
	return cp.rev
}

func (cp *testCP) bump() {
	close(cp.changed)
	cp.changed = make(chan struct{})
}

func (cp *testCP) WatchEndpoints(req *ancmv1.WatchEndpointsRequest, stream grpc.ServerStreamingServer[ancmv1.WatchEndpointsResponse]) error {
	cp.mu.Lock()
	full := req.GetEpoch() != cp.epoch || req.GetRevision() > cp.rev
	sent := req.GetRevision()
	cp.mu.Unlock()
	for {
		cp.mu.Lock()
		m := &ancmv1.WatchEndpointsResponse{Epoch: cp.epoch, Revision: cp.rev, Full: full}
		for _, r := range cp.apps {
			if full || r.GetRevision() > sent {
				m.Apps = append(m.Apps, proto.Clone(r).(*ancmv1.AppRoute))
			}
		}
		if !full {
			for n, rev := range cp.removed {
				if rev > sent {
					m.Removed = append(m.Removed, n)
				}
			}
		}
		changed := cp.changed
		cp.mu.Unlock()
		if full || m.Revision > sent {
			if err := stream.Send(m); err != nil {
				return err
			}
			sent, full = m.Revision, false
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

func (cp *testCP) Activate(ctx context.Context, req *ancmv1.ActivateRequest) (*ancmv1.ActivateResponse, error) {
	cp.activations.Add(1)
	cp.mu.Lock()
	f := cp.onActivate
	cp.mu.Unlock()
	if f == nil {
		return &ancmv1.ActivateResponse{Ready: false, State: ancmv1.AppState_APP_STATE_FAILED, Reason: "no activation in this test"}, nil
	}
	return f(ctx, req.GetApp())
}

func (cp *testCP) setActivate(f func(ctx context.Context, app string) (*ancmv1.ActivateResponse, error)) {
	cp.mu.Lock()
	cp.onActivate = f
	cp.mu.Unlock()
}

// dialCP connects to a control plane address with fast reconnects.
func dialCP(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatalf("grpc client: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
