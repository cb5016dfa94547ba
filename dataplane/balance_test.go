package dataplane

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func TestPickLeastOutstandingRoundRobin(t *testing.T) {
	a := &app{name: "a"}
	for i := range 3 {
		a.usable = append(a.usable, &backend{addr: string(rune('a' + i)), instance: uint32(i)})
	}
	seen := map[uint32]int{}
	for range 30 {
		b := a.pick(nil)
		seen[b.instance]++
		b.outstanding.Add(-1)
	}
	for i := range 3 {
		if seen[uint32(i)] != 10 {
			t.Errorf("round robin uneven: %v", seen)
		}
	}
	// Load two backends: the idle one gets every new request.
	busy0, busy1 := a.usable[0], a.usable[1]
	busy0.outstanding.Add(5)
	busy1.outstanding.Add(5)
	for range 5 {
		if b := a.pick(nil); b != a.usable[2] {
			t.Fatalf("picked instance %d over the idle one", b.instance)
		}
	}
	if b := a.pick(a.usable[2]); b == a.usable[2] {
		t.Error("pick returned the excluded backend")
	}
}

func TestEjectAndRetry(t *testing.T) {
	alive := echoBackend(t, "alive")
	dead := echoBackend(t, "dead")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, dead, "t0"), ready(1, alive, "t1")))
	dead.Close() // now refuses connections

	for i := range 10 {
		method := "GET"
		var body *strings.Reader
		if i%2 == 1 {
			method = "POST" // a body not yet sent is replayed
			body = strings.NewReader("payload")
		}
		var req *http.Request
		if body != nil {
			req, _ = http.NewRequest(method, h.url+"/", body)
		} else {
			req, _ = http.NewRequest(method, h.url+"/", nil)
		}
		res, b := h.do(req)
		if res.StatusCode != 200 {
			t.Fatalf("request %d: status %d %s", i, res.StatusCode, b)
		}
		e := decodeEcho(t, b)
		if e.Name != "alive" || e.Header.Get("Ancm-Token") != "t1" {
			t.Errorf("request %d went to %s with token %q", i, e.Name, e.Header.Get("Ancm-Token"))
		}
		if method == "POST" && e.Body != "payload" {
			t.Errorf("retried POST body %q", e.Body)
		}
	}
	s := h.p.Stats()
	if s.Ejections != 1 || s.Retries != 1 {
		t.Errorf("ejections %d retries %d, want 1 and 1", s.Ejections, s.Retries)
	}

	// Republished ready at a newer revision: the ejection is lifted.
	rev := h.cp.set(running("app", "/", nil, ready(0, dead, "t0"), ready(1, alive, "t1")))
	h.waitRevision(rev)
	a := h.p.table.Load().apps["app"]
	for _, b := range a.usable {
		if b.ejectedAt.Load() != 0 {
			t.Errorf("instance %d still ejected after republish", b.instance)
		}
	}
}

func TestRetryOnlyOnce(t *testing.T) {
	d1 := echoBackend(t, "d1")
	d2 := echoBackend(t, "d2")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, d1, "a"), ready(1, d2, "b")))
	d1.Close()
	d2.Close()
	res, body := h.get("", "/")
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(body, "app") {
		t.Errorf("both dead: status %d body %s", res.StatusCode, body)
	}
	if s := h.p.Stats(); s.Retries != 1 || s.Ejections != 2 {
		t.Errorf("retries %d ejections %d", s.Retries, s.Ejections)
	}
}

func TestDrainingFinishesInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(entered) })
		<-release
		_, _ = w.Write([]byte("slow done"))
	}))
	t.Cleanup(slow.Close)
	fresh := echoBackend(t, "fresh")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, slow, "s")))

	done := make(chan string, 1)
	go func() {
		res, err := h.client.Get(h.url + "/long")
		if err != nil {
			done <- err.Error()
			return
		}
		defer res.Body.Close()
		b := new(strings.Builder)
		_, _ = ioCopy(b, res)
		done <- b.String()
	}()
	<-entered

	drain := ready(0, slow, "s")
	drain.Draining = true
	drain.State = ancmv1.InstanceState_INSTANCE_STATE_DRAINING
	rev := h.cp.set(running("app", "/", nil, drain, ready(1, fresh, "f")))
	h.waitRevision(rev)
	for range 5 {
		_, body := h.get("", "/new")
		if e := decodeEcho(t, body); e.Name != "fresh" {
			t.Fatalf("new request went to %s", e.Name)
		}
	}
	close(release)
	if got := <-done; got != "slow done" {
		t.Errorf("in-flight request on draining instance: %q", got)
	}
}
