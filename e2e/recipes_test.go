package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

// recipe is one of the app recipes in examples/, run as written there.
type recipe struct {
	dir   string // examples/DIR
	app   string // the app's name in DIR/ancm.hcl
	body  string // what GET / answers
	skip  func() string
	token bool // the app checks ANCM-Token
	env   bool // the app has /env with client=
	// The exit ancmctl stop ends in: code and signal of last_exit.
	exitCode   int
	exitSignal string
}

var recipes = []recipe{
	{
		dir: "gunicorn-flask", app: "flask", body: "Hello from ancm (gunicorn + Flask)",
		skip: func() string {
			if _, err := os.Stat("/usr/bin/gunicorn"); err != nil {
				return "needs Debian package gunicorn (/usr/bin/gunicorn)"
			}
			if !pythonHas("flask") {
				return "needs Debian package python3-flask"
			}
			return ""
		},
		token: true, env: true,
		exitCode: 0, // gunicorn's master stops its workers and exits 0 on SIGTERM
	},
	{
		dir: "uvicorn-asgi", app: "asgi", body: "Hello from ancm (uvicorn, plain ASGI)",
		skip: func() string {
			if !pythonHas("uvicorn") {
				return "needs Debian package python3-uvicorn"
			}
			return ""
		},
		token: true, env: true,
		exitCode: 0, // uvicorn shuts down gracefully on SIGTERM
	},
	{
		dir: "python-http-server", app: "static", body: "<h1>Hello from ancm</h1>",
		skip: func() string {
			if _, err := exec.LookPath("python3"); err != nil {
				return "needs Debian package python3"
			}
			return ""
		},
		// http.server has no code of ours, so no token check.
		token: false, env: false,
		// It keeps Python's default SIGTERM action and dies of it: the
		// graceful end documented for it is 143, killed by SIGTERM.
		exitCode: 143, exitSignal: "SIGTERM",
	},
	{
		dir: "node-http", app: "node", body: "Hello from ancm (node http)",
		skip: func() string {
			if _, err := exec.LookPath("node"); err != nil {
				return "needs Debian package nodejs (node)"
			}
			return ""
		},
		token: true, env: true,
		exitCode: 0, // server.js closes the server and exits 0 on SIGTERM
	},
}

// pythonHas reports whether Debian's python3 can import module.
func pythonHas(module string) bool {
	return exec.Command("/usr/bin/python3", "-c", "import "+module).Run() == nil
}

