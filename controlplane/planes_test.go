package controlplane

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// A drain waits for every open session to confirm the revision and to
// finish its requests on the address; a session that goes away holds up
// nothing; one that never confirms holds it up to the timeout.
func TestPlanesDrain(t *testing.T) {
	p := newPlanes()
	const addr = "127.0.0.1:1"
	ctx := context.Background()
	if why := p.waitDrained(ctx, "e", 5, addr, time.Second); why != "drained" {
		t.Fatalf("no data plane: %s", why)
	}
	a, b := p.open("a"), p.open("b")
	done := make(chan string, 1)
	go func() { done <- p.waitDrained(ctx, "e", 5, addr, 10*time.Second) }()
	confirm := func(s string, rev uint64, inFlight uint32) {
		t.Helper()
		req := &ancmv1.ConfirmEndpointsRequest{Session: s, Epoch: "e", Revision: rev}
		if inFlight > 0 {
			req.Loads = []*ancmv1.EndpointLoad{{App: "x", Address: addr, InFlight: inFlight}}
		}
		if err := p.confirm(req); err != nil {
			t.Fatal(err)
		}
	}
	pending := func(what string) {
		t.Helper()
		select {
		case why := <-done:
			t.Fatalf("%s: drained already: %s", what, why)
		default:
		}
	}
	confirm(a, 5, 0)
	pending("b has not confirmed")
	confirm(b, 4, 0)
	pending("b is behind")
	confirm(b, 6, 2)
	pending("b has requests in flight")
	confirm(b, 6, 0)
	if why := <-done; why != "drained" {
		t.Fatalf("after both: %s", why)
	}

	// A session that is gone holds up nothing.
	go func() { done <- p.waitDrained(ctx, "e", 9, addr, 10*time.Second) }()
	confirm(a, 9, 0)
	pending("b is at 6")
	p.close(b)
	if why := <-done; why != "drained" {
		t.Fatalf("after b left: %s", why)
	}
	// One that never confirms: the timeout, with the reason.
	p.open("c")
	if why := p.waitDrained(ctx, "e", 9, addr, 20*time.Millisecond); !strings.Contains(why, "drain_timeout") || !strings.Contains(why, "data plane c") {
		t.Errorf("timeout: %s", why)
	}
	if err := p.confirm(&ancmv1.ConfirmEndpointsRequest{Session: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown session: %v", err)
	}
}
