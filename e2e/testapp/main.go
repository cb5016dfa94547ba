// Command testapp is the app the end-to-end tests run behind ancmd. It
// behaves as its first argument says:
//
//	serve       answer every request with JSON of its env and request
//	crash-after N   serve, then exit 3 after N requests
//	exit CODE   exit at once with CODE, after a line on stderr
//	stubborn    serve, ignore SIGTERM
//	fork        serve and start a child in its process group that sleeps
//	flood       serve and write lines to stdout as fast as it can
//	slow D      wait D before listening
//	never       never listen
//	unhealthy-after N  /healthz fails after N checks
//	record      serve, and print "request METHOD URI" for every request
//	            that reaches it
//	family      serve and start a child, a grandchild (through sh -c,
//	            left behind by its exiting parent) and a setsid daemon,
//	            all sleeping
//
// In every mode /isolation answers with the app's uid, gid, groups,
// RLIMIT_NOFILE, /proc/self/cgroup and the environment variables the
// query's k values name; /alloc?mb=N allocates and touches N MiB.
//
// It checks ANCM-Token and answers 400 without the right one, as docs/apps.md
// asks of every app.
package main

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	mode := "serve"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	arg := ""
	if len(os.Args) > 2 {
		arg = os.Args[2]
	}
	fmt.Printf("testapp %s starting pid=%d port=%s\n", mode, os.Getpid(), os.Getenv("PORT"))
	switch mode {
	case "exit":
		code, _ := strconv.Atoi(arg)
		fmt.Fprintln(os.Stderr, "testapp: exiting at once as asked")
		os.Exit(code)
	case "never":
		select {}
	case "slow":
		d, _ := time.ParseDuration(arg)
		time.Sleep(d)
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
	case "fork":
		child := exec.Command("sleep", "300")
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "fork:", err)
			os.Exit(1)
		}
		fmt.Printf("child pid=%d\n", child.Process.Pid)
		_ = os.WriteFile(os.Getenv("CHILD_PID_FILE"), []byte(strconv.Itoa(child.Process.Pid)), 0o644)
	case "family":
		for _, argv := range [][]string{
			{"sleep", "100000"},
			{"sh", "-c", "sleep 100000 & echo grandchild started"},
			{"setsid", "sleep", "100000"},
		} {
			c := exec.Command(argv[0], argv[1:]...)
			c.Stdout = os.Stdout
			if err := c.Start(); err != nil {
				fmt.Fprintln(os.Stderr, "family:", err)
				os.Exit(1)
			}
			go func() { _ = c.Wait() }()
		}
	case "flood":
		go func() {
			line := []byte("flood flood flood flood flood flood flood flood flood flood\n")
			for {
				_, _ = os.Stdout.Write(line)
			}
		}()
	}
	var requests, checks atomic.Int64
	limit, _ := strconv.Atoi(arg)
	token := os.Getenv("ANCM_TOKEN")
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if mode == "unhealthy-after" && checks.Add(1) > int64(limit) {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/isolation", isolation)
	mux.HandleFunc("/alloc", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		hog = make([]byte, mb<<20)
		for i := 0; i < len(hog); i += 4096 {
			hog[i] = 1
		}
		fmt.Fprintln(w, "allocated", mb, "MiB")
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		fmt.Fprintln(w, "slept", d)
	})
	// /ws answers an Upgrade with 101 and echoes lines back, upper-cased.
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = rw.WriteString(strings.ToUpper(line))
			_ = rw.Flush()
		}
	})
	// /sse sends an event, then waits for /sse-release before the next.
	release := make(chan struct{}, 1)
	mux.HandleFunc("/sse-release", func(w http.ResponseWriter, r *http.Request) {
		select {
		case release <- struct{}{}:
		default:
		}
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		fmt.Fprint(w, "data: first\n\n")
		_ = rc.Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Second):
		}
		fmt.Fprint(w, "data: second\n\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"pid":       os.Getpid(),
			"path":      r.URL.Path,
			"host":      r.Host,
			"headers":   r.Header,
			"port":      os.Getenv("PORT"),
			"ancm_port": os.Getenv("ANCM_PORT"),
			"token":     os.Getenv("ANCM_TOKEN"),
			"app":       os.Getenv("ANCM_APP"),
			"instance":  os.Getenv("ANCM_INSTANCE"),
			"path_base": os.Getenv("ANCM_PATH_BASE"),
			"greeting":  os.Getenv("GREETING"),
			"args":      os.Args[1:],
		})
		if mode == "crash-after" && n >= int64(limit) {
			go func() {
				time.Sleep(10 * time.Millisecond)
				fmt.Fprintln(os.Stderr, "testapp: crashing as asked")
				os.Exit(3)
			}()
		}
	})
	checked := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mode == "record" {
			fmt.Printf("request %s %s\n", r.Method, r.RequestURI)
		}
		got := r.Header.Get("ANCM-Token")
		if token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			http.Error(w, "bad token", http.StatusBadRequest)
			return
		}
		mux.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: checked}
	go func() {
		sigs := make(chan os.Signal, 1)
		if mode == "stubborn" {
			signal.Notify(sigs, syscall.SIGINT)
		} else {
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		}
		<-sigs
		fmt.Println("testapp: stopping")
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// hog keeps what /alloc allocated.
var hog []byte

func isolation(w http.ResponseWriter, r *http.Request) {
	var lim syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	groups, _ := os.Getgroups()
	cg, _ := os.ReadFile("/proc/self/cgroup")
	env := map[string]*string{}
	for _, k := range r.URL.Query()["k"] {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = &v
		} else {
			env[k] = nil
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"uid": os.Getuid(), "gid": os.Getgid(), "groups": groups,
		"nofile_soft": lim.Cur, "nofile_hard": lim.Max,
		"cgroup": string(cg), "env": env,
	})
}
