package main

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit codes. A failed RPC exits with the code of its gRPC status; errors
// found on the client side (a bad apply file, an app that failed to start
// with --wait) are given the status code the server would have used.
//
//	code  meaning                                  gRPC status
//	0     success                                  OK
//	1     any other error                          Unknown, Internal, Canceled, ...
//	2     usage error: bad flag, argument, --addr  -
//	3     no such app                              NotFound
//	4     invalid config or request                InvalidArgument
//	5     not possible in the current state, or    FailedPrecondition, AlreadyExists,
//	      a failed start or rollout                Aborted
//	6     daemon not reachable or too slow         Unavailable, DeadlineExceeded
//	7     not supported by this daemon             Unimplemented
//	8     not allowed                              PermissionDenied, Unauthenticated
//	130   interrupted (SIGINT, SIGTERM)            -
const (
	exitOK            = 0
	exitError         = 1
	exitUsage         = 2
	exitNotFound      = 3
	exitInvalid       = 4
	exitPrecondition  = 5
	exitUnavailable   = 6
	exitUnimplemented = 7
	exitDenied        = 8
	exitInterrupted   = 130
)

// exitCodeHelp is the table above for the root command's --help.
const exitCodeHelp = `Exit codes:
  0    success
  1    any other error (Unknown, Internal, ...)
  2    usage error: bad flag, argument or address
  3    no such app (NotFound)
  4    invalid config or request (InvalidArgument), also a bad apply file
  5    not possible in the current state (FailedPrecondition, AlreadyExists),
       also a start that failed with --wait, and a failed rollout (Aborted)
  6    daemon not reachable or too slow (Unavailable, DeadlineExceeded)
  7    not supported by this daemon (Unimplemented)
  8    not allowed (PermissionDenied, Unauthenticated)
  130  interrupted`

// usageError is a mistake in the command line rather than a failure of the
// daemon or the request.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{err: fmt.Errorf(format, args...)}
}

// codedError is an error found on the client side, given the status code
// the daemon would have answered with.
type codedError struct {
	code codes.Code
	err  error
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }

// errStreamEnded is a followed stream (logs -f, events -f) that the daemon
// ended: it does so only when it shuts down.
var errStreamEnded = codedError{
	code: codes.Unavailable,
	err:  errors.New("the daemon ended the stream: ancmd is shutting down or restarting"),
}

// exitCode maps an error to the process's exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	if ue := (usageError{}); errors.As(err, &ue) {
		return exitUsage
	}
	if ce := (codedError{}); errors.As(err, &ce) {
		return exitCodeOf(ce.code)
	}
	if s, ok := status.FromError(err); ok {
		return exitCodeOf(s.Code())
	}
	return exitError
}

// exitCodeOf maps a gRPC status code to an exit code.
func exitCodeOf(c codes.Code) int {
	switch c {
	case codes.OK:
		return exitOK
	case codes.NotFound:
		return exitNotFound
	case codes.InvalidArgument, codes.OutOfRange:
		return exitInvalid
	case codes.FailedPrecondition, codes.AlreadyExists, codes.Aborted:
		return exitPrecondition
	case codes.Unavailable, codes.DeadlineExceeded:
		return exitUnavailable
	case codes.Unimplemented:
		return exitUnimplemented
	case codes.PermissionDenied, codes.Unauthenticated:
		return exitDenied
	default:
		return exitError
	}
}

// errorMessage is the one line ancmctl prints for err, without the
// "ancmctl: " prefix. addr is the control address that was used, for the
// hint when the daemon cannot be reached; cmdPath names the command for the
// hint on a usage error.
func errorMessage(err error, addr, cmdPath string) string {
	msg := err.Error()
	if ue := (usageError{}); errors.As(err, &ue) {
		msg += fmt.Sprintf(" (see '%s --help')", cmdPath)
	} else if s, ok := status.FromError(err); ok {
		msg = s.Message()
		for _, d := range s.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok {
				for _, v := range br.GetFieldViolations() {
					fv := v.GetField() + ": " + v.GetDescription()
					if !strings.Contains(msg, fv) {
						msg += "; " + fv
					}
				}
			}
		}
		switch s.Code() {
		case codes.Unavailable:
			if tlsFailure(msg) {
				msg += fmt.Sprintf(" (TLS handshake with %s failed: check --cacert, --cert and --key against the daemon's control_tls)", addr)
			} else {
				msg += fmt.Sprintf(" (is ancmd running? tried %s)", addr)
			}
		case codes.DeadlineExceeded:
			msg += fmt.Sprintf(" (no answer from %s in time; see --timeout)", addr)
		}
	}
	return oneLine(msg)
}

// tlsFailure reports whether a transport error comes from the TLS
// handshake rather than from a daemon that is not there. A server that
// drops a client without a certificate can also show as a broken pipe; that
// case keeps the generic hint.
func tlsFailure(msg string) bool {
	for _, s := range []string{"tls:", "authentication handshake failed", "x509:", "certificate"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// oneLine folds a multi-line message into one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "\n") {
		return s
	}
	lines := strings.Split(s, "\n")
	out := lines[:0]
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}
