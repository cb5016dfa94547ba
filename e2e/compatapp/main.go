// Command compatapp stands in, in the end-to-end tests, for an unmodified
// ASP.NET Core app using IIS integration, run behind ancmd with
// compat = "aspnetcore". It does what UseIISIntegration and IISMiddleware
// do (dotnet/aspnetcore, src/Servers/IIS/IISIntegration/src):
//
//   - it needs ASPNETCORE_PORT, ASPNETCORE_APPL_PATH and ASPNETCORE_TOKEN
//     (without all three UseIISIntegration does nothing; here the app exits 2)
//     and listens on 127.0.0.1:$ASPNETCORE_PORT;
//   - UsePathBase($ASPNETCORE_APPL_PATH): the prefix is cut from the path;
//   - UseForwardedHeaders for X-Forwarded-For and X-Forwarded-Proto from a
//     loopback peer, ForwardLimit 1: the remote address is the last entry;
//   - IISMiddleware: 400 unless MS-ASPNETCORE-TOKEN is exactly (ordinal) the
//     token; POST /iisintegration with MS-ASPNETCORE-EVENT: shutdown answers
//     202 and stops the application.
//
// It records what it saw so that the tests can check ancmd's side: GET
// /seen answers JSON with its environment and the request as it arrived,
// and lines are appended to the file named by $COMPAT_RECORD: "start",
// "shutdown-event token=ok|bad path=P" when the shutdown POST arrives,
// "sigterm" when SIGTERM arrives, "exit" last.
//
// After the shutdown event it stops accepting but waits for the stop signal
// ancmd sends next (at most $COMPAT_LINGER, 5s by default) so that the tests
// can see the order of the two; then it exits 0.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// seen is what GET /seen answers.
type seen struct {
	Pid      int                 `json:"pid"`
	Env      map[string]string   `json:"env"`
	Method   string              `json:"method"`
	RawPath  string              `json:"raw_path"`
	Path     string              `json:"path"`
	PathBase string              `json:"path_base"`
	Remote   string              `json:"remote"`
	Scheme   string              `json:"scheme"`
	Headers  map[string][]string `json:"headers"`
}

var envNames = []string{
	"ASPNETCORE_PORT", "ASPNETCORE_TOKEN", "ASPNETCORE_APPL_PATH",
	"ASPNETCORE_IIS_HTTPAUTH", "ASPNETCORE_IIS_WEBSOCKETS_SUPPORTED",
	"ASPNETCORE_IIS_PHYSICAL_PATH", "PORT", "ANCM_TOKEN", "ANCM_PATH_BASE",
}

type recorder struct {
	mu   sync.Mutex
	path string
}

func (r *recorder) mark(format string, args ...any) {
	if r.path == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compatapp: record:", err)
		return
	}
	fmt.Fprintf(f, format+"\n", args...)
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "compatapp: record:", err)
	}
}

func main() {
	port := os.Getenv("ASPNETCORE_PORT")
	token := os.Getenv("ASPNETCORE_TOKEN")
	applPath := os.Getenv("ASPNETCORE_APPL_PATH")
	if port == "" || token == "" || applPath == "" {
		fmt.Fprintln(os.Stderr, "compatapp: ASPNETCORE_PORT, ASPNETCORE_APPL_PATH and ASPNETCORE_TOKEN must all be set")
		os.Exit(2)
	}
	linger := 5 * time.Second
	if v := os.Getenv("COMPAT_LINGER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "compatapp: COMPAT_LINGER:", err)
			os.Exit(2)
		}
		linger = d
	}
	rec := &recorder{path: os.Getenv("COMPAT_RECORD")}
	// UsePathBase ignores a base of "/".
	pathBase := strings.TrimRight(applPath, "/")

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	shutdownEvent := make(chan struct{})
	var eventOnce sync.Once

	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rawPath := r.URL.Path
		// UsePathBase: a matching prefix (case-insensitive, whole segments)
		// moves from Path to PathBase.
		path, base := rawPath, ""
		if pathBase != "" && len(path) >= len(pathBase) && strings.EqualFold(path[:len(pathBase)], pathBase) &&
			(len(path) == len(pathBase) || path[len(pathBase)] == '/') {
			path, base = path[len(pathBase):], path[:len(pathBase)]
		}
		// UseForwardedHeaders: only from a known proxy (loopback), and
		// with ForwardLimit 1 only the last X-Forwarded-For entry counts.
		remote, _, _ := net.SplitHostPort(r.RemoteAddr)
		scheme := "http"
		if ip := net.ParseIP(remote); ip != nil && ip.IsLoopback() {
			if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
				all := strings.Split(strings.Join(xff, ","), ",")
				remote = strings.TrimSpace(all[len(all)-1])
			}
			if xfp := r.Header.Values("X-Forwarded-Proto"); len(xfp) > 0 {
				all := strings.Split(strings.Join(xfp, ","), ",")
				scheme = strings.TrimSpace(all[len(all)-1])
			}
		}
		// IISMiddleware: StringValues compare, so two headers never match.
		if strings.Join(r.Header.Values("MS-ASPNETCORE-TOKEN"), ",") != token {
			http.Error(w, "MS-ASPNETCORE-TOKEN does not match the pairing token", http.StatusBadRequest)
			return
		}
		if r.Method == http.MethodPost && strings.EqualFold(path, "/iisintegration") &&
			strings.EqualFold(strings.Join(r.Header.Values("MS-ASPNETCORE-EVENT"), ","), "shutdown") {
			// The token was checked above: only a request that passed gets here.
			rec.mark("shutdown-event token=ok path=%s", rawPath)
			w.WriteHeader(http.StatusAccepted)
			eventOnce.Do(func() { close(shutdownEvent) })
			return
		}
		switch path {
		case "", "/":
			fmt.Fprint(w, "Hello from compatapp\n")
		case "/healthz":
			fmt.Fprint(w, "ok\n")
		case "/seen":
			s := seen{
				Pid: os.Getpid(), Env: map[string]string{}, Method: r.Method,
				RawPath: rawPath, Path: path, PathBase: base, Remote: remote, Scheme: scheme,
				Headers: r.Header,
			}
			for _, k := range envNames {
				if v, ok := os.LookupEnv(k); ok {
					s.Env[k] = v
				}
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(s)
		default:
			http.NotFound(w, r)
		}
	})

	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compatapp:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	rec.mark("start pid=%d", os.Getpid())
	fmt.Printf("compatapp listening on 127.0.0.1:%s, path base %q\n", port, applPath)
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			fmt.Fprintln(os.Stderr, "compatapp:", err)
			os.Exit(1)
		}
	}()

	gotSignal := false
	select {
	case <-sigs:
		rec.mark("sigterm")
		gotSignal = true
	case <-shutdownEvent:
	}
	// StopApplication: stop accepting, let in-flight requests finish.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(ctx)
	cancel()
	if !gotSignal {
		select {
		case <-sigs:
			rec.mark("sigterm")
		case <-time.After(linger):
		}
	}
	rec.mark("exit")
	fmt.Println("compatapp stopped")
}
