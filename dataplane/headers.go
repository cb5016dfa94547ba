package dataplane

import (
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

// Header names, in canonical form.
const (
	headerToken       = "Ancm-Token"
	headerAspNetToken = "Ms-Aspnetcore-Token"
	headerXFF         = "X-Forwarded-For"
	headerXFHost      = "X-Forwarded-Host"
	headerXFProto     = "X-Forwarded-Proto"
	headerXFPrefix    = "X-Forwarded-Prefix"
	headerXFCC        = "X-Forwarded-Client-Cert"
	headerForwarded   = "Forwarded"
	headerProxy       = "Proxy" // httpoxy: never forward
)

// forwardInfo is what the outgoing head needs besides the request: who
// the client is and which instance the request goes to.
type forwardInfo struct {
	clientIP string // "" when the client has no IP (a unix socket)
	tls      bool
	token    string
	aspnet   bool
	backend  string // the instance's address, Host of a request without one
	prefix   string // strip_prefix: the app's path_prefix, taken off the path
	// trusted: the client is one of trusted_proxies, whose X-Forwarded-*
	// headers are kept (X-Forwarded-For is appended to in any case).
	trusted bool
	// xfcc and clientCert are the client certificate of a TLS connection
	// as X-Forwarded-Client-Cert and as MS-ASPNETCORE-CLIENTCERT.
	xfcc, clientCert string
	// idConn numbers the client connection and idSeq its requests, for
	// generated request ids (requestid.go); idSeq is shared by the
	// streams of an HTTP/2 connection.
	idConn uint64
	idSeq  *atomic.Uint64
}

// appendRequestHead appends the head of the request to forward to an
// instance. It is written afresh from the parsed request, so only the
// framing the proxy checked reaches the instance:
//
//   - Host as the client sent it (or the authority of an absolute-form
//     target); the target in origin form; HTTP/1.1.
//   - Hop-by-hop headers are not forwarded: Connection and the headers it
//     names, Keep-Alive, Proxy-Connection, Proxy-Authorization, TE (except
//     "trailers"), Trailer, Transfer-Encoding, Upgrade unless the request
//     upgrades, and Expect (the proxy answers 100-continue itself).
//   - ANCM-Token (and MS-ASPNETCORE-TOKEN with aspnet) is set to the
//     instance's token; a client's own copy of either, and every other
//     MS-ASPNETCORE-* header, never reaches the app. Proxy (httpoxy) and
//     Forwarded are dropped.
//   - X-Forwarded-For is the client's list with the client's IP appended;
//     X-Forwarded-Host is the client's Host; X-Forwarded-Proto "http" or
//     "https". The client's own X-Forwarded-Host and -Proto are dropped.
//   - Content-Length or Transfer-Encoding: chunked as the proxy framed the
//     body.
//   - X-Request-Id once: the client's own if it is a sane token, else a
//     new one (requestid.go).
func appendRequestHead(b []byte, r *request, fi *forwardInfo) []byte {
	b = append(b, r.Method...)
	b = append(b, ' ')
	if fi.prefix != "" {
		b = appendStripped(b, r, fi.prefix)
	} else {
		b = append(b, r.URI...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	if r.Host != "" {
		b = append(b, r.Host...)
	} else {
		b = append(b, fi.backend...)
	}
	b = append(b, "\r\n"...)
	xff := -1                      // index of the first X-Forwarded-For field
	var xfProto, xfHost, xfcc bool // a trusted proxy's own were forwarded
	for i := range r.Fields {
		f := &r.Fields[i]
		switch f.Kind {
		case http1.KindKeep:
			if r.Conn.Other && r.HopByName(f.Name) {
				continue
			}
			b = http1.AppendField(b, f.Name, f.Value)
		case fkXFF:
			if xff < 0 {
				xff = i
			}
		case fkXFProto:
			if fi.trusted {
				b, xfProto = http1.AppendField(b, headerXFProto, f.Value), true
			}
		case fkXFHost:
			if fi.trusted {
				b, xfHost = http1.AppendField(b, headerXFHost, f.Value), true
			}
		case fkXFCC:
			if fi.trusted {
				b = append(b, headerXFCC+": "...)
				b = append(b, f.Value...)
				if fi.xfcc != "" {
					b = append(b, ", "...)
					b = append(b, fi.xfcc...)
				}
				b, xfcc = append(b, "\r\n"...), true
			}
		}
	}
	if fi.xfcc != "" && !xfcc {
		b = http1.AppendField(b, headerXFCC, fi.xfcc)
	}
	if fi.clientCert != "" && fi.aspnet {
		b = http1.AppendField(b, "Ms-Aspnetcore-Clientcert", fi.clientCert)
	}
	b = r.AppendFraming(b)
	if fi.clientIP != "" {
		b = append(b, "X-Forwarded-For: "...)
		if xff >= 0 {
			for _, f := range r.Fields[xff:] {
				if f.Kind == fkXFF {
					b = append(b, f.Value...)
					b = append(b, ", "...)
				}
			}
		}
		b = append(b, fi.clientIP...)
		b = append(b, "\r\n"...)
	}
	if r.Host != "" && !xfHost {
		b = append(b, "X-Forwarded-Host: "...)
		b = append(b, r.Host...)
		b = append(b, "\r\n"...)
	}
	if fi.prefix != "" {
		b = append(b, "X-Forwarded-Prefix: "...)
		b = append(b, fi.prefix...)
		b = append(b, "\r\n"...)
	}
	switch {
	case xfProto:
	case fi.tls:
		b = append(b, "X-Forwarded-Proto: https\r\n"...)
	default:
		b = append(b, "X-Forwarded-Proto: http\r\n"...)
	}
	if r.requestID != "" || r.idSeq != 0 {
		b = append(b, headerRequestID+": "...)
		b = r.appendID(b)
		b = append(b, "\r\n"...)
	}
	if fi.token != "" {
		b = append(b, "Ancm-Token: "...)
		b = append(b, fi.token...)
		b = append(b, "\r\n"...)
		if fi.aspnet {
			b = append(b, "Ms-Aspnetcore-Token: "...)
			b = append(b, fi.token...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// appendStripped appends the request's target without the app's path
// prefix (strip_prefix): "/shop/cart?x" becomes "/cart?x", "/shop" and
// "/shop?x" become "/" and "/?x". Routing matched prefix against the
// decoded path; when the target spells the prefix with escapes, the rest
// is taken from the decoded path and escaped again.
func appendStripped(b []byte, r *request, prefix string) []byte {
	uri := r.URI
	if uri == "*" || prefix == "/" {
		return append(b, uri...)
	}
	path, query := uri, ""
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		path, query = uri[:i], uri[i:]
	}
	var rest string
	if strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/') {
		rest = path[len(prefix):]
	} else if strings.HasPrefix(r.Path, prefix) {
		rest = (&url.URL{Path: r.Path[len(prefix):]}).EscapedPath()
	} else {
		return append(b, uri...) // not under the prefix: cannot happen for a routed request
	}
	if rest == "" {
		b = append(b, '/')
	} else {
		b = append(b, rest...)
	}
	return append(b, query...)
}

// clientIP returns the IP of a RemoteAddr ("ip:port"), or "" when it has
// none (a unix socket, or a synthetic request).
func clientIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return ""
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return ""
	}
	return host
}
