package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const helloApp = `
app "hello" {
  command = "TESTAPP"
  args    = ["serve", "--port", "$PORT", "$${ANCM_APP}"]
  env     = { GREETING = "hi" }
  path_prefix = "/"
  startup_timeout = "10s"
  shutdown_timeout = "5s"
}
`

// The whole path: app not running before the first request, started by it,
// env contract, token replaced, forwarded headers, Host preserved.
func TestFirstRequestStartsAppWithContract(t *testing.T) {
	d := newDaemon(t, helloApp)

	st := d.get("hello")
	if st.App.State != "APP_STATE_IDLE" {
		t.Fatalf("state before first request = %s, want IDLE", st.App.State)
	}
	for _, in := range st.App.Instances {
		if in.Pid != 0 {
			t.Fatalf("instance %d has pid %d before the first request", in.Index, in.Pid)
		}
	}

	req, _ := http.NewRequest(http.MethodGet, d.url("/some/path?q=1"), nil)
	req.Host = "Example.COM:8080"
	req.Header.Set("ANCM-Token", "forged-by-client")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("Connection", "keep-alive, X-Hop")
	req.Header.Set("X-Hop", "secret")
	code, _, body := fetch(t, req)
	if code != 200 {
		t.Fatalf("first request: %d %s", code, body)
	}
	r := decodeReply(t, body)

	if r.Port == "" || r.Port != r.AncmPort {
		t.Errorf("PORT=%q ANCM_PORT=%q, want equal and set", r.Port, r.AncmPort)
	}
	if r.App != "hello" || r.Instance != "0" || r.PathBase != "/" || r.Greeting != "hi" {
		t.Errorf("env: app=%q instance=%q path_base=%q greeting=%q", r.App, r.Instance, r.PathBase, r.Greeting)
	}
	if want := []string{"serve", "--port", r.Port, "hello"}; strings.Join(r.Args, " ") != strings.Join(want, " ") {
		t.Errorf("args = %q, want %q ($VAR and ${VAR} expanded)", r.Args, want)
	}
	if len(r.Token) < 16 {
		t.Errorf("ANCM_TOKEN = %q, want a random secret", r.Token)
	}
	if got := r.Headers["Ancm-Token"]; len(got) != 1 || got[0] != r.Token {
		t.Errorf("ANCM-Token header = %q, want only the app's token", got)
	}
	if r.Host != "Example.COM:8080" {
		t.Errorf("Host = %q, want the client's", r.Host)
	}
	if got := r.Headers["X-Forwarded-For"]; len(got) == 0 || !strings.HasPrefix(strings.Join(got, ","), "203.0.113.7") || !strings.Contains(strings.Join(got, ","), "127.0.0.1") {
		t.Errorf("X-Forwarded-For = %q, want the client's value with 127.0.0.1 appended", got)
	}
	if got := r.Headers["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "http" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	if got := r.Headers["X-Forwarded-Host"]; len(got) != 1 || got[0] != "Example.COM:8080" {
		t.Errorf("X-Forwarded-Host = %q", got)
	}
	if _, ok := r.Headers["X-Hop"]; ok {
		t.Errorf("hop-by-hop header X-Hop (named in Connection) reached the app")
	}
	if r.Path != "/some/path" {
		t.Errorf("path = %q, want it unchanged", r.Path)
	}

	st = d.get("hello")
	if st.App.State != "APP_STATE_RUNNING" || len(st.App.Instances) != 1 || st.App.Instances[0].Pid != r.Pid {
		t.Fatalf("after first request: %+v, want RUNNING with pid %d", st.App, r.Pid)
	}

	// The app answers 400 to anyone who bypasses the proxy.
	direct, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+r.Port+"/", nil)
	if code, _, _ := fetch(t, direct); code != 400 {
		t.Errorf("direct request without token: %d, want 400", code)
	}
}

