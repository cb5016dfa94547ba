package dataplane

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// reportBackoff is the wait before a broken report stream is opened again;
// reportBackoffUnimplemented, when the control plane has no TrafficService.
const (
	reportBackoff              = 2 * time.Second
	reportBackoffUnimplemented = 30 * time.Second
)

// report sends the traffic counters to the control plane every
// reportEvery over one ReportTraffic stream, opened again when it breaks,
// until ctx ends. Each report has the counters since New, so one that is
// lost costs nothing but its second.
func (p *Proxy) report(ctx context.Context) {
	for {
		err := p.reportStream(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := reportBackoff
		if status.Code(err) == codes.Unimplemented {
			wait = reportBackoffUnimplemented
		}
		p.logger.Debug("traffic report stream broken", "error", err, "backoff", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (p *Proxy) reportStream(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := p.traffic.ReportTraffic(ctx)
	if err != nil {
		return err
	}
	tick := time.NewTicker(p.reportEvery)
	defer tick.Stop()
	for {
		if err := stream.Send(p.trafficReport()); err != nil {
			_, rerr := stream.CloseAndRecv() // the status the server ended with
			if rerr != nil {
				return rerr
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// trafficReport takes the counters of every app of the current table.
func (p *Proxy) trafficReport() *ancmv1.ReportTrafficRequest {
	all := p.allStats()
	r := &ancmv1.ReportTrafficRequest{Node: p.node, Time: timestamppb.Now(), Started: timestamppb.New(p.started), LatencyBounds: LatencyBuckets,
		Apps: make([]*ancmv1.AppTraffic, 0, len(all))}
	for _, s := range all {
		c := s.classes()
		buckets, sum := s.bucketCounts()
		r.Apps = append(r.Apps, &ancmv1.AppTraffic{
			App: s.app, Generation: s.generation,
			Status_1Xx: c[1], Status_2Xx: c[2], Status_3Xx: c[3], Status_4Xx: c[4], Status_5Xx: c[5], ClientClosed: c[0],
			LatencyBuckets: buckets, LatencySumSeconds: sum.Seconds(), InFlight: s.inFlight(),
		})
	}
	return r
}
