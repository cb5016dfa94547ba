package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

// Two apps that claim the same route, applied at the same moment: exactly
// one is accepted, every round.
func TestConflictingRoutesAppliedConcurrently(t *testing.T) {
	sup, err := New(Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sup.Shutdown(context.Background()) })
	if err := sup.Load(nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for round := range 300 {
		prefix := fmt.Sprintf("/r%d", round)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for k := range 2 {
			spec, err := config.AppFromProto(helperSpec(fmt.Sprintf("r%d-%d", round, k), prefix))
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, _, errs[k] = sup.Apply(ctx, spec, false)
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrInvalid):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d of 2 conflicting applies accepted (%v)", round, ok, errs)
		}
	}
}

// Turning an offline file on and off through config changes, the way
// SIGHUP does, leaves the app responsive: a stop afterwards completes
// within its deadline (it used to deadlock on a lock taken twice).
func TestOfflineFileToggledByReloadThenStop(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "down.htm"), []byte("down"), 0o644); err != nil {
		t.Fatal(err)
	}
	sup, err := New(Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sup.Shutdown(context.Background()) })
	base, err := config.AppFromProto(helperSpec("site", "/"))
	if err != nil {
		t.Fatal(err)
	}
	base.Dir, base.Start, base.OfflineFile = dir, config.StartEager, ""
	if err := sup.Load([]config.App{base}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitApp(t, sup, "site", ancmv1.AppState_APP_STATE_RUNNING)
	for range 3 {
		on := base
		on.OfflineFile = "down.htm"
		if err := sup.Reload(ctx, []config.App{on}); err != nil {
			t.Fatal(err)
		}
		if a, _ := sup.Get("site"); a.GetState() != ancmv1.AppState_APP_STATE_OFFLINE {
			t.Fatalf("offline_file set to an existing file: %s", a.GetState())
		}
		if err := sup.Reload(ctx, []config.App{base}); err != nil {
			t.Fatal(err)
		}
		waitApp(t, sup, "site", ancmv1.AppState_APP_STATE_RUNNING)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	a, err := sup.Stop(sctx, "site", true)
	if err != nil {
		t.Fatalf("stop after the offline toggles: %v", err)
	}
	if a.GetState() != ancmv1.AppState_APP_STATE_STOPPED {
		t.Errorf("after stop: %s", a.GetState())
	}
}

func waitApp(t *testing.T, sup *Supervisor, name string, want ancmv1.AppState) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, err := sup.Get(name)
		if err == nil && a.GetState() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s, want %s", name, a.GetState(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Operators racing each other on one app (start, stop, restart, apply,
// activate, get) leave it answering, and the supervisor shuts down within
// its deadline: nothing is wedged.
func TestConcurrentOperationsThenShutdown(t *testing.T) {
	sup, err := New(Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Load(nil); err != nil {
		t.Fatal(err)
	}
	base, err := config.AppFromProto(helperSpec("busy", "/"))
	if err != nil {
		t.Fatal(err)
	}
	base.Processes = 2
	base.Rollout.MinReady = 0
	base.ShutdownTimeout = 2 * time.Second
	ctx := context.Background()
	if _, _, _, err := sup.Apply(ctx, base, false); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 12 {
				octx, cancel := context.WithTimeout(ctx, 10*time.Second)
				var err error
				switch (g + k) % 6 {
				case 0:
					_, err = sup.Start(octx, "busy", true)
				case 1:
					_, err = sup.Stop(octx, "busy", k%2 == 0)
				case 2:
					_, _, err = sup.Restart(octx, "busy", true)
				case 3:
					c := base
					c.Env = map[string]string{"ANCM_CP_TEST_APP": "1", "N": fmt.Sprint(g, k)}
					_, _, _, err = sup.Apply(octx, c, false)
				case 4:
					_, err = sup.Activate(octx, "busy")
				case 5:
					_, err = sup.Get("busy")
				}
				cancel()
				if err != nil && !errors.Is(err, ErrPrecondition) && !errors.Is(err, ErrStartFailed) && !errors.Is(err, ErrRolloutFailed) {
					t.Errorf("goroutine %d op %d: %v", g, k, err)
				}
			}
		}()
	}
	wg.Wait()
	// Still answering: a start and a stop work.
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if a, err := sup.Start(sctx, "busy", true); err != nil || a.GetState() != ancmv1.AppState_APP_STATE_RUNNING {
		t.Fatalf("start after the race: %v %v", a.GetState(), err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	if err := sup.Shutdown(dctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
