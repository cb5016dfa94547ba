package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// load sends GETs through the proxy from a few clients, one after another
// each, until stopped, and counts the ones that did not answer 200.
type load struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	n, bad  int
	first   string
	pids    map[int]bool
	clients int
}

func startLoad(t *testing.T, url string, clients int) *load {
	t.Helper()
	l := &load{stop: make(chan struct{}), pids: map[int]bool{}, clients: clients}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := c.Get(url)
				status, pid := "", 0
				if err != nil {
					status = err.Error()
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						status = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
					} else if r, ok := reply(b); ok {
						pid = r
					}
				}
				l.mu.Lock()
				l.n++
				if status != "" {
					l.bad++
					if l.first == "" {
						l.first = status
					}
				}
				if pid != 0 {
					l.pids[pid] = true
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func reply(b []byte) (int, bool) {
	var pid int
	i := strings.Index(string(b), `"pid":`)
	if i < 0 {
		return 0, false
	}
	_, err := fmt.Sscanf(string(b[i+len(`"pid":`):]), "%d", &pid)
	return pid, err == nil
}

// end stops the load and fails the test if any request failed.
func (l *load) end(t *testing.T, what string) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if l.bad != 0 {
		t.Errorf("%s: %d of %d requests failed (first: %s)", what, l.bad, l.n, l.first)
	}
	if l.n < 10 {
		t.Errorf("%s: only %d requests ran", what, l.n)
	}
}

// slowRequest sends a request that takes 2s to answer and reports its
// outcome on the channel.
func slowRequest(url string) <-chan string {
	out := make(chan string, 1)
	go func() {
		resp, err := httpClient.Get(url)
		if err != nil {
			out <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			out <- fmt.Sprintf("%s %s", resp.Status, b)
			return
		}
		out <- ""
	}()
	return out
}

func pidsOf(s appStatus) map[int]bool {
	m := map[int]bool{}
	for _, in := range s.App.Instances {
		if in.Pid != 0 {
			m[in.Pid] = true
		}
	}
	return m
}

func rolloutApp(name, prefix string, procs int, strategy, extra string) string {
	return fmt.Sprintf(`
app %q {
  command = "TESTAPP"
  args = ["serve"]
  path_prefix = %q
  start = "eager"
  processes = %d
  shutdown_timeout = "5s"
  %s
  rollout {
    strategy = %q
    min_ready = "200ms"
    drain_timeout = "10s"
  }
}
`, name, prefix, procs, extra, strategy)
}

