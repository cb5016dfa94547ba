package dataplane

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// TestMetricsPerAppAndCode: requests are counted per app and status
// code, with the unmatched ones under app "", and the counters survive
// a new table.
func TestMetricsPerAppAndCode(t *testing.T) {
	be := echoBackend(t, "a")
	h := newHarness(t, Options{}, running("shop", "/shop", nil, ready(0, be, "tok")))
	for range 3 {
		if res, _ := h.get("", "/shop/x"); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	if res, _ := h.get("", "/nowhere"); res.StatusCode != 404 {
		t.Fatalf("status %d", res.StatusCode)
	}
	// A new revision of the app keeps its counters.
	r := running("shop", "/shop", nil, ready(0, be, "tok"))
	r.QueueSize = 7
	h.waitRevision(h.cp.set(r))
	if res, _ := h.get("", "/shop/y"); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	// A request is counted just after its answer is written.
	waitFor(t, "5 requests counted", func() bool { return h.p.Stats().Requests == 5 })
	c := h.p.Collector()
	want := `
# HELP ancm_http_requests_total Requests answered, by app ("" when no app matched) and status code.
# TYPE ancm_http_requests_total counter
ancm_http_requests_total{app="",code="404"} 1
ancm_http_requests_total{app="shop",code="200"} 4
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "ancm_http_requests_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(registry(t, c), "ancm_http_request_duration_seconds"); err != nil || n != 2 {
		t.Errorf("duration histograms: %d, %v", n, err)
	}
	lint, err := testutil.CollectAndLint(c)
	if err != nil || len(lint) > 0 {
		t.Errorf("lint: %v %v", lint, err)
	}
	// in flight is back to 0 once the answers are in.
	waitFor(t, "in flight 0", func() bool {
		for _, s := range h.p.allStats() {
			if s.inFlight() != 0 {
				return false
			}
		}
		return true
	})
}

func registry(t *testing.T, cs ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]+-[0-9a-f]+$`)

// TestRequestID: a sane client id reaches the app once; an absent or
// insane one is replaced by a new id, different per request; error pages
// carry the id.
func TestRequestID(t *testing.T) {
	be := echoBackend(t, "a")
	h := newHarness(t, Options{}, running("app", "/", nil, ready(0, be, "tok")))
	send := func(ids ...string) echo {
		req, _ := http.NewRequest("GET", h.url+"/x", nil)
		for _, id := range ids {
			req.Header.Add("X-Request-Id", id)
		}
		res, body := h.do(req)
		if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
		return decodeEcho(t, body)
	}
	if got := send("abc-123").Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "abc-123" {
		t.Errorf("kept id: %q", got)
	}
	if got := send("first", "second").Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "first" {
		t.Errorf("two ids: %q", got)
	}
	seen := map[string]bool{}
	for _, ids := range [][]string{nil, nil, {"has space"}, {strings.Repeat("x", maxRequestIDLen+1)}, {"<script>"}} {
		got := send(ids...).Header.Values("X-Request-Id")
		if len(got) != 1 || !generatedID.MatchString(got[0]) || seen[got[0]] {
			t.Errorf("sent %q: app got %q", ids, got)
			continue
		}
		seen[got[0]] = true
	}

	req, _ := http.NewRequest("GET", h.url+"/x", nil)
	req.Host = "other"
	h.cp.set(&ancmv1.AppRoute{App: "app", PathPrefix: "/", State: ancmv1.AppState_APP_STATE_STOPPED})
	waitFor(t, "stopped", func() bool { return !h.p.table.Load().apps["app"].serving() })
	req.Header.Set("X-Request-Id", "trace-me")
	res, body := h.do(req)
	if res.StatusCode != 503 || res.Header.Get("X-Request-Id") != "trace-me" || !strings.Contains(body, "trace-me") {
		t.Errorf("error page: %d %q %s", res.StatusCode, res.Header.Get("X-Request-Id"), body)
	}
}

func TestValidRequestID(t *testing.T) {
	for id, want := range map[string]bool{
		"":                        false,
		"a":                       true,
		"0f8fad5b-d9cb-469f-a165": true,
		"trace:1/2+3=4@x_y.z":     true,
		"a b":                     false,
		"a\"b":                    false,
		"a,b":                     false,
		strings.Repeat("a", 128):  true,
		strings.Repeat("a", 129):  false,
	} {
		if got := validRequestID(id); got != want {
			t.Errorf("validRequestID(%q) = %v", id, got)
		}
	}
}

// TestAccessLogJSON: one line per request with every field of the
// contract.
func TestAccessLogJSON(t *testing.T) {
	be := echoBackend(t, "a")
	var out syncBuffer
	al := hclog.New(&hclog.LoggerOptions{Name: "access", Output: &out, JSONFormat: true})
	h := newHarness(t, Options{AccessLog: true, AccessLogger: al}, running("app", "/", nil, ready(0, be, "tok")))
	req, _ := http.NewRequest("GET", h.url+"/x?q=1", nil)
	req.Header.Set("User-Agent", "probe/1")
	req.Header.Set("X-Request-Id", "rid-1")
	if res, _ := h.do(req); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	var line map[string]any
	waitFor(t, "access log line", func() bool { return strings.Contains(out.String(), "rid-1") })
	if err := json.Unmarshal([]byte(strings.TrimSpace(out.String())), &line); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	for k, want := range map[string]any{"client": "127.0.0.1", "method": "GET", "path": "/x?q=1", "status": 200.0,
		"user_agent": "probe/1", "app": "app", "instance": 0.0, "generation": 0.0, "request_id": "rid-1"} {
		if line[k] != want {
			t.Errorf("%s = %v, want %v", k, line[k], want)
		}
	}
	if b, _ := line["bytes"].(float64); b < 100 {
		t.Errorf("bytes = %v", line["bytes"])
	}
	if _, ok := line["duration"]; !ok {
		t.Error("no duration")
	}
}

// TestTrafficReports: the data plane's reports reach the control plane's
// TrafficService, which sums them per app.
func TestTrafficReports(t *testing.T) {
	be := echoBackend(t, "a")
	h := newHarness(t, Options{ReportInterval: 20 * time.Millisecond}, running("app", "/", nil, ready(0, be, "tok")))
	for range 5 {
		h.get("", "/x")
	}
	waitFor(t, "5 requests reported", func() bool {
		resp, err := h.cp.traffic.GetTraffic(context.Background(), &ancmv1.GetTrafficRequest{WindowSeconds: 60})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range resp.GetApps() {
			if a.GetApp() == "app" && a.GetRequests() == 5 && a.GetStatus_2Xx() == 5 && a.GetP99Seconds() > 0 {
				return len(resp.GetNodes()) == 1 && resp.GetNodes()[0] == "test"
			}
		}
		return false
	})
}

// TestStatsKeepRemovedApps: the requests of an app removed from the
// table stay in Stats, and its series leave the metrics.
func TestStatsKeepRemovedApps(t *testing.T) {
	be := echoBackend(t, "a")
	h := newHarness(t, Options{}, running("a", "/a", nil, ready(0, be, "tok")), running("b", "/b", nil, ready(0, be, "tok")))
	h.get("", "/a/x")
	h.get("", "/b/x")
	waitFor(t, "2 requests counted", func() bool { return h.p.Stats().Requests == 2 })
	h.waitRevision(h.cp.remove("a"))
	if s := h.p.Stats(); s.Requests != 2 || s.Status2xx != 2 {
		t.Errorf("after removal: %+v", s)
	}
	want := `
# HELP ancm_http_requests_total Requests answered, by app ("" when no app matched) and status code.
# TYPE ancm_http_requests_total counter
ancm_http_requests_total{app="b",code="200"} 1
`
	if err := testutil.CollectAndCompare(h.p.Collector(), strings.NewReader(want), "ancm_http_requests_total"); err != nil {
		t.Error(err)
	}
}

// TestBadFramingCounted: a head the codec refuses as ambiguous framing
// is answered 400 and counted in ancm_dataplane_bad_framing_total; a
// head that is merely malformed is a 400 not counted there.
func TestBadFramingCounted(t *testing.T) {
	be := echoBackend(t, "a")
	h := newHarness(t, Options{}, running("shop", "/", nil, ready(0, be, "tok")))
	for _, raw := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 03\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost x\r\n\r\n", // malformed, not framing
	} {
		if got := rawExchangeText(t, h.addr, raw, 5*time.Second); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
			t.Fatalf("%q answered %q", raw, got)
		}
	}
	waitFor(t, "2 counted", func() bool { return h.p.Stats().BadFraming == 2 })
	want := `
# HELP ancm_dataplane_bad_framing_total Requests refused with 400 for ambiguous framing.
# TYPE ancm_dataplane_bad_framing_total counter
ancm_dataplane_bad_framing_total 2
`
	if err := testutil.CollectAndCompare(h.p.Collector(), strings.NewReader(want), "ancm_dataplane_bad_framing_total"); err != nil {
		t.Error(err)
	}
}
