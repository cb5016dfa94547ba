package dataplane

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func TestProxyRoutesByHostAndPrefix(t *testing.T) {
	root := echoBackend(t, "root")
	api := echoBackend(t, "api")
	shop := echoBackend(t, "shop")
	h := newHarness(t, Options{},
		running("root", "/", nil, ready(0, root, "t-root")),
		running("api", "/api", nil, ready(0, api, "t-api")),
		running("shop", "/", []string{"*.shop.example"}, ready(0, shop, "t-shop")),
	)
	for _, tc := range []struct{ host, path, want string }{
		{"x.example", "/", "root"},
		{"x.example", "/api", "api"},
		{"x.example", "/api/v1?q=1", "api"},
		{"x.example", "/apix", "root"},
		{"a.shop.example:8080", "/api", "shop"},
		{"A.B.SHOP.EXAMPLE", "/", "shop"},
		{"shop.example", "/", "root"},
	} {
		res, body := h.get(tc.host, tc.path)
		if res.StatusCode != 200 {
			t.Fatalf("%s%s: status %d", tc.host, tc.path, res.StatusCode)
		}
		e := decodeEcho(t, body)
		if e.Name != tc.want {
			t.Errorf("%s%s: routed to %s, want %s", tc.host, tc.path, e.Name, tc.want)
		}
		if e.Path != tc.path {
			t.Errorf("%s%s: app saw path %q; the path must not be stripped", tc.host, tc.path, e.Path)
		}
	}
}

func TestProxyNotFound(t *testing.T) {
	b := echoBackend(t, "b")
	h := newHarness(t, Options{}, running("only", "/app", []string{"only.example"}, ready(0, b, "t")))
	for _, path := range []string{"/", "/application", "/app"} {
		host := "other.example"
		if path != "/app" {
			host = "only.example"
		}
		res, body := h.get(host, path)
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("%s%s: status %d, want 404", host, path, res.StatusCode)
		}
		if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "404") {
			t.Errorf("404 page: %q %q", res.Header.Get("Content-Type"), body)
		}
	}
}

func TestProxyHeaders(t *testing.T) {
	b := echoBackend(t, "b")
	aspnet := running("aspnet", "/legacy", nil, ready(0, b, "secret-2"))
	aspnet.Compat = "aspnetcore"
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, b, "secret-1")), aspnet)

	req, _ := http.NewRequest("GET", h.url+"/x", nil)
	req.Host = "Front.Example:8443"
	req.Header.Set("ANCM-Token", "forged")
	req.Header.Set("MS-ASPNETCORE-TOKEN", "forged")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("Connection", "X-Hop, keep-alive")
	req.Header.Set("X-Hop", "1")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("Proxy", "http://evil.example")
	req.Header.Set("TE", "gzip")
	req.Header.Set("Upgrade", "h2c") // not an upgrade without Connection: upgrade
	req.Header.Set("X-End", "kept")
	res, body := h.do(req)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	e := decodeEcho(t, body)
	want := map[string]string{
		"Ancm-Token":          "secret-1",
		"Ms-Aspnetcore-Token": "",
		"X-Forwarded-For":     "203.0.113.7, 127.0.0.1",
		"X-Forwarded-Proto":   "http",
		"X-Forwarded-Host":    "Front.Example:8443",
		"X-End":               "kept",
	}
	for k, v := range want {
		if got := strings.Join(e.Header[k], "|"); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"Connection", "X-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy", "Te", "Upgrade"} {
		if v, ok := e.Header[k]; ok {
			t.Errorf("hop-by-hop %s forwarded: %q", k, v)
		}
	}
	if e.Host != "Front.Example:8443" {
		t.Errorf("Host = %q, want the client's", e.Host)
	}

	req, _ = http.NewRequest("GET", h.url+"/legacy/x", nil)
	req.Header.Set("MS-ASPNETCORE-TOKEN", "forged")
	// A client must not speak the IIS integration's private protocol:
	// a forged shutdown event, client certificate or Windows token.
	req.Header.Set("MS-ASPNETCORE-EVENT", "shutdown")
	req.Header.Set("MS-ASPNETCORE-CLIENTCERT", "forged")
	req.Header.Set("ms-aspnetcore-winauthtoken", "1234")
	_, body = h.do(req)
	e = decodeEcho(t, body)
	if got := e.Header.Get("Ms-Aspnetcore-Token"); got != "secret-2" || e.Header.Get("Ancm-Token") != "secret-2" {
		t.Errorf("aspnetcore tokens: MS=%q ANCM=%q", got, e.Header.Get("Ancm-Token"))
	}
	for _, k := range []string{"Ms-Aspnetcore-Event", "Ms-Aspnetcore-Clientcert", "Ms-Aspnetcore-Winauthtoken"} {
		if v, ok := e.Header[k]; ok {
			t.Errorf("client's %s reached the app: %q", k, v)
		}
	}
}

