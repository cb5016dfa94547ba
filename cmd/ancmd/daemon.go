package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ancm-dev/ancm/api/client"
	"github.com/ancm-dev/ancm/config"
	"github.com/ancm-dev/ancm/controlplane"
	"github.com/ancm-dev/ancm/dataplane"
	"github.com/ancm-dev/ancm/sandbox"
)

// shutdownBudget bounds a graceful shutdown beyond the apps' own
// shutdown_timeout.
const shutdownBudget = 5 * time.Second

// runDaemon runs the control plane, and with proxy the data plane too.
func runDaemon(args []string, withProxy bool) int {
	name := "serve"
	if !withProxy {
		name = "control"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("c", "", "config file")
	fs.StringVar(path, "config", "", "config file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintf(os.Stderr, "ancmd %s: -c FILE is required\n", name)
		return 2
	}
	f, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log := newLogger(f.LogLevel, f.LogFormat)
	if err := serve(log, *path, f, withProxy); err != nil {
		log.Error("ancmd stopped", "error", err)
		return 1
	}
	return 0
}

func serve(log hclog.Logger, path string, f *config.File, withProxy bool) error {
	if err := os.MkdirAll(f.StateDir, 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	// The sandbox first: it cleans up what a previous ancmd left, and its
	// watchdog kills the apps if this one dies.
	sb, err := sandbox.New(sandbox.Options{Logger: log, StateDir: f.StateDir})
	if err != nil {
		return err
	}
	defer func() {
		if err := sb.Close(); err != nil {
			log.Warn("sandbox cleanup", "error", err)
		}
	}()
	sup, err := controlplane.New(controlplane.Options{Logger: log, StateDir: f.StateDir, Sandbox: sb})
	if err != nil {
		return err
	}
	listen := ""
	if withProxy {
		listen = f.Listen
	}
	svc := controlplane.NewService(sup, listen)

	ctl, addr, err := listenControl(f.Control)
	if err != nil {
		_ = sup.Shutdown(context.Background())
		return fmt.Errorf("control %s: %w", f.Control, err)
	}
	srv, hs, err := newGRPCServer(log, f, addr.Network)
	if err != nil {
		ctl.Close()
		_ = sup.Shutdown(context.Background())
		return err
	}
	svc.Register(srv)

	// The in-process data plane reaches the control plane the way a
	// separate one does, over gRPC on a unix socket: the control socket, or
	// a private one beside it when the control address is TCP.
	var internal net.Listener
	dpAddr := addr.String()
	if withProxy && addr.Network == "tcp" {
		p := filepath.Join(f.StateDir, "dataplane.sock")
		internal, err = listenUnix(p)
		if err != nil {
			ctl.Close()
			_ = sup.Shutdown(context.Background())
			return fmt.Errorf("internal socket: %w", err)
		}
		dpAddr = "unix://" + p
		defer os.Remove(p)
		isrv, _, _ := newGRPCServer(log, &config.File{}, "unix")
		svc.Register(isrv)
		go func() { _ = isrv.Serve(internal) }()
		defer isrv.Stop()
	}

	var proxyLn net.Listener
	if withProxy {
		proxyLn, err = net.Listen("tcp", f.Listen)
		if err != nil {
			ctl.Close()
			_ = sup.Shutdown(context.Background())
			return fmt.Errorf("listen %s: %w", f.Listen, err)
		}
	}

	if err := sup.Load(f.Apps); err != nil {
		ctl.Close()
		if proxyLn != nil {
			proxyLn.Close()
		}
		_ = sup.Shutdown(context.Background())
		return err
	}

	grpcDone := make(chan error, 1)
	go func() { grpcDone <- srv.Serve(ctl) }()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	log.Info("control plane listening", "control", addr.String(), "state_dir", f.StateDir, "apps", len(f.Apps), "version", version())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	proxyDone := make(chan error, 1)
	if withProxy {
		conn, err := client.Dial(dpAddr, client.TLSFiles{})
		if err != nil {
			return err
		}
		defer conn.Close()
		dp, err := dataplane.New(dataplane.Options{Logger: log, Conn: conn, Node: "ancmd", AccessLog: f.AccessLog})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = dp.Run(ctx)
		}()
		// Connections wait in the listen backlog until the first table is
		// in, so early requests are served, not refused.
		waitSynced(log, dp)
		go func() { proxyDone <- dp.Serve(ctx, proxyLn) }()
		log.Info("proxy listening", "listen", proxyLn.Addr().String())
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var runErr error
loop:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload(log, path, sup)
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			break loop
		case err := <-grpcDone:
			runErr = fmt.Errorf("control API: %w", err)
			break loop
		case err := <-proxyDone:
			if err != nil {
				runErr = fmt.Errorf("proxy: %w", err)
				break loop
			}
		}
	}

	// Stop accepting and finish in-flight requests, then stop the apps,
	// then the API (its watch streams end when the supervisor closes).
	hs.Shutdown()
	cancel()
	if withProxy {
		select {
		case <-proxyDone:
		case <-time.After(shutdownBudget):
			log.Warn("proxy did not finish in-flight requests in time")
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), maxShutdown(f)+shutdownBudget)
	defer scancel()
	if err := sup.Shutdown(sctx); err != nil {
		log.Warn("apps did not all stop gracefully", "error", err)
	}
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(shutdownBudget):
		srv.Stop()
	}
	wg.Wait()
	if addr.Network == "unix" {
		_ = os.Remove(addr.Path)
	}
	if runErr != nil && !errors.Is(runErr, net.ErrClosed) {
		return runErr
	}
	log.Info("stopped")
	return nil
}

// syncWait bounds how long a proxy holds its first requests for the first
// endpoint table.
const syncWait = 5 * time.Second

func waitSynced(log hclog.Logger, dp *dataplane.Proxy) {
	select {
	case <-dp.Synced():
	case <-time.After(syncWait):
		log.Warn("no endpoint table from the control plane yet; serving 503 until it arrives", "waited", syncWait)
	}
}

// maxShutdown is the longest shutdown_timeout of the config's apps.
func maxShutdown(f *config.File) time.Duration {
	d := config.DefaultShutdownTimeout
	for _, a := range f.Apps {
		d = max(d, a.ShutdownTimeout)
	}
	return d
}

// reload re-reads the config file on SIGHUP and applies what changed. A
// file with errors changes nothing.
func reload(log hclog.Logger, path string, sup *controlplane.Supervisor) {
	f, err := config.Load(path)
	if err != nil {
		log.Error("reload refused: config has errors; nothing changed", "file", path, "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxShutdown(f)+shutdownBudget)
	defer cancel()
	if err := sup.Reload(ctx, f.Apps); err != nil {
		log.Error("reload failed", "file", path, "error", err)
		return
	}
	log.Info("config reloaded", "file", path, "apps", len(f.Apps))
}
