package dataplane

import (
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LatencyBuckets are the upper bounds, in seconds, of the request-duration
// histogram (ancm_http_request_duration_seconds) and of the latency buckets
// of traffic reports; a last bucket, +Inf, follows them.
var LatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

const nBuckets = 16 // len(LatencyBuckets) + 1

// bucketNanos are LatencyBuckets in nanoseconds, for the request path.
var bucketNanos = func() [nBuckets - 1]int64 {
	var b [nBuckets - 1]int64
	for i, s := range LatencyBuckets {
		b[i] = int64(s * 1e9)
	}
	return b
}()

// appStats are the counters of one app (and generation), or of the
// requests no app matched. They are resolved once, when a route is
// compiled (compileApp), and carried over from one table to the next, so
// the request path only adds to atomics it already holds: no label
// lookup, no lock. A Collector and the traffic reporter read them.
type appStats struct {
	app        string
	generation uint64

	codes    [500]atomic.Uint64 // by status - 100: 100..599
	buckets  [nBuckets]atomic.Uint64
	sumNanos atomic.Int64
	inFlight atomic.Int64

	retries       atomic.Uint64
	queueRejected atomic.Uint64
}

func newAppStats(app string, generation uint64) *appStats {
	return &appStats{app: app, generation: generation}
}

// done records an answered request: its status and how long it took from
// head read to last byte written.
func (s *appStats) done(status int, d time.Duration) {
	if i := status - 100; i >= 0 && i < len(s.codes) {
		s.codes[i].Add(1)
	}
	n := int64(d)
	i := 0
	for i < len(bucketNanos) && n > bucketNanos[i] {
		i++
	}
	s.buckets[i].Add(1)
	s.sumNanos.Add(n)
}

// classes returns the requests answered by status class: 1xx..5xx at
// index 1..5; index 0 is 499, the client gone before an answer.
func (s *appStats) classes() (c [6]uint64) {
	for i := range s.codes {
		n := s.codes[i].Load()
		if n == 0 {
			continue
		}
		code := i + 100
		if code == statusClientClosed {
			c[0] += n
			continue
		}
		c[code/100] += n
	}
	return c
}

// bucketCounts returns the latency buckets, not cumulative.
func (s *appStats) bucketCounts() []uint64 {
	out := make([]uint64, nBuckets)
	for i := range s.buckets {
		out[i] = s.buckets[i].Load()
	}
	return out
}

// statsOf returns the stats of a: the app's own, or the unrouted ones.
func (p *Proxy) statsOf(a *app) *appStats {
	if a != nil && a.stats != nil {
		return a.stats
	}
	return p.unrouted
}

// routeStats are the stats a compiled route counts into: the previous
// version's when the app and generation are the same, new ones otherwise.
func routeStats(name string, generation uint64, old *app) *appStats {
	if old != nil && old.stats != nil && old.stats.generation == generation {
		return old.stats
	}
	return newAppStats(name, generation)
}

// allStats returns the stats of the apps of the current table, by name,
// and the unrouted ones last.
func (p *Proxy) allStats() []*appStats {
	t := p.table.Load()
	out := make([]*appStats, 0, len(t.apps)+1)
	for _, a := range t.apps {
		if a.stats != nil {
			out = append(out, a.stats)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].app < out[j].app })
	return append(out, p.unrouted)
}

// queueWaiting returns the requests waiting for a start, by app.
func (p *Proxy) queueWaiting() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.gates))
	for name, g := range p.gates {
		out[name] = g.waiting
	}
	return out
}

// Metric descriptions of the data plane; the names and labels of the
// first six are the contract's (DESIGN.md, "Metrics and traffic").
var (
	descRequests = prometheus.NewDesc("ancm_http_requests_total",
		"Requests answered, by app (\"\" when no app matched) and status code.", []string{"app", "code"}, nil)
	descDuration = prometheus.NewDesc("ancm_http_request_duration_seconds",
		"Time from a request's head read to the last byte of its answer written.", []string{"app"}, nil)
	descInFlight = prometheus.NewDesc("ancm_http_requests_in_flight",
		"Requests routed to an app and not answered yet.", []string{"app"}, nil)
	descQueueWaiting = prometheus.NewDesc("ancm_http_queue_waiting",
		"Requests waiting for an app to start.", []string{"app"}, nil)
	descQueueRejected = prometheus.NewDesc("ancm_http_queue_rejected_total",
		"Requests answered 503 because the app's start queue was full.", []string{"app"}, nil)
	descRetries = prometheus.NewDesc("ancm_upstream_retries_total",
		"Requests sent a second time, to another instance or over a fresh connection.", []string{"app"}, nil)

	descClientClosed = prometheus.NewDesc("ancm_dataplane_client_closed_total",
		"Requests whose client went away before an answer (recorded as 499).", nil, nil)
	descBadFraming = prometheus.NewDesc("ancm_dataplane_bad_framing_total",
		"Requests refused with 400 for ambiguous framing.", nil, nil)
	descActivations = prometheus.NewDesc("ancm_dataplane_activations_total",
		"Activate calls to the control plane.", nil, nil)
	descEjections = prometheus.NewDesc("ancm_dataplane_ejections_total",
		"Passive ejections of instances.", nil, nil)
	descTLSErrors = prometheus.NewDesc("ancm_dataplane_tls_handshake_errors_total",
		"TLS handshakes that failed or timed out.", nil, nil)
	descRevision = prometheus.NewDesc("ancm_dataplane_table_revision",
		"Revision of the endpoint table in use.", nil, nil)
	descSynced = prometheus.NewDesc("ancm_dataplane_table_synced",
		"1 once an endpoint table from the control plane is in use.", nil, nil)
)

// Collector returns the data plane's metrics for a Prometheus registry.
// They are built at scrape time from the counters the request path keeps.
func (p *Proxy) Collector() prometheus.Collector { return collector{p} }

type collector struct{ p *Proxy }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descDuration, descInFlight, descQueueWaiting,
		descQueueRejected, descRetries, descClientClosed, descBadFraming, descActivations, descEjections,
		descTLSErrors, descRevision, descSynced} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	waiting := p.queueWaiting()
	for _, s := range p.allStats() {
		for i := range s.codes {
			if n := s.codes[i].Load(); n > 0 {
				ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), s.app, strconv.Itoa(i+100))
			}
		}
		var count uint64
		cum := make(map[float64]uint64, len(LatencyBuckets))
		for i := range s.buckets {
			count += s.buckets[i].Load()
			if i < len(LatencyBuckets) {
				cum[LatencyBuckets[i]] = count
			}
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, count, float64(s.sumNanos.Load())/1e9, cum, s.app)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(s.inFlight.Load()), s.app)
		if s != p.unrouted {
			ch <- prometheus.MustNewConstMetric(descQueueWaiting, prometheus.GaugeValue, float64(waiting[s.app]), s.app)
			ch <- prometheus.MustNewConstMetric(descQueueRejected, prometheus.CounterValue, float64(s.queueRejected.Load()), s.app)
			ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(s.retries.Load()), s.app)
		}
	}
	st := p.Stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(descClientClosed, st.ClientClosed)
	counter(descBadFraming, st.BadFraming)
	counter(descActivations, st.Activations)
	counter(descEjections, st.Ejections)
	counter(descTLSErrors, st.TLSHandshakeErrors)
	ch <- prometheus.MustNewConstMetric(descRevision, prometheus.GaugeValue, float64(st.Revision))
	synced := 0.0
	if st.Synced {
		synced = 1
	}
	ch <- prometheus.MustNewConstMetric(descSynced, prometheus.GaugeValue, synced)
}
