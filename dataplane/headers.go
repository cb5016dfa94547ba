package dataplane

import (
	"bytes"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
)

// Header names, in canonical form.
const (
	headerToken        = "Ancm-Token"
	headerAspNetToken  = "Ms-Aspnetcore-Token"
	headerXFF          = "X-Forwarded-For"
	headerXFHost       = "X-Forwarded-Host"
	headerXFProto      = "X-Forwarded-Proto"
	headerXFPrefix     = "X-Forwarded-Prefix"
	headerXFCC         = "X-Forwarded-Client-Cert"
	headerForwarded    = "Forwarded"
	headerProxy        = "Proxy" // httpoxy: never forward
	headerProxyConnect = "Proxy-Connection"
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
	b = append(b, r.method...)
	b = append(b, ' ')
	if fi.prefix != "" {
		b = appendStripped(b, r, fi.prefix)
	} else {
		b = append(b, r.uri...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	if r.host != "" {
		b = append(b, r.host...)
	} else {
		b = append(b, fi.backend...)
	}
	b = append(b, "\r\n"...)
	xff := -1                      // index of the first X-Forwarded-For field
	var xfProto, xfHost, xfcc bool // a trusted proxy's own were forwarded
	for i := range r.fields {
		f := &r.fields[i]
		switch f.kind {
		case fkKeep:
			if r.conn.other && r.hopByName(f.name) {
				continue
			}
			b = appendField(b, f.name, f.value)
		case fkXFF:
			if xff < 0 {
				xff = i
			}
		case fkXFProto:
			if fi.trusted {
				b, xfProto = appendField(b, headerXFProto, f.value), true
			}
		case fkXFHost:
			if fi.trusted {
				b, xfHost = appendField(b, headerXFHost, f.value), true
			}
		case fkXFCC:
			if fi.trusted {
				b = append(b, headerXFCC+": "...)
				b = append(b, f.value...)
				if fi.xfcc != "" {
					b = append(b, ", "...)
					b = append(b, fi.xfcc...)
				}
				b, xfcc = append(b, "\r\n"...), true
			}
		}
	}
	if fi.xfcc != "" && !xfcc {
		b = appendField(b, headerXFCC, fi.xfcc)
	}
	if fi.clientCert != "" && fi.aspnet {
		b = appendField(b, "Ms-Aspnetcore-Clientcert", fi.clientCert)
	}
	if r.isUpgrade() {
		b = append(b, "Connection: Upgrade\r\nUpgrade: "...)
		b = append(b, r.upgrade...)
		b = append(b, "\r\n"...)
	}
	if r.teTrailers {
		b = append(b, "Te: trailers\r\n"...)
	}
	switch {
	case r.framing.chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case r.hasLength || r.framing.length > 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, r.framing.length, 10)
		b = append(b, "\r\n"...)
	case r.method == "POST" || r.method == "PUT" || r.method == "PATCH":
		b = append(b, "Content-Length: 0\r\n"...)
	}
	if fi.clientIP != "" {
		b = append(b, "X-Forwarded-For: "...)
		if xff >= 0 {
			for _, f := range r.fields[xff:] {
				if f.kind == fkXFF {
					b = append(b, f.value...)
					b = append(b, ", "...)
				}
			}
		}
		b = append(b, fi.clientIP...)
		b = append(b, "\r\n"...)
	}
	if r.host != "" && !xfHost {
		b = append(b, "X-Forwarded-Host: "...)
		b = append(b, r.host...)
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

// appendField appends one header line.
func appendField(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// appendStripped appends the request's target without the app's path
// prefix (strip_prefix): "/shop/cart?x" becomes "/cart?x", "/shop" and
// "/shop?x" become "/" and "/?x". Routing matched prefix against the
// decoded path; when the target spells the prefix with escapes, the rest
// is taken from the decoded path and escaped again.
func appendStripped(b []byte, r *request, prefix string) []byte {
	uri := r.uri
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
	} else if strings.HasPrefix(r.path, prefix) {
		rest = (&url.URL{Path: r.path[len(prefix):]}).EscapedPath()
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

// response is what the proxy needs of an instance's response head.
type response struct {
	status  int
	chunked bool
	length  int64 // -1: none given
	close   bool  // the instance closes the connection after it
	upgrade string
	conn    connOptions
	trailer bool
}

// parseResponse reads the framing of a response head (status line and
// header lines, up to the empty line). Anything the proxy could not relay
// as it was meant, or that a client or another intermediary could read
// two ways, is errBadResponse (502): a status line other than
// "HTTP/1.x NNN reason", a field name that is not a token, control
// characters in a value or the reason (a bare CR would split the head
// for a lenient client), a Content-Length that is not one decimal
// (repeated: not written the same), a Transfer-Encoding other than one
// "chunked", and one in an HTTP/1.0 response. A response with both
// Content-Length and Transfer-Encoding is read as chunked, and its
// connection is not reused (RFC 9112 6.3).
func parseResponse(head []byte, res *response) error {
	*res = response{length: -1}
	s := head
	line, s := cutLine(s)
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') || !validValue(line[12:]) {
		return errBadResponse
	}
	code, ok := parseDecimal(string(line[9:12]))
	if !ok || code < 100 {
		return errBadResponse
	}
	res.status = int(code)
	http10 := line[7] == '0'
	teCount := 0
	var te []byte
	var lengthValue string
	for {
		line, s = cutLine(s)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validToken(line[:colon]) || !validValue(line[colon+1:]) {
			return errBadResponse
		}
		name, value := line[:colon], line[colon+1:]
		switch len(name) {
		case 7:
			switch {
			case strings.EqualFold(string(name), "Upgrade"):
				res.upgrade = trimOWS(string(value))
			case strings.EqualFold(string(name), "Trailer"):
				res.trailer = true
			}
		case 10:
			if strings.EqualFold(string(name), "Connection") {
				res.conn.add(string(value))
			}
		case 14:
			if strings.EqualFold(string(name), "Content-Length") {
				v := trimOWS(string(value))
				n, ok := parseDecimal(v)
				if !ok || (res.length >= 0 && v != lengthValue) {
					return errBadResponse // repeated, as written (see parseRequest)
				}
				res.length, lengthValue = n, v
			}
		case 17:
			if strings.EqualFold(string(name), "Transfer-Encoding") {
				te = value
				teCount++
			}
		}
	}
	if teCount > 0 {
		// RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is
		// faulty framing (net/http ignores it and reads to the end).
		if teCount > 1 || http10 || !strings.EqualFold(trimOWS(string(te)), "chunked") {
			return errBadResponse
		}
		if res.length >= 0 {
			res.close = true
		}
		res.chunked, res.length = true, -1
	}
	if res.conn.close || http10 && !res.conn.keepAlive {
		res.close = true
	}
	return nil
}

// responseDrop reports whether a response header is hop-by-hop or one the
// proxy writes itself: the fixed list, and every field a Connection
// header of the response names, whatever its name.
func responseDrop(name string, res *response, head []byte) bool {
	var drop bool
	switch len(name) {
	case 2:
		drop = strings.EqualFold(name, "TE")
	case 7:
		drop = strings.EqualFold(name, "Upgrade") || strings.EqualFold(name, "Trailer") && !res.chunked
	case 10:
		drop = strings.EqualFold(name, "Connection") || strings.EqualFold(name, "Keep-Alive")
	case 14:
		drop = strings.EqualFold(name, "Content-Length")
	case 16:
		drop = strings.EqualFold(name, headerProxyConnect)
	case 17:
		drop = strings.EqualFold(name, "Transfer-Encoding")
	case 18:
		drop = strings.EqualFold(name, "Proxy-Authenticate")
	case 19:
		drop = strings.EqualFold(name, "Proxy-Authorization")
	}
	return drop || res.conn.other && namedByConnection(head, name)
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
