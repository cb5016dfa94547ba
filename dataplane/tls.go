package dataplane

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ancm-dev/ancm/internal/pemfile"
)

// The TLS front end: the same HTTP/1.1 server (conn.go) over crypto/tls,
// with certificates picked by SNI from a set that is swapped whole on
// reload, so that connections in flight keep the certificate they were
// handed and new ones get the new set.

// CertPair names a certificate chain file and its key file.
type CertPair struct {
	CertFile, KeyFile string
}

// TLSOptions configure the TLS listener.
type TLSOptions struct {
	Certificates []CertPair
	// ClientAuth is "none", "request" (verified when given) or
	// "require"; with either of the last two, ClientCAFile holds the CAs.
	ClientAuth   string
	ClientCAFile string
	MinVersion   uint16 // 0: TLS 1.2
	MaxVersion   uint16 // 0: TLS 1.3
	// HTTP2 offers HTTP/2 by ALPN (h2.go).
	HTTP2 bool
}

// handshakeTimeout bounds a TLS handshake.
var handshakeTimeout = 10 * time.Second

// Certificates is a reloadable set of certificates picked by SNI.
type Certificates struct {
	logger hclog.Logger
	pairs  []CertPair

	mu     sync.Mutex // serializes Reload
	stamps []fileStamp
	set    atomic.Pointer[certSet]
	acme   *ACME // certificates from an ACME CA; nil without

	// OnReloadError, when set before Watch, hears of every reload that
	// failed (and kept the certificates in use).
	OnReloadError func(error)
}

// certSet is one immutable generation of certificates.
type certSet struct {
	exact map[string]*tls.Certificate // lower-case DNS name
	wild  map[string]*tls.Certificate // ".example.com" for *.example.com
	def   *tls.Certificate            // the first pair: no SNI, or no match
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// LoadCertificates reads every pair; an unreadable or mismatched pair is
// an error naming its files. With acme, pairs may be empty.
func LoadCertificates(logger hclog.Logger, pairs []CertPair, acme *ACME) (*Certificates, error) {
	if len(pairs) == 0 && acme == nil {
		return nil, errors.New("no certificate")
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	c := &Certificates{logger: logger.Named("tls"), pairs: pairs, acme: acme}
	set, stamps, err := loadSet(pairs)
	if err != nil {
		return nil, err
	}
	c.set.Store(set)
	c.stamps = stamps
	return c, nil
}

func loadSet(pairs []CertPair) (*certSet, []fileStamp, error) {
	set := &certSet{exact: map[string]*tls.Certificate{}, wild: map[string]*tls.Certificate{}}
	var stamps []fileStamp
	for _, p := range pairs {
		stamps = append(stamps, stampOf(p.CertFile), stampOf(p.KeyFile))
		cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("certificate %s with key %s: %w", p.CertFile, p.KeyFile, err)
		}
		if cert.Leaf == nil {
			if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return nil, nil, fmt.Errorf("certificate %s: %w", p.CertFile, err)
			}
		}
		if set.def == nil {
			set.def = &cert
		}
		names := cert.Leaf.DNSNames
		if len(names) == 0 && cert.Leaf.Subject.CommonName != "" {
			names = []string{cert.Leaf.Subject.CommonName}
		}
		for _, n := range names {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			if suffix, ok := strings.CutPrefix(n, "*"); ok && strings.HasPrefix(suffix, ".") {
				if _, dup := set.wild[suffix]; !dup {
					set.wild[suffix] = &cert
				}
				continue
			}
			if _, dup := set.exact[n]; !dup { // the first pair naming a host wins
				set.exact[n] = &cert
			}
		}
	}
	return set, stamps, nil
}

func stampOf(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: st.ModTime(), size: st.Size()}
}