// recipeConfig reads examples/DIR/ancm.hcl and points the app's dir at that
// directory, so the recipe runs as written but from any working directory.
func recipeConfig(t *testing.T, r recipe) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "examples", r.dir))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(dir, "ancm.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	open := fmt.Sprintf("app %q {", r.app)
	if !strings.Contains(string(src), open) {
		t.Fatalf("%s/ancm.hcl has no %s", r.dir, open)
	}
	return strings.Replace(string(src), open, fmt.Sprintf("%s\n  dir = %q\n", open, dir), 1)
}

// startDaemon starts ancmd serve with the app blocks; Python must not
// write __pycache__ into examples/.
func startDaemon(t *testing.T, apps string) *daemon {
	t.Helper()
	d := prepareDaemon(t, apps)
	d.extraEnv = []string{"PYTHONDONTWRITEBYTECODE=1"}
	d.start("serve")
	return d
}

// groupAlive reports whether any live process is in process group pgid.
func groupAlive(pgid int) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command, which is in parentheses and may hold
		// spaces: state, ppid, pgrp, ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// directGet requests path straight from an instance's port, bypassing the
// proxy, with the given ANCM-Token header ("" for none).
func directGet(t *testing.T, port int, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if token != "" {
		req.Header.Set("ANCM-Token", token)
	}
	code, _, _ := fetch(t, req)
	return code
}

// envLines parses the key=value lines of an /env answer.
func envLines(body string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m
}

// Real third-party servers, run with the recipes of examples/: started on
// demand, served through the proxy, token checked, restarted after a
// crash, stopped gracefully.
func TestRecipes(t *testing.T) {
	for _, r := range recipes {
		t.Run(r.dir, func(t *testing.T) {
			if why := r.skip(); why != "" {
				t.Skip(why)
			}
			t.Parallel()
			testRecipe(t, r)
		})
	}
}

func testRecipe(t *testing.T, r recipe) {
	d := startDaemon(t, recipeConfig(t, r))

	st := d.get(r.app)
	if st.App.State != "APP_STATE_IDLE" {
		t.Fatalf("state before the first request = %s, want IDLE", st.App.State)
	}
	for _, in := range st.App.Instances {
		if in.Pid != 0 {
			t.Fatalf("instance %d has pid %d before the first request", in.Index, in.Pid)
		}
	}

	// The first request starts the app and is served by it.
	code, body := get(t, d.url("/"))
	if code != 200 || !strings.Contains(body, r.body) {
		t.Fatalf("first request: %d %q, want 200 with %q", code, body, r.body)
	}
	st = d.get(r.app)
	if st.App.State != "APP_STATE_RUNNING" || len(st.App.Instances) != 1 || st.App.Instances[0].Pid == 0 {
		t.Fatalf("after the first request: %+v, want RUNNING with a pid", st.App)
	}
	pid, port := st.App.Instances[0].Pid, st.App.Instances[0].Port

	if r.token {
		if code := directGet(t, port, "/", ""); code != 400 {
			t.Errorf("direct request without ANCM-Token: %d, want 400", code)
		}
		if code := directGet(t, port, "/", "not-the-token"); code != 400 {
			t.Errorf("direct request with a wrong ANCM-Token: %d, want 400", code)
		}
	}
	// else: python's http.server answers anyone on its port; nothing to check.

	if r.env {
		req, _ := http.NewRequest(http.MethodGet, d.url("/env"), nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("ANCM-Token", "forged")
		code, _, body := fetch(t, req)
		env := envLines(body)
		if code != 200 || env["client"] != "127.0.0.1" || env["ANCM_APP"] != r.app {
			t.Errorf("/env with a forged X-Forwarded-For and ANCM-Token: %d %q, want 200, client=127.0.0.1, ANCM_APP=%s", code, body, r.app)
		}
	}

	// Crash: the instance is restarted and serves again.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "ancmd to see the crash", func() bool {
		st = d.get(r.app)
		return st.App.Instances[0].Pid != pid
	})
	code, body = get(t, d.url("/"))
	if code != 200 || !strings.Contains(body, r.body) {
		t.Fatalf("request after the crash: %d %q, want 200 with %q", code, body, r.body)
	}
	st = d.get(r.app)
	in := st.App.Instances[0]
	if in.Pid == 0 || in.Pid == pid || !alive(in.Pid) || st.App.Restarts < 1 {
		t.Errorf("after the crash: pid %d (was %d), restarts %d; want a new live pid and restarts >= 1", in.Pid, pid, st.App.Restarts)
	}
	if in.LastExit == nil || in.LastExit.Signal != "SIGKILL" {
		t.Errorf("last exit after the crash = %+v, want killed by SIGKILL", in.LastExit)
	}
	waitFor(t, 20*time.Second, "the crashed instance's process group to be gone", func() bool { return !groupAlive(pid) })

	// Graceful stop.
	pid = in.Pid
	if out, errOut, code := d.ctl("stop", "--wait", r.app); code != 0 {
		t.Fatalf("ancmctl stop: exit %d: %s%s", code, out, errOut)
	}
	st = d.waitState(r.app, "APP_STATE_STOPPED", 20*time.Second)
	in = st.App.Instances[0]
	if in.LastExit == nil || in.LastExit.Code != r.exitCode || in.LastExit.Signal != r.exitSignal {
		t.Errorf("last exit after stop = %+v, want code %d signal %q", in.LastExit, r.exitCode, r.exitSignal)
	}
	if alive(pid) || groupAlive(pid) {
		t.Errorf("pid %d or its process group still alive after stop --wait", pid)
	}
	if code, body := get(t, d.url("/")); code != 503 {
		t.Errorf("request to the stopped app: %d %q, want 503", code, body)
	}
}

