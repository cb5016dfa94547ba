package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"
)

// probeClient is the HTTP client of readiness and health checks: no
// redirects followed (3xx counts as healthy), no keep-alive held open.
var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// prober checks an instance's readiness: its port accepts TCP and, with a
// health path, that path answers 2xx or 3xx.
type prober struct {
	port   int
	token  string
	path   string
	compat string
}

// waitReady probes until the instance is ready, ctx ends, or the process
// exits (then it returns the exit status and true). last is the answer of
// the last probe that failed, for the reason of a start that never got
// ready.
func (p *prober) waitReady(ctx context.Context, exitCh <-chan exitStatus) (st exitStatus, exited bool, last error) {
	// Probe often at first: most apps listen within milliseconds, and the
	// first request is waiting.
	delay := time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case st := <-exitCh:
			return st, true, last
		case <-ctx.Done():
			return exitStatus{}, false, last
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := p.check(pctx)
		cancel()
		if err == nil {
			return exitStatus{}, false, nil
		}
		if ctx.Err() == nil {
			last = err
		}
		t.Reset(delay)
		delay = min(delay*3/2, 200*time.Millisecond)
	}
}

// check runs one probe.
func (p *prober) check(ctx context.Context) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
	if p.path == "" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("ANCM-Token", p.token)
	if p.compat == "aspnetcore" {
		req.Header.Set("MS-ASPNETCORE-TOKEN", p.token)
	}
	req.Header.Set("User-Agent", "ancm-health-check")
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("health.path %s answered %d", p.path, resp.StatusCode)
	}
	return nil
}

// readinessAnswer says in a few words what a failed probe got: "connection
// refused", or "health.path /healthz answered 404".
func readinessAnswer(err error) string {
	switch {
	case err == nil:
		return "no probe answered yet"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "no answer within the probe's timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no answer within the probe's timeout"
	}
	return err.Error()
}
