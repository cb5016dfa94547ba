package dataplane

import (
	"errors"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
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
	// AccessLog logs one info line per request (app, instance, status,
	// duration) when true.
	AccessLog bool
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
}

// Defaults of Options.
const (
	DefaultMaxConnections = 10000
	DefaultSendTimeout    = 60 * time.Second
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
	h2          *http2.Server // the HTTP/2 front end (h2.go)
	h2base      *http.Server  // its graceful shutdown
	// h2cTransport speaks to protocol = "h2c" instances (h2c.go).
	h2cTransport *http2.Transport
	trustedNets  []netip.Prefix
	redirect     string

	stats counters
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
		node:   opts.Node,
		synced: make(chan struct{}),
		kick:   make(chan struct{}, 1),
		gates:  map[string]*gate{},
	}
	if opts.AccessLog {
		p.accessLog = logger.Named("access")
	}
	p.sendTimeout = opts.SendTimeout
	if p.sendTimeout <= 0 {
		p.sendTimeout = DefaultSendTimeout
	}
	p.maxConns = connectionBudget(logger, opts.MaxConnections)
	p.slots = make(chan struct{}, p.maxConns)
	p.h2, p.h2base = newH2(p)
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
func (p *Proxy) finish(r *request, a *app, b *backend, status int, start time.Time) {
	p.stats.count(status)
	if p.accessLog == nil {
		return
	}
	args := make([]any, 0, 16)
	args = append(args, "method", r.method, "host", r.host, "path", r.path)
	if a != nil {
		args = append(args, "app", a.name)
	}
	if b != nil {
		args = append(args, "instance", b.instance)
	}
	args = append(args, "status", status, "duration", time.Since(start))
	p.accessLog.Info("request", args...)
}