// examples/hello, built on package ancmapp: the token is checked and the
// client address ancmd appended is the one the app sees.
func TestAncmappHello(t *testing.T) {
	hello := filepath.Join(t.TempDir(), "hello")
	build := exec.Command("go", "build", "-o", hello, "../examples/hello")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build examples/hello: %v\n%s", err, out)
	}
	d := startDaemon(t, fmt.Sprintf(`
app "hello" {
  command = %q
  startup_timeout = "20s"
  shutdown_timeout = "5s"
  health {
    path = "/healthz"
  }
}
`, hello))

	code, body := get(t, d.url("/"))
	if code != 200 || body != "Hello from ancm\n" {
		t.Fatalf("GET /: %d %q", code, body)
	}
	code, body = get(t, d.url("/env"))
	if env := envLines(body); code != 200 || env["client"] != "127.0.0.1" || env["ANCM_APP"] != "hello" {
		t.Errorf("GET /env: %d %q, want client=127.0.0.1", code, body)
	}

	// A forged X-Forwarded-For: the app takes the entry ancmd appended.
	req, _ := http.NewRequest(http.MethodGet, d.url("/env"), nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9, 198.51.100.1")
	code, _, body = fetch(t, req)
	if env := envLines(body); code != 200 || env["client"] != "127.0.0.1" {
		t.Errorf("GET /env with a forged X-Forwarded-For: %d %q, want client=127.0.0.1", code, body)
	}

	// From 127.0.0.2 the client address differs from the proxy's own
	// (ancmd dials the app from 127.0.0.1): the app shows the client's.
	if l, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		t.Logf("no 127.0.0.2 here, skipping the second-address check: %v", err)
	} else {
		l.Close()
		dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}
		defer c.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, d.url("/env"), nil)
		req.Header.Set("X-Forwarded-For", "127.0.0.1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if env := envLines(string(b)); resp.StatusCode != 200 || env["client"] != "127.0.0.2" {
			t.Errorf("GET /env from 127.0.0.2: %d %q, want client=127.0.0.2", resp.StatusCode, b)
		}
	}

	st := d.get("hello")
	port := st.App.Instances[0].Port
	if code := directGet(t, port, "/", ""); code != 400 {
		t.Errorf("direct request without ANCM-Token: %d, want 400", code)
	}
	if code := directGet(t, port, "/", "not-the-token"); code != 400 {
		t.Errorf("direct request with a wrong ANCM-Token: %d, want 400", code)
	}
}

// compatSeen is what compatapp's /seen answers.
type compatSeen struct {
	Pid      int                 `json:"pid"`
	Env      map[string]string   `json:"env"`
	RawPath  string              `json:"raw_path"`
	Path     string              `json:"path"`
	PathBase string              `json:"path_base"`
	Remote   string              `json:"remote"`
	Scheme   string              `json:"scheme"`
	Headers  map[string][]string `json:"headers"`
}