// While the control plane answers Unavailable (it is shutting down for a
// restart), a waiting request keeps asking, and is served once it can be.
func TestActivateWaitsThroughUnavailable(t *testing.T) {
	b := echoBackend(t, "b")
	h := newHarness(t, Options{}, idle("lazy", "/", 10))
	var calls atomic.Int32
	h.cp.setActivate(func(ctx context.Context, app string) (*ancmv1.ActivateResponse, error) {
		if calls.Add(1) <= 3 {
			return nil, status.Error(codes.Unavailable, "shutting down")
		}
		rev := h.cp.set(running("lazy", "/", nil, ready(0, b, "tok")))
		return &ancmv1.ActivateResponse{Ready: true, State: ancmv1.AppState_APP_STATE_RUNNING, Revision: rev}, nil
	})
	res, body := h.get("", "/x")
	if res.StatusCode != 200 {
		t.Fatalf("status %d after Unavailable answers: %s", res.StatusCode, body)
	}
	if got := calls.Load(); got != 4 {
		t.Errorf("Activate called %d times, want 4", got)
	}
}

// A request whose only instance refuses the connection (it crashed) waits
// for the control plane to have it ready again instead of failing.
func TestRequestWaitsForRestartedInstance(t *testing.T) {
	dead := echoBackend(t, "dead")
	dead.Close()
	live := echoBackend(t, "live")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, dead, "old")))
	h.cp.setActivate(func(ctx context.Context, app string) (*ancmv1.ActivateResponse, error) {
		rev := h.cp.set(running("app", "/", nil, ready(0, live, "new")))
		return &ancmv1.ActivateResponse{Ready: true, State: ancmv1.AppState_APP_STATE_RUNNING, Revision: rev}, nil
	})
	res, body := h.get("", "/x")
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	if e := decodeEcho(t, body); e.Name != "live" || e.Header.Get("Ancm-Token") != "new" {
		t.Errorf("served by %q with token %q, want the restarted instance", e.Name, e.Header.Get("Ancm-Token"))
	}
	if got := h.cp.activations.Load(); got != 1 {
		t.Errorf("Activate called %d times, want 1", got)
	}
}

func idle(name, prefix string, queue uint32) *ancmv1.AppRoute {
	return &ancmv1.AppRoute{
		App: name, PathPrefix: prefix, State: ancmv1.AppState_APP_STATE_IDLE, QueueSize: queue,
		StartupTimeout: durationpb.New(10 * time.Second), RequestTimeout: durationpb.New(10 * time.Second),
	}
}

