package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// GETs lose nothing when one of two instances is killed with SIGKILL
// under load: the ones it had are retried on the other. With one
// instance, a GET that was on its way when it died is sent once more
// (the retry rule allows one), and if that second send also lands on
// the dying process it fails with 502: so at most one GET per client in
// flight at the kill fails, only with 502, and every later one waits for
// the restart and is served.
func TestGETsSurviveInstanceKill(t *testing.T) {
	for _, n := range []int{2, 1} {
		t.Run(fmt.Sprintf("processes=%d", n), func(t *testing.T) { getsSurviveKill(t, n) })
	}
}

func getsSurviveKill(t *testing.T, processes int) {
	d := newDaemon(t, fmt.Sprintf(`
app "pair" {
  command = "TESTAPP"
  args = ["serve"]
  processes = %d
  start = "eager"
}
`, processes))
	var st appStatus
	waitFor(t, 20*time.Second, "ready instances", func() bool {
		st = d.get("pair")
		for _, in := range st.App.Instances {
			if in.State != "INSTANCE_STATE_READY" {
				return false
			}
		}
		return true
	})
	victim := st.App.Instances[0].Pid

	const workers, perWorker = 8, 150
	var ok, failed, badGateway atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	var started sync.WaitGroup
	started.Add(workers)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				if i == 10 {
					started.Done()
				}
				resp, err := client.Get(d.url("/"))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					ok.Add(1)
				case http.StatusBadGateway:
					badGateway.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
				default:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
				}
			}
		}()
	}
	started.Wait()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	lost := int64(0) // GETs in flight at the kill that may fail (one per client)
	if processes == 1 {
		lost = workers
	}
	if failed.Load() != 0 || badGateway.Load() > lost {
		t.Errorf("%d of %d GETs failed, %d with 502, after SIGKILL of one of %d instances (first: %v)",
			failed.Load()+badGateway.Load(), workers*perWorker, badGateway.Load(), processes, firstErr.Load())
	}
	if ok.Load()+badGateway.Load() != workers*perWorker {
		t.Errorf("ok = %d, want %d", ok.Load(), workers*perWorker-badGateway.Load())
	}
}

// WebSocket upgrades are tunnelled, and server-sent events arrive as they
// are sent.
func TestWebSocketAndSSEThroughProxy(t *testing.T) {
	d := newDaemon(t, helloApp)

	c, err := net.Dial("tcp", d.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade answered %s", resp.Status)
	}
	for _, msg := range []string{"hello\n", "again\n"} {
		fmt.Fprint(c, msg)
		line, err := br.ReadString('\n')
		if err != nil || line != strings.ToUpper(msg) {
			t.Fatalf("echo of %q = %q, %v", msg, line, err)
		}
	}

	req, _ := http.NewRequest(http.MethodGet, d.url("/sse"), nil)
	sresp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	sr := bufio.NewReader(sresp.Body)
	line, err := sr.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event = %q, %v (it must arrive before the handler ends)", line, err)
	}
	// Only now let the handler send the second event.
	if code, _ := get(t, d.url("/sse-release")); code != 200 {
		t.Fatalf("release: %d", code)
	}
	rest, _ := io.ReadAll(sr)
	if !strings.Contains(string(rest), "data: second") {
		t.Errorf("second event missing: %q", rest)
	}
}

func TestRequestTimeoutIs504(t *testing.T) {
	d := newDaemon(t, `
app "slow" {
  command = "TESTAPP"
  args = ["serve"]
  request_timeout = "300ms"
}
`)
	if code, _ := get(t, d.url("/")); code != 200 {
		t.Fatalf("warm-up: %d", code)
	}
	start := time.Now()
	code, _ := get(t, d.url("/sleep?d=5s"))
	if code != 504 {
		t.Fatalf("got %d, want 504 after request_timeout", code)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("504 came after %s", el)
	}
}

