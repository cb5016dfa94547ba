// Command grpcapp is the gRPC app the end-to-end tests run behind ancmd
// (protocol = "h2c"): a grpc-go server on $PORT in cleartext HTTP/2 with
// the standard health service and server reflection, that refuses calls
// without the right ANCM-Token (Unauthenticated), as docs/apps.md's apps
// should. On SIGTERM it stops gracefully.
package main

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

func main() {
	token := os.Getenv("ANCM_TOKEN")
	check := func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		got := md.Get("ancm-token")
		if token != "" && (len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), []byte(token)) != 1) {
			return status.Error(codes.Unauthenticated, "bad token")
		}
		return nil
	}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := check(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(s any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := check(ss.Context()); err != nil {
				return err
			}
			return h(s, ss)
		}))
	hs := health.NewServer()
	hs.SetServingStatus("ancm.test", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Printf("grpcapp serving on %s pid=%d\n", ln.Addr(), os.Getpid())
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		hs.Shutdown()
		srv.GracefulStop()
	}()
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}
