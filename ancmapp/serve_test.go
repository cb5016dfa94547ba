package ancmapp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

const helperEnv = "ANCMAPP_WANT_HELPER_PROCESS"

// TestHelperProcess is not a test: it is the app that the tests below start
// by re-executing the test binary (go-plugin's helperProcess).
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for other tests")
	}
	stopped := make(chan os.Signal, 1)
	signal.Notify(stopped, syscall.SIGTERM, os.Interrupt)

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.Handle("/echo", echo)
	// /slow is in flight across the stop: it answers its first line, waits
	// for the stop signal, then for the server to stop accepting, and only
	// then finishes.
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "start\n")
		w.(http.Flusher).Flush()
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			io.WriteString(w, "no signal\n")
			return
		}
		self := r.Context().Value(http.LocalAddrContextKey).(net.Addr).String()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			c, err := net.Dial("tcp", self)
			if err != nil {
				io.WriteString(w, "done\n")
				return
			}
			c.Close()
		}
		io.WriteString(w, "still accepting\n")
	})
	if err := ListenAndServe(mux); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// lockedBuffer collects a child's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startHelper runs TestHelperProcess in its own process group, with no
// ANCM_* or PORT variable but the ones given.
func startHelper(t *testing.T, env ...string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ANCM_") && !strings.HasPrefix(kv, "PORT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv+"=1")
	cmd.Env = append(cmd.Env, env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd, out
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitReady polls url until it answers, with a deadline.
func waitReady(t *testing.T, url string, header http.Header, out *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v; output:\n%s", url, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitExit waits for cmd with a deadline and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, out *lockedBuffer) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		t.Fatalf("helper did not exit; output:\n%s", out)
		return -1
	}
}

func TestListenAndServeGracefulStop(t *testing.T) {
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	token := http.Header{HeaderToken: {"tok-123"}}
	cmd, out := startHelper(t, EnvPort+"="+strconv.Itoa(port), EnvToken+"=tok-123", EnvApp+"=hello")
	waitReady(t, base+"/healthz", token, out)

	if status, _ := get(t, base+"/healthz", nil); status != 400 {
		t.Fatalf("status %d without token, want 400", status)
	}
	if status, body := get(t, base+"/echo", http.Header{HeaderToken: {"tok-123"}, "X-Forwarded-For": {"198.51.100.7"}}); status != 200 ||
		!strings.Contains(body, "client=198.51.100.7 ") || !strings.Contains(body, `token=""`) {
		t.Fatalf("status %d: %q", status, body)
	}

	req, _ := http.NewRequest(http.MethodGet, base+"/slow", nil)
	req.Header = token
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "start\n" {
		t.Fatalf("first line %q, %v", line, err)
	}

	// As ancmd stops an instance: the signal goes to the process group.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "done\n" {
		t.Fatalf("in-flight request: %q, %v; output:\n%s", rest, err, out)
	}
	if code := waitExit(t, cmd, out); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	if !strings.Contains(out.String(), "shutting down") {
		t.Errorf("no shutdown log line in:\n%s", out)
	}
}

func TestListenAndServeFallbackAddr(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd, out := startHelper(t, EnvFallbackAddr+"="+addr)
	waitReady(t, "http://"+addr+"/healthz", nil, out)

	// Not behind ancmd: no token needed, forwarded headers not trusted.
	status, body := get(t, "http://"+addr+"/echo", http.Header{"X-Forwarded-For": {"198.51.100.7"}})
	if status != 200 || !strings.Contains(body, "client=127.0.0.1 ") {
		t.Fatalf("status %d: %q", status, body)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, out); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	if !strings.Contains(out.String(), "without ancmd") {
		t.Errorf("no fallback log line in:\n%s", out)
	}
}

func TestServeShutdownTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	})}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Serve(ctx, srv, WithListener(ln), WithEnv(Env{}), WithShutdownTimeout(50*time.Millisecond),
			WithLogger(hclog.NewNullLogger()))
	}()
	go http.Get("http://" + ln.Addr().String() + "/")
	<-entered
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Serve = %v, want DeadlineExceeded", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestServeListenError(t *testing.T) {
	err := Serve(context.Background(), &http.Server{}, WithEnv(Env{Addr: "127.0.0.1:http-port"}), WithLogger(hclog.NewNullLogger()))
	if err == nil || !strings.Contains(err.Error(), "http-port") {
		t.Fatalf("Serve = %v", err)
	}
}
