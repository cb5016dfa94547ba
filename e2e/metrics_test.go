package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ancm-dev/ancm/internal/testtool"
)

// scrape returns the metrics at addr's /metrics, by series ("name{labels}"
// as exposed) to value.
func scrape(t *testing.T, addr string) (map[string]float64, string) {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", res.StatusCode, err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, string(b)
}

// waitMetric polls addr until series has at least want.
func waitMetric(t *testing.T, addr, series string, want float64) map[string]float64 {
	t.Helper()
	var m map[string]float64
	waitFor(t, 30*time.Second, fmt.Sprintf("%s >= %v", series, want), func() bool {
		m, _ = scrape(t, addr)
		return m[series] >= want
	})
	return m
}

// TestMetricsEndpoint: ancmd serve with metrics_listen exposes the
// contract's metrics: requests per app and code (a 404 under app ""),
// a crash as a restart with reason crashed, a health failure as one with
// reason unhealthy, app states, the build, the Go runtime and the
// process; promtool accepts the output; OpenMetrics on request. The app
// gets an X-Request-Id, which the JSON access log line has too.
func TestMetricsEndpoint(t *testing.T) {
	metrics := freeAddr(t)
	d := newDaemon(t, fmt.Sprintf(`
metrics_listen = %q
access_log = true
access_log_format = "json"

app "web" {
  command = "TESTAPP"
  path_prefix = "/web"
  start = "eager"
}

app "crashy" {
  command = "TESTAPP"
  args = ["crash-after", "1"]
  path_prefix = "/crash"
  start = "eager"
}

app "sick" {
  command = "TESTAPP"
  args = ["unhealthy-after", "2"]
  path_prefix = "/sick"
  start = "eager"
  health {
    path = "/healthz"
    interval = "100ms"
  }
}
`, metrics))
	d.waitState("web", "APP_STATE_RUNNING", 20*time.Second)
	const n = 7
	var ids []string
	for range n {
		code, body := get(t, d.url("/web/x?q=1"))
		if code != 200 {
			t.Fatalf("GET /web/x: %d", code)
		}
		ids = append(ids, decodeReply(t, body).Headers["X-Request-Id"]...)
	}
	if len(ids) != n || ids[0] == ids[1] {
		t.Errorf("request ids the app got: %q", ids)
	}
	if code, _ := get(t, d.url("/nowhere")); code != 404 {
		t.Fatalf("GET /nowhere: %d", code)
	}
	d.waitState("crashy", "APP_STATE_RUNNING", 20*time.Second)
	get(t, d.url("/crash/x"))

	m := waitMetric(t, metrics, `ancm_http_requests_total{app="web",code="200"}`, n)
	if got := m[`ancm_http_requests_total{app="web",code="200"}`]; got != n {
		t.Errorf("web 200s: %v, want %d", got, n)
	}
	m = waitMetric(t, metrics, `ancm_http_requests_total{app="",code="404"}`, 1)
	if m[`ancm_http_request_duration_seconds_count{app="web"}`] != n {
		t.Errorf("web duration count: %v", m[`ancm_http_request_duration_seconds_count{app="web"}`])
	}
	waitMetric(t, metrics, `ancm_app_restarts_total{app="crashy",reason="crashed"}`, 1)
	m = waitMetric(t, metrics, `ancm_app_restarts_total{app="sick",reason="unhealthy"}`, 1)
	for series, want := range map[string]float64{
		`ancm_app_state{app="web",state="running"}`:           1,
		`ancm_app_state{app="web",state="failed"}`:            0,
		`ancm_app_instances{app="web",state="ready"}`:         1,
		`ancm_app_restarts_total{app="web",reason="crashed"}`: 0,
		`ancm_http_requests_in_flight{app="web"}`:             0,
		`ancm_dataplane_table_synced`:                         1,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if m[`ancm_app_start_duration_seconds_count{app="web"}`] < 1 {
		t.Error("no start of web in ancm_app_start_duration_seconds")
	}
	// A rollout: the generation moves on and it counts as succeeded.
	gen := m[`ancm_app_generation{app="web"}`]
	if gen < 1 {
		t.Errorf("ancm_app_generation of web = %v", gen)
	}
	d.mustCtl("restart", "web")
	m = waitMetric(t, metrics, `ancm_rollouts_total{app="web",result="succeeded"}`, 1)
	if got := m[`ancm_app_generation{app="web"}`]; got != gen+1 {
		t.Errorf("ancm_app_generation of web after a restart = %v, want %v", got, gen+1)
	}
	if got := m[`ancm_rollouts_total{app="web",result="failed"}`]; got != 0 {
		t.Errorf("failed rollouts of web: %v", got)
	}
	_, text := scrape(t, metrics)
	for _, want := range []string{"ancm_build_info{go_version=", "go_goroutines ", "process_cpu_seconds_total ", "ancm_http_queue_waiting{app=\"web\"} 0"} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if path := testtool.Path(t, "promtool"); path == "" {
		t.Log("promtool not installed (Debian package prometheus): output not checked with it")
	} else {
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}

	req, _ := http.NewRequest("GET", "http://"+metrics+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	_, hdr, body := fetch(t, req)
	if !strings.HasPrefix(hdr.Get("Content-Type"), "application/openmetrics-text") || !strings.HasSuffix(body, "# EOF\n") {
		t.Errorf("OpenMetrics: %s, ends %q", hdr.Get("Content-Type"), body[max(0, len(body)-20):])
	}

	// The access log has the request ids the app got.
	waitFor(t, 10*time.Second, "access log lines", func() bool { return strings.Contains(d.out.String(), ids[n-1]) })
	var line map[string]any
	for l := range strings.Lines(d.out.String()) {
		if strings.Contains(l, ids[0]) && strings.HasPrefix(l, "{") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("access log line: %v: %s", err, l)
			}
		}
	}
	if line["request_id"] != ids[0] || line["path"] != "/web/x?q=1" || line["app"] != "web" || line["status"] != 200.0 {
		t.Errorf("access log line: %v", line)
	}
}

