package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
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
	acme  *dataplane.ACME // nil without an acme block
	hosts []string        // the acme block's hosts; empty: the table's
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
	ln, err := net.Listen("tcp", h.Listen)
	if err != nil {
		return nil, fmt.Errorf("https listen %s: %w", h.Listen, err)
	}
	front := &httpsFront{}
	if a := h.ACME; a != nil {
		front.hosts = a.Hosts
		front.acme, err = dataplane.NewACME(log, dataplane.ACMEOptions{
			Email: a.Email, Directory: a.Directory, CARootFile: a.CARootFile,
			StorageDir: filepath.Join(f.StateDir, "acme"), TLSAddr: ln.Addr().String(),
		})
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("https: %w", err)
		}
	}
	certs, err := dataplane.LoadCertificates(log, pairs, front.acme)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("https: %w", err)
	}
	cfg, err := dataplane.TLSConfig(certs, dataplane.TLSOptions{
		Certificates: pairs, ClientAuth: h.ClientAuth, ClientCAFile: h.ClientCAFile, MinVersion: h.TLSMinVersion(),
		MaxVersion: h.TLSMaxVersion(), HTTP2: h.HTTP2,
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("https: %w", err)
	}
	front.ln, front.certs = tls.NewListener(ln, cfg), certs
	return front, nil
}

// serve runs the TLS listener and the certificate watch until ctx ends.
func (h *httpsFront) serve(ctx context.Context, log hclog.Logger, dp *dataplane.Proxy, done chan<- error) {
	go h.certs.Watch(ctx, certPollInterval)
	if h.acme != nil {
		go h.manage(ctx, log, dp)
	}
	done <- dp.Serve(ctx, h.ln)
}

// manage has the ACME certificates obtained for the acme block's hosts,
// or, without any, for every exact host of every app, following the
// endpoint table as apps come and go.
func (h *httpsFront) manage(ctx context.Context, log hclog.Logger, dp *dataplane.Proxy) {
	for {
		hosts := h.hosts
		if len(hosts) == 0 {
			hosts = dp.ExactHosts()
		}
		if err := h.acme.Manage(ctx, hosts); err != nil {
			log.Error("acme: cannot manage certificates", "error", err)
		}
		if len(h.hosts) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-dp.TableChanged():
		}
	}
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
