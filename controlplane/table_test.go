package controlplane

import (
	"context"
	"sync"
	"testing"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func TestTableRevisions(t *testing.T) {
	tb := newRouteTable()
	r1 := tb.set(&ancmv1.AppRoute{App: "a", PathPrefix: "/"})
	if r1 != 1 {
		t.Fatalf("first set: rev %d, want 1", r1)
	}
	if r := tb.set(&ancmv1.AppRoute{App: "a", PathPrefix: "/"}); r != r1 {
		t.Errorf("unchanged route bumped the revision: %d -> %d", r1, r)
	}
	r2 := tb.set(&ancmv1.AppRoute{App: "b", PathPrefix: "/b"})
	r3 := tb.set(&ancmv1.AppRoute{App: "a", PathPrefix: "/", State: appRunning})
	tb.remove("b")
	tb.remove("b") // idempotent
	if got := tb.revision(); got != r3+1 {
		t.Errorf("revision after remove = %d, want %d", got, r3+1)
	}

	// A watcher at r2 gets only a's change and b's removal.
	resp, _, _ := tb.since(tb.epoch, r2)
	if resp.GetFull() || len(resp.GetApps()) != 1 || resp.GetApps()[0].GetApp() != "a" || len(resp.GetRemoved()) != 1 || resp.GetRemoved()[0] != "b" {
		t.Errorf("incremental from %d = %v", r2, resp)
	}
	// A current watcher gets nothing and waits.
	if resp, wait, _ := tb.since(tb.epoch, tb.revision()); resp != nil || wait == nil {
		t.Errorf("current watcher got %v", resp)
	}
	// Another epoch, or a revision from the future, gets the full table.
	for _, w := range []struct {
		epoch string
		rev   uint64
	}{{"other", 1}, {"", 0}, {tb.epoch, 99}} {
		resp, _, _ := tb.since(w.epoch, w.rev)
		if !resp.GetFull() || len(resp.GetApps()) != 1 {
			t.Errorf("since(%q, %d) = %v, want the full table with a", w.epoch, w.rev, resp)
		}
	}
}

func TestTableWatchFollowsAndEnds(t *testing.T) {
	tb := newRouteTable()
	tb.set(&ancmv1.AppRoute{App: "a"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []*ancmv1.WatchEndpointsResponse
	done := make(chan error, 1)
	go func() {
		done <- tb.watch(ctx, "", 0, func(r *ancmv1.WatchEndpointsResponse) error {
			mu.Lock()
			got = append(got, r)
			mu.Unlock()
			return nil
		})
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	waitUntil(t, time.Second, func() bool { return count() == 1 })
	tb.set(&ancmv1.AppRoute{App: "a", State: appRunning})
	waitUntil(t, time.Second, func() bool { return count() == 2 })
	mu.Lock()
	if !got[0].GetFull() || got[1].GetFull() || got[1].GetApps()[0].GetState() != appRunning {
		t.Errorf("watch sent %v", got)
	}
	mu.Unlock()
	tb.close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("watch ended with %v, want nil on close", err)
		}
	case <-time.After(time.Second):
		t.Fatal("watch did not end on close")
	}
}

func waitUntil(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