func TestActivateOncePerApp(t *testing.T) {
	b := echoBackend(t, "b")
	h := newHarness(t, Options{}, idle("lazy", "/", 100))
	const n = 50
	h.cp.setActivate(func(ctx context.Context, app string) (*ancmv1.ActivateResponse, error) {
		// Hold the start until every request waits, then publish.
		// Not waitFor: this runs on a gRPC goroutine, where t.Fatal is not allowed.
		deadline := time.Now().Add(10 * time.Second)
		for h.p.Stats().Queued != n && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		rev := h.cp.set(running("lazy", "/", nil, ready(0, b, "tok")))
		return &ancmv1.ActivateResponse{Ready: true, State: ancmv1.AppState_APP_STATE_RUNNING, Revision: rev}, nil
	})
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := h.client.Get(h.url + "/hello")
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			codes <- res.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("status %d, want 200", c)
		}
	}
	if got := h.cp.activations.Load(); got != 1 {
		t.Errorf("Activate called %d times, want 1", got)
	}
	if s := h.p.Stats(); s.Activations != 1 || s.Queued != 0 {
		t.Errorf("stats: %+v", s)
	}
}

func TestActivateQueueFull(t *testing.T) {
	b := echoBackend(t, "b")
	h := newHarness(t, Options{}, idle("lazy", "/", 2))
	release := make(chan struct{})
	h.cp.setActivate(func(ctx context.Context, app string) (*ancmv1.ActivateResponse, error) {
		<-release
		rev := h.cp.set(running("lazy", "/", nil, ready(0, b, "tok")))
		return &ancmv1.ActivateResponse{Ready: true, Revision: rev}, nil
	})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := h.client.Get(h.url + "/")
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Errorf("queued request: status %d", res.StatusCode)
			}
		}()
	}
	waitFor(t, "two queued", func() bool { return h.p.Stats().Queued == 2 })
	res, _ := h.get("", "/")
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("past queue_size: status %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	close(release)
	wg.Wait()
	if s := h.p.Stats(); s.QueueRejections != 1 || s.Activations != 1 {
		t.Errorf("stats: %+v", s)
	}
}

func TestActivateFailure(t *testing.T) {
	detail := idle("broken", "/broken", 10)
	detail.ErrorDetail = true
	h := newHarness(t, Options{}, detail, idle("gone", "/gone", 10))
	h.cp.setActivate(func(ctx context.Context, app string) (*ancmv1.ActivateResponse, error) {
		if app == "gone" {
			return nil, status.Error(codes.Internal, "control plane busy")
		}
		return &ancmv1.ActivateResponse{Ready: false, State: ancmv1.AppState_APP_STATE_IDLE,
			Reason: "exited with code 3", LogTail: []string{"panic: <boom>"}}, nil
	})
	res, body := h.get("", "/broken/x")
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", res.StatusCode)
	}
	for _, want := range []string{"broken", "exited with code 3", "panic: &lt;boom&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("502 page lacks %q: %s", want, body)
		}
	}
	res, body = h.get("", "/gone")
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(body, "gone") {
		t.Errorf("Activate RPC error: status %d, body %s", res.StatusCode, body)
	}
	if strings.Contains(body, "busy") {
		t.Errorf("502 page shows detail without error_detail: %s", body)
	}
}

