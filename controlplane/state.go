package controlplane

import (
	"fmt"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// The state machines of the contract (docs/operations.md) use the API's
// enums as their states, so what is reported is exactly what is checked.
type (
	appState      = ancmv1.AppState
	instanceState = ancmv1.InstanceState
)

const (
	appIdle     = ancmv1.AppState_APP_STATE_IDLE
	appStarting = ancmv1.AppState_APP_STATE_STARTING
	appRunning  = ancmv1.AppState_APP_STATE_RUNNING
	appStopping = ancmv1.AppState_APP_STATE_STOPPING
	appStopped  = ancmv1.AppState_APP_STATE_STOPPED
	appFailed   = ancmv1.AppState_APP_STATE_FAILED
	appOffline  = ancmv1.AppState_APP_STATE_OFFLINE

	instStarting = ancmv1.InstanceState_INSTANCE_STATE_STARTING
	instReady    = ancmv1.InstanceState_INSTANCE_STATE_READY
	instDraining = ancmv1.InstanceState_INSTANCE_STATE_DRAINING
	instStopping = ancmv1.InstanceState_INSTANCE_STATE_STOPPING
	instExited   = ancmv1.InstanceState_INSTANCE_STATE_EXITED
	instBackoff  = ancmv1.InstanceState_INSTANCE_STATE_BACKOFF
)

// appMoves lists the legal moves of an app. An app's state follows from its
// flags and its instances (see app.derive); this table is the check that the
// derivation never makes a move the design does not allow.
var appMoves = map[appState][]appState{
	// Unspecified is the state of an app that was just created.
	ancmv1.AppState_APP_STATE_UNSPECIFIED: {appIdle, appStarting, appStopped, appOffline},
	appIdle:                               {appStarting, appStopped, appOffline, appFailed},
	appStarting:                           {appRunning, appStopping, appStopped, appFailed, appOffline, appIdle},
	appRunning:                            {appStarting, appStopping, appFailed, appOffline, appIdle},
	appStopping:                           {appStopped, appIdle, appStarting, appOffline, appFailed},
	appStopped:                            {appStarting, appIdle, appOffline, appStopping},
	appFailed:                             {appIdle, appStarting, appStopping, appStopped, appOffline},
	appOffline:                            {appIdle, appStarting, appStopping, appStopped},
}

// instanceMoves lists the legal moves of an instance.
var instanceMoves = map[instanceState][]instanceState{
	// Unspecified is the state of an instance that never ran.
	ancmv1.InstanceState_INSTANCE_STATE_UNSPECIFIED: {instStarting},
	instStarting: {instReady, instStopping, instExited, instBackoff},
	instReady:    {instDraining, instStopping, instExited, instBackoff, instStarting},
	instDraining: {instStopping, instExited, instReady},
	instStopping: {instExited},
	instExited:   {instStarting, instBackoff},
	instBackoff:  {instStarting, instExited},
}

func legal[S comparable](moves map[S][]S, from, to S) bool {
	if from == to {
		return true
	}
	for _, s := range moves[from] {
		if s == to {
			return true
		}
	}
	return false
}

// checkAppMove returns ErrIllegalTransition for a move the app state machine
// forbids.
func checkAppMove(from, to appState) error {
	if !legal(appMoves, from, to) {
		return fmt.Errorf("app %s -> %s: %w", from, to, ErrIllegalTransition)
	}
	return nil
}

// checkInstanceMove returns ErrIllegalTransition for a move the instance
// state machine forbids.
func checkInstanceMove(from, to instanceState) error {
	if !legal(instanceMoves, from, to) {
		return fmt.Errorf("instance %s -> %s: %w", from, to, ErrIllegalTransition)
	}
	return nil
}

// stateName is the short name of a state as the CLI and logs show it:
// "RUNNING" for APP_STATE_RUNNING.
func stateName[S interface{ String() string }](s S) string {
	n := s.String()
	for _, p := range []string{"APP_STATE_", "INSTANCE_STATE_"} {
		if len(n) > len(p) && n[:len(p)] == p {
			return n[len(p):]
		}
	}
	return n
}