// topApp is the part of `ancmctl top -o json` the tests read (uint64
// fields are strings in the JSON of protobuf).
type topApp struct {
	App               string  `json:"app"`
	Requests          string  `json:"requests"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	P50               float64 `json:"p50_seconds"`
	P99               float64 `json:"p99_seconds"`
	InstancesReady    int     `json:"instances_ready"`
	State             string  `json:"state"`
}

// TestMetricsSeparateProxyAndTop: an `ancmd proxy` serves its own data
// plane's metrics (and no control-plane ones), and `ancmctl top -o json`
// sums the load that went through it and through ancmd serve's own.
func TestMetricsSeparateProxyAndTop(t *testing.T) {
	d := newDaemon(t, `
app "web" {
  command = "TESTAPP"
  start = "eager"
}
`)
	d.waitState("web", "APP_STATE_RUNNING", 20*time.Second)
	pm := freeAddr(t)
	other := d.startProxy("--metrics-listen", pm, "--node", "edge-1")
	const viaServe, viaProxy = 20, 30
	for range viaServe {
		if code, _ := get(t, d.url("/a")); code != 200 {
			t.Fatalf("via serve: %d", code)
		}
	}
	for range viaProxy {
		if code, _ := get(t, "http://"+other+"/b"); code != 200 {
			t.Fatalf("via proxy: %d", code)
		}
	}
	m := waitMetric(t, pm, `ancm_http_requests_total{app="web",code="200"}`, viaProxy)
	if got := m[`ancm_http_requests_total{app="web",code="200"}`]; got != viaProxy {
		t.Errorf("the proxy's web 200s: %v, want %d", got, viaProxy)
	}
	for series := range m {
		if strings.HasPrefix(series, "ancm_app_") {
			t.Errorf("the proxy exports control-plane metric %s", series)
		}
	}

	var top struct {
		Nodes []string `json:"nodes"`
		Apps  []topApp `json:"apps"`
	}
	waitFor(t, 30*time.Second, "top to show both data planes' requests", func() bool {
		top.Nodes, top.Apps = nil, nil
		d.ctlJSON(&top, "top", "--window", "60s")
		for _, a := range top.Apps {
			if a.App == "web" && a.Requests == strconv.Itoa(viaServe+viaProxy) && len(top.Nodes) == 2 {
				return true
			}
		}
		return false
	})
	for _, a := range top.Apps {
		if a.App != "web" {
			continue
		}
		if a.RequestsPerSecond <= 0 || a.P50 <= 0 || a.P99 < a.P50 || a.InstancesReady != 1 || a.State != "APP_STATE_RUNNING" {
			t.Errorf("top: %+v", a)
		}
	}
	if !strings.Contains(strings.Join(top.Nodes, ","), "edge-1") {
		t.Errorf("nodes: %q", top.Nodes)
	}
	// The table: a header and the app's row.
	out, _, code := d.ctl("top", "-n", "1")
	if code != 0 || !strings.Contains(out, "REQ/S") || !strings.Contains(out, "\nweb ") {
		t.Errorf("top table (exit %d):\n%s", code, out)
	}
}

// TestMetricsControlOnly: ancmd control serves the control plane's
// metrics and none of a data plane's.
func TestMetricsControlOnly(t *testing.T) {
	metrics := freeAddr(t)
	d := prepareDaemon(t, fmt.Sprintf(`
metrics_listen = %q

app "web" {
  command = "TESTAPP"
  start = "eager"
}
`, metrics))
	d.start("control")
	d.waitState("web", "APP_STATE_RUNNING", 20*time.Second)
	m := waitMetric(t, metrics, `ancm_app_state{app="web",state="running"}`, 1)
	for series := range m {
		if strings.HasPrefix(series, "ancm_http_") || strings.HasPrefix(series, "ancm_dataplane_") {
			t.Errorf("ancmd control exports data-plane metric %s", series)
		}
	}
	if m["ancm_apps"] != 1 {
		t.Errorf("ancm_apps = %v", m["ancm_apps"])
	}
}
