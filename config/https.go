package config

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/ancm-dev/ancm/internal/pemfile"
)

// Client certificate modes of the https block.
const (
	ClientAuthNone    = "none"
	ClientAuthRequest = "request"
	ClientAuthRequire = "require"
)

// DefaultHTTPSMinVersion and DefaultHTTPSMaxVersion bound the TLS
// versions the https listener takes unless min_version and max_version
// say otherwise.
const (
	DefaultHTTPSMinVersion = "1.2"
	DefaultHTTPSMaxVersion = "1.3"
)

// HTTPS is the https block: the data plane's TLS listener.
type HTTPS struct {
	Listen       string
	Certificates []CertPair
	ClientAuth   string // none|request|require
	ClientCAFile string // absolute; required with request or require
	MinVersion   string // "1.2" or "1.3"; see TLSMinVersion
	MaxVersion   string // "1.2" or "1.3", not below MinVersion; see TLSMaxVersion
	HTTP2        bool   // offered by ALPN
	RedirectHTTP bool   // the plain listener answers 308 to https
	ACME         *ACME  // certificates from an ACME CA; nil without an acme block
}

// ACME is the https block's acme block.
type ACME struct {
	Email      string
	Directory  string
	CARootFile string   // absolute; "" for none
	Hosts      []string // "" entries removed; empty: every exact host of every app
}

// DefaultACMEDirectory is Let's Encrypt's production directory.
const DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"

// CertPair is one certificate block: a certificate chain and its key,
// picked by SNI against the names of the leaf.
type CertPair struct {
	CertFile string // absolute
	KeyFile  string // absolute
}

var (
	httpsSchema = schema{
		attrs:  []string{"listen", "client_auth", "client_ca_file", "min_version", "max_version", "http2", "redirect_http"},
		blocks: []string{"certificate", "acme"},
	}
	acmeSchema        = schema{attrs: []string{"email", "directory", "ca_root_file", "hosts"}}
	certificateSchema = schema{attrs: []string{"cert_file", "key_file"}}
	clientAuthModes   = []string{ClientAuthNone, ClientAuthRequest, ClientAuthRequire}
	tlsVersions       = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}
)

// defaultHTTPS is an https block with every default filled in.
func defaultHTTPS() *HTTPS {
	return &HTTPS{ClientAuth: ClientAuthNone, MinVersion: DefaultHTTPSMinVersion, MaxVersion: DefaultHTTPSMaxVersion, HTTP2: true}
}

// TLSMinVersion is MinVersion as a crypto/tls version.
func (h *HTTPS) TLSMinVersion() uint16 {
	if v, ok := tlsVersions[h.MinVersion]; ok {
		return v
	}
	return tls.VersionTLS12
}

// TLSMaxVersion is MaxVersion as a crypto/tls version.
func (h *HTTPS) TLSMaxVersion() uint16 {
	if v, ok := tlsVersions[h.MaxVersion]; ok {
		return v
	}
	return tls.VersionTLS13
}

