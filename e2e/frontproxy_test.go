package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ancm-dev/ancm/internal/testtool"
)

// frontProxy is nginx or HAProxy in front of ancmd, as in an HTTPS
// deployment, with a rule that refuses /admin (403) and kept-alive
// connections to ancmd (where a desync would put one client's request,
// or answer, into another's).
type frontProxy struct {
	name   string
	config func(dir, listen, upstream string) string
	argv   func(binary, conf string) []string
}

var frontProxies = []frontProxy{
	{
		name: "nginx",
		config: func(dir, listen, upstream string) string {
			return fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log;
events {}
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream ancm {
    server %[3]s;
    keepalive 16;
  }
  server {
    listen %[2]s;
    location /admin { return 403; }
    location / {
      proxy_pass http://ancm;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, listen, upstream)
		},
		argv: func(binary, conf string) []string { return []string{binary, "-c", conf, "-e", "stderr"} },
	},
	{
		name: "haproxy",
		config: func(_, listen, upstream string) string {
			return fmt.Sprintf(`global
  maxconn 200
defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s
  http-reuse always
frontend fe
  bind %s
  http-request deny deny_status 403 if { path_beg /admin }
  default_backend be
backend be
  server ancm %s
`, listen, upstream)
		},
		argv: func(binary, conf string) []string { return []string{binary, "-db", "-f", conf} },
	},
}

// startFrontProxy runs p in front of upstream and returns its address.
func startFrontProxy(t *testing.T, p frontProxy, upstream string) string {
	t.Helper()
	binary := testtool.Find(t, p.name)
	dir := t.TempDir()
	listen := freeAddr(t)
	conf := filepath.Join(dir, p.name+".conf")
	if err := os.WriteFile(conf, []byte(p.config(dir, listen, upstream)), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := p.argv(binary, conf)
	cmd := exec.Command(argv[0], argv[1:]...)
	out := newSyncBuffer()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, out.String())
		}
	})
	waitFor(t, 10*time.Second, p.name+" to listen", func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return listen
}

// TestSmugglingBehindFrontProxies is issue 10's first finding as an
// attacker ran it: behind nginx and HAProxy, a request whose header line
// is as long as ancmd's read buffer (4 KiB, 8 KiB) carries a Content-
// Length that ancmd used to read as the length of the rest of the head,
// and so took the body, "GET /admin", for a second request: past the
// front proxy's 403 rule, with its answer queued for the next client of
// that upstream connection. The app must never see /admin, and every
// victim must get its own answer.
func TestSmugglingBehindFrontProxies(t *testing.T) {
	d := newDaemon(t, `app "rec" {
  command = "TESTAPP"
  args    = ["record"]
  start   = "eager"
}`)
	d.waitState("rec", "APP_STATE_RUNNING", 20*time.Second)
	const smuggled = "GET /admin HTTP/1.1\r\nHost: h\r\n\r\n"
	for _, fp := range frontProxies {
		t.Run(fp.name, func(t *testing.T) {
			front := startFrontProxy(t, fp, d.listen)
			if code, _ := get(t, "http://"+front+"/admin"); code != http.StatusForbidden {
				t.Fatalf("/admin through %s: %d, want its 403", fp.name, code)
			}
			for _, n := range []int{4094, 4095, 4096, 4097, 8190, 8191, 8192} {
				pad := "X-Pad: " + strings.Repeat("p", n-len("X-Pad: "))
				// After a false end of head at the pad, Content-Length
				// covers exactly the X-S line and the real blank line;
				// the body is then read as the next request.
				xs := "X-S: " + strings.Repeat("s", len(smuggled)-len("X-S: \r\n\r\n"))
				attack := fmt.Sprintf("GET /x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n%s\r\n%s\r\n\r\n%s",
					len(smuggled), pad, xs, smuggled)
				c, err := net.Dial("tcp", front)
				if err != nil {
					t.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.WriteString(c, attack)
				if res, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				c.Close()
				// Victims on the same upstream connections.
				for i := range 3 {
					path := fmt.Sprintf("/victim-%d-%d", n, i)
					code, body := get(t, "http://"+front+path)
					if code != 200 || decodeReply(t, body).Path != path {
						t.Errorf("pad %d: victim %s got %d %.80q", n, path, code, body)
					}
				}
			}
			stdout, _, _ := d.ctl("logs", "--tail", "5000", "rec")
			if strings.Contains(stdout, "request GET /admin") {
				t.Errorf("/admin reached the app through %s:\n%s", fp.name, stdout)
			}
			if !strings.Contains(stdout, "request GET /victim-4096-2") {
				t.Errorf("the app's record lacks the victims:\n%s", stdout)
			}
		})
	}
}
