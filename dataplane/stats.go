package dataplane

import "sync/atomic"

// Stats are the data plane's counters since New.
type Stats struct {
	// Requests is every request answered, by status class.
	Requests  uint64
	Status1xx uint64
	Status2xx uint64
	Status3xx uint64
	Status4xx uint64
	Status5xx uint64
	// ClientClosed counts requests whose client went away before an answer.
	ClientClosed uint64
	// BadFraming counts requests refused with 400 for ambiguous framing
	// before they reached the handler (http1.ErrBadFraming).
	BadFraming uint64
	// Activations counts Activate RPCs.
	Activations uint64
	// Retries counts requests retried on another instance.
	Retries uint64
	// Ejections counts passive ejections of endpoints.
	Ejections uint64
	// QueueRejections counts 503 answers for a full start queue.
	QueueRejections uint64
	// Queued is the number of requests waiting for a start right now.
	Queued int64
	// TLSHandshakeErrors counts TLS handshakes that failed or timed out.
	TLSHandshakeErrors uint64

	// Epoch and Revision of the table in use; Synced once one arrived.
	Epoch    string
	Revision uint64
	Synced   bool
}

type counters struct {
	requests        atomic.Uint64
	byClass         [6]atomic.Uint64 // index status/100; 0 unused
	clientClosed    atomic.Uint64
	badFraming      atomic.Uint64
	activations     atomic.Uint64
	retries         atomic.Uint64
	ejections       atomic.Uint64
	queueRejections atomic.Uint64
	queued          atomic.Int64

	tlsHandshakeErrors atomic.Uint64
}

func (c *counters) count(status int) {
	c.requests.Add(1)
	if status == statusClientClosed {
		c.clientClosed.Add(1)
		return
	}
	if i := status / 100; i >= 1 && i <= 5 {
		c.byClass[i].Add(1)
	}
}

// add folds request counts by class (index 0: client closed) into c.
func (c *counters) add(classes [6]uint64) {
	var n uint64
	for i, k := range classes {
		n += k
		if i == 0 {
			c.clientClosed.Add(k)
		} else {
			c.byClass[i].Add(k)
		}
	}
	c.requests.Add(n)
}

// Stats returns a snapshot of the counters. The request counts are the
// per-app ones (metrics.go) summed, with those of apps gone from the
// table; requests still in flight on an app that is removed are lost.
func (p *Proxy) Stats() Stats {
	t := p.table.Load()
	c := &p.stats
	var classes [6]uint64
	for _, s := range p.allStats() {
		for i, n := range s.classes() {
			classes[i] += n
		}
	}
	var n uint64
	for _, k := range classes {
		n += k
	}
	return Stats{
		Requests:        c.requests.Load() + n,
		Status1xx:       c.byClass[1].Load() + classes[1],
		Status2xx:       c.byClass[2].Load() + classes[2],
		Status3xx:       c.byClass[3].Load() + classes[3],
		Status4xx:       c.byClass[4].Load() + classes[4],
		Status5xx:       c.byClass[5].Load() + classes[5],
		ClientClosed:    c.clientClosed.Load() + classes[0],
		BadFraming:      c.badFraming.Load(),
		Activations:     c.activations.Load(),
		Retries:         c.retries.Load(),
		Ejections:       c.ejections.Load(),
		QueueRejections: c.queueRejections.Load(),
		Queued:          c.queued.Load(),

		TLSHandshakeErrors: c.tlsHandshakeErrors.Load(),
		Epoch:              t.epoch,
		Revision:           t.revision,
		Synced:             t.synced,
	}
}
