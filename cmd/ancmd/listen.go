package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/ancm-dev/ancm/api/client"
	"github.com/ancm-dev/ancm/config"
	"github.com/ancm-dev/ancm/internal/pemfile"
)

// listenControl opens the control address: a unix socket with mode 0600
// (a stale socket from a dead daemon is replaced, a live one is an error),
// or a TCP address.
func listenControl(addr string) (net.Listener, client.Address, error) {
	a, err := client.ParseAddress(addr)
	if err != nil {
		return nil, a, err
	}
	if a.Network == "tcp" {
		l, err := net.Listen("tcp", a.Path)
		return l, a, err
	}
	l, err := listenUnix(a.Path)
	return l, a, err
}

func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another ancmd is listening there", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// The socket is created with 0600 at once: no window in which others
	// could connect.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// newGRPCServer builds the control API server: TLS with required client
// certificates for TCP unless insecure, a peer uid check (root or the
// daemon's own) on a unix socket, reflection and health on.
func newGRPCServer(log hclog.Logger, f *config.File, network string) (*grpc.Server, *health.Server, error) {
	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if network == "unix" {
		opts = append(opts, grpc.Creds(newPeerCreds(log.Named("control"))))
	}
	if network == "tcp" {
		switch {
		case f.ControlTLS != nil:
			cfg, err := serverTLS(f.ControlTLS)
			if err != nil {
				return nil, nil, err
			}
			opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
		case f.Insecure:
			log.Warn("control API on TCP without TLS (insecure = true): anyone who can reach it can run commands as this daemon", "control", f.Control)
		default:
			return nil, nil, errors.New("control: a tcp address needs control_tls, or insecure = true")
		}
	}
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return srv, hs, nil
}

func serverTLS(t *config.TLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("control_tls: %w", err)
	}
	pool, err := pemfile.CertPool(t.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("control_tls: client_ca_file: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}
