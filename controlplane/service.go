package controlplane

import (
	"context"
	"errors"
	"os"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

// Version and Commit are the daemon's version and VCS revision, reported by
// SystemService.GetInfo; main sets them from internal/buildinfo.
var (
	Version = "dev"
	Commit  = ""
)

// Service adapts a Supervisor to the ancm.v1 gRPC services. It only
// translates: requests are checked for the fields at fault, work is done by
// the Supervisor, errors are mapped to status codes once, in toStatus.
type Service struct {
	ancmv1.UnimplementedAppServiceServer
	ancmv1.UnimplementedEndpointServiceServer
	ancmv1.UnimplementedLogServiceServer
	ancmv1.UnimplementedEventServiceServer
	ancmv1.UnimplementedSystemServiceServer

	sup    *Supervisor
	listen string
}

// NewService returns the gRPC services of sup. listen is the data-plane
// listener of this daemon, reported by GetInfo ("" when none).
func NewService(sup *Supervisor, listen string) *Service {
	return &Service{sup: sup, listen: listen}
}

// Register registers every ancm.v1 service on srv.
func (s *Service) Register(srv *grpc.Server) {
	ancmv1.RegisterAppServiceServer(srv, s)
	ancmv1.RegisterEndpointServiceServer(srv, s)
	ancmv1.RegisterLogServiceServer(srv, s)
	ancmv1.RegisterEventServiceServer(srv, s)
	ancmv1.RegisterSystemServiceServer(srv, s)
}

// toStatus maps an error of the control plane to a gRPC status.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var fields []*errdetails.BadRequest_FieldViolation
	var fe *FieldError
	var cfes config.FieldErrors
	var cfe *config.FieldError
	switch {
	case errors.As(err, &cfes):
		for _, f := range cfes {
			fields = append(fields, &errdetails.BadRequest_FieldViolation{Field: f.Field, Description: f.Message})
		}
	case errors.As(err, &cfe):
		fields = append(fields, &errdetails.BadRequest_FieldViolation{Field: cfe.Field, Description: cfe.Message})
	case errors.As(err, &fe):
		fields = append(fields, &errdetails.BadRequest_FieldViolation{Field: fe.Field, Description: fe.Message})
	}
	var code codes.Code
	switch {
	case len(fields) > 0, errors.Is(err, ErrInvalid), errors.Is(err, config.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, ErrPrecondition):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrRolloutFailed), errors.Is(err, ErrStartFailed):
		code = codes.Aborted
	case errors.Is(err, ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	default:
		code = codes.Internal
	}
	st := status.New(code, err.Error())
	if len(fields) > 0 {
		if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: fields}); derr == nil {
			st = d
		}
	}
	return st.Err()
}

func required(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return toStatus(&FieldError{Field: field, Message: "required"})
	}
	return nil
}

// ApplyApp implements AppService.
func (s *Service) ApplyApp(ctx context.Context, req *ancmv1.ApplyAppRequest) (*ancmv1.ApplyAppResponse, error) {
	if req.GetApp() == nil {
		return nil, toStatus(&FieldError{Field: "app", Message: "required"})
	}
	c, err := config.AppFromProto(req.GetApp())
	if err != nil {
		return nil, toStatus(err)
	}
	change, app, ro, err := s.sup.Apply(ctx, c, req.GetDryRun())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ancmv1.ApplyAppResponse{App: app, Change: change, Rollout: ro}, nil
}

