package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ancm-dev/ancm/api/client"
	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
	"github.com/ancm-dev/ancm/controlplane"
	"github.com/ancm-dev/ancm/dataplane"
	"github.com/ancm-dev/ancm/internal/buildinfo"
	"github.com/ancm-dev/ancm/sandbox"
)

// shutdownBudget bounds a graceful shutdown beyond the apps' own
// shutdown_timeout.
const shutdownBudget = 5 * time.Second

// runDaemon runs the control plane, and with proxy the data plane too.
func runDaemon(cmd *cobra.Command, path string, withProxy bool) error {
	if err := requireConfig(path); err != nil {
		return err
	}
	f, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return failure{exitError}
	}
	if withProxy {
		quietSysmon()
	}
	log, level := newLogger(f.LogLevel, f.LogFormat)
	logSysmon(log)
	raiseFileLimit(log)
	if err := serve(log, level, path, f, withProxy); err != nil {
		log.Error("ancmd stopped", "error", err)
		return failure{exitError}
	}
	return nil
}

func serve(log hclog.Logger, setLevel func(string), path string, f *config.File, withProxy bool) error {
	// Signals are taken from the start: a SIGHUP or SIGTERM that arrives
	// while the planes come up waits for the loop below instead of ending
	// the process (SIGHUP's default action).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
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
	traffic := controlplane.NewTrafficService(sup.List)
	traffic.Register(srv)

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
		traffic.Register(isrv)
		go func() { _ = isrv.Serve(internal) }()
		defer isrv.Stop()
	}

	var proxyLn net.Listener
	var front *httpsFront
	if withProxy {
		proxyLn, err = net.Listen("tcp", f.Listen)
		if err == nil {
			front, err = listenHTTPS(log, f)
			if err != nil {
				proxyLn.Close()
			}
		}
		if err != nil {
			ctl.Close()
			_ = sup.Shutdown(context.Background())
			return fmt.Errorf("listen %s: %w", f.Listen, err)
		}
	}

	metricsLn, err := listenMetrics(f.MetricsListen)
	if err != nil {
		ctl.Close()
		if proxyLn != nil {
			proxyLn.Close()
		}
		_ = sup.Shutdown(context.Background())
		return fmt.Errorf("metrics_listen %s: %w", f.MetricsListen, err)
	}

	if err := sup.Load(f.Apps); err != nil {
		ctl.Close()
		if proxyLn != nil {
			proxyLn.Close()
		}
		if metricsLn != nil {
			metricsLn.Close()
		}
		_ = sup.Shutdown(context.Background())
		return err
	}

	grpcDone := make(chan error, 1)
	go func() { grpcDone <- srv.Serve(ctl) }()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	log.Info("control plane listening", "control", addr.String(), "state_dir", f.StateDir, "apps", len(f.Apps), "version", buildinfo.Read().Version)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	proxyDone := make(chan error, 1)
	httpsDone := make(chan error, 1)
	collectors := []prometheus.Collector{controlplane.NewMetrics(ctx, sup)}
	if withProxy {
		conn, err := client.Dial(dpAddr, client.TLSFiles{}, grpc.WithConnectParams(reconnectParams))
		if err != nil {
			return err
		}
		defer conn.Close()
		dp, err := dataplane.New(dataplane.Options{Logger: log, Conn: conn, Node: "ancmd", AccessLog: f.AccessLog,
			AccessLogger:   newAccessLogger(f.AccessLogFormat, f.LogFormat),
			MaxConnections: f.MaxConnections, SendTimeout: f.SendTimeout,
			TrustedProxies: f.TrustedProxies, RedirectHTTPS: redirectPort(f)})
		if err != nil {
			return err
		}
		collectors = append(collectors, dp.Collector())
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
		if front != nil {
			front.certs.OnReloadError = func(err error) {
				sup.DaemonEvent(ancmv1.EventType_EVENT_TYPE_CERTIFICATES_NOT_RELOADED, err.Error())
			}
			go front.serve(ctx, log, dp, httpsDone)
			log.Info("https listening", "listen", front.ln.Addr().String(), "certificates", len(f.HTTPS.Certificates))
		}
	}

	if err := serveMetrics(ctx, log, metricsLn, collectors...); err != nil {
		return err
	}

	notify := notifier{log: log}
	notify.ready(fmt.Sprintf("serving %d apps", len(f.Apps)))
	go notify.watchdog(ctx, func() bool {
		select {
		case <-sup.Closed():
			return false
		default:
			return true
		}
	})

	// One reloader re-reads the file, one reload after the other; a
	// SIGHUP that comes while one runs asks for one more, once. A reload
	// waits for the rollouts it starts, so it runs beside the signal loop.
	// The settings in force are the reloader's; shutdown reads them.
	var inForce atomic.Pointer[config.File]
	inForce.Store(f)
	reloads := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-reloads:
				notify.reloading()
				cur := reload(ctx, log, setLevel, path, inForce.Load(), sup)
				inForce.Store(cur)
				if front != nil {
					_ = front.certs.Reload() // logs its own outcome
				}
				notify.ready(fmt.Sprintf("serving %d apps", len(cur.Apps)))
			}
		}
	}()

	var runErr error