func TestStatesAnswerWithoutActivate(t *testing.T) {
	failed := idle("failed", "/failed", 10)
	failed.State = ancmv1.AppState_APP_STATE_FAILED
	failed.LogTail = []string{"secret log line"}
	stopped := idle("stopped", "/stopped", 10)
	stopped.State = ancmv1.AppState_APP_STATE_STOPPED
	offline := idle("offline", "/offline", 10)
	offline.State = ancmv1.AppState_APP_STATE_OFFLINE
	offline.OfflineBody = []byte("<h1>back soon</h1>")
	h := newHarness(t, Options{}, failed, stopped, offline)

	res, body := h.get("", "/failed")
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(body, "failed") || strings.Contains(body, "secret log line") {
		t.Errorf("FAILED: status %d body %s", res.StatusCode, body)
	}
	res, _ = h.get("", "/stopped")
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("STOPPED: status %d Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	res, body = h.get("", "/offline/page")
	if res.StatusCode != http.StatusServiceUnavailable || body != "<h1>back soon</h1>" ||
		!strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Errorf("OFFLINE: status %d type %q body %q", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	if n := h.cp.activations.Load(); n != 0 {
		t.Errorf("Activate called %d times", n)
	}
}

func TestActivateWaitsForRevision(t *testing.T) {
	b := echoBackend(t, "b")
	h := newHarness(t, Options{}, idle("lazy", "/", 10))
	h.cp.setActivate(func(ctx context.Context, app string) (*ancmv1.ActivateResponse, error) {
		h.cp.mu.Lock()
		next := h.cp.rev + 1
		h.cp.mu.Unlock()
		returned := make(chan struct{})
		// Publish only after Activate has answered: the waiter must hold
		// until the table catches up instead of failing on the old one.
		go func() {
			<-returned
			h.cp.set(running("lazy", "/", nil, ready(0, b, "tok")))
		}()
		defer close(returned)
		return &ancmv1.ActivateResponse{Ready: true, State: ancmv1.AppState_APP_STATE_RUNNING, Revision: next}, nil
	})
	res, body := h.get("", "/x")
	if res.StatusCode != 200 || decodeEcho(t, body).Name != "b" {
		t.Fatalf("status %d body %s", res.StatusCode, body)
	}
}

func TestQueuedClientLeaves(t *testing.T) {
	h := newHarness(t, Options{}, idle("lazy", "/", 10))
	release := make(chan struct{})
	h.cp.setActivate(func(ctx context.Context, app string) (*ancmv1.ActivateResponse, error) {
		<-release
		return &ancmv1.ActivateResponse{Ready: false, State: ancmv1.AppState_APP_STATE_IDLE, Reason: "test"}, nil
	})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.url+"/", nil)
	errc := make(chan error, 1)
	go func() {
		res, err := h.client.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, "request queued", func() bool { return h.p.Stats().Queued == 1 })
	cancel()
	if err := <-errc; err == nil {
		t.Error("canceled request succeeded")
	}
	waitFor(t, "queue emptied", func() bool { return h.p.Stats().Queued == 0 })
	waitFor(t, "client-closed count", func() bool { return h.p.Stats().ClientClosed == 1 })
}

func TestWaitTable(t *testing.T) {
	cp := startCP(t, "127.0.0.1:0")
	p, err := New(Options{Conn: dialCP(t, cp.addr)})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(m *ancmv1.WatchEndpointsResponse) {
		nt, err := p.table.Load().apply(m)
		if err != nil {
			t.Fatal(err)
		}
		p.publish(nt, m)
	}
	publish(&ancmv1.WatchEndpointsResponse{Epoch: "e", Revision: 1, Full: true, Apps: []*ancmv1.AppRoute{idle("a", "/", 1)}})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p.waitTable(ctx, "e", 3) {
		t.Error("waitTable returned true for a revision the table does not have")
	}

	done := make(chan bool, 1)
	go func() { done <- p.waitTable(context.Background(), "e", 3) }()
	publish(&ancmv1.WatchEndpointsResponse{Epoch: "e", Revision: 2, Apps: []*ancmv1.AppRoute{idle("other", "/o", 1)}})
	select {
	case <-done:
		t.Fatal("waitTable returned at revision 2")
	default:
	}
	publish(&ancmv1.WatchEndpointsResponse{Epoch: "e", Revision: 3, Apps: []*ancmv1.AppRoute{idle("other", "/o2", 1)}})
	if !<-done {
		t.Error("waitTable did not see revision 3")
	}

	// A restarted control plane counts revisions afresh under a new epoch:
	// revision 3 of the old epoch is not revision 1 of the new one.
	go func() { done <- p.waitTable(context.Background(), "f", 1) }()
	select {
	case <-done:
		t.Fatal("waitTable accepted a table of another epoch")
	case <-time.After(20 * time.Millisecond):
	}
	publish(&ancmv1.WatchEndpointsResponse{Epoch: "f", Revision: 1, Full: true, Apps: []*ancmv1.AppRoute{idle("a", "/", 1)}})
	if !<-done {
		t.Error("waitTable did not see the new epoch")
	}
}