// Smuggling shapes are refused with 400 and never forwarded; huge headers
// get 431.
func TestSmugglingAndHugeHeaders(t *testing.T) {
	d := newDaemon(t, helloApp)
	if code, _ := get(t, d.url("/")); code != 200 {
		t.Fatalf("warm-up: %d", code)
	}
	for name, raw := range map[string]string{
		"CL+TE":       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"two CL":      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
		"TE not last": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
	} {
		c, err := net.Dial("tcp", d.listen)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if resp.StatusCode != 400 {
			t.Errorf("%s: %s, want 400", name, resp.Status)
		}
		c.Close()
	}

	req, _ := http.NewRequest(http.MethodGet, d.url("/"), nil)
	req.Header.Set("X-Big", strings.Repeat("a", 200<<10))
	code, _, _ := fetch(t, req)
	if code != 431 {
		t.Errorf("huge header: %d, want 431", code)
	}
}

// Past queue_size, requests waiting for a start get 503 with Retry-After.
func TestQueueFullIs503(t *testing.T) {
	d := newDaemon(t, `
app "queued" {
  command = "TESTAPP"
  args = ["slow", "1500ms"]
  queue_size = 2
}
`)
	const n = 8
	type result struct {
		code  int
		retry string
	}
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, d.url("/"), nil)
			resp, err := httpClient.Do(req)
			if err != nil {
				results <- result{code: -1}
				return
			}
			resp.Body.Close()
			results <- result{resp.StatusCode, resp.Header.Get("Retry-After")}
		}()
	}
	var ok, full int
	for i := 0; i < n; i++ {
		r := <-results
		switch {
		case r.code == 200:
			ok++
		case r.code == 503 && r.retry != "":
			full++
		default:
			t.Errorf("unexpected answer %d (Retry-After %q)", r.code, r.retry)
		}
	}
	if ok != 2 || full != n-2 {
		t.Errorf("ok=%d queue-full=%d, want 2 and %d", ok, full, n-2)
	}
}

// A separate proxy keeps serving while the control plane restarts: it
// answers from its last table, and a request for the app, whose process
// went down with the control plane, waits for the restarted control plane
// to start it again instead of failing. Then the proxy follows the new
// epoch.
func TestRequestsSurviveControlRestart(t *testing.T) {
	d := prepareDaemon(t, `
app "hello" {
  command = "TESTAPP"
  args = ["serve"]
  path_prefix = "/app"
  start = "eager"
}
`)
	d.start("control")
	base := "http://" + d.startProxy()
	var pid1 int
	waitFor(t, 20*time.Second, "the app through the proxy", func() bool {
		code, body := get(t, base+"/app/x")
		if code != 200 {
			return false
		}
		pid1 = decodeReply(t, body).Pid
		return true
	})

	// GETs, one after another, all through the restart.
	stop := make(chan struct{})
	type result struct {
		n, failed int
		first     string
	}
	done := make(chan result, 1)
	var ran atomic.Int64
	go func() {
		var r result
		for i := 0; i < 5000; i++ {
			select {
			case <-stop:
				done <- r
				return
			default:
			}
			r.n++
			ran.Add(1)
			resp, err := httpClient.Get(base + "/app/x")
			if err != nil {
				r.failed++
				if r.first == "" {
					r.first = err.Error()
				}
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				r.failed++
				if r.first == "" {
					r.first = resp.Status
				}
			}
		}
		done <- r
	}()

	// Some GETs before the stop: the daemon stops in milliseconds.
	waitFor(t, 10*time.Second, "GETs before the stop", func() bool { return ran.Load() >= 5 })
	d.stop()
	// The control plane is gone: the proxy still answers from its table.
	if code, _ := get(t, base+"/elsewhere"); code != 404 {
		t.Errorf("no-route request while control is down: %d, want 404", code)
	}
	d.start("control")
	waitFor(t, 20*time.Second, "the restarted app through the proxy", func() bool {
		code, body := get(t, base+"/app/x")
		return code == 200 && decodeReply(t, body).Pid != pid1
	})
	close(stop)
	r := <-done
	if r.failed != 0 {
		t.Errorf("%d of %d GETs failed across the control-plane restart (first: %s)", r.failed, r.n, r.first)
	}
	if r.n < 2 {
		t.Errorf("only %d GETs ran during the restart", r.n)
	}
}
