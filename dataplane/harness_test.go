package dataplane

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/types/known/durationpb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// harness runs a Proxy against a testCP, with the proxy served on a real
// loopback listener.
type harness struct {
	t      testing.TB
	cp     *testCP
	p      *Proxy
	url    string // http://127.0.0.1:port of the proxy
	addr   string
	client *http.Client
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: t.Output(), Level: hclog.Debug})
}

func newHarness(t testing.TB, opts Options, routes ...*ancmv1.AppRoute) *harness {
	t.Helper()
	cp := startCP(t, "127.0.0.1:0")
	if len(routes) > 0 {
		cp.set(routes...)
	}
	opts.Conn = dialCP(t, cp.addr)
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	opts.Node = "test"
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = p.Run(ctx) }()
	go func() { defer wg.Done(); _ = p.Serve(ctx, ln) }()
	tr := &http.Transport{MaxIdleConnsPerHost: 100, DisableCompression: true}
	h := &harness{t: t, cp: cp, p: p, url: "http://" + ln.Addr().String(), addr: ln.Addr().String(),
		client: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		wg.Wait()
	})
	select {
	case <-p.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("proxy did not sync")
	}
	return h
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitRevision waits until the proxy's table has revision rev.
func (h *harness) waitRevision(rev uint64) {
	h.t.Helper()
	waitFor(h.t, "table revision", func() bool { return h.p.Stats().Revision >= rev })
}

// get sends a request and returns status, headers and body.
func (h *harness) do(req *http.Request) (*http.Response, string) {
	h.t.Helper()
	res, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatalf("read body: %v", err)
	}
	return res, string(b)
}

func (h *harness) get(host, path string) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	return h.do(req)
}

// echo is what the echo backend answers: who it is and what it got.
type echo struct {
	Name   string      `json:"name"`
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

// echoBackend starts a backend that answers with an echo as JSON.
func echoBackend(t testing.TB, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echo{Name: name, Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Header: r.Header, Body: string(b)})
	}))
	t.Cleanup(s.Close)
	return s
}

func decodeEcho(t testing.TB, body string) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not an echo: %q", body)
	}
	return e
}

func hostOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// ready is a ready endpoint for a backend.
func ready(instance uint32, s *httptest.Server, token string) *ancmv1.Endpoint {
	return &ancmv1.Endpoint{Instance: instance, Address: hostOf(s), Token: token, State: ancmv1.InstanceState_INSTANCE_STATE_READY, Ready: true}
}

// running is a RUNNING route with the given endpoints.
func running(name, prefix string, hosts []string, eps ...*ancmv1.Endpoint) *ancmv1.AppRoute {
	return &ancmv1.AppRoute{
		App: name, Hosts: hosts, PathPrefix: prefix, State: ancmv1.AppState_APP_STATE_RUNNING,
		Endpoints: eps, QueueSize: 100,
		StartupTimeout: durationpb.New(10 * time.Second), RequestTimeout: durationpb.New(10 * time.Second),
	}
}

func ioCopy(w io.Writer, res *http.Response) (int64, error) { return io.Copy(w, res.Body) }

// serveLoopback accepts connections on a loopback port and runs handle on
// each in a goroutine of its own, closing the connection after it. The
// test's cleanup stops accepting, closes the connections still open (a
// handler blocked on one returns) and waits for every handler.
func serveLoopback(t testing.TB, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}