// Under a steady GET load, a restart, an apply with a changed env and a
// SIGHUP with changed args each roll the app over to new processes with
// no failed request, for 1 and 3 processes, rolling and recreate; a 2 s
// request in flight across the switch gets its 200.
func TestRolloutsLoseNoRequest(t *testing.T) {
	for _, tc := range []struct {
		procs    int
		strategy string
	}{{1, "rolling"}, {3, "rolling"}, {1, "recreate"}, {3, "recreate"}} {
		t.Run(fmt.Sprintf("%s-%d", tc.strategy, tc.procs), func(t *testing.T) {
			d := newDaemon(t, rolloutApp("web", "/", tc.procs, tc.strategy, `env = { GREETING = "one" }`))
			s := d.waitState("web", "APP_STATE_RUNNING", 20*time.Second)
			waitFor(t, 20*time.Second, "every instance ready", func() bool {
				s = d.get("web")
				return len(pidsOf(s)) == tc.procs && s.App.State == "APP_STATE_RUNNING"
			})
			url := d.url("/x")
			step := func(what string, do func()) {
				t.Helper()
				before := d.get("web")
				l := startLoad(t, url, 4)
				slow := slowRequest(d.url("/sleep?d=2s"))
				slowSent := time.Now()
				waitFor(t, 10*time.Second, "load to run", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.n > 20 })
				do()
				var after appStatus
				waitFor(t, 30*time.Second, what+" to end on a new generation", func() bool {
					after = d.get("web")
					if after.App.Generation == before.App.Generation || len(after.App.Instances) != tc.procs {
						return false
					}
					for _, in := range after.App.Instances {
						if in.Generation != after.App.Generation || in.State != "INSTANCE_STATE_READY" {
							return false
						}
					}
					return true
				})
				if res := <-slow; res != "" {
					t.Errorf("%s: the 2 s request across the switch: %s", what, res)
				}
				if time.Since(slowSent) < 2*time.Second {
					t.Errorf("%s: the slow request took %s, not 2s: it did not reach /sleep", what, time.Since(slowSent))
				}
				l.end(t, what)
				for pid := range pidsOf(after) {
					if pidsOf(before)[pid] {
						t.Errorf("%s: pid %d of the old generation still runs", what, pid)
					}
				}
			}
			step("restart", func() { d.mustCtl("restart", "web") })
			step("SIGHUP with changed args", func() {
				d.writeConfig(strings.Replace(rolloutApp("web", "/", tc.procs, tc.strategy, `env = { GREETING = "one" }`), `["serve"]`, `["serve", "v2"]`, 1))
				_ = d.cmd.Process.Signal(syscall.SIGHUP)
			})
			if got := d.get("web").App.Spec.Args; len(got) != 2 {
				t.Errorf("args after the reload: %v", got)
			}
			// An applied app, changed by apply.
			f := d.writeApplyFile("api.hcl", rolloutApp("api", "/api", tc.procs, tc.strategy, `env = { GREETING = "one" }`))
			d.mustCtl("apply", "-f", f)
			d.waitState("api", "APP_STATE_RUNNING", 20*time.Second)
			url = d.url("/api/x")
			waitFor(t, 20*time.Second, "every api instance ready", func() bool { return len(pidsOf(d.get("api"))) == tc.procs })
			before := d.get("api")
			l := startLoad(t, url, 4)
			waitFor(t, 10*time.Second, "load to run", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.n > 20 })
			f = d.writeApplyFile("api.hcl", rolloutApp("api", "/api", tc.procs, tc.strategy, `env = { GREETING = "two" }`))
			out := d.mustCtl("apply", "-f", f)
			l.end(t, "apply with a changed env")
			if !strings.Contains(out, "rollout succeeded") {
				t.Errorf("apply output: %q", out)
			}
			after := d.get("api")
			if after.App.Generation == before.App.Generation {
				t.Errorf("apply: generation %s -> %s", before.App.Generation, after.App.Generation)
			}
			code, body := get(t, url)
			if code != 200 || decodeReply(t, body).Greeting != "two" {
				t.Errorf("after apply: %d %s", code, body)
			}
		})
	}
}

// A rollout to a version that crashes at start fails with exit 5 and its
// reason; no request fails meanwhile, the old generation keeps serving,
// and after a daemon restart the app still runs the old spec.
func TestCrashingRolloutKeepsOldGeneration(t *testing.T) {
	d := newDaemon(t, "")
	good := rolloutApp("api", "/api", 2, "rolling", "")
	f := d.writeApplyFile("api.hcl", good)
	d.mustCtl("apply", "-f", f)
	waitFor(t, 20*time.Second, "both instances", func() bool { return len(pidsOf(d.get("api"))) == 2 })
	before := d.get("api")
	l := startLoad(t, d.url("/api/x"), 4)
	waitFor(t, 10*time.Second, "load to run", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.n > 20 })
	f = d.writeApplyFile("api.hcl", strings.Replace(good, `["serve"]`, `["exit", "3"]`, 1))
	msg := d.ctlFails(5, "apply", "-f", f)
	l.end(t, "crashing rollout")
	if !strings.Contains(msg, "rollout to generation 2 failed") || !strings.Contains(msg, "exited with code 3") {
		t.Errorf("failure message: %q", msg)
	}
	after := d.get("api")
	if after.App.Generation != before.App.Generation || len(after.App.Spec.Args) != 1 || after.App.Spec.Args[0] != "serve" {
		t.Errorf("after the failed rollout: generation %s, args %v", after.App.Generation, after.App.Spec.Args)
	}
	for pid := range pidsOf(before) {
		if !pidsOf(after)[pid] {
			t.Errorf("old pid %d was stopped", pid)
		}
	}
	out := d.mustCtl("history", "api")
	if !regexp.MustCompile(`(?m)^2\s.*failed`).MatchString(out) || !regexp.MustCompile(`(?m)^1 \*`).MatchString(out) {
		t.Errorf("history:\n%s", out)
	}

	d.stop()
	d.start("serve")
	s := d.waitState("api", "APP_STATE_RUNNING", 20*time.Second)
	if len(s.App.Spec.Args) != 1 || s.App.Spec.Args[0] != "serve" {
		t.Errorf("after a daemon restart: args %v, want the old spec", s.App.Spec.Args)
	}
	if code, _ := get(t, d.url("/api/x")); code != 200 {
		t.Errorf("after a daemon restart: %d", code)
	}
	// There is no good generation before the current one; an explicit one
	// is rolled out again as a new generation.
	d.ctlFails(5, "rollback", "api")
	d.mustCtl("rollback", "api", "--to", "1")
	if g := d.get("api").App.Generation; g == before.App.Generation {
		t.Errorf("rollback made no new generation")
	}
}

