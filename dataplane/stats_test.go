package dataplane

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAccessLogAndStats(t *testing.T) {
	var buf syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	b := echoBackend(t, "b")
	h := newHarness(t, Options{Logger: logger, AccessLog: true}, running("app", "/app", nil, ready(7, b, "tok")))
	h.get("", "/app/x")
	h.get("", "/nothing")
	// A request is counted and logged just after its answer is written, so
	// the client may read the answer first.
	accessLines := func() []string {
		var lines []string
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, "dataplane.access") {
				lines = append(lines, l)
			}
		}
		return lines
	}
	waitFor(t, "2 requests counted and logged", func() bool {
		return h.p.Stats().Requests == 2 && len(accessLines()) == 2
	})
	s := h.p.Stats()
	if s.Requests != 2 || s.Status2xx != 1 || s.Status4xx != 1 || !s.Synced || s.Revision != 1 {
		t.Errorf("stats: %+v", s)
	}
	lines := accessLines()
	for _, want := range []string{"app=app", "instance=7", "status=200", "duration=", "path=/app/x"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("access line lacks %q: %s", want, lines[0])
		}
	}
	if !strings.Contains(lines[1], "status=404") {
		t.Errorf("404 access line: %s", lines[1])
	}
}

func TestNoInfoPerRequestWithoutAccessLog(t *testing.T) {
	var buf syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	b := echoBackend(t, "b")
	h := newHarness(t, Options{Logger: logger}, running("app", "/", nil, ready(0, b, "tok")))
	before := strings.Count(buf.String(), "\n")
	for range 5 {
		h.get("", "/")
	}
	h.get("", "/missing-is-still-routed")
	if after := strings.Count(buf.String(), "\n"); after != before {
		t.Errorf("requests logged at info without the access log:\n%s", buf.String())
	}
}