// compat = "aspnetcore" against an app that does what ASP.NET Core's IIS
// integration does: the ASPNETCORE_ variables, MS-ASPNETCORE-TOKEN, and the
// shutdown event before the stop signal; at the root and under a prefix.
func TestCompatAspNetCore(t *testing.T) {
	rec := t.TempDir()
	d := startDaemon(t, fmt.Sprintf(`
app "root" {
  command = %[1]q
  compat  = "aspnetcore"
  env     = { COMPAT_RECORD = %[2]q }
  startup_timeout  = "20s"
  shutdown_timeout = "10s"
  health {
    path = "/healthz"
  }
}

app "shop" {
  command = %[1]q
  compat  = "aspnetcore"
  path_prefix = "/shop"
  env     = { COMPAT_RECORD = %[3]q }
  startup_timeout  = "20s"
  shutdown_timeout = "10s"
  health {
    path = "/healthz"
  }
}
`, bin.compatapp, filepath.Join(rec, "root"), filepath.Join(rec, "shop")))

	for _, tc := range []struct{ app, prefix, base string }{
		{"root", "", "/"},
		{"shop", "/shop", "/shop"},
	} {
		t.Run(tc.app, func(t *testing.T) {
			if st := d.get(tc.app); st.App.State != "APP_STATE_IDLE" {
				t.Fatalf("state before the first request = %s, want IDLE", st.App.State)
			}
			req, _ := http.NewRequest(http.MethodGet, d.url(tc.prefix+"/seen"), nil)
			req.Header.Set("MS-ASPNETCORE-TOKEN", "forged-by-client")
			req.Header.Set("MS-ASPNETCORE-EVENT", "shutdown")
			req.Header.Set("MS-ASPNETCORE-CLIENTCERT", "forged")
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			code, _, body := fetch(t, req)
			if code != 200 {
				t.Fatalf("GET %s/seen: %d %q", tc.prefix, code, body)
			}
			var s compatSeen
			if err := json.Unmarshal([]byte(body), &s); err != nil {
				t.Fatalf("/seen: %v: %q", err, body)
			}
			st := d.get(tc.app)
			in := st.App.Instances[0]
			tok := s.Env["ASPNETCORE_TOKEN"]
			if len(tok) < 16 || tok != s.Env["ANCM_TOKEN"] {
				t.Errorf("ASPNETCORE_TOKEN = %q, ANCM_TOKEN = %q: want the same random secret", tok, s.Env["ANCM_TOKEN"])
			}
			if p := s.Env["ASPNETCORE_PORT"]; p != strconv.Itoa(in.Port) || p != s.Env["PORT"] {
				t.Errorf("ASPNETCORE_PORT = %q, PORT = %q, instance port %d", p, s.Env["PORT"], in.Port)
			}
			if got := s.Env["ASPNETCORE_APPL_PATH"]; got != tc.base {
				t.Errorf("ASPNETCORE_APPL_PATH = %q, want %q", got, tc.base)
			}
			if got := s.Env["ASPNETCORE_IIS_HTTPAUTH"]; got != "anonymous" {
				t.Errorf("ASPNETCORE_IIS_HTTPAUTH = %q, want anonymous", got)
			}
			if got := s.Env["ASPNETCORE_IIS_WEBSOCKETS_SUPPORTED"]; got != "true" {
				t.Errorf("ASPNETCORE_IIS_WEBSOCKETS_SUPPORTED = %q, want true", got)
			}
			if got := s.Headers["Ms-Aspnetcore-Token"]; len(got) != 1 || got[0] != tok {
				t.Errorf("MS-ASPNETCORE-TOKEN on a proxied request = %q, want only ASPNETCORE_TOKEN (the client's replaced)", got)
			}
			for _, h := range []string{"Ms-Aspnetcore-Event", "Ms-Aspnetcore-Clientcert"} {
				if v, ok := s.Headers[h]; ok {
					t.Errorf("a client's %s reached the app: %q", h, v)
				}
			}
			if s.Path != "/seen" || s.PathBase != tc.prefix {
				t.Errorf("path %q, path base %q: want /seen under %q", s.Path, s.PathBase, tc.prefix)
			}
			if s.Remote != "127.0.0.1" || s.Scheme != "http" {
				t.Errorf("remote %q scheme %q after forwarded headers, want 127.0.0.1 http", s.Remote, s.Scheme)
			}

			// The app rejects whoever bypasses the proxy, as IISMiddleware does.
			for _, h := range []string{"", "not-the-token"} {
				req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s/", in.Port, tc.prefix), nil)
				if h != "" {
					req.Header.Set("MS-ASPNETCORE-TOKEN", h)
				}
				if code, _, _ := fetch(t, req); code != 400 {
					t.Errorf("direct request with MS-ASPNETCORE-TOKEN %q: %d, want 400", h, code)
				}
			}

			// Stop: the shutdown event first, then the signal; the app
			// exits on its own, before shutdown_timeout would bring SIGKILL.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			stop := exec.CommandContext(ctx, bin.ancmctl, "--addr", d.control, "stop", "--wait", tc.app)
			if out, err := stop.CombinedOutput(); err != nil {
				t.Fatalf("ancmctl stop: %v: %s", err, out)
			}
			st = d.waitState(tc.app, "APP_STATE_STOPPED", 20*time.Second)
			last := st.App.Instances[0].LastExit
			if last == nil || last.Code != 0 || last.Signal != "" {
				t.Errorf("last exit after stop = %+v, want code 0: the app ends before SIGKILL", last)
			}
			if alive(s.Pid) {
				t.Errorf("pid %d alive after stop --wait", s.Pid)
			}
			b, err := os.ReadFile(filepath.Join(rec, tc.app))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			want := []string{
				"start pid=" + strconv.Itoa(s.Pid),
				"shutdown-event token=ok path=" + tc.prefix + "/iisintegration",
				"sigterm",
				"exit",
			}
			if strings.Join(lines, "\n") != strings.Join(want, "\n") {
				t.Errorf("the app recorded:\n%s\nwant:\n%s", b, strings.Join(want, "\n"))
			}
		})
	}
}
