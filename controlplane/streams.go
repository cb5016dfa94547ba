package controlplane

import (
	"context"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// WatchEndpoints sends the endpoint table to a data plane, then every
// change, until ctx ends or the supervisor shuts down. With confirms set,
// the stream is a session of the data plane that drains wait for: every
// message names it, and the data plane confirms the revisions it applies
// with ConfirmEndpoints under that name.
func (s *Supervisor) WatchEndpoints(ctx context.Context, req *ancmv1.WatchEndpointsRequest, send func(*ancmv1.WatchEndpointsResponse) error) error {
	id := ""
	if req.GetConfirms() {
		id = s.planes.open(req.GetNode())
		defer s.planes.close(id)
		s.log.Debug("data plane watching", "node", req.GetNode(), "session", id)
	}
	return s.table.watch(ctx, req.GetEpoch(), req.GetRevision(), func(m *ancmv1.WatchEndpointsResponse) error {
		m.Session = id // each watcher gets a message of its own (routeTable.since)
		return send(m)
	})
}

// ConfirmEndpoints records the revision a data plane has applied and its
// requests in flight on endpoints that take no new ones.
func (s *Supervisor) ConfirmEndpoints(req *ancmv1.ConfirmEndpointsRequest) error {
	return s.planes.confirm(req)
}

// TailLogs sends an app's captured output: the last n lines (of one
// instance, or of all when instance is nil), then with follow every new
// line until ctx ends or the supervisor shuts down.
func (s *Supervisor) TailLogs(ctx context.Context, name string, instance *uint32, n int, follow bool, send func([]*ancmv1.LogLine) error) error {
	a, err := s.get(name)
	if err != nil {
		return err
	}
	sn := a.snap.Load()
	if instance != nil && int(*instance) >= sn.spec.Processes {
		return &FieldError{Field: "instance", Message: "no such instance"}
	}
	return sn.logs.follow(ctx, instance, n, follow, s.Closed(), send)
}

// WatchEvents sends the kept events of an app ("" for all) after seq
// after, then with follow every new one.
func (s *Supervisor) WatchEvents(ctx context.Context, app string, after uint64, follow bool, send func(*ancmv1.Event) error) error {
	if app != "" {
		if _, err := s.get(app); err != nil {
			return err
		}
	}
	return s.events.watch(ctx, app, after, follow, send)
}
