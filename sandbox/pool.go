package sandbox

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// pool keeps at most one Standby per instance name, for the next start of
// an idle instance.
type pool struct {
	mu      sync.Mutex
	ready   map[string]*Standby
	warming map[string]chan struct{} // closed when that warm has ended
	seq     uint64
	closed  bool
}

// needsTrampoline reports whether a start for spec goes through the
// trampoline, the cost a standby saves; a start by clone3 alone has
// nothing to save.
func (m *Manager) needsTrampoline(spec Spec) bool {
	l := spec.Limits
	if l.OpenFiles > 0 {
		return true
	}
	d, ok := m.drv.(*v1Driver)
	return ok && (d.unified == "" || l.Memory > 0 || l.CPU > 0 || l.Pids > 0)
}

// Prewarm starts, in the background, a standby for the next start of the
// instance spec names, unless one is there or being made, or a start for
// spec costs nothing to save. The standby's cgroup has a name of its own
// (NAME.wN), so it never meets a live instance's.
func (m *Manager) Prewarm(spec Spec) {
	if !m.needsTrampoline(spec) {
		return
	}
	p := &m.pool
	p.mu.Lock()
	if p.closed || p.ready[spec.Name] != nil || p.warming[spec.Name] != nil {
		p.mu.Unlock()
		return
	}
	if p.warming == nil {
		p.warming, p.ready = map[string]chan struct{}{}, map[string]*Standby{}
	}
	done := make(chan struct{})
	p.warming[spec.Name] = done
	p.seq++
	ws := spec
	ws.Name = fmt.Sprintf("%s.w%d", spec.Name, p.seq)
	p.mu.Unlock()
	go func() {
		sb, err := m.Warm(ws)
		if err != nil {
			m.log.Warn("no standby", "instance", spec.Name, "error", err)
		}
		p.mu.Lock()
		delete(p.warming, spec.Name)
		keep := err == nil && !p.closed
		if keep {
			sb.spec = spec
			p.ready[spec.Name] = sb
		}
		close(done)
		p.mu.Unlock()
		if err == nil && !keep {
			sb.Discard()
		}
	}()
}

// take returns the standby for spec's instance, waiting for one being
// made; one made for another user or other limits is discarded.
func (m *Manager) take(spec Spec) *Standby {
	p := &m.pool
	p.mu.Lock()
	if ch := p.warming[spec.Name]; ch != nil {
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
	}
	sb := p.ready[spec.Name]
	delete(p.ready, spec.Name)
	p.mu.Unlock()
	if sb == nil {
		return nil
	}
	if sb.spec.User != spec.User || sb.spec.Group != spec.Group || sb.spec.Limits != spec.Limits {
		sb.Discard()
		return nil
	}
	return sb
}

// DiscardStandbys discards the standbys of the instances whose names
// start with prefix ("APP." for an app's), when the app goes.
func (m *Manager) DiscardStandbys(prefix string) {
	p := &m.pool
	p.mu.Lock()
	var gone []*Standby
	for name, sb := range p.ready {
		if strings.HasPrefix(name, prefix) {
			gone = append(gone, sb)
			delete(p.ready, name)
		}
	}
	p.mu.Unlock()
	for _, sb := range gone {
		sb.Discard()
	}
}

// closePool discards every standby; warms still running discard theirs.
func (m *Manager) closePool() {
	p := &m.pool
	p.mu.Lock()
	p.closed = true
	var all []*Standby
	for _, sb := range p.ready {
		all = append(all, sb)
	}
	p.ready = nil
	var warming []chan struct{}
	for _, ch := range p.warming {
		warming = append(warming, ch)
	}
	p.mu.Unlock()
	for _, sb := range all {
		sb.Discard()
	}
	for _, ch := range warming {
		<-ch
	}
}

// Start starts cmd: through the standby Prepare found for it, or else
// with start (the caller's own way, cmd rewritten by Prepare).
func (b *Box) Start(cmd *exec.Cmd, start func(*exec.Cmd) error) error {
	if b != nil && b.standby != nil {
		sb := b.standby
		b.standby = nil
		_, err := sb.Start(cmd)
		return err
	}
	return start(cmd)
}
