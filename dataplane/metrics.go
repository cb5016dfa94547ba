package dataplane

import (
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"sync"
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

// Status codes with a counter of their own in every shard: the ones
// net/http names, and 499. Any other code is counted under a mutex
// (appStats.rare): apps seldom send one.
const nCodes = 80

var (
	codeSlot [600]uint8  // status -> slot+1; 0: none
	slotCode [nCodes]int // slot -> status
	nSlots   = func() int {
		n := 0
		for c := 100; c < 600 && n < nCodes; c++ {
			if http.StatusText(c) != "" || c == statusClientClosed {
				codeSlot[c] = uint8(n + 1)
				slotCode[n] = c
				n++
			}
		}
		return n
	}()
)

// nShards is how many shards each appStats has: a power of two, at least
// twice the cores (at most 64), so that requests served at once seldom
// share one.
var nShards = func() int {
	n := 1
	for n < 2*runtime.GOMAXPROCS(0) && n < 64 {
		n <<= 1
	}
	return n
}()

// statShard is one shard of an app's per-request counters. A request
// counts into the shard its connection's and its own number pick, so
// cores serving different requests seldom write to the same cache line.
type statShard struct {
	codes    [nCodes]atomic.Uint64
	buckets  [nBuckets]atomic.Uint64
	sumNanos atomic.Int64
	inFlight atomic.Int64
	_        [64]byte // keeps the next shard's counters off this one's last line
}

// appStats are the counters of one app (and generation), or of the
// requests no app matched. They are resolved once, when a route is
// compiled (compileApp), and carried over from one table to the next, so
// the request path only adds to atomics it already holds, in one shard:
// no label lookup, no lock. A Collector and the traffic reporter sum the
// shards.
type appStats struct {
	app        string
	generation uint64
	shards     []statShard

	retries       atomic.Uint64
	queueRejected atomic.Uint64

	mu   sync.Mutex
	rare map[int]uint64 // codes without a slot
}

func newAppStats(app string, generation uint64) *appStats {
	return &appStats{app: app, generation: generation, shards: make([]statShard, nShards)}
}

// shard returns the shard of client connection conn.
func (s *appStats) shard(conn uint64) *statShard {
	return &s.shards[conn&uint64(len(s.shards)-1)]
}

// done records an answered request: its status and how long it took from
// head read to last byte written.
func (s *appStats) done(sh *statShard, status int, d time.Duration) {
	if status >= 0 && status < len(codeSlot) && codeSlot[status] != 0 {
		sh.codes[codeSlot[status]-1].Add(1)
	} else {
		s.mu.Lock()
		if s.rare == nil {
			s.rare = map[int]uint64{}
		}
		s.rare[status]++
		s.mu.Unlock()
	}
	n := int64(d)
	i := 0
	for i < len(bucketNanos) && n > bucketNanos[i] {
		i++
	}
	sh.buckets[i].Add(1)
	sh.sumNanos.Add(n)
}

// codes returns the requests answered by status code.
func (s *appStats) codes() map[int]uint64 {
	out := map[int]uint64{}
	for i := range s.shards {
		sh := &s.shards[i]
		for slot := 0; slot < nSlots; slot++ {
			if n := sh.codes[slot].Load(); n > 0 {
				out[slotCode[slot]] += n
			}
		}
	}
	s.mu.Lock()
	for c, n := range s.rare {
		out[c] += n
	}
	s.mu.Unlock()
	return out
}

// classes returns the requests answered by status class: 1xx..5xx at
// index 1..5; index 0 is 499, the client gone before an answer.
func (s *appStats) classes() (c [6]uint64) {
	for code, n := range s.codes() {
		switch {
		case code == statusClientClosed:
			c[0] += n
		case code >= 100 && code < 600:
			c[code/100] += n
		}
	}
	return c
}

// bucketCounts returns the latency buckets, not cumulative, and the sum.
func (s *appStats) bucketCounts() ([]uint64, time.Duration) {
	out := make([]uint64, nBuckets)
	var sum int64
	for i := range s.shards {
		sh := &s.shards[i]
		for b := range sh.buckets {
			out[b] += sh.buckets[b].Load()
		}
		sum += sh.sumNanos.Load()
	}
	return out, time.Duration(sum)
}

// inFlight returns the requests routed and not answered yet.
func (s *appStats) inFlight() int64 {
	var n int64
	for i := range s.shards {
		n += s.shards[i].inFlight.Load()
	}
	return n
}

// count records a request answered before it was routed (a refused head,
// a redirect to https): in the unrouted stats when measuring, else in
// the global counters.
func (p *Proxy) count(conn uint64, status int) {
	if !p.measure {
		p.stats.count(status)
		return
	}
	p.unrouted.done(p.unrouted.shard(conn), status, 0)
}

// retire folds the request counts of stats that no table uses any more
// into the global counters, so that Stats stays monotonic.
func (p *Proxy) retire(old, nt *table) {
	for name, a := range old.apps {
		if a.stats == nil {
			continue
		}
		if na := nt.apps[name]; na != nil && na.stats == a.stats {
			continue
		}
		p.stats.add(a.stats.classes())
	}
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
// first six are the contract's (docs/operations.md, "Metrics").
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
		codes := s.codes()
		keys := make([]int, 0, len(codes))
		for c := range codes {
			keys = append(keys, c)
		}
		sort.Ints(keys)
		for _, c := range keys {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(codes[c]), s.app, strconv.Itoa(c))
		}
		buckets, sum := s.bucketCounts()
		var count uint64
		cum := make(map[float64]uint64, len(LatencyBuckets))
		for i, n := range buckets {
			count += n
			if i < len(LatencyBuckets) {
				cum[LatencyBuckets[i]] = count
			}
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, count, sum.Seconds(), cum, s.app)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(s.inFlight()), s.app)
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
