package controlplane

import (
	"fmt"
	"slices"
	"time"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/config"
)

// model is everything the owner of an app decides on: its spec and
// generation, what the operator asked for, its live instances, failures
// and the rollout in progress. It is a value: next returns a new one, and
// nothing but the app's own goroutine ever holds it.
type model struct {
	name    string
	source  string
	spec    config.App
	gen     uint64 // the generation spec belongs to
	lastGen uint64 // the highest generation handed out
	window  time.Duration

	want    bool // instances are wanted: eager, activated or started
	stopped bool // stopped by an operator
	offline bool
	body    []byte // the offline page
	failed  bool
	// failures are the unplanned exits and failed starts of the rolling
	// window, oldest first.
	failures []time.Time
	ending   bool // deleted, or the daemon is shutting down
	removed  bool // deleted: gone from routing

	insts  []inst // live instances of any generation, by id
	slots  []slot // per index, of the current generation
	nextID uint64

	rollout *rollout
	last    *rolloutRecord // the current or last rollout
	history []genRecord

	state  appState
	reason string
	since  time.Time

	// Counters that waiters compare against the value at their call.
	startFails uint64
	lastFail   string   // reason of the last unplanned exit or failed start
	lastTail   []string // its output
	rollouts   uint64   // rollouts ended
}

// inst is one process of an app.
type inst struct {
	id      uint64
	index   uint32
	gen     uint64
	state   instanceState
	pid     int
	port    int
	token   string
	started time.Time
	readyAt time.Time // zero until ready
	healthy bool
	asked   bool // a stop was asked for: its exit is planned
}

// slot is what outlives the processes of one index of the current
// generation.
type slot struct {
	restarts uint32
	inRow    int // failures in a row, for backoff
	backoff  bool
	lastExit *ancmv1.ExitStatus
}

// rollout is a move from one generation to the next in progress.
type rollout struct {
	from, to  uint64
	prevSpec  config.App
	prevSlots []slot
	strategy  string
	surge     int
	minReady  time.Duration
	started   time.Time
}

// rolloutRecord is how the current or last rollout went.
type rolloutRecord struct {
	from, to          uint64
	result            ancmv1.RolloutResult
	reason            string
	tail              []string
	started, finished time.Time
}

// genRecord is one generation of the app's history.
type genRecord struct {
	gen    uint64
	at     time.Time
	change string
	result ancmv1.RolloutResult
	reason string
	spec   config.App
}

// maxHistory bounds the generations an app remembers.
const maxHistory = 100

// addHistory appends a generation, forgetting the oldest beyond maxHistory.
func (m *model) addHistory(g genRecord) {
	m.history = append(m.history, g)
	if n := len(m.history); n > maxHistory {
		m.history = slices.Clone(m.history[n-maxHistory:])
	}
}

// newModel is the model of an app added at now, at generation gen (0: the
// first) with the history it had.
func newModel(spec config.App, source string, gen uint64, history []genRecord, now time.Time) model {
	m := model{name: spec.Name, source: source, spec: spec, window: failWindow, history: history}
	if gen == 0 {
		gen = 1
	}
	m.gen, m.lastGen = gen, gen
	for _, h := range history {
		m.lastGen = max(m.lastGen, h.gen)
	}
	if len(history) == 0 {
		m.history = []genRecord{{gen: gen, at: now, change: "created", result: ancmv1.RolloutResult_ROLLOUT_RESULT_SUCCEEDED, spec: spec}}
	}
	m.slots = make([]slot, spec.Processes)
	return m
}

// clone copies m so that changing the copy leaves m as it was.
func (m model) clone() model {
	m.insts = slices.Clone(m.insts)
	m.slots = slices.Clone(m.slots)
	m.failures = slices.Clone(m.failures)
	m.history = slices.Clone(m.history)
	if m.rollout != nil {
		r := *m.rollout
		m.rollout = &r
	}
	if m.last != nil {
		l := *m.last
		m.last = &l
	}
	return m
}

func (m *model) find(id uint64) *inst {
	for i := range m.insts {
		if m.insts[i].id == id {
			return &m.insts[i]
		}
	}
	return nil
}

func (m *model) drop(id uint64) {
	m.insts = slices.DeleteFunc(m.insts, func(i inst) bool { return i.id == id })
}

// counts reports whether a ready instance takes traffic: during a rollout
// an instance of the new generation counts once it has been ready for
// min_ready.
func (m *model) counts(i *inst, now time.Time) bool {
	if i.state != instReady || !i.healthy {
		return false
	}
	if r := m.rollout; r != nil && i.gen == r.to {
		return !now.Before(i.readyAt.Add(r.minReady))
	}
	return true
}

// moveInst moves an instance through the instance state machine.
func moveInst(i *inst, to instanceState) error {
	if err := checkInstanceMove(i.state, to); err != nil {
		return fmt.Errorf("instance %d (%d): %w", i.index, i.id, err)
	}
	i.state = to
	return nil
}

// backoffDelay is the delay before the n-th restart in a row of one slot,
// without jitter (the loop adds it, so that next stays pure).
func backoffDelay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	return min(backoffBase<<min(n-2, 16), backoffCap)
}

// route is the app's entry in the endpoint table.
func (m *model) route(now time.Time) *ancmv1.AppRoute {
	c := &m.spec
	r := &ancmv1.AppRoute{
		App:            m.name,
		Hosts:          c.Hosts,
		PathPrefix:     c.PathPrefix,
		State:          m.state,
		StateReason:    m.reason,
		QueueSize:      uint32(c.QueueSize),
		StartupTimeout: durpb(c.StartupTimeout),
		RequestTimeout: durpb(c.RequestTimeout),
		ErrorDetail:    c.ErrorDetail,
		Compat:         c.Compat,
		StripPrefix:    c.StripPrefix,
		Protocol:       c.Protocol,
		Generation:     m.gen,
	}
	if m.offline {
		r.OfflineBody = m.body
	}
	if c.ErrorDetail && m.state == appFailed {
		r.LogTail = m.lastTail
	}
	for idx := range m.insts {
		i := &m.insts[idx]
		if (i.state != instReady && i.state != instDraining) || i.port == 0 {
			continue
		}
		r.Endpoints = append(r.Endpoints, &ancmv1.Endpoint{
			Instance:   i.index,
			Address:    fmt.Sprintf("127.0.0.1:%d", i.port),
			Token:      i.token,
			State:      i.state,
			Ready:      m.counts(i, now),
			Draining:   i.state == instDraining,
			Generation: i.gen,
		})
	}
	return r
}