func TestNoRouteIs404(t *testing.T) {
	d := newDaemon(t, `
app "api" {
  command = "TESTAPP"
  args = ["serve"]
  hosts = ["api.example.com"]
  path_prefix = "/api"
}
`)
	for _, tc := range []struct{ host, path string }{
		{"other.example.com", "/api/x"},
		{"api.example.com", "/apix"},
		{"api.example.com", "/"},
	} {
		req, _ := http.NewRequest(http.MethodGet, d.url(tc.path), nil)
		req.Host = tc.host
		if code, _, body := fetch(t, req); code != 404 {
			t.Errorf("%s%s: %d %s, want 404", tc.host, tc.path, code, body)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, d.url("/api/x"), nil)
	req.Host = "api.example.com"
	if code, _, body := fetch(t, req); code != 200 {
		t.Errorf("api.example.com/api/x: %d %s, want 200", code, body)
	}
}

func TestMissingCommandIs502Quickly(t *testing.T) {
	d := newDaemon(t, `
app "broken" {
  command = "/nonexistent/ancm-no-such-binary"
  startup_timeout = "60s"
}
`)
	start := time.Now()
	code, body := get(t, d.url("/"))
	if code != 502 {
		t.Fatalf("got %d %s, want 502", code, body)
	}
	if !strings.Contains(body, "broken") {
		t.Errorf("502 page does not name the app: %s", body)
	}
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("502 took %s: a failed start must not hang the request", el)
	}
	st := d.get("broken")
	in := st.App.Instances[0]
	if in.LastExit == nil || !strings.Contains(in.LastExit.Reason, "no such file") && !strings.Contains(in.LastExit.Reason, "not found") {
		t.Errorf("last exit = %+v, want the reason the command could not start", in.LastExit)
	}
}

func TestAppsJSONNamesApp(t *testing.T) {
	d := newDaemon(t, helloApp)
	var list struct {
		Apps []struct {
			Spec struct {
				Name string `json:"name"`
			} `json:"spec"`
			State string `json:"state"`
		} `json:"apps"`
	}
	d.ctlJSON(&list, "apps")
	if len(list.Apps) != 1 || list.Apps[0].Spec.Name != "hello" {
		t.Fatalf("apps -o json = %+v, want hello", list)
	}
	out, _, code := d.ctl("apps")
	if code != 0 || !strings.Contains(out, "hello") || !strings.Contains(out, "IDLE") {
		t.Errorf("apps table (exit %d):\n%s", code, out)
	}
}

// A data plane in its own process follows a control plane in another.
func TestSeparateProxyAndControl(t *testing.T) {
	d := prepareDaemon(t, helloApp)
	d.start("control")
	listen := d.startProxy()
	var code int
	var body string
	waitFor(t, 20*time.Second, "the separate proxy to serve", func() bool {
		resp, err := http.Get("http://" + listen + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		code = resp.StatusCode
		var r appReply
		if json.NewDecoder(resp.Body).Decode(&r) == nil {
			body = r.App
		}
		return true
	})
	if code != 200 || body != "hello" {
		t.Fatalf("through separate proxy: %d app=%q", code, body)
	}
}

// No app process outlives ancmd, even when ancmd is killed with SIGKILL.
func TestNoChildOutlivesKilledDaemon(t *testing.T) {
	d := newDaemon(t, `
app "forker" {
  command = "TESTAPP"
  args = ["serve"]
  processes = 2
  start = "eager"
}
`)
	st := d.waitState("forker", "APP_STATE_RUNNING", 20*time.Second)
	waitFor(t, 10*time.Second, "both instances ready", func() bool {
		st = d.get("forker")
		n := 0
		for _, in := range st.App.Instances {
			if in.State == "INSTANCE_STATE_READY" {
				n++
			}
		}
		return n == 2
	})
	var pids []int
	for _, in := range st.App.Instances {
		pids = append(pids, in.Pid)
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	for _, pid := range pids {
		waitFor(t, 10*time.Second, "app pid "+strconv.Itoa(pid)+" to die with ancmd", func() bool { return !alive(pid) })
	}
}

// SIGTERM stops the apps gracefully and ancmd exits 0.
func TestSigtermStopsAppsAndExitsZero(t *testing.T) {
	d := newDaemon(t, helloApp)
	code, body := get(t, d.url("/"))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	pid := decodeReply(t, body).Pid
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("ancmd did not exit after SIGTERM")
	}
	if d.exitErr != nil {
		t.Errorf("ancmd exit: %v, want 0", d.exitErr)
	}
	if alive(pid) {
		t.Errorf("app pid %d still alive after ancmd exited", pid)
	}
	if !strings.Contains(d.out.String(), "testapp: stopping") && !fileContains(filepath.Join(d.dir, "logs", "hello", "hello.0.log"), "testapp: stopping") {
		t.Errorf("the app was not stopped with its stop signal (no 'testapp: stopping' in its log)")
	}
}

func fileContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

func TestValidateNamesFileLineAndKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.hcl")
	src := "app \"x\" {\n  command = \"/bin/true\"\n  processes = 0\n  colour = \"blue\"\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin.ancmd, "validate", "-c", path).CombinedOutput()
	if err == nil {
		t.Fatalf("validate accepted a bad config:\n%s", out)
	}
	for _, want := range []string{path + ":3:", "processes", path + ":4:", "colour"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	// The daemon refuses to start with it, too.
	cmd := exec.Command(bin.ancmd, "serve", "-c", path)
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "processes") {
		t.Errorf("serve with a bad config: err=%v\n%s", err, out)
	}
}