// https decodes the https block and trusted_proxies into f. Certificate
// pairs are loaded here, so that an unreadable or mismatched pair is an
// error naming its file before anything starts.
func (p *parser) https(s *scope, f *File) {
	var cidrs []string
	s.strings("trusted_proxies", &cidrs)
	for _, c := range cidrs {
		pfx, err := parseCIDR(c)
		if err != nil {
			s.errf(s.pos["trusted_proxies"], "trusted_proxies", "%v", err)
			continue
		}
		f.TrustedProxies = append(f.TrustedProxies, pfx)
	}

	b := s.block("https")
	if b == nil {
		return
	}
	h := s.nested(b.Body, "https")
	h.checkKeys(httpsSchema)
	f.HTTPS = defaultHTTPS()
	if !h.str("listen", &f.HTTPS.Listen) {
		h.errf(b.DefRange(), "https.listen", `required: the address of the TLS listener, as listen = "0.0.0.0:443"`)
	} else if err := checkListen(f.HTTPS.Listen); err != nil {
		h.errf(h.pos["https.listen"], "https.listen", "%v", err)
	}
	if h.str("client_auth", &f.HTTPS.ClientAuth) && !slices.Contains(clientAuthModes, f.HTTPS.ClientAuth) {
		h.errf(h.pos["https.client_auth"], "https.client_auth", "must be one of %s, not %q", strings.Join(clientAuthModes, "|"), f.HTTPS.ClientAuth)
	}
	if h.str("client_ca_file", &f.HTTPS.ClientCAFile) && f.HTTPS.ClientCAFile != "" {
		f.HTTPS.ClientCAFile = p.resolve(f.HTTPS.ClientCAFile)
		if _, err := pemfile.CertPool(f.HTTPS.ClientCAFile); err != nil {
			h.errf(h.pos["https.client_ca_file"], "https.client_ca_file", "%v", err)
		}
	}
	if f.HTTPS.ClientAuth != ClientAuthNone && f.HTTPS.ClientCAFile == "" && !h.failed["https.client_auth"] {
		h.errf(h.pos["https.client_auth"], "https.client_auth", "client_auth = %q needs client_ca_file, the CA that signs client certificates", f.HTTPS.ClientAuth)
	}
	okMin := true
	if h.str("min_version", &f.HTTPS.MinVersion) {
		if _, okMin = tlsVersions[f.HTTPS.MinVersion]; !okMin {
			h.errf(h.pos["https.min_version"], "https.min_version", `must be "1.2" or "1.3", not %q`, f.HTTPS.MinVersion)
		}
	}
	if h.str("max_version", &f.HTTPS.MaxVersion) {
		switch _, ok := tlsVersions[f.HTTPS.MaxVersion]; {
		case !ok:
			h.errf(h.pos["https.max_version"], "https.max_version", `must be "1.2" or "1.3", not %q`, f.HTTPS.MaxVersion)
		case okMin && f.HTTPS.TLSMaxVersion() < f.HTTPS.TLSMinVersion():
			h.errf(h.pos["https.max_version"], "https.max_version", "%q is below min_version %q", f.HTTPS.MaxVersion, f.HTTPS.MinVersion)
		}
	}
	h.boolean("http2", &f.HTTPS.HTTP2)
	h.boolean("redirect_http", &f.HTTPS.RedirectHTTP)

	for _, cb := range b.Body.Blocks {
		if cb.Type != "certificate" {
			continue
		}
		c := h.nested(cb.Body, "certificate")
		c.checkKeys(certificateSchema)
		var pair CertPair
		okCert := c.str("cert_file", &pair.CertFile) && pair.CertFile != ""
		okKey := c.str("key_file", &pair.KeyFile) && pair.KeyFile != ""
		if !okCert || !okKey {
			c.errf(cb.DefRange(), "https.certificate", "a certificate block needs cert_file and key_file")
			continue
		}
		pair.CertFile, pair.KeyFile = p.resolve(pair.CertFile), p.resolve(pair.KeyFile)
		if _, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile); err != nil {
			c.errf(c.pos["https.certificate.cert_file"], "https.certificate.cert_file", "%s and %s: %v", pair.CertFile, pair.KeyFile, err)
			continue
		}
		f.HTTPS.Certificates = append(f.HTTPS.Certificates, pair)
	}
	if ab := h.block("acme"); ab != nil {
		a := h.nested(ab.Body, "acme")
		a.checkKeys(acmeSchema)
		acme := &ACME{Directory: DefaultACMEDirectory}
		a.str("email", &acme.Email)
		if a.str("directory", &acme.Directory) {
			if u, err := url.Parse(acme.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
				a.errf(a.pos["https.acme.directory"], "https.acme.directory", "must be an https:// URL, not %q", acme.Directory)
			}
		}
		if a.str("ca_root_file", &acme.CARootFile) && acme.CARootFile != "" {
			acme.CARootFile = p.resolve(acme.CARootFile)
			if _, err := pemfile.CertPool(acme.CARootFile); err != nil {
				a.errf(a.pos["https.acme.ca_root_file"], "https.acme.ca_root_file", "%v", err)
			}
		}
		var hosts []string
		a.strings("hosts", &hosts)
		for _, host := range hosts {
			switch {
			case host == "":
			case strings.Contains(host, "*"):
				a.errf(a.pos["https.acme.hosts"], "https.acme.hosts", "%q: a wildcard needs a DNS challenge, which ancm does not do; list exact names", host)
			default:
				acme.Hosts = append(acme.Hosts, strings.ToLower(host))
			}
		}
		f.HTTPS.ACME = acme
	}
	if len(f.HTTPS.Certificates) == 0 && f.HTTPS.ACME == nil && !h.failed["https.certificate"] && !h.failed["https.certificate.cert_file"] {
		h.errf(b.DefRange(), "https.certificate", "an https block needs at least one certificate { cert_file = ..., key_file = ... } or an acme block")
	}
	if f.HTTPS.RedirectHTTP && f.HTTPS.Listen == f.Listen {
		h.errf(h.pos["https.redirect_http"], "https.redirect_http", "listen and https.listen are the same address")
	}
}

// parseCIDR reads a CIDR ("10.0.0.0/8") or a single address ("::1").
func parseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as \"10.0.0.0/8\"", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR such as \"10.0.0.0/8\"", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
