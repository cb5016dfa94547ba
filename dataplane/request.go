package dataplane

import (
	"strings"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

// request is one client request: its head as the codec parsed it
// (http1.Request, whose framing rules are the codec's), and what the
// proxy adds: the kinds of the fields it sets or drops itself (classify)
// and the request's id (requestid.go).
type request struct {
	http1.Request

	// requestID is the client's X-Request-Id when it is kept; else the
	// id is generated from idConn and idSeq (requestid.go).
	requestID     string
	idConn, idSeq uint64
}

// Field kinds of the proxy's own headers, set by classify on fields the
// codec leaves to it.
const (
	fkXFF     = http1.KindCaller + iota // X-Forwarded-For: the client's list, extended
	fkXFProto                           // X-Forwarded-Proto: kept from a trusted proxy only
	fkXFHost                            // X-Forwarded-Host: kept from a trusted proxy only
	fkXFCC                              // X-Forwarded-Client-Cert: kept from a trusted proxy only
)

// parseRequest parses a request head with the codec (http1.ParseRequest:
// framing, hop-by-hop fields, Host) and classifies the proxy's own
// headers. Its errors are the codec's.
func parseRequest(head string, r *request) error {
	r.requestID, r.idConn, r.idSeq = "", 0, 0
	if err := http1.ParseRequest(head, &r.Request); err != nil {
		return err
	}
	r.classify()
	return nil
}

// Request header names the proxy acts on beyond the codec's; see
// proxyKind.
const (
	pkOther = iota // forwarded as sent
	pkXFF
	pkXFProto
	pkXFHost
	pkXFCC
	pkRequestID
	pkProxySet // set by the proxy alone: Proxy, Forwarded, X-Forwarded-Prefix, ANCM-Token, MS-ASPNETCORE-*
)

// proxyKind classifies a request header name the codec leaves to the
// proxy, case insensitively.
func proxyKind(name string) int {
	switch len(name) {
	case 5:
		if strings.EqualFold(name, headerProxy) {
			return pkProxySet
		}
	case 9:
		if strings.EqualFold(name, headerForwarded) {
			return pkProxySet
		}
	case 10:
		if strings.EqualFold(name, headerToken) {
			return pkProxySet
		}
	case 12:
		if strings.EqualFold(name, headerRequestID) {
			return pkRequestID
		}
	case 15:
		if strings.EqualFold(name, headerXFF) {
			return pkXFF
		}
	case 16:
		if strings.EqualFold(name, headerXFHost) {
			return pkXFHost
		}
	case 17:
		if strings.EqualFold(name, headerXFProto) {
			return pkXFProto
		}
	case 18:
		if strings.EqualFold(name, headerXFPrefix) {
			return pkProxySet
		}
	case 23:
		if strings.EqualFold(name, headerXFCC) {
			return pkXFCC
		}
	}
	if isAspNetPrivate(name) {
		// The IIS integration's own headers (the token, client
		// certificate, Windows auth token, shutdown event) come only
		// from the module, never from a client.
		return pkProxySet
	}
	return pkOther
}

// classify gives the fields the codec kept (http1.KindKeep) the proxy's
// kinds: X-Forwarded-For, -Proto, -Host and -Client-Cert are written by
// appendRequestHead; X-Request-Id is taken (the first sane one) and
// written once; the headers the proxy alone sets (Proxy, Forwarded,
// X-Forwarded-Prefix, ANCM-Token, MS-ASPNETCORE-*) and the underscore
// aliases of every header either the codec or the proxy acts on are
// dropped: CGI and WSGI servers read "_" as "-" and would merge
// X_Forwarded_Host or Content_Length into the real header.
func (r *request) classify() {
	for i := range r.Fields {
		f := &r.Fields[i]
		if f.Kind != http1.KindKeep {
			continue
		}
		switch proxyKind(f.Name) {
		case pkOther:
			if strings.IndexByte(f.Name, '_') >= 0 {
				dashed := strings.ReplaceAll(f.Name, "_", "-")
				if http1.Known(dashed) || proxyKind(dashed) != pkOther {
					f.Kind = http1.KindDrop
				}
			}
		case pkXFF:
			f.Kind = fkXFF
		case pkXFProto:
			f.Kind = fkXFProto
		case pkXFHost:
			f.Kind = fkXFHost
		case pkXFCC:
			f.Kind = fkXFCC
		case pkRequestID:
			f.Kind = http1.KindDrop
			if r.requestID == "" && validRequestID(f.Value) {
				r.requestID = f.Value
			}
		default:
			f.Kind = http1.KindDrop
		}
	}
}

// aspNetPrefix starts the headers the ASP.NET Core Module and the IIS
// integration middleware exchange (MS-ASPNETCORE-TOKEN, -EVENT,
// -CLIENTCERT, -WINAUTHTOKEN, ...).
const aspNetPrefix = "Ms-Aspnetcore-"

// isAspNetPrivate reports whether a header name starts with aspNetPrefix.
func isAspNetPrivate(name string) bool {
	return len(name) > len(aspNetPrefix) && name[0]|0x20 == 'm' && strings.EqualFold(name[:len(aspNetPrefix)], aspNetPrefix)
}

// trailerAllowed reports whether a field may be passed on in a trailer
// section. Fields that frame or route the message, carry the proxy's own
// data (the instance token, X-Forwarded-*), are hop-by-hop, or that a
// recipient could act on as if they were in the header section
// (RFC 9110 6.5.1: authentication, content metadata, controls) are
// dropped.
func trailerAllowed(name string) bool {
	if isAspNetPrivate(name) || len(name) > 12 && strings.EqualFold(name[:12], "X-Forwarded-") {
		return false
	}
	switch strings.ToLower(name) {
	case "content-length", "transfer-encoding", "trailer", "host", "connection", "keep-alive", "upgrade", "te",
		"proxy-connection", "proxy-authorization", "proxy-authenticate", "authorization", "www-authenticate",
		"cookie", "set-cookie", "content-type", "content-encoding", "content-range", "range", "expect",
		"cache-control", "pragma", "location", "forwarded", "ancm-token", "age", "expires", "date",
		"retry-after", "vary", "max-forwards", "if-match", "if-none-match", "if-modified-since",
		"if-unmodified-since", "if-range":
		return false
	}
	return true
}
