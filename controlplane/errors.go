package controlplane

import "errors"

// Sentinel errors of the control plane. They are wrapped with context and
// mapped to gRPC codes once, in toStatus.
var (
	// ErrNotFound: no app of that name.
	ErrNotFound = errors.New("not found")
	// ErrExists: an app of that name exists where a new one was expected.
	ErrExists = errors.New("already exists")
	// ErrPrecondition: the app is not in a state that allows the request.
	ErrPrecondition = errors.New("failed precondition")
	// ErrInvalid: the request is malformed; wrapped with the field at fault.
	ErrInvalid = errors.New("invalid argument")
	// ErrClosed: the supervisor is shutting down.
	ErrClosed = errors.New("control plane is shutting down")
	// ErrStartFailed: a start that was waited for failed.
	ErrStartFailed = errors.New("start failed")
	// ErrRolloutFailed: a rollout failed and the app went back to the
	// previous generation.
	ErrRolloutFailed = errors.New("rollout failed")
	// ErrIllegalTransition: a state change that the state machine forbids.
	ErrIllegalTransition = errors.New("illegal state transition")
)

// FieldError is an invalid request field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap makes a FieldError match ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }
