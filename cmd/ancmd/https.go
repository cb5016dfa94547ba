package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ancm-dev/ancm/config"
	"github.com/ancm-dev/ancm/dataplane"
)

// certPollInterval is how often certificate files are checked for
// changes.
const certPollInterval = 2 * time.Second

// httpsFront is the data plane's TLS listener of the https block.
type httpsFront struct {
	ln    net.Listener
	certs *dataplane.Certificates
}

// listenHTTPS loads the https block's certificates and opens its
// listener; nil, nil without an https block.
func listenHTTPS(log hclog.Logger, f *config.File) (*httpsFront, error) {
	h := f.HTTPS
	if h == nil {
		return nil, nil
	}
	pairs := make([]dataplane.CertPair, 0, len(h.Certificates))
	for _, c := range h.Certificates {
		pairs = append(pairs, dataplane.CertPair{CertFile: c.CertFile, KeyFile: c.KeyFile})
	}
	certs, err := dataplane.LoadCertificates(log, pairs)
	if err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	cfg, err := dataplane.TLSConfig(certs, dataplane.TLSOptions{
		Certificates: pairs, ClientAuth: h.ClientAuth, ClientCAFile: h.ClientCAFile, MinVersion: h.TLSMinVersion(),
		HTTP2: h.HTTP2,
	})
	if err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	ln, err := net.Listen("tcp", h.Listen)
	if err != nil {
		return nil, fmt.Errorf("https listen %s: %w", h.Listen, err)
	}
	return &httpsFront{ln: tls.NewListener(ln, cfg), certs: certs}, nil
}

// serve runs the TLS listener and the certificate watch until ctx ends.
func (h *httpsFront) serve(ctx context.Context, dp *dataplane.Proxy, done chan<- error) {
	go h.certs.Watch(ctx, certPollInterval)
	done <- dp.Serve(ctx, h.ln)
}

// redirectPort is the port plain requests are redirected to with
// redirect_http, or "".
func redirectPort(f *config.File) string {
	if f.HTTPS == nil || !f.HTTPS.RedirectHTTP {
		return ""
	}
	_, port, err := net.SplitHostPort(f.HTTPS.Listen)
	if err != nil {
		return ""
	}
	return port
}