loop:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				select {
				case reloads <- struct{}{}:
				default: // one is pending already
				}
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
		case err := <-httpsDone:
			if err != nil {
				runErr = fmt.Errorf("https: %w", err)
				break loop
			}
		}
	}

	// Stop accepting and finish in-flight requests, then stop the apps,
	// then the API (its watch streams end when the supervisor closes).
	notify.stopping()
	hs.Shutdown()
	cancel()
	if withProxy {
		select {
		case <-proxyDone:
		case <-time.After(shutdownBudget):
			log.Warn("proxy did not finish in-flight requests in time")
		}
		if front != nil {
			select {
			case <-httpsDone:
			case <-time.After(shutdownBudget):
				log.Warn("https listener did not finish in-flight requests in time")
			}
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), maxShutdown(inForce.Load())+shutdownBudget)
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

// reload re-reads the config file on SIGHUP and applies what changed, and
// waits for the rollouts that needs until ctx (the daemon's run) ends. A
// file with errors changes nothing; a failed rollout leaves its app on its
// previous generation and is logged. It returns the settings in force
// afterwards: cur with the apps and log_level of the new file, since the
// other settings are read at start only (each one that changed is named in
// a warning).
func reload(ctx context.Context, log hclog.Logger, setLevel func(string), path string, cur *config.File, sup *controlplane.Supervisor) *config.File {
	f, err := config.Load(path)
	if err != nil {
		log.Error("reload refused: config has errors; nothing changed", "file", path, "error", err)
		return cur
	}
	next := *cur
	next.Apps = f.Apps
	if f.LogLevel != cur.LogLevel {
		// Logged at the more verbose of the two levels, so that it shows.
		if hclog.LevelFromString(f.LogLevel) < hclog.LevelFromString(cur.LogLevel) {
			setLevel(f.LogLevel)
			log.Info("log level changed", "from", cur.LogLevel, "to", f.LogLevel)
		} else {
			log.Info("log level changed", "from", cur.LogLevel, "to", f.LogLevel)
			setLevel(f.LogLevel)
		}
		next.LogLevel = f.LogLevel
	}
	for _, c := range restartChanges(cur, f) {
		log.Warn("config change needs a restart of ancmd; keeping the old value", "key", c.key, "running", c.running, "file", c.file)
	}
	if err := sup.Reload(ctx, f.Apps); err != nil {
		log.Error("reload failed", "file", path, "error", err)
		next.Apps = cur.Apps
		return &next
	}
	log.Info("config reloaded", "file", path, "apps", len(f.Apps))
	return &next
}

// settingChange is a top-level setting whose new value takes a restart.
type settingChange struct {
	key, running, file string
}

// liveKeys are the top-level keys a reload applies; every other one is
// compared by restartChanges.
var liveKeys = []string{"log_level", "app"}

// restartChanges lists the top-level settings that differ between the
// running config and a reloaded one and are read at start only: every one
// but log_level and the apps.
func restartChanges(cur, f *config.File) []settingChange {
	var out []settingChange
	add := func(key, running, file string) {
		if running != file {
			out = append(out, settingChange{key: key, running: running, file: file})
		}
	}
	add("listen", cur.Listen, f.Listen)
	add("control", cur.Control, f.Control)
	add("state_dir", cur.StateDir, f.StateDir)
	add("log_format", cur.LogFormat, f.LogFormat)
	add("access_log", strconv.FormatBool(cur.AccessLog), strconv.FormatBool(f.AccessLog))
	add("access_log_format", cur.AccessLogFormat, f.AccessLogFormat)
	add("metrics_listen", cur.MetricsListen, f.MetricsListen)
	add("insecure", strconv.FormatBool(cur.Insecure), strconv.FormatBool(f.Insecure))
	tls := func(t *config.TLS) (cert, key, ca string) {
		if t == nil {
			return "", "", ""
		}
		return t.CertFile, t.KeyFile, t.ClientCAFile
	}
	c1, k1, a1 := tls(cur.ControlTLS)
	c2, k2, a2 := tls(f.ControlTLS)
	add("control_tls.cert_file", c1, c2)
	add("control_tls.key_file", k1, k2)
	add("control_tls.client_ca_file", a1, a2)
	add("max_connections", strconv.Itoa(cur.MaxConnections), strconv.Itoa(f.MaxConnections))
	add("send_timeout", cur.SendTimeout.String(), f.SendTimeout.String())
	add("trusted_proxies", fmt.Sprint(cur.TrustedProxies), fmt.Sprint(f.TrustedProxies))
	// The https block's certificate files are re-read on every SIGHUP
	// (and when they change); the block itself is read at start.
	https := func(h *config.HTTPS) string {
		if h == nil {
			return "none"
		}
		return fmt.Sprintf("%+v", *h)
	}
	add("https", https(cur.HTTPS), https(f.HTTPS))
	return out
}

// raiseFileLimit raises the soft open-file limit to the hard one, so that
// max_connections and the control plane's reserve fit (see
// dataplane.connectionBudget), and logs the limit in force.
func raiseFileLimit(log hclog.Logger) {
	n, err := dataplane.RaiseFileLimit()
	if err != nil {
		log.Warn("cannot raise the open-file limit", "error", err)
		return
	}
	log.Debug("open-file limit", "limit", n)
}
