package ancmapp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultShutdownTimeout bounds how long a graceful stop waits for in-flight
// requests. Keep it below the app's shutdown_timeout in ancmd (10s by
// default too), after which ancmd sends SIGKILL.
const DefaultShutdownTimeout = 10 * time.Second

// ListenAndServe serves h where ancmd says, behind Middleware, until SIGTERM
// or SIGINT, then shuts down gracefully and returns nil. It listens on
// 127.0.0.1:$ANCM_PORT (or $PORT); without either, on $ANCM_FALLBACK_ADDR or
// ":8080". A nil h means http.DefaultServeMux.
//
// It returns an error when it cannot listen, when the server fails, or when
// in-flight requests did not finish within DefaultShutdownTimeout.
func ListenAndServe(h http.Handler) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		// After the first signal, a second one acts as if ancmapp had
		// never caught it: it ends the process at once.
		<-ctx.Done()
		stop()
	}()
	return Serve(ctx, &http.Server{Handler: h, ReadHeaderTimeout: time.Minute})
}

// Option configures Serve.
type Option func(*options)

type options struct {
	env             *Env
	listener        net.Listener
	shutdownTimeout time.Duration
	logger          hclog.Logger
}

// WithEnv makes Serve use e instead of FromEnv().
func WithEnv(e Env) Option { return func(o *options) { o.env = &e } }

// WithListener makes Serve accept on l instead of listening on Env.Addr.
// Serve closes l.
func WithListener(l net.Listener) Option { return func(o *options) { o.listener = l } }

// WithShutdownTimeout sets how long Serve waits for in-flight requests once
// ctx is done (DefaultShutdownTimeout by default).
func WithShutdownTimeout(d time.Duration) Option {
	return func(o *options) { o.shutdownTimeout = d }
}

// WithLogger sets the logger of Serve's few lifecycle lines (by default,
// info and above to stderr, named "ancmapp").
func WithLogger(l hclog.Logger) Option { return func(o *options) { o.logger = l } }

// Serve serves srv until ctx is done, then shuts it down gracefully: it stops
// accepting, waits for in-flight requests up to the shutdown timeout, and
// returns nil. If they do not finish in time, it closes their connections
// and returns an error wrapping context.DeadlineExceeded.
//
// Serve sets srv.Handler to srv.Handler (http.DefaultServeMux when nil)
// wrapped with Env.Middleware, and, unless given a listener, listens on
// Env.Addr. srv.Addr is ignored.
func Serve(ctx context.Context, srv *http.Server, opts ...Option) error {
	o := options{shutdownTimeout: DefaultShutdownTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	env := FromEnv()
	if o.env != nil {
		env = *o.env
	}
	log := o.logger
	if log == nil {
		log = hclog.New(&hclog.LoggerOptions{Name: "ancmapp", Output: os.Stderr, Level: hclog.Info})
	}

	h := srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	srv.Handler = env.Middleware(h)

	ln := o.listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", env.Addr)
		if err != nil {
			return fmt.Errorf("ancmapp: %w", err)
		}
	}
	if env.Behind {
		log.Info("listening", "addr", ln.Addr().String(), "app", env.App, "instance", env.Instance)
	} else {
		log.Info("listening without ancmd, forwarded headers not trusted", "addr", ln.Addr().String())
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("ancmapp: serve: %w", err)
	case <-ctx.Done():
	}

	log.Info("shutting down", "timeout", o.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		<-errc
		log.Error("in-flight requests cut off", "error", err)
		return fmt.Errorf("ancmapp: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ancmapp: serve: %w", err)
	}
	log.Info("stopped")
	return nil
}
