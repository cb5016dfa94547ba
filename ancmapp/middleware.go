package ancmapp

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// HeaderToken is the request header that carries ANCM_TOKEN.
const HeaderToken = "ANCM-Token"

// Forwarded headers that ancmd sets, trusted only with the right token.
const (
	headerForwardedFor   = "X-Forwarded-For"
	headerForwardedProto = "X-Forwarded-Proto"
	headerForwardedHost  = "X-Forwarded-Host"
)

type ctxKey struct{}

// reqInfo is what the middleware learnt about a request.
type reqInfo struct {
	verified   bool   // carried the right token
	clientAddr string // client IP, restored from X-Forwarded-For
	scheme     string // "http" or "https", from X-Forwarded-Proto
	pathBase   string // normalised ANCM_PATH_BASE
}

// Middleware wraps h with the ANCM-Token check configured from FromEnv.
// See Env.Middleware.
func Middleware(h http.Handler) http.Handler {
	return FromEnv().Middleware(h)
}

// Middleware wraps h so that:
//
//   - when e.Token is set, a request whose ANCM-Token header is missing,
//     repeated or wrong is answered 400 and never reaches h (the token is
//     compared in constant time);
//   - the ANCM-Token header is removed before h sees the request;
//   - only on a request with the right token, r.RemoteAddr is set to the last
//     X-Forwarded-For entry (the one ancmd appended) as "ip:port", with port 0
//     when the entry has none, r.Host to X-Forwarded-Host, and the scheme
//     from X-Forwarded-Proto is kept for Scheme;
//   - PathBase(r) returns e.PathBase.
//
// When e.Token is empty (not behind ancmd) requests pass untouched and
// forwarded headers are not trusted: anyone could have set them.
//
// Wrapping twice is harmless: the inner wrapper lets through what the outer
// one verified.
func (e Env) Middleware(h http.Handler) http.Handler {
	token := []byte(e.Token)
	pathBase := normPathBase(e.PathBase)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok && (info.verified || len(token) == 0) {
			h.ServeHTTP(w, r)
			return
		}
		info := &reqInfo{pathBase: pathBase}
		if len(token) == 0 {
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, info)))
			return
		}
		got := r.Header.Values(HeaderToken)
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), token) != 1 {
			http.Error(w, "Bad Request: missing or wrong "+HeaderToken, http.StatusBadRequest)
			return
		}
		info.verified = true
		r2 := r.Clone(context.WithValue(r.Context(), ctxKey{}, info))
		r2.Header.Del(HeaderToken)
		if ip, port, ok := lastForwardedFor(r.Header.Values(headerForwardedFor)); ok {
			info.clientAddr = ip.String()
			r2.RemoteAddr = netip.AddrPortFrom(ip, port).String()
		}
		if p := strings.ToLower(lastEntry(r.Header.Values(headerForwardedProto))); p == "http" || p == "https" {
			info.scheme = p
		}
		if host := lastEntry(r.Header.Values(headerForwardedHost)); validHost(host) {
			r2.Host = host
		}
		h.ServeHTTP(w, r2)
	})
}

// lastEntry returns the last comma-separated entry of a list header, which
// may come in several lines.
func lastEntry(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// lastForwardedFor parses the last X-Forwarded-For entry: an IP address,
// optionally with a port ("192.0.2.1:4711", "[2001:db8::1]:4711").
func lastForwardedFor(values []string) (netip.Addr, uint16, bool) {
	v := lastEntry(values)
	if v == "" {
		return netip.Addr{}, 0, false
	}
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr().Unmap(), ap.Port(), true
	}
	v = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
	ip, err := netip.ParseAddr(v)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, 0, false
	}
	return ip.Unmap(), 0, true
}

// validHost accepts what may stand in a Host header: no spaces, commas,
// slashes or control characters.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || c == ',' || c == '/' || c == '\\' || c == '@' || c == '?' || c == '#' {
			return false
		}
	}
	return true
}

func infoOf(r *http.Request) *reqInfo {
	info, _ := r.Context().Value(ctxKey{}).(*reqInfo)
	return info
}

// Verified reports whether r went through the middleware with the right
// ANCM-Token, which means it came from ancmd.
func Verified(r *http.Request) bool {
	info := infoOf(r)
	return info != nil && info.verified
}

// ClientAddr returns the IP address of the client, without port: the one
// ancmd appended to X-Forwarded-For when the request carried the right token,
// else the host part of r.RemoteAddr.
func ClientAddr(r *http.Request) string {
	if info := infoOf(r); info != nil && info.clientAddr != "" {
		return info.clientAddr
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Scheme returns "https" or "http": the client's scheme from
// X-Forwarded-Proto when the request carried the right token, else the
// scheme of the connection the app itself accepted.
func Scheme(r *http.Request) string {
	if info := infoOf(r); info != nil && info.scheme != "" {
		return info.scheme
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// PathBase returns the path prefix ancmd routes to this app, without
// trailing slash: "" for an app at the root, "/shop" for path_prefix
// "/shop/". ancmd does not strip it, so r.URL.Path starts with it. Outside
// the middleware it reads ANCM_PATH_BASE.
func PathBase(r *http.Request) string {
	if info := infoOf(r); info != nil {
		return info.pathBase
	}
	return normPathBase(FromEnv().PathBase)
}