// A WebSocket open on an old instance stays open through the rollout until
// drain_timeout, and the rollout ends after that.
func TestWebSocketSurvivesRolloutUntilDrainTimeout(t *testing.T) {
	d := newDaemon(t, strings.Replace(rolloutApp("ws", "/", 1, "rolling", ""), `drain_timeout = "10s"`, `drain_timeout = "2s"`, 1))
	d.waitState("ws", "APP_STATE_RUNNING", 20*time.Second)
	old := d.get("ws").App.Instances[0].Pid
	c, err := net.Dial("tcp", d.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	echo := func() error {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "ping\n"); err != nil {
			return err
		}
		line, err := br.ReadString('\n')
		if err == nil && line != "PING\n" {
			err = fmt.Errorf("echo %q", line)
		}
		return err
	}
	if err := echo(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	restarted := make(chan string, 1)
	go func() {
		_, errOut, code := d.ctl("restart", "ws")
		restarted <- fmt.Sprintf("%d %s", code, errOut)
	}()
	waitFor(t, 20*time.Second, "the new instance to take requests", func() bool {
		code, body := get(t, d.url("/x"))
		return code == 200 && decodeReply(t, body).Pid != old
	})
	if err := echo(); err != nil {
		t.Errorf("WebSocket on the old instance after the switch: %v", err)
	}
	if res := <-restarted; res != "0 " {
		t.Errorf("restart: %s", res)
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("rollout ended after %s, before drain_timeout (2s) with a WebSocket open", el)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadString('\n'); err == nil {
		t.Errorf("the WebSocket is still open after the old instance stopped")
	}
}

// With two data planes (the daemon's own and a separate ancmd proxy), an
// old instance drains only once both have confirmed the table without it
// and finished their requests: load and a slow request through each lose
// nothing.
func TestRolloutWaitsForEveryDataPlane(t *testing.T) {
	d := newDaemon(t, rolloutApp("web", "/", 2, "rolling", ""))
	waitFor(t, 20*time.Second, "both instances", func() bool { return len(pidsOf(d.get("web"))) == 2 })
	other := "http://" + d.startProxy()
	waitFor(t, 20*time.Second, "the separate proxy to route", func() bool { code, _ := get(t, other+"/x"); return code == 200 })
	before := d.get("web").App.Generation
	l1, l2 := startLoad(t, d.url("/x"), 2), startLoad(t, other+"/x", 2)
	slow1, slow2 := slowRequest(d.url("/sleep?d=2s")), slowRequest(other+"/sleep?d=2s")
	waitFor(t, 10*time.Second, "load on both", func() bool {
		l1.mu.Lock()
		n1 := l1.n
		l1.mu.Unlock()
		l2.mu.Lock()
		defer l2.mu.Unlock()
		return n1 > 10 && l2.n > 10
	})
	d.mustCtl("restart", "web")
	for i, slow := range []<-chan string{slow1, slow2} {
		if res := <-slow; res != "" {
			t.Errorf("slow request through data plane %d: %s", i+1, res)
		}
	}
	l1.end(t, "restart, through the daemon's proxy")
	l2.end(t, "restart, through the separate proxy")
	if g := d.get("web").App.Generation; g == before {
		t.Errorf("generation still %s", g)
	}
}

// history lists the generations of an applied app; rollback rolls the last
// good one before the current out as a new generation, and is refused for
// an app of the config file.
func TestHistoryAndRollback(t *testing.T) {
	d := newDaemon(t, rolloutApp("fromfile", "/file", 1, "rolling", ""))
	f := d.writeApplyFile("api.hcl", rolloutApp("api", "/api", 1, "rolling", `env = { GREETING = "one" }`))
	d.mustCtl("apply", "-f", f)
	d.waitState("api", "APP_STATE_RUNNING", 20*time.Second)
	f = d.writeApplyFile("api.hcl", rolloutApp("api", "/api", 1, "rolling", `env = { GREETING = "two" }`))
	if out := d.mustCtl("apply", "-f", f); !strings.Contains(out, "api: restarted (generation 2, rollout succeeded)") {
		t.Errorf("apply: %q", out)
	}
	out := d.mustCtl("rollback", "api")
	if !strings.Contains(out, "rollout from generation 2 to 3: succeeded") {
		t.Errorf("rollback: %q", out)
	}
	code, body := get(t, d.url("/api/x"))
	if code != 200 || decodeReply(t, body).Greeting != "one" {
		t.Errorf("after rollback: %d %s", code, body)
	}
	out = d.mustCtl("history", "api")
	t.Logf("history:\n%s", out)
	for _, re := range []string{`(?m)^1\s+20\d\d-.*created\s+succeeded`, `(?m)^2\s.*env\s+succeeded`, `(?m)^3 \*\s.*rollback to 1\s+succeeded`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("history lacks %s:\n%s", re, out)
		}
	}
	if msg := d.ctlFails(5, "rollback", "fromfile"); !strings.Contains(msg, "config file") {
		t.Errorf("rollback of a config-file app: %q", msg)
	}
}

// A daemon killed during a rollout comes back with the spec that ran
// before it: the spec of a rollout is stored only once it has succeeded.
func TestDaemonKilledDuringRolloutKeepsOldSpec(t *testing.T) {
	d := newDaemon(t, "")
	good := rolloutApp("api", "/api", 1, "rolling", "")
	f := d.writeApplyFile("api.hcl", good)
	d.mustCtl("apply", "-f", f)
	d.waitState("api", "APP_STATE_RUNNING", 20*time.Second)
	f = d.writeApplyFile("api.hcl", strings.Replace(strings.Replace(good, `["serve"]`, `["never"]`, 1), `shutdown_timeout = "5s"`, `startup_timeout = "60s"`, 1))
	applying := d.ctlStream("apply", "-f", f)
	waitFor(t, 20*time.Second, "the rollout to start", func() bool {
		s := d.get("api")
		return s.App.Rollout != nil && s.App.Rollout.Result == "ROLLOUT_RESULT_IN_PROGRESS"
	})
	_ = d.cmd.Process.Kill()
	<-d.exited
	applying.kill()
	d.start("serve")
	s := d.waitState("api", "APP_STATE_RUNNING", 20*time.Second)
	if len(s.App.Spec.Args) != 1 || s.App.Spec.Args[0] != "serve" || s.App.Generation != "1" {
		t.Errorf("after the kill: args %v, generation %s; want the old spec at 1", s.App.Spec.Args, s.App.Generation)
	}
	out := d.mustCtl("history", "api")
	if !regexp.MustCompile(`(?m)^2\s.*failed\s+the daemon stopped during the rollout`).MatchString(out) {
		t.Errorf("history:\n%s", out)
	}
}
