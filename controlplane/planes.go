package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// planes tracks the data planes that follow the endpoint table: one
// session per open WatchEndpoints stream, with the revision the data plane
// last confirmed and its requests in flight on endpoints that take no new
// ones. An old instance is stopped only once every session has confirmed
// a table without it for new requests and has no request left on it.
type planes struct {
	mu       sync.Mutex
	sessions map[string]*session
	changed  chan struct{} // closed and replaced on every change
}

type session struct {
	node     string
	epoch    string
	revision uint64
	inFlight map[string]uint32 // address -> requests
}

func newPlanes() *planes {
	return &planes{sessions: map[string]*session{}, changed: make(chan struct{})}
}

func (p *planes) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// open registers a watch stream and returns its session id.
func (p *planes) open(node string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sessions[id] = &session{node: node}
	p.notifyLocked()
	return id
}

// close forgets a session whose stream ended: a data plane that is gone
// holds up no drain.
func (p *planes) close(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.sessions, id)
	p.notifyLocked()
}

// confirm records what a data plane reports.
func (p *planes) confirm(req *ancmv1.ConfirmEndpointsRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[req.GetSession()]
	if !ok {
		return fmt.Errorf("session %q: %w", req.GetSession(), ErrNotFound)
	}
	s.epoch, s.revision = req.GetEpoch(), req.GetRevision()
	s.inFlight = make(map[string]uint32, len(req.GetLoads()))
	for _, l := range req.GetLoads() {
		if l.GetInFlight() > 0 {
			s.inFlight[l.GetAddress()] += l.GetInFlight()
		}
	}
	p.notifyLocked()
	return nil
}

// drainedLocked reports whether every session has confirmed rev of epoch
// or later and has nothing in flight on addr.
func (p *planes) drainedLocked(epoch string, rev uint64, addr string) (bool, string) {
	for _, s := range p.sessions {
		if s.epoch != epoch || s.revision < rev {
			return false, fmt.Sprintf("data plane %s has confirmed revision %d, not %d", s.node, s.revision, rev)
		}
		if n := s.inFlight[addr]; n > 0 {
			return false, fmt.Sprintf("data plane %s has %d requests in flight", s.node, n)
		}
	}
	return true, ""
}

// waitDrained waits until addr is drained as of revision rev, timeout
// passes or ctx ends. It returns why it stopped waiting.
func (p *planes) waitDrained(ctx context.Context, epoch string, rev uint64, addr string, timeout time.Duration) string {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		p.mu.Lock()
		ok, why := p.drainedLocked(epoch, rev, addr)
		wait := p.changed
		p.mu.Unlock()
		if ok {
			return "drained"
		}
		select {
		case <-wait:
		case <-t.C:
			return fmt.Sprintf("drain_timeout (%s) passed: %s", timeout, why)
		case <-ctx.Done():
			return "stopping: " + ctx.Err().Error()
		}
	}
}
