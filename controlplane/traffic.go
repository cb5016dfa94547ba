package controlplane

import (
	"context"
	"errors"
	"io"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// Traffic windows.
const (
	// TrafficWindow is how long reports are kept per data plane.
	TrafficWindow = 60 * time.Second
	// DefaultTrafficWindow is what GetTraffic sums without a window.
	DefaultTrafficWindow = 10 * time.Second
	// trafficFresh: a data plane whose last report is older does not count
	// towards in flight (it is gone or stuck).
	trafficFresh = 5 * time.Second
	// maxReportApps bounds the apps of one report.
	maxReportApps = 10000
)

// trafficStore keeps the recent traffic reports of every data plane, one
// series per report stream, and sums them over a window. Its clock is a
// parameter, so windows are tested without waiting.
type trafficStore struct {
	now func() time.Time

	mu      sync.Mutex
	next    uint64
	streams map[uint64]*trafficStream
}

type trafficStream struct {
	node    string
	samples []trafficSample // oldest first
	ended   bool
}

// trafficSample is one report, stamped with the control plane's clock
// (the data planes' clocks may differ from it and from each other).
type trafficSample struct {
	at     time.Time
	bounds []float64
	apps   map[appGen]*ancmv1.AppTraffic
}

type appGen struct {
	app        string
	generation uint64
}

func newTrafficStore(now func() time.Time) *trafficStore {
	return &trafficStore{now: now, streams: map[uint64]*trafficStream{}}
}

// open starts the series of a new report stream.
func (t *trafficStore) open() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	t.streams[t.next] = &trafficStream{}
	return t.next
}

// close ends a stream's series; its samples count until they age out.
func (t *trafficStore) close(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.streams[id]; s != nil {
		s.ended = true
	}
	t.expireLocked(t.now())
}

