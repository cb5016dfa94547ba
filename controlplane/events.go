package controlplane

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

const (
	// eventHistory is how many events are kept for WatchEvents.
	eventHistory = 1000
	// eventBuffer is how far a follower may fall behind before it is cut off.
	eventBuffer = 256
)

// ErrLagged ends a follower that fell too far behind the events.
var ErrLagged = errors.New("event stream fell behind; watch again")

// eventBus keeps the recent lifecycle events and fans new ones out to
// followers. Publishing never blocks: a follower that does not keep up is
// cut off with ErrLagged.
type eventBus struct {
	mu      sync.Mutex
	seq     uint64
	history []*ancmv1.Event // ring, oldest first once full
	next    int
	subs    map[*eventSub]struct{}
	closed  bool
}

type eventSub struct {
	app    string
	ch     chan *ancmv1.Event
	lagged bool
}

func newEventBus() *eventBus {
	return &eventBus{subs: make(map[*eventSub]struct{})}
}

// publish stamps an event with its sequence number and time and records it.
func (b *eventBus) publish(e *ancmv1.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.seq++
	e.Seq = b.seq
	if e.Time == nil {
		e.Time = timestamppb.New(time.Now())
	}
	if len(b.history) < eventHistory {
		b.history = append(b.history, e)
	} else {
		b.history[b.next] = e
		b.next = (b.next + 1) % eventHistory
	}
	for s := range b.subs {
		if s.app != "" && s.app != e.GetApp() {
			continue
		}
		select {
		case s.ch <- e:
		default:
			s.lagged = true
			close(s.ch)
			delete(b.subs, s)
		}
	}
}

// recent returns the kept events of app ("" for all) with seq > after.
func (b *eventBus) recentLocked(app string, after uint64) []*ancmv1.Event {
	var out []*ancmv1.Event
	n := len(b.history)
	for i := 0; i < n; i++ {
		e := b.history[(b.next+i)%n]
		if e.GetSeq() > after && (app == "" || e.GetApp() == app) {
			out = append(out, e)
		}
	}
	return out
}

// watch sends the kept events, then with follow every new one until ctx
// ends or the bus closes.
func (b *eventBus) watch(ctx context.Context, app string, after uint64, follow bool, send func(*ancmv1.Event) error) error {
	b.mu.Lock()
	past := b.recentLocked(app, after)
	var sub *eventSub
	if follow && !b.closed {
		sub = &eventSub{app: app, ch: make(chan *ancmv1.Event, eventBuffer)}
		b.subs[sub] = struct{}{}
	}
	b.mu.Unlock()
	if sub != nil {
		defer b.unsubscribe(sub)
	}
	for _, e := range past {
		if err := send(e); err != nil {
			return err
		}
	}
	if sub == nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-sub.ch:
			if !ok {
				b.mu.Lock()
				lagged := sub.lagged
				b.mu.Unlock()
				if lagged {
					return ErrLagged
				}
				return nil
			}
			if err := send(e); err != nil {
				return err
			}
		}
	}
}

func (b *eventBus) unsubscribe(s *eventSub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.ch)
	}
}

// close ends every follower.
func (b *eventBus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		delete(b.subs, s)
		close(s.ch)
	}
}

// DaemonEvent records an event of the daemon itself rather than of an app
// (app is empty), such as certificates that failed to reload.
func (s *Supervisor) DaemonEvent(t ancmv1.EventType, msg string) {
	s.events.publish(&ancmv1.Event{Type: t, Message: msg})
}
