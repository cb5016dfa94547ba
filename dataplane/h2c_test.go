package dataplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcBackend runs a grpc-go server with the standard health service on
// cleartext HTTP/2, recording the metadata of each call.
func grpcBackend(t *testing.T) (addr string, hs *health.Server, seen func() []metadata.MD) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var mds []metadata.MD
	record := func(ctx context.Context) {
		md, _ := metadata.FromIncomingContext(ctx)
		mu.Lock()
		mds = append(mds, md)
		mu.Unlock()
	}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(ctx)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(ss.Context())
			return h(srv, ss)
		}))
	hs = health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), hs, func() []metadata.MD {
		mu.Lock()
		defer mu.Unlock()
		return append([]metadata.MD(nil), mds...)
	}
}

// TestGRPCAppThroughTLS calls a gRPC app (protocol = "h2c") through the
// TLS listener: a unary health Check, a server-streaming Watch that sees
// a change, and a status error, with the pairing token in the metadata.
func TestGRPCAppThroughTLS(t *testing.T) {
	addr, hs, seen := grpcBackend(t)
	route := running("grpc", "/", nil, readyAddr(0, addr, "tok"))
	route.Protocol = "h2c"
	th := newTLSHarness(t, Options{}, TLSOptions{HTTP2: true}, [][]string{{"shop.example"}}, route)
	pool := x509.NewCertPool()
	pool.AddCert(th.ca.cert)
	conn, err := grpc.NewClient(th.tlsAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "shop.example"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	res, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v %v", res, err)
	}
	if md := seen(); len(md) != 1 || strings.Join(md[0].Get("ancm-token"), ",") != "tok" || md[0].Get("x-forwarded-proto")[0] != "https" {
		t.Errorf("metadata at the app: %v", md)
	}
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("Check of an unknown service: %v", err)
	}

	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	w, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch first: %v %v", m, err)
	}
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch after the change: %v %v", m, err)
	}
}

// TestHTTP1ClientToH2CApp checks an HTTP/1.1 client of an h2c app: the
// answer comes back chunked with its trailers, and a body the app did not
// read is never taken for the next request.
func TestHTTP1ClientToH2CApp(t *testing.T) {
	h2s := &http2.Server{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/unread" {
			w.WriteHeader(200) // answers without reading the body
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		fmt.Fprintf(w, "%s %s %s %s", r.Proto, r.Method, r.URL.RequestURI(), b)
		w.Header().Set("X-Sum", "42")
	}), h2s)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	route := running("app", "/", nil, readyAddr(0, ln.Addr().String(), "tok"))
	route.Protocol = "h2c"
	h := newHarness(t, Options{}, route)

	out := firstAnswer(t, h.addr, "POST /echo?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	if !strings.HasPrefix(out, "HTTP/1.1 200 ") || !strings.Contains(out, "Transfer-Encoding: chunked") ||
		!strings.Contains(out, "HTTP/2.0 POST /echo?x=1 hello") || !strings.Contains(out, "X-Sum: 42") {
		t.Errorf("answer %q", out)
	}
	// A body the app never read, then a request smuggled in it.
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	body := strings.Repeat("a", 200000) + smuggled
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		_, _ = io.WriteString(c, fmt.Sprintf("POST /unread HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	}()
	rest, _ := io.ReadAll(c)
	if strings.Count(string(rest), "HTTP/1.1 ") != 1 || strings.Contains(string(rest), "smuggled") {
		t.Errorf("after an unread body: %q", rest)
	}
}
