package dataplane

import (
	"net"
	"net/http"
)

// Header names, in canonical form so map lookups need no canonicalization.
const (
	headerToken        = "Ancm-Token"
	headerAspNetToken  = "Ms-Aspnetcore-Token"
	headerXFF          = "X-Forwarded-For"
	headerXFHost       = "X-Forwarded-Host"
	headerXFProto      = "X-Forwarded-Proto"
	headerForwarded    = "Forwarded"
	headerProxy        = "Proxy" // httpoxy: never forward
	headerProxyConnect = "Proxy-Connection"
)

// Shared values for X-Forwarded-Proto; Header values are never mutated in
// place by net/http, so the slices can be shared by all requests.
var (
	protoHTTP  = []string{"http"}
	protoHTTPS = []string{"https"}
)

// rewriteHeaders prepares the outgoing header out of a request in for an
// instance with the given token. httputil.ReverseProxy has already removed
// hop-by-hop headers (Connection and what it names, Keep-Alive, Proxy-*,
// TE except "trailers", Trailer, Transfer-Encoding, Upgrade unless the
// request upgrades) and every X-Forwarded-* header from out; in.Header
// still holds what the client sent.
//
//   - ANCM-Token (and MS-ASPNETCORE-TOKEN with aspnet) is set to token; a
//     client's own copy of either never reaches the app.
//   - X-Forwarded-For is the client's list with the client's IP appended.
//   - X-Forwarded-Host is the client's Host; X-Forwarded-Proto "http" or
//     "https". Host itself is left as the client sent it.
func rewriteHeaders(out http.Header, in *http.Request, token string, aspnet bool) {
	delete(out, headerToken)
	delete(out, headerAspNetToken)
	delete(out, headerProxy)
	delete(out, headerProxyConnect)
	delete(out, headerForwarded)
	if token != "" {
		out[headerToken] = []string{token}
		if aspnet {
			out[headerAspNetToken] = out[headerToken]
		}
	}
	if ip := clientIP(in.RemoteAddr); ip != "" {
		prior := in.Header[headerXFF]
		switch len(prior) {
		case 0:
			out[headerXFF] = []string{ip}
		case 1:
			out[headerXFF] = []string{prior[0] + ", " + ip}
		default:
			n := len(ip)
			for _, v := range prior {
				n += len(v) + 2
			}
			b := make([]byte, 0, n)
			for _, v := range prior {
				b = append(b, v...)
				b = append(b, ", "...)
			}
			b = append(b, ip...)
			out[headerXFF] = []string{string(b)}
		}
	} else {
		delete(out, headerXFF)
	}
	if in.Host != "" {
		out[headerXFHost] = []string{in.Host}
	} else {
		delete(out, headerXFHost)
	}
	if in.TLS != nil {
		out[headerXFProto] = protoHTTPS
	} else {
		out[headerXFProto] = protoHTTP
	}
}

// setToken replaces the token headers of an outgoing request, for a retry
// on another instance.
func setToken(out http.Header, token string, aspnet bool) {
	delete(out, headerToken)
	delete(out, headerAspNetToken)
	if token != "" {
		out[headerToken] = []string{token}
		if aspnet {
			out[headerAspNetToken] = out[headerToken]
		}
	}
}

// clientIP returns the IP of a RemoteAddr ("ip:port"), or "" when it has
// none (a unix socket, or a synthetic request).
func clientIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return ""
	}
	return host
}
