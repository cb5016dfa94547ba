package dataplane

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
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
}

// Proxy is the data plane: an http.Handler that routes requests to app
// instances by the table it follows from the control plane.
type Proxy struct {
	logger    hclog.Logger
	accessLog hclog.Logger // nil when the access log is off
	client    ancmv1.EndpointServiceClient
	node      string

	table     atomic.Pointer[table]
	synced    chan struct{}
	syncOnce  sync.Once
	resync    bool // next subscription asks for a full table; Run only
	transport *http.Transport
	rp        *httputil.ReverseProxy

	mu    sync.Mutex
	gates map[string]*gate // by app name; see activate.go

	stats counters
}

// New returns a Proxy. It does nothing until Run follows the control plane
// and Serve (or another server) hands it requests.
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
		gates:  map[string]*gate{},
	}
	if opts.AccessLog {
		p.accessLog = logger.Named("access")
	}
	p.table.Store(emptyTable())
	p.transport = newTransport()
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      &retryTransport{p: p, next: p.transport},
		FlushInterval:  0, // streams (no Content-Length, SSE) flush at once; see streaming.go
		BufferPool:     bufferPool{},
		ErrorLog:       logger.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
		ErrorHandler:   p.proxyError,
		ModifyResponse: p.modifyResponse,
	}
	return p, nil
}

// Synced is closed once the first full table has arrived.
func (p *Proxy) Synced() <-chan struct{} { return p.synced }

// stateKey finds a request's *reqState in its context.
type stateKey struct{}

// reqState is what one proxied request carries through ReverseProxy into
// the transport and back. It is the request's context itself (one
// allocation instead of a context, a value context and a state struct).
type reqState struct {
	context.Context // cancelable child of the client's request context
	cancel          context.CancelCauseFunc
	app             *app
	be              *backend // the backend the current attempt goes to
	timer           *time.Timer
	status          int
}

func (s *reqState) Value(key any) any {
	if key == (stateKey{}) {
		return s
	}
	return s.Context.Value(key)
}

// expire fires after request_timeout without response headers.
func (s *reqState) expire() { s.cancel(ErrTimeout) }

func stateOf(ctx context.Context) *reqState {
	s, _ := ctx.Value(stateKey{}).(*reqState)
	return s
}

// ServeHTTP routes, activates if need be, picks an instance and proxies.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var start time.Time
	if p.accessLog != nil {
		start = time.Now()
	}
	a, err := p.resolve(r)
	if err != nil {
		p.finish(r, a, nil, p.writeError(w, r, err), start)
		return
	}
	b := a.pick(nil)
	if b == nil {
		p.finish(r, a, nil, p.writeError(w, r, newError(ErrUnavailable, a, nil)), start)
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	st := &reqState{Context: ctx, cancel: cancel, app: a, be: b}
	defer func() {
		// Deferred: ReverseProxy aborts with a panic when the client or
		// the backend breaks off mid-body.
		if st.timer != nil {
			st.timer.Stop()
		}
		cancel(nil)
		st.be.outstanding.Add(-1)
		p.finish(r, a, st.be, st.status, start)
	}()
	p.rp.ServeHTTP(w, r.WithContext(st))
}

// resolve finds the app for a request and makes sure it can take it,
// activating it when it has no ready instance.
func (p *Proxy) resolve(r *http.Request) (*app, error) {
	t := p.table.Load()
	if !t.synced {
		return nil, newError(ErrNotSynced, nil, nil)
	}
	a := t.route(normalizeHost(r.Host), r.URL.Path)
	if a == nil {
		return nil, newError(ErrNoRoute, nil, nil)
	}
	if a.serving() {
		return a, nil
	}
	na, err := p.admit(r.Context(), a)
	if err != nil {
		return a, err
	}
	return na, nil
}

// rewrite is ReverseProxy's Rewrite: it points the outgoing request at the
// picked backend and sets the forwarding and token headers. The path is
// never stripped: apps learn their base from ANCM_PATH_BASE.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	st := stateOf(pr.Out.Context())
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = st.be.addr
	rewriteHeaders(pr.Out.Header, pr.In, st.be.token, st.app.aspnet)
}

// modifyResponse records the status of a proxied response.
func (p *Proxy) modifyResponse(res *http.Response) error {
	if st := stateOf(res.Request.Context()); st != nil {
		st.status = res.StatusCode
	}
	return nil
}

// proxyError is ReverseProxy's ErrorHandler: the transport failed.
func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	var re *requestError
	if !errors.As(err, &re) {
		re = newError(ErrBackend, nil, err)
		if st != nil {
			re.app = st.app
			re.instance = int(st.be.instance)
			if context.Cause(st) == ErrTimeout {
				re.kind = ErrTimeout
			} else if st.Err() != nil {
				re.kind = context.Canceled
			}
		}
	}
	status := p.writeError(w, r, re)
	if st != nil {
		st.status = status
	}
}

// finish counts a request by status and writes its access-log line.
func (p *Proxy) finish(r *http.Request, a *app, b *backend, status int, start time.Time) {
	p.stats.count(status)
	if p.accessLog == nil {
		return
	}
	args := make([]any, 0, 16)
	args = append(args, "method", r.Method, "host", r.Host, "path", r.URL.Path)
	if a != nil {
		args = append(args, "app", a.name)
	}
	if b != nil {
		args = append(args, "instance", b.instance)
	}
	args = append(args, "status", status, "duration", time.Since(start))
	p.accessLog.Info("request", args...)
}

// bufferPool lends ReverseProxy its 32 KiB copy buffers. A buffered
// channel, unlike a sync.Pool, takes a []byte back without allocating.
type bufferPool struct{}

var copyBuffers = make(chan []byte, 256)

func (bufferPool) Get() []byte {
	select {
	case b := <-copyBuffers:
		return b
	default:
		return make([]byte, 32<<10)
	}
}

func (bufferPool) Put(b []byte) {
	select {
	case copyBuffers <- b:
	default:
	}
}
