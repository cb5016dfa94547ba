package controlplane

import (
	"errors"
	"testing"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func TestAppMoves(t *testing.T) {
	for _, tc := range []struct {
		from, to appState
		ok       bool
	}{
		{appIdle, appStarting, true},
		{appStarting, appRunning, true},
		{appRunning, appFailed, true},
		{appFailed, appIdle, true},
		{appRunning, appRunning, true},
		{appStopped, appRunning, false},
		{appIdle, appRunning, false},
		{appIdle, appStopping, false},
		{appOffline, appRunning, false},
		{appOffline, appFailed, false},
		{appStopped, appFailed, false},
	} {
		err := checkAppMove(tc.from, tc.to)
		if (err == nil) != tc.ok {
			t.Errorf("%s -> %s: err = %v, want ok=%v", stateName(tc.from), stateName(tc.to), err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrIllegalTransition) {
			t.Errorf("%s -> %s: error %v is not ErrIllegalTransition", tc.from, tc.to, err)
		}
	}
}

func TestInstanceMoves(t *testing.T) {
	for _, tc := range []struct {
		from, to instanceState
		ok       bool
	}{
		{ancmv1.InstanceState_INSTANCE_STATE_UNSPECIFIED, instStarting, true},
		{instStarting, instReady, true},
		{instReady, instDraining, true},
		{instDraining, instStopping, true},
		{instStopping, instExited, true},
		{instExited, instBackoff, true},
		{instBackoff, instStarting, true},
		{instExited, instReady, false},
		{instStopping, instReady, false},
		{instBackoff, instReady, false},
		{ancmv1.InstanceState_INSTANCE_STATE_UNSPECIFIED, instReady, false},
	} {
		if err := checkInstanceMove(tc.from, tc.to); (err == nil) != tc.ok {
			t.Errorf("%s -> %s: err = %v, want ok=%v", stateName(tc.from), stateName(tc.to), err, tc.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	if d := backoff(1); d != 0 {
		t.Errorf("first restart waits %s, want at once", d)
	}
	prevMax := time.Duration(0)
	for n := 2; n < 30; n++ {
		d := backoff(n)
		if d <= 0 || d > backoffCap+backoffCap/4 {
			t.Fatalf("backoff(%d) = %s, out of (0, cap+25%%]", n, d)
		}
		base := min(backoffBase<<min(n-2, 16), backoffCap)
		if d < base-base/4 || d > base+base/4 {
			t.Errorf("backoff(%d) = %s, want %s ±25%%", n, d, base)
		}
		prevMax = max(prevMax, d)
	}
	if prevMax < backoffCap-backoffCap/4 {
		t.Errorf("backoff never reached its cap: max %s", prevMax)
	}
}

func TestStateName(t *testing.T) {
	if got := stateName(appRunning); got != "RUNNING" {
		t.Errorf("stateName = %q", got)
	}
	if got := stateName(instBackoff); got != "BACKOFF" {
		t.Errorf("stateName = %q", got)
	}
}