// GetCertificate picks the certificate for a handshake: the pair naming
// the SNI host exactly, else the ACME certificate of a managed host, else
// a pair with a wildcard for it (one label), else the first pair. An ACME
// CA's TLS-ALPN-01 check gets its challenge certificate.
func (c *Certificates) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c.acme != nil && isChallenge(hello) {
		return c.acme.getCertificate(hello)
	}
	set := c.set.Load()
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if cert := set.exact[name]; cert != nil {
		return cert, nil
	}
	if c.acme != nil && c.acme.manages(name) {
		return c.acme.getCertificate(hello)
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if cert := set.wild[name[i:]]; cert != nil {
			return cert, nil
		}
	}
	if set.def == nil {
		return nil, errNoCertificate
	}
	return set.def, nil
}

// Reload reads the pairs again and swaps the set in. On an error the set
// in use stays, and the error says which files.
func (c *Certificates) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	set, stamps, err := loadSet(c.pairs)
	if err != nil {
		c.logger.Error("certificates not reloaded, keeping the ones in use", "error", err)
		if c.OnReloadError != nil {
			c.OnReloadError(err)
		}
		return err
	}
	c.set.Store(set)
	c.stamps = stamps
	c.logger.Info("certificates reloaded", "pairs", len(c.pairs))
	return nil
}

// Watch reloads the set whenever one of its files changes (size or
// modification time, checked every interval) until ctx ends. A change
// that fails to load is logged once and retried on the next change.
func (c *Certificates) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		changed := false
		for i, p := range c.pairs {
			if stampOf(p.CertFile) != c.stamps[2*i] || stampOf(p.KeyFile) != c.stamps[2*i+1] {
				changed = true
			}
		}
		if changed {
			// Remember what was seen, so a pair caught half written is
			// not reported on every tick; the next write changes it again.
			for i, p := range c.pairs {
				c.stamps[2*i], c.stamps[2*i+1] = stampOf(p.CertFile), stampOf(p.KeyFile)
			}
		}
		c.mu.Unlock()
		if changed {
			_ = c.Reload()
		}
	}
}

// TLSConfig returns the server configuration of the TLS listener, with
// certs behind GetCertificate.
func TLSConfig(certs *Certificates, opts TLSOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		GetCertificate: certs.GetCertificate,
		MinVersion:     opts.MinVersion,
		MaxVersion:     opts.MaxVersion,
		NextProtos:     []string{"http/1.1"},
	}
	if opts.HTTP2 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	if certs.acme != nil {
		cfg.NextProtos = append(cfg.NextProtos, acmeTLS1)
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	switch opts.ClientAuth {
	case "", "none":
	case "request", "require":
		pool, err := pemfile.CertPool(opts.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client_ca_file: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if opts.ClientAuth == "require" {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	default:
		return nil, fmt.Errorf("client_auth %q: must be none, request or require", opts.ClientAuth)
	}
	return cfg, nil
}

// clientCertHeaders formats a verified client certificate for the app:
// X-Forwarded-Client-Cert in Envoy's format (Hash, Cert, Subject, URI,
// DNS) and, for compat = "aspnetcore", the base64 DER that
// MS-ASPNETCORE-CLIENTCERT carries.
func clientCertHeaders(leaf *x509.Certificate) (xfcc, aspnet string) {
	sum := sha256.Sum256(leaf.Raw)
	var b strings.Builder
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	b.WriteString(`;Cert="`)
	b.WriteString(url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))))
	b.WriteString(`";Subject=`)
	b.WriteString(xfccQuote(leaf.Subject.String(), true))
	for _, u := range leaf.URIs {
		b.WriteString(";URI=")
		b.WriteString(xfccQuote(u.String(), false))
	}
	for _, d := range leaf.DNSNames {
		b.WriteString(";DNS=")
		b.WriteString(xfccQuote(d, false))
	}
	return b.String(), base64.StdEncoding.EncodeToString(leaf.Raw)
}

// xfccQuote writes an XFCC value as Envoy does: quoted (with \ and \"
// escaped) when always is set or when it holds a separator (, ; = ") or
// whitespace; control characters, which cannot be in a header, become
// "?".
func xfccQuote(v string, always bool) string {
	v = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, v)
	if !always && !strings.ContainsAny(v, ",;=\" \t\\") {
		return v
	}
	return `"` + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `"`, `\"`) + `"`
}
