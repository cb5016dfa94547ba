package dataplane

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
	"github.com/ancm-dev/ancm/dataplane/h2"
)

// Options configure a Proxy.
type Options struct {
	// Logger is named "dataplane" by New; nil means no logging.
	Logger hclog.Logger
	// Conn is the connection to the control plane. It is always a real
	// gRPC connection, also when both planes run in one process.
	Conn grpc.ClientConnInterface
	// Node is the name sent in WatchEndpointsRequest.node.
	Node string
	// AccessLog logs one info line per request when true (see finish),
	// to AccessLogger, or to the logger "dataplane.access" when it is nil.
	AccessLog    bool
	AccessLogger hclog.Logger
	// MaxConnections bounds the client connections Serve holds at once
	// (0: DefaultMaxConnections); past it, new ones wait in the listen
	// backlog. It is lowered to what the open-file limit allows with a
	// reserve for the rest of the process; see connectionBudget.
	MaxConnections int
	// SendTimeout is how long a client may take no bytes of its answer
	// before its connection is closed (0: DefaultSendTimeout).
	SendTimeout time.Duration
	// TrustedProxies are the clients whose X-Forwarded-Proto, -Host and
	// X-Forwarded-Client-Cert are kept; any other client's never reach
	// an app.
	TrustedProxies []netip.Prefix
	// RedirectHTTPS, when set, is the port of the TLS listener: requests
	// on plain connections are answered 308 to https:// there.
	RedirectHTTPS string
	// ReportInterval is how often Run reports the traffic to the control
	// plane (report.go); 0 means DefaultReportInterval, negative never.
	ReportInterval time.Duration
}

// Defaults of Options.
const (
	DefaultMaxConnections = 10000
	DefaultSendTimeout    = 60 * time.Second
	DefaultReportInterval = time.Second
)

// Proxy is the data plane: it follows the control plane's table (Run) and
// serves HTTP clients on a listener (Serve), routing each request to an
// app instance.
type Proxy struct {
	logger    hclog.Logger
	accessLog hclog.Logger // nil when the access log is off
	client    ancmv1.EndpointServiceClient
	node      string

	table    atomic.Pointer[table]
	synced   chan struct{}
	syncOnce sync.Once
	resync   bool // next subscription asks for a full table; Run only
	// kick cuts the watch's reconnect backoff short when an Activate has
	// shown that the control plane is back, with another epoch.
	kick chan struct{}

	mu    sync.Mutex
	gates map[string]*gate // by app name; see activate.go

	maxConns    int
	slots       chan struct{} // a token per open client connection, over every Serve
	sendTimeout time.Duration
	h2          *h2.Server // the HTTP/2 front end (h2.go)
	// h2cTransport speaks to protocol = "h2c" instances (h2c.go).
	h2cTransport *http2.Transport
	trustedNets  []netip.Prefix
	redirect     string

	stats counters
	// measure: count every request per app with its duration
	// (metrics.go); off only in benchmarks that measure its cost.
	measure  bool
	unrouted *appStats // requests no app matched

	traffic     ancmv1.TrafficServiceClient
	reportEvery time.Duration
	started     time.Time // counting since
}

// New returns a Proxy. It does nothing until Run follows the control plane
// and Serve answers clients.
func New(opts Options) (*Proxy, error) {
	if opts.Conn == nil {
		return nil, errors.New("dataplane: Options.Conn is required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named("dataplane")
	p := &Proxy{
		logger: logger,
		client: ancmv1.NewEndpointServiceClient(opts.Conn),

		traffic:     ancmv1.NewTrafficServiceClient(opts.Conn),
		reportEvery: opts.ReportInterval,
		node:        opts.Node,
		synced:      make(chan struct{}),
		kick:        make(chan struct{}, 1),
		gates:       map[string]*gate{},

		measure:  true,
		started:  time.Now(),
		unrouted: newAppStats("", 0),
	}
	if opts.AccessLog {
		p.accessLog = opts.AccessLogger
		if p.accessLog == nil {
			p.accessLog = logger.Named("access")
		}
	}
	if p.reportEvery == 0 {
		p.reportEvery = DefaultReportInterval
	}
	p.sendTimeout = opts.SendTimeout
	if p.sendTimeout <= 0 {
		p.sendTimeout = DefaultSendTimeout
	}
	p.maxConns = connectionBudget(logger, opts.MaxConnections)
	p.slots = make(chan struct{}, p.maxConns)
	p.h2 = newH2(p)
	p.h2cTransport = newH2CTransport()
	p.trustedNets = opts.TrustedProxies
	p.redirect = opts.RedirectHTTPS
	p.table.Store(emptyTable())
	return p, nil
}

// trusted reports whether a client address is one of TrustedProxies.
func (p *Proxy) trusted(ip string) bool {
	if len(p.trustedNets) == 0 || ip == "" {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, n := range p.trustedNets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// ExactHosts returns the exact (not wildcard) hosts of the apps in the
// table, for certificates from an ACME CA.
func (p *Proxy) ExactHosts() []string {
	t := p.table.Load()
	hosts := make([]string, 0, len(t.exact))
	for h := range t.exact {
		hosts = append(hosts, h)
	}
	return hosts
}

// TableChanged is closed when the table in use is replaced.
func (p *Proxy) TableChanged() <-chan struct{} { return p.table.Load().next }

// Synced is closed once the first full table has arrived.
func (p *Proxy) Synced() <-chan struct{} { return p.synced }

// finish counts a request by status and writes its access-log line.
// sh is the shard of st the request was counted in flight in (nil when
// not measured); sent is what the client connection had taken before it.
func (p *Proxy) finish(c downstream, r *request, a *app, b *backend, status int, start time.Time, st *appStats, sh *statShard, sent int64) {
	var d time.Duration
	if sh != nil || p.accessLog != nil {
		d = time.Since(start)
	}
	if sh != nil {
		sh.inFlight.Add(-1)
		st.done(sh, status, d)
	} else {
		p.stats.count(status)
	}
	if p.accessLog == nil {
		return
	}
	fi := c.info()
	args := make([]any, 0, 28)
	args = append(args, "client", fi.clientIP, "method", r.Method, "host", r.Host, "path", r.URI,
		"status", status, "bytes", c.sent()-sent, "duration", d, "user_agent", r.userAgent())
	if a != nil {
		args = append(args, "app", a.name, "generation", p.statsOf(a).generation)
	}
	if b != nil {
		args = append(args, "instance", b.instance)
	}
	args = append(args, "request_id", r.id())
	p.accessLog.Info("request", args...)
}

// userAgent returns the request's User-Agent ("" when none).
func (r *request) userAgent() string {
	for i := range r.Fields {
		if f := &r.Fields[i]; len(f.Name) == 10 && strings.EqualFold(f.Name, "User-Agent") {
			return f.Value
		}
	}
	return ""
}
