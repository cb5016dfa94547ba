package dataplane

// Certificates from an ACME CA, through certmagic: obtained and renewed in
// the background for the hosts they are managed for, kept in a storage
// directory (under state_dir), and served by the TLS listener's
// GetCertificate next to the configured pairs. The challenge is TLS-ALPN-01
// on the TLS listener itself (the CA connects to it with "acme-tls/1");
// the HTTP-01 challenge is off, as the plain listener is the proxy's.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/certmagic"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ancm-dev/ancm/internal/pemfile"
)

// ACMEOptions configure certificates from an ACME CA.
type ACMEOptions struct {
	Email      string
	Directory  string // the CA's directory URL
	CARootFile string // extra trust for a private CA (its directory and its chains); "" for none
	StorageDir string // account and certificates
	// TLSAddr is the TLS listener's address: the CA's TLS-ALPN-01
	// connections arrive there.
	TLSAddr string
}

// ACME manages certificates from an ACME CA.
type ACME struct {
	logger hclog.Logger
	cfg    *certmagic.Config

	mu    sync.Mutex
	hosts []string // managed, sorted
}

// NewACME prepares certificate management; Manage starts it for hosts.
func NewACME(logger hclog.Logger, opts ACMEOptions) (*ACME, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named("acme")
	if err := os.MkdirAll(opts.StorageDir, 0o700); err != nil {
		return nil, fmt.Errorf("acme storage: %w", err)
	}
	var roots *x509.CertPool
	if opts.CARootFile != "" {
		sys, err := x509.SystemCertPool()
		if err != nil || sys == nil {
			sys = x509.NewCertPool()
		}
		if roots, err = pemfile.AppendTo(sys, opts.CARootFile); err != nil {
			return nil, fmt.Errorf("acme ca_root_file: %w", err)
		}
	}
	_, port, err := net.SplitHostPort(opts.TLSAddr)
	if err != nil {
		return nil, fmt.Errorf("acme: TLS listener address %q: %w", opts.TLSAddr, err)
	}
	tlsPort, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("acme: TLS listener port %q: %w", port, err)
	}
	a := &ACME{logger: logger}
	zl := zap.New(&hclogCore{l: logger})
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           zl,
	})
	cfg = certmagic.New(cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: opts.StorageDir},
		Logger:  zl,
	})
	issuer := certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA:                   opts.Directory,
		TestCA:               opts.Directory,
		Email:                opts.Email,
		Agreed:               true,
		TrustedRoots:         roots,
		DisableHTTPChallenge: true,
		AltTLSALPNPort:       tlsPort,
		Logger:               zl,
	})
	cfg.Issuers = []certmagic.Issuer{issuer}
	a.cfg = cfg
	return a, nil
}

// Manage starts obtaining and renewing certificates for hosts (exact
// names; wildcards need a DNS challenge and are skipped), added to those
// managed already. It returns at once; progress is in the log.
func (a *ACME) Manage(ctx context.Context, hosts []string) error {
	a.mu.Lock()
	var add []string
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if h == "" || strings.Contains(h, "*") || slices.Contains(a.hosts, h) {
			continue
		}
		a.hosts = append(a.hosts, h)
		add = append(add, h)
	}
	slices.Sort(a.hosts)
	a.mu.Unlock()
	if len(add) == 0 {
		return nil
	}
	a.logger.Info("managing certificates", "hosts", strings.Join(add, ","))
	return a.cfg.ManageAsync(ctx, add)
}

// manages reports whether name is one of the managed hosts.
func (a *ACME) manages(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := slices.BinarySearch(a.hosts, name)
	return ok
}

// getCertificate serves a managed host's certificate, or a TLS-ALPN-01
// challenge.
func (a *ACME) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.cfg.GetCertificate(hello)
}

// isChallenge reports whether a handshake is the CA's TLS-ALPN-01 check.
func isChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeTLS1
}

// acmeTLS1 is the ALPN protocol of TLS-ALPN-01 (RFC 8737).
const acmeTLS1 = "acme-tls/1"

var errNoCertificate = errors.New("no certificate for this server name")

// hclogCore is a zapcore.Core that writes to an hclog logger, so that
// certmagic's log lines are ancmd's.
type hclogCore struct {
	l      hclog.Logger
	fields []zapcore.Field
}

func (c *hclogCore) Enabled(l zapcore.Level) bool {
	switch {
	case l >= zapcore.ErrorLevel:
		return c.l.IsError()
	case l >= zapcore.WarnLevel:
		return c.l.IsWarn()
	case l >= zapcore.InfoLevel:
		return c.l.IsInfo()
	default:
		return c.l.IsDebug()
	}
}

func (c *hclogCore) With(fields []zapcore.Field) zapcore.Core {
	return &hclogCore{l: c.l, fields: append(slices.Clip(c.fields), fields...)}
}

func (c *hclogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *hclogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(slices.Clip(c.fields), fields...) {
		f.AddTo(enc)
	}
	args := make([]any, 0, 2*len(enc.Fields))
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, k, enc.Fields[k])
	}
	msg := strings.ToLower(e.Message)
	switch {
	case e.Level >= zapcore.ErrorLevel:
		c.l.Error(msg, args...)
	case e.Level >= zapcore.WarnLevel:
		c.l.Warn(msg, args...)
	case e.Level >= zapcore.InfoLevel:
		c.l.Info(msg, args...)
	default:
		c.l.Debug(msg, args...)
	}
	return nil
}

func (c *hclogCore) Sync() error { return nil }