// GetApp implements AppService.
func (s *Service) GetApp(_ context.Context, req *ancmv1.GetAppRequest) (*ancmv1.GetAppResponse, error) {
	if err := required("name", req.GetName()); err != nil {
		return nil, err
	}
	app, err := s.sup.Get(req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ancmv1.GetAppResponse{App: app}, nil
}

// ListApps implements AppService.
func (s *Service) ListApps(context.Context, *ancmv1.ListAppsRequest) (*ancmv1.ListAppsResponse, error) {
	return &ancmv1.ListAppsResponse{Apps: s.sup.List()}, nil
}

// DeleteApp implements AppService.
func (s *Service) DeleteApp(ctx context.Context, req *ancmv1.DeleteAppRequest) (*ancmv1.DeleteAppResponse, error) {
	if err := required("name", req.GetName()); err != nil {
		return nil, err
	}
	app, err := s.sup.Delete(ctx, req.GetName(), req.GetDryRun())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ancmv1.DeleteAppResponse{App: app}, nil
}

// StartApp implements AppService.
func (s *Service) StartApp(ctx context.Context, req *ancmv1.StartAppRequest) (*ancmv1.StartAppResponse, error) {
	if err := required("name", req.GetName()); err != nil {
		return nil, err
	}
	app, err := s.sup.Start(ctx, req.GetName(), req.GetWait())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ancmv1.StartAppResponse{App: app}, nil
}

// StopApp implements AppService.
func (s *Service) StopApp(ctx context.Context, req *ancmv1.StopAppRequest) (*ancmv1.StopAppResponse, error) {
	if err := required("name", req.GetName()); err != nil {
		return nil, err
	}
	app, err := s.sup.Stop(ctx, req.GetName(), req.GetWait())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ancmv1.StopAppResponse{App: app}, nil
}

// RestartApp implements AppService.
func (s *Service) RestartApp(ctx context.Context, req *ancmv1.RestartAppRequest) (*ancmv1.RestartAppResponse, error) {
	if err := required("name", req.GetName()); err != nil {
		return nil, err
	}
	app, ro, err := s.sup.Restart(ctx, req.GetName(), req.GetWait())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ancmv1.RestartAppResponse{App: app, Rollout: ro}, nil
}

// GetAppHistory implements AppService.
func (s *Service) GetAppHistory(_ context.Context, req *ancmv1.GetAppHistoryRequest) (*ancmv1.GetAppHistoryResponse, error) {
	if err := required("name", req.GetName()); err != nil {
		return nil, err
	}
	gens, err := s.sup.History(req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ancmv1.GetAppHistoryResponse{Generations: gens}, nil
}

// RollbackApp implements AppService.
func (s *Service) RollbackApp(ctx context.Context, req *ancmv1.RollbackAppRequest) (*ancmv1.RollbackAppResponse, error) {
	if err := required("name", req.GetName()); err != nil {
		return nil, err
	}
	app, ro, err := s.sup.Rollback(ctx, req.GetName(), req.GetToGeneration())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ancmv1.RollbackAppResponse{App: app, Rollout: ro}, nil
}

// WatchEndpoints implements EndpointService.
func (s *Service) WatchEndpoints(req *ancmv1.WatchEndpointsRequest, stream grpc.ServerStreamingServer[ancmv1.WatchEndpointsResponse]) error {
	err := s.sup.WatchEndpoints(stream.Context(), req, stream.Send)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return toStatus(err)
}

// ConfirmEndpoints implements EndpointService.
func (s *Service) ConfirmEndpoints(_ context.Context, req *ancmv1.ConfirmEndpointsRequest) (*ancmv1.ConfirmEndpointsResponse, error) {
	if err := required("session", req.GetSession()); err != nil {
		return nil, err
	}
	if err := s.sup.ConfirmEndpoints(req); err != nil {
		return nil, toStatus(err)
	}
	return &ancmv1.ConfirmEndpointsResponse{}, nil
}

// Activate implements EndpointService.
func (s *Service) Activate(ctx context.Context, req *ancmv1.ActivateRequest) (*ancmv1.ActivateResponse, error) {
	if err := required("app", req.GetApp()); err != nil {
		return nil, err
	}
	resp, err := s.sup.Activate(ctx, req.GetApp())
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// TailLogs implements LogService.
func (s *Service) TailLogs(req *ancmv1.TailLogsRequest, stream grpc.ServerStreamingServer[ancmv1.TailLogsResponse]) error {
	if err := required("app", req.GetApp()); err != nil {
		return err
	}
	n := DefaultTail
	if req.Tail != nil {
		n = int(req.GetTail()) // 0: no old lines, only new ones with follow
	}
	n = min(n, MaxTail)
	err := s.sup.TailLogs(stream.Context(), req.GetApp(), req.Instance, n, req.GetFollow(), func(lines []*ancmv1.LogLine) error {
		return stream.Send(&ancmv1.TailLogsResponse{Lines: lines})
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return toStatus(err)
}

// WatchEvents implements EventService.
func (s *Service) WatchEvents(req *ancmv1.WatchEventsRequest, stream grpc.ServerStreamingServer[ancmv1.WatchEventsResponse]) error {
	err := s.sup.WatchEvents(stream.Context(), req.GetApp(), req.GetAfterSeq(), req.GetFollow(), func(e *ancmv1.Event) error {
		return stream.Send(&ancmv1.WatchEventsResponse{Event: e})
	})
	switch {
	case errors.Is(err, context.Canceled):
		return nil
	case errors.Is(err, ErrLagged):
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	return toStatus(err)
}

// GetInfo implements SystemService.
func (s *Service) GetInfo(context.Context, *ancmv1.GetInfoRequest) (*ancmv1.GetInfoResponse, error) {
	return &ancmv1.GetInfoResponse{
		Version:   Version,
		Commit:    Commit,
		Epoch:     s.sup.Epoch(),
		StartedAt: timestamppb.New(s.sup.StartedAt()),
		StateDir:  s.sup.StateDir(),
		Listen:    s.listen,
		Pid:       int32(os.Getpid()),
	}, nil
}
