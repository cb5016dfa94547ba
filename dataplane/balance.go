package dataplane

import "time"

// ejectTTL bounds a passive ejection. An ejection normally ends when the
// control plane publishes the endpoint ready again at a newer revision; the
// bound keeps a transient failure the control plane never saw from taking
// an instance out of rotation for good.
const ejectTTL = 30 * time.Second

// ejectAfterTimeouts is how many requests in a row may time out on an
// instance (no response head within request_timeout) before it is
// ejected as one that refuses connections is: a hung instance (stopped,
// deadlocked) then stops getting new requests.
const ejectAfterTimeouts = 3

// pick chooses the backend for a new request among the app's usable
// backends, skipping except: least outstanding requests first, ties broken
// round-robin. Ejected backends are used only when every other one is
// ejected too ("panic mode"), so that a stale ejection cannot turn a live
// app into a 502 generator. The chosen backend's outstanding count is
// incremented; the caller decrements it when the request is done.
func (a *app) pick(except *backend) *backend {
	n := len(a.usable)
	if n == 0 {
		return nil
	}
	if n == 1 {
		b := a.usable[0]
		if b == except {
			return nil
		}
		b.outstanding.Add(1)
		return b
	}
	start := int(a.rr.Add(1))
	var best, fallback *backend
	var bestLoad, fallbackLoad int64
	var now int64
	for i := 0; i < n; i++ {
		b := a.usable[(start+i)%n]
		if b == except {
			continue
		}
		load := b.outstanding.Load()
		if at := b.ejectedAt.Load(); at != 0 {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			if now-at < int64(ejectTTL) {
				if fallback == nil || load < fallbackLoad {
					fallback, fallbackLoad = b, load
				}
				continue
			}
		}
		if best == nil || load < bestLoad {
			best, bestLoad = b, load
		}
	}
	if best == nil {
		best = fallback
	}
	if best != nil {
		best.outstanding.Add(1)
	}
	return best
}

// eject takes a backend out of rotation after it refused or reset a
// connection, until the control plane republishes it (see ejectTTL).
// It reports whether this call did the ejecting.
func (p *Proxy) eject(a *app, b *backend) bool {
	now := time.Now().UnixNano()
	for {
		at := b.ejectedAt.Load()
		if at != 0 && now-at < int64(ejectTTL) {
			return false
		}
		b.ejectedRev.Store(a.revision)
		if b.ejectedAt.CompareAndSwap(at, now) {
			p.stats.ejections.Add(1)
			p.logger.Debug("endpoint ejected", "app", a.name, "instance", b.instance, "address", b.addr)
			return true
		}
	}
}
