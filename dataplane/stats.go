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
	// before they reached the handler (see framing.go).
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

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	t := p.table.Load()
	c := &p.stats
	return Stats{
		Requests:        c.requests.Load(),
		Status1xx:       c.byClass[1].Load(),
		Status2xx:       c.byClass[2].Load(),
		Status3xx:       c.byClass[3].Load(),
		Status4xx:       c.byClass[4].Load(),
		Status5xx:       c.byClass[5].Load(),
		ClientClosed:    c.clientClosed.Load(),
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