// add records a report of stream id.
func (t *trafficStore) add(id uint64, r *ancmv1.ReportTrafficRequest) {
	smp := trafficSample{at: t.now(), bounds: r.GetLatencyBounds(), apps: make(map[appGen]*ancmv1.AppTraffic, len(r.GetApps()))}
	for i, a := range r.GetApps() {
		if i == maxReportApps {
			break
		}
		smp.apps[appGen{a.GetApp(), a.GetGeneration()}] = a
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.streams[id]
	if s == nil {
		return
	}
	s.node = r.GetNode()
	if len(s.samples) == 0 && r.GetStarted() != nil && r.GetTime() != nil {
		// The first report of a stream: when the data plane started
		// counting recently, its counters were 0 then (on this clock).
		if age := r.GetTime().AsTime().Sub(r.GetStarted().AsTime()); age >= 0 && age < TrafficWindow {
			s.samples = append(s.samples, trafficSample{at: smp.at.Add(-age), apps: map[appGen]*ancmv1.AppTraffic{}})
		}
	}
	s.samples = append(s.samples, smp)
	t.expireLocked(smp.at)
}

// expireLocked drops samples older than the window, keeping one before it
// as the base of a rate, and streams that ended with nothing left.
func (t *trafficStore) expireLocked(now time.Time) {
	limit := now.Add(-TrafficWindow)
	for id, s := range t.streams {
		i := 0
		for i+1 < len(s.samples) && !s.samples[i+1].at.After(limit) {
			i++
		}
		s.samples = s.samples[i:]
		if s.ended && (len(s.samples) == 0 || s.samples[len(s.samples)-1].at.Before(limit)) {
			delete(t.streams, id)
		}
	}
}

// summary sums the streams' traffic over the window before now.
func (t *trafficStore) summary(window time.Duration) *ancmv1.GetTrafficResponse {
	now := t.now()
	from := now.Add(-window)
	type acc struct {
		sum     *ancmv1.AppTrafficSummary
		buckets []uint64
		bounds  []float64
	}
	byApp := map[appGen]*acc{}
	nodes := map[string]bool{}
	var span time.Duration
	t.mu.Lock()
	t.expireLocked(now)
	for _, s := range t.streams {
		if len(s.samples) == 0 || s.samples[len(s.samples)-1].at.Before(from) {
			continue
		}
		last := s.samples[len(s.samples)-1]
		// The base is the newest sample at or before the window's start,
		// else the oldest one in it.
		base := s.samples[0]
		for _, smp := range s.samples {
			if smp.at.After(from) {
				break
			}
			base = smp
		}
		nodes[s.node] = true
		elapsed := last.at.Sub(base.at)
		span = max(span, now.Sub(base.at))
		fresh := !s.ended && now.Sub(last.at) <= trafficFresh
		for k, cur := range last.apps {
			ac := byApp[k]
			if ac == nil {
				ac = &acc{sum: &ancmv1.AppTrafficSummary{App: k.app, Generation: k.generation}}
				byApp[k] = ac
			}
			if fresh {
				ac.sum.InFlight += cur.GetInFlight()
			}
			if elapsed <= 0 {
				continue // one report: no rate yet
			}
			prev := base.apps[k] // nil for an app new since: counted from 0
			d2 := delta(cur.GetStatus_2Xx(), prev.GetStatus_2Xx())
			d4 := delta(cur.GetStatus_4Xx(), prev.GetStatus_4Xx())
			d5 := delta(cur.GetStatus_5Xx(), prev.GetStatus_5Xx())
			n := delta(cur.GetStatus_1Xx(), prev.GetStatus_1Xx()) + d2 + delta(cur.GetStatus_3Xx(), prev.GetStatus_3Xx()) +
				d4 + d5 + delta(cur.GetClientClosed(), prev.GetClientClosed())
			ac.sum.Requests += n
			ac.sum.Status_2Xx += d2
			ac.sum.Status_4Xx += d4
			ac.sum.Status_5Xx += d5
			ac.sum.RequestsPerSecond += float64(n) / elapsed.Seconds()
			cb := cur.GetLatencyBuckets()
			if len(cb) != len(last.bounds)+1 {
				continue
			}
			if ac.buckets == nil {
				ac.buckets, ac.bounds = make([]uint64, len(cb)), last.bounds
			}
			if len(ac.buckets) != len(cb) {
				continue // another data plane with other buckets
			}
			pb := prev.GetLatencyBuckets()
			for i := range cb {
				var p uint64
				if len(pb) == len(cb) {
					p = pb[i]
				}
				ac.buckets[i] += delta(cb[i], p)
			}
		}
	}
	t.mu.Unlock()

	out := &ancmv1.GetTrafficResponse{WindowSeconds: min(span, window).Seconds()}
	for n := range nodes {
		out.Nodes = append(out.Nodes, n)
	}
	sort.Strings(out.Nodes)
	for k, ac := range byApp {
		if k.app == "" && ac.sum.Requests == 0 && ac.sum.InFlight == 0 {
			continue // no request went unmatched
		}
		if ac.sum.Requests > 0 {
			ac.sum.Share_5Xx = float64(ac.sum.Status_5Xx) / float64(ac.sum.Requests)
		}
		ac.sum.P50Seconds = quantile(0.5, ac.bounds, ac.buckets)
		ac.sum.P99Seconds = quantile(0.99, ac.bounds, ac.buckets)
		out.Apps = append(out.Apps, ac.sum)
	}
	sort.Slice(out.Apps, func(i, j int) bool {
		a, b := out.Apps[i], out.Apps[j]
		if a.App != b.App {
			return a.App < b.App
		}
		return a.Generation < b.Generation
	})
	return out
}

// delta is the growth of a counter between two reports; a counter that
// went down was reset (the app's route was made anew), and counts from 0.
func delta(cur, prev uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// quantile estimates the q-quantile from latency buckets (bucket i holds
// the requests up to bounds[i]; the last one, those above the last bound),
// interpolating linearly within a bucket as Prometheus's
// histogram_quantile does. It is 0 without requests.
func quantile(q float64, bounds []float64, buckets []uint64) float64 {
	var total uint64
	for _, n := range buckets {
		total += n
	}
	if total == 0 || len(buckets) != len(bounds)+1 {
		return 0
	}
	rank := q * float64(total)
	var cum uint64
	for i, n := range buckets {
		if float64(cum+n) >= rank && n > 0 {
			if i == len(bounds) {
				return bounds[len(bounds)-1]
			}
			lo := 0.0
			if i > 0 {
				lo = bounds[i-1]
			}
			return lo + (bounds[i]-lo)*(rank-float64(cum))/float64(n)
		}
		cum += n
	}
	return bounds[len(bounds)-1]
}

// TrafficService implements ancm.v1.TrafficService over a trafficStore: it
// only translates.
type TrafficService struct {
	ancmv1.UnimplementedTrafficServiceServer
	store *trafficStore
	apps  func() []*ancmv1.App
}

// NewTrafficService returns an empty TrafficService; apps (Supervisor.List)
// gives GetTraffic the apps' states and instances.
func NewTrafficService(apps func() []*ancmv1.App) *TrafficService {
	return &TrafficService{store: newTrafficStore(time.Now), apps: apps}
}

// Register registers the TrafficService on srv.
func (s *TrafficService) Register(srv grpc.ServiceRegistrar) {
	ancmv1.RegisterTrafficServiceServer(srv, s)
}

// ReportTraffic implements TrafficService.
func (s *TrafficService) ReportTraffic(stream grpc.ClientStreamingServer[ancmv1.ReportTrafficRequest, ancmv1.ReportTrafficResponse]) error {
	id := s.store.open()
	defer s.store.close(id)
	for {
		r, err := stream.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return stream.SendAndClose(&ancmv1.ReportTrafficResponse{})
		case err != nil:
			if errors.Is(stream.Context().Err(), context.Canceled) {
				return nil
			}
			return err
		}
		s.store.add(id, r)
	}
}

// GetTraffic implements TrafficService.
func (s *TrafficService) GetTraffic(_ context.Context, req *ancmv1.GetTrafficRequest) (*ancmv1.GetTrafficResponse, error) {
	w := time.Duration(req.GetWindowSeconds()) * time.Second
	if w <= 0 {
		w = DefaultTrafficWindow
	}
	out := s.store.summary(min(w, TrafficWindow))
	if s.apps != nil {
		withApps(out, s.apps())
	}
	return out, nil
}

// withApps adds each app's state and instances to its rows, and a row
// for each app without traffic.
func withApps(out *ancmv1.GetTrafficResponse, apps []*ancmv1.App) {
	seen := map[string]bool{}
	for _, a := range apps {
		name := a.GetSpec().GetName()
		var ready uint32
		for _, in := range a.GetInstances() {
			if in.GetState() == ancmv1.InstanceState_INSTANCE_STATE_READY {
				ready++
			}
		}
		n := uint32(len(a.GetInstances()))
		for _, row := range out.Apps {
			if row.App == name {
				row.State, row.InstancesReady, row.Instances = a.GetState(), ready, n
				seen[name] = true
			}
		}
		if !seen[name] {
			out.Apps = append(out.Apps, &ancmv1.AppTrafficSummary{App: name, State: a.GetState(), InstancesReady: ready, Instances: n})
		}
	}
	sort.SliceStable(out.Apps, func(i, j int) bool {
		a, b := out.Apps[i], out.Apps[j]
		if a.App != b.App {
			return a.App < b.App
		}
		return a.Generation < b.Generation
	})
}
