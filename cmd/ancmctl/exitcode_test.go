package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func jsonUnmarshal(b []byte, m proto.Message) error { return protojson.Unmarshal(b, m) }

func TestExitCodeOf(t *testing.T) {
	tests := []struct {
		code codes.Code
		want int
	}{
		{codes.OK, 0},
		{codes.Unknown, 1},
		{codes.Internal, 1},
		{codes.Canceled, 1},
		{codes.DataLoss, 1},
		{codes.ResourceExhausted, 1},
		{codes.NotFound, 3},
		{codes.InvalidArgument, 4},
		{codes.OutOfRange, 4},
		{codes.FailedPrecondition, 5},
		{codes.AlreadyExists, 5},
		{codes.Aborted, 5},
		{codes.Unavailable, 6},
		{codes.DeadlineExceeded, 6},
		{codes.Unimplemented, 7},
		{codes.PermissionDenied, 8},
		{codes.Unauthenticated, 8},
	}
	for _, tt := range tests {
		if got := exitCodeOf(tt.code); got != tt.want {
			t.Errorf("exitCodeOf(%s) = %d, want %d", tt.code, got, tt.want)
		}
		if tt.code == codes.OK {
			continue
		}
		if got := exitCode(status.Error(tt.code, "x")); got != tt.want {
			t.Errorf("exitCode(status %s) = %d, want %d", tt.code, got, tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"plain", errors.New("boom"), 1},
		{"usage", usageErrorf("missing APP"), 2},
		{"wrapped usage", fmt.Errorf("x: %w", usageErrorf("y")), 2},
		{"client-side invalid", codedError{code: codes.InvalidArgument, err: errors.New("bad file")}, 4},
		{"wrapped status", fmt.Errorf("app: %w", status.Error(codes.NotFound, "no")), 3},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("%s: exitCode = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	const addr = "unix:///run/ancm.sock"
	bad, err := status.New(codes.InvalidArgument, "invalid app").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "app.processes", Description: "must be between 1 and 100"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"status", status.Error(codes.NotFound, `app "x" not found`), `app "x" not found`},
		{"unavailable", status.Error(codes.Unavailable, "connection refused"),
			"connection refused (is ancmd running? tried unix:///run/ancm.sock)"},
		{"deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
			"context deadline exceeded (no answer from unix:///run/ancm.sock in time; see --timeout)"},
		{"field violations", bad.Err(), "invalid app; app.processes: must be between 1 and 100"},
		{"usage", usageErrorf("missing APP"), "missing APP (see 'ancmctl get --help')"},
		{"multi-line", errors.New("a\n\n  b\n"), "a; b"},
	}
	for _, tt := range tests {
		got := errorMessage(tt.err, addr, "ancmctl get")
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
		if strings.Contains(got, "\n") {
			t.Errorf("%s: message has a newline: %q", tt.name, got)
		}
	}
}
