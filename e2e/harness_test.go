package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bin holds the binaries built once for all tests.
var bin struct {
	dir, ancmd, ancmctl, testapp, compatapp, grpcapp string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ancm-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.dir = dir
	bin.ancmd = filepath.Join(dir, "ancmd")
	bin.ancmctl = filepath.Join(dir, "ancmctl")
	bin.testapp = filepath.Join(dir, "testapp")
	bin.compatapp = filepath.Join(dir, "compatapp")
	bin.grpcapp = filepath.Join(dir, "grpcapp")
	build := exec.Command("go", "build", "-o", dir+"/", "../cmd/ancmd", "../cmd/ancmctl", "./testapp", "./compatapp", "./grpcapp")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is an ancmd started by a test.
type daemon struct {
	t        *testing.T
	dir      string // state dir, config and sockets
	config   string
	listen   string // host:port of the proxy
	control  string // unix:///... control address
	cmd      *exec.Cmd
	out      *syncBuffer
	exited   chan struct{}
	exitErr  error
	extraEnv []string
	wrap     []string // a command that runs ancmd, such as prlimit
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newDaemon writes a config with the given app blocks (TESTAPP stands for
// the test app's path) and starts ancmd serve with it.
func newDaemon(t *testing.T, apps string) *daemon {
	t.Helper()
	d := prepareDaemon(t, apps)
	d.start("serve")
	return d
}

func prepareDaemon(t *testing.T, apps string) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "ancm-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemon{t: t, dir: dir, listen: freeAddr(t), control: "unix://" + filepath.Join(dir, "ancm.sock")}
	d.config = filepath.Join(dir, "ancm.hcl")
	d.writeConfig(apps)
	return d
}

func (d *daemon) writeConfig(apps string) {
	d.t.Helper()
	src := fmt.Sprintf("listen = %q\ncontrol = %q\nstate_dir = %q\nlog_level = \"debug\"\n\n%s\n",
		d.listen, d.control, d.dir, strings.NewReplacer("TESTAPP", bin.testapp, "GRPCAPP", bin.grpcapp).Replace(apps))
	if err := os.WriteFile(d.config, []byte(src), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

func (d *daemon) start(verb string) {
	d.t.Helper()
	d.out = newSyncBuffer()
	argv := append(append([]string{}, d.wrap...), bin.ancmd, verb, "-c", d.config)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.Env = append(os.Environ(), d.extraEnv...)
	d.exited = make(chan struct{})
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func() { d.exitErr = d.cmd.Wait(); close(d.exited) }()
	d.t.Cleanup(func() {
		d.stop()
		if d.t.Failed() {
			d.t.Logf("ancmd output:\n%s", d.out.String())
		}
	})
	waitFor(d.t, 20*time.Second, "ancmd to listen", func() bool {
		select {
		case <-d.exited:
			d.t.Fatalf("ancmd exited: %v\n%s", d.exitErr, d.out.String())
		default:
		}
		network, addr := "unix", strings.TrimPrefix(d.control, "unix://")
		if a, ok := strings.CutPrefix(d.control, "tcp://"); ok {
			network, addr = "tcp", a
		}
		c, err := net.Dial(network, addr)
		if err != nil {
			return false
		}
		c.Close()
		if verb == "control" {
			return true
		}
		c, err = net.Dial("tcp", d.listen)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// stop sends SIGTERM and waits for the daemon to exit.
func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("ancmd did not stop within 30s of SIGTERM")
	}
}

// startProxy runs `ancmd proxy` against the daemon's control address, with
// extra flags, and returns the address it serves on once it answers HTTP.
func (d *daemon) startProxy(extra ...string) string {
	d.t.Helper()
	addr, _ := d.startProxyOutput(extra...)
	return addr
}

// startProxyOutput is startProxy that also returns the proxy's output.
func (d *daemon) startProxyOutput(extra ...string) (string, *syncBuffer) {
	d.t.Helper()
	listen := freeAddr(d.t)
	args := append([]string{"proxy", "--control", d.control, "--listen", listen, "--log-level", "debug"}, extra...)
	proxy := exec.Command(bin.ancmd, args...)
	out := newSyncBuffer()
	proxy.Stdout, proxy.Stderr = out, out
	if err := proxy.Start(); err != nil {
		d.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- proxy.Wait() }()
	d.t.Cleanup(func() {
		_ = proxy.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				d.t.Errorf("proxy exit after SIGTERM: %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = proxy.Process.Kill()
			d.t.Errorf("proxy did not stop on SIGTERM")
		}
		if d.t.Failed() {
			d.t.Logf("proxy output:\n%s", out.String())
		}
	})
	waitFor(d.t, 20*time.Second, "the separate proxy to listen", func() bool {
		c, err := net.Dial("tcp", listen)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return listen, out
}

// url is the proxy's URL for a path.
func (d *daemon) url(path string) string { return "http://" + d.listen + path }

// ctl runs ancmctl against the daemon and returns stdout, stderr and the
// exit code.
func (d *daemon) ctl(args ...string) (string, string, int) {
	d.t.Helper()
	cmd := exec.Command(bin.ancmctl, append([]string{"--addr", d.control}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("ancmctl: %v", err)
	}
	return stdout.String(), stderr.String(), code
}

// ctlJSON runs ancmctl -o json and decodes its output.
func (d *daemon) ctlJSON(v any, args ...string) {
	d.t.Helper()
	out, errOut, code := d.ctl(append(args, "-o", "json")...)
	if code != 0 {
		d.t.Fatalf("ancmctl %v: exit %d: %s", args, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		d.t.Fatalf("ancmctl %v: %v\n%s", args, err, out)
	}
}

// appStatus is the part of `ancmctl get -o json` the tests read.
type appStatus struct {
	App struct {
		State       string `json:"state"`
		StateReason string `json:"state_reason"`
		Restarts    int    `json:"restarts"`
		Generation  string `json:"generation"` // uint64 in protojson: a string
		Rollout     *struct {
			Result string `json:"result"`
			Reason string `json:"reason"`
		} `json:"rollout"`
		Spec struct {
			Args []string `json:"args"`
		} `json:"spec"`
		LogTail   []string
		Instances []struct {
			Index      int    `json:"index"`
			State      string `json:"state"`
			Pid        int    `json:"pid"`
			Port       int    `json:"port"`
			Restarts   int    `json:"restarts"`
			Generation string `json:"generation"`
			LastExit   *struct {
				Code   int    `json:"code"`
				Signal string `json:"signal"`
				Reason string `json:"reason"`
			} `json:"last_exit"`
			LogPath string `json:"log_path"`
		} `json:"instances"`
	} `json:"app"`
}

func (d *daemon) get(app string) appStatus {
	d.t.Helper()
	var s appStatus
	d.ctlJSON(&s, "get", app)
	return s
}

// waitState polls until the app is in state.
func (d *daemon) waitState(app, state string, timeout time.Duration) appStatus {
	d.t.Helper()
	var s appStatus
	waitFor(d.t, timeout, app+" to be "+state, func() bool {
		s = d.get(app)
		return s.App.State == state
	})
	return s
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(delay)
		delay = min(delay*2, 100*time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// fetch does a request and returns status, headers and body.
func fetch(t *testing.T, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	code, _, body := fetch(t, req)
	return code, body
}

// appReply is what the test app answers.
type appReply struct {
	Pid      int                 `json:"pid"`
	Path     string              `json:"path"`
	Host     string              `json:"host"`
	Headers  map[string][]string `json:"headers"`
	Port     string              `json:"port"`
	AncmPort string              `json:"ancm_port"`
	Token    string              `json:"token"`
	App      string              `json:"app"`
	Instance string              `json:"instance"`
	PathBase string              `json:"path_base"`
	Greeting string              `json:"greeting"`
	Args     []string            `json:"args"`
}

func decodeReply(t *testing.T, body string) appReply {
	t.Helper()
	var r appReply
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("app reply: %v: %q", err, body)
	}
	return r
}

// alive reports whether a process exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil {
		return false
	}
	// A zombie is not alive for our purposes.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] != "Z"
}
