package dataplane

import (
	"errors"
	"net/url"
	"strings"
)

// The client-facing server (server.go, conn.go) parses request heads
// itself, so the framing rules are enforced where the head is parsed and
// nothing ambiguous is ever forwarded: Content-Length together with
// Transfer-Encoding, differing or malformed Content-Length values (a
// repeated one written differently: "05", "5"), any Transfer-Encoding
// but a single "chunked", Transfer-Encoding on HTTP/1.0 and obsolete
// line folding are refused with 400 and a closed connection.
// What is forwarded is written afresh (headers.go), so the instance sees
// one framing only: the one the proxy checked.

// Parse errors of a request head.
var (
	errMalformed   = errors.New("malformed request head")
	errBadVersion  = errors.New("unsupported HTTP version")
	errBadExpect   = errors.New("unsupported Expect")
	errMissingHost = errors.New("missing or repeated Host header")
)

// headFraming is what the head says about the body that follows it.
type headFraming struct {
	bad     bool // refuse with 400
	unknown bool // not understood: refuse with 400
	tunnel  bool // upgrade or CONNECT
	chunked bool
	length  int64
}

// field kinds of request headers; see classify.
const (
	fkKeep    = iota // forwarded as sent
	fkDrop           // hop-by-hop or replaced by the proxy
	fkXFF            // X-Forwarded-For: the client's list, extended
	fkHost           // Host: forwarded first, always
	fkLength         // Content-Length: rewritten from the framing
	fkXFProto        // X-Forwarded-Proto: kept from a trusted proxy only
	fkXFHost         // X-Forwarded-Host: kept from a trusted proxy only
	fkXFCC           // X-Forwarded-Client-Cert: kept from a trusted proxy only
)

// field is one header line of a request head, as substrings of the head.
type field struct {
	name, value string
	kind        uint8
}

// request is one parsed client request head. Its strings are substrings
// of head, so a request costs one allocation for the head itself.
type request struct {
	head    string
	method  string
	target  string // as sent
	uri     string // origin-form to forward: path and query, or "*"
	path    string // decoded path, for routing
	host    string // Host header, or the authority of an absolute-form target
	http10  bool
	fields  []field
	framing headFraming
	hosts   int // Host headers seen

	hasLength  bool // a Content-Length header was sent
	conn       connOptions
	upgrade    string
	expect100  bool
	teTrailers bool

	// requestID is the client's X-Request-Id when it is kept; else the
	// id is generated from idConn and idSeq (requestid.go).
	requestID     string
	idConn, idSeq uint64
}

// hasBody reports whether a body follows the head.
func (r *request) hasBody() bool { return r.framing.chunked || r.framing.length > 0 }

// keepAlive reports whether the client wants the connection kept open.
func (r *request) keepAlive() bool {
	if r.http10 {
		return r.conn.keepAlive && !r.conn.close
	}
	return !r.conn.close
}

// isUpgrade reports whether the request asks to switch protocols.
func (r *request) isUpgrade() bool { return r.upgrade != "" && r.conn.upgrade }

// Request header names the proxy acts on; see headerKind.
const (
	hkOther = iota // any other name: forwarded as sent
	hkTE
	hkHost
	hkExpect
	hkUpgrade
	hkConnection
	hkContentLength
	hkXFF
	hkTransferEncoding
	hkXFProto
	hkXFHost
	hkXFCC
	hkRequestID
	hkHopByHop // Trailer, Keep-Alive, Proxy-Connection, Proxy-Authorization
	hkProxySet // set by the proxy alone: Proxy, Forwarded, X-Forwarded-Host, -Proto, -Prefix, ANCM-Token, MS-ASPNETCORE-*
	hkAlias    // an underscore alias of one of the above
)

// headerKind classifies a request header name, case insensitively.
func headerKind(name string) int {
	switch len(name) {
	case 2:
		if strings.EqualFold(name, "TE") {
			return hkTE
		}
	case 4:
		if strings.EqualFold(name, "Host") {
			return hkHost
		}
	case 5:
		if strings.EqualFold(name, headerProxy) {
			return hkProxySet
		}
	case 6:
		if strings.EqualFold(name, "Expect") {
			return hkExpect
		}
	case 7:
		switch {
		case strings.EqualFold(name, "Upgrade"):
			return hkUpgrade
		case strings.EqualFold(name, "Trailer"):
			return hkHopByHop
		}
	case 9:
		if strings.EqualFold(name, headerForwarded) {
			return hkProxySet
		}
	case 10:
		switch {
		case strings.EqualFold(name, "Connection"):
			return hkConnection
		case strings.EqualFold(name, "Keep-Alive"):
			return hkHopByHop
		case strings.EqualFold(name, headerToken):
			return hkProxySet
		}
	case 12:
		if strings.EqualFold(name, headerRequestID) {
			return hkRequestID
		}
	case 14:
		if strings.EqualFold(name, "Content-Length") {
			return hkContentLength
		}
	case 15:
		if strings.EqualFold(name, headerXFF) {
			return hkXFF
		}
	case 16:
		switch {
		case strings.EqualFold(name, headerProxyConnect):
			return hkHopByHop
		case strings.EqualFold(name, headerXFHost):
			return hkXFHost
		}
	case 17:
		switch {
		case strings.EqualFold(name, "Transfer-Encoding"):
			return hkTransferEncoding
		case strings.EqualFold(name, headerXFProto):
			return hkXFProto
		}
	case 18:
		if strings.EqualFold(name, headerXFPrefix) {
			return hkProxySet
		}
	case 19:
		if strings.EqualFold(name, "Proxy-Authorization") {
			return hkHopByHop
		}
	case 23:
		if strings.EqualFold(name, headerXFCC) {
			return hkXFCC
		}
	}
	if isAspNetPrivate(name) {
		// The IIS integration's own headers (the token, client
		// certificate, Windows auth token, shutdown event) come only
		// from the module, never from a client.
		return hkProxySet
	}
	return hkOther
}

// parseRequest parses a complete request head (up to and including the
// empty line) into r, reusing r's field slice. It returns errBadFraming
// for the shapes the proxy refuses, errMalformed for anything it cannot
// parse; r.framing is filled as far as the head was read.
func parseRequest(head string, r *request) error {
	*r = request{head: head, fields: r.fields[:0]}
	s := head
	// RFC 9112 2.2: empty lines before the request line; a bare CR is
	// not one, it belongs to the line (and makes it invalid).
	for skip := true; skip; {
		switch {
		case strings.HasPrefix(s, "\n"):
			s = s[1:]
		case strings.HasPrefix(s, "\r\n"):
			s = s[2:]
		default:
			skip = false
		}
	}
	line, s := cutLine(s)
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !validToken(method) || target == "" || !validTarget(target) {
		return errMalformed
	}
	r.method, r.target = method, target
	switch proto {
	case "HTTP/1.1":
	case "HTTP/1.0":
		r.http10 = true
	default:
		if len(proto) == 8 && strings.HasPrefix(proto, "HTTP/") && proto[6] == '.' {
			return errBadVersion
		}
		return errMalformed
	}
	if method == "CONNECT" {
		r.framing.tunnel = true
	}
	var teCount int
	var teValue, lengthValue string
	for {
		line, s = cutLine(s)
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			r.framing.bad = true // obs-fold could hide a framing header
			return ErrBadFraming
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return errMalformed
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validToken(name) || !validValue(value) {
			return errMalformed
		}
		f := field{name: name, value: value, kind: fkKeep}
		hk := headerKind(name)
		if hk == hkOther && strings.IndexByte(name, '_') >= 0 && headerKind(strings.ReplaceAll(name, "_", "-")) != hkOther {
			// X_Forwarded_Host, Ancm_Token: CGI and WSGI servers read
			// "_" as "-" and would merge it into the real header.
			hk = hkAlias
		}
		switch hk {
		case hkOther:
		case hkTE:
			f.kind = fkDrop
			r.teTrailers = r.teTrailers || hasToken(value, "trailers")
		case hkHost:
			f.kind = fkHost
			r.hosts++
			r.host = value
		case hkExpect:
			f.kind = fkDrop
			if !strings.EqualFold(value, "100-continue") {
				return errBadExpect
			}
			r.expect100 = true
		case hkUpgrade:
			f.kind = fkDrop
			// h2c is an upgrade of this hop only: a tunnel to an
			// instance speaking HTTP/2 would carry requests the proxy
			// never sees (h2c smuggling).
			if !hasToken(value, "h2c") {
				r.upgrade = value
			}
		case hkConnection:
			f.kind = fkDrop
			r.conn.add(value)
		case hkContentLength:
			f.kind = fkLength
			// Repeated, it must be repeated as it was written: "05"
			// and "5" are one length to the proxy but an error to
			// net/http (RFC 9110 8.6 lets a recipient refuse both).
			n, ok := parseDecimal(value)
			if !ok || (r.hasLength && value != lengthValue) {
				r.framing.bad = true
				return ErrBadFraming
			}
			r.hasLength, r.framing.length, lengthValue = true, n, value
		case hkXFF:
			f.kind = fkXFF
		case hkXFProto:
			f.kind = fkXFProto
		case hkXFHost:
			f.kind = fkXFHost
		case hkXFCC:
			f.kind = fkXFCC
		case hkRequestID:
			// Written once by the proxy: the first sane one, or a new one.
			f.kind = fkDrop
			if r.requestID == "" && validRequestID(value) {
				r.requestID = value
			}
		case hkTransferEncoding:
			f.kind = fkDrop
			teCount++
			teValue = value
		default:
			// Hop-by-hop, or set by the proxy itself: Trailer,
			// Keep-Alive, Proxy, Proxy-Connection, Proxy-Authorization,
			// Forwarded, X-Forwarded-Host, X-Forwarded-Proto,
			// X-Forwarded-Prefix, ANCM-Token, MS-ASPNETCORE-*, and the
			// underscore aliases of every header of this list.
			f.kind = fkDrop
		}
		r.fields = append(r.fields, f)
	}
	if teCount > 0 {
		if r.hasLength || r.http10 || teCount != 1 || !strings.EqualFold(teValue, "chunked") {
			r.framing.bad = true
			return ErrBadFraming
		}
		r.framing.chunked = true
		r.framing.length = 0
	}
	if r.isUpgrade() {
		r.framing.tunnel = true
	}
	return nil
}

// hopByName reports whether the request's Connection header names the
// header name, which makes it hop-by-hop.
func (r *request) hopByName(name string) bool {
	for _, f := range r.fields {
		if f.kind == fkDrop && len(f.name) == 10 && strings.EqualFold(f.name, "Connection") && hasToken(f.value, name) {
			return true
		}
	}
	return false
}

// resolveTarget checks the request beyond its syntax as net/http's server
// would (one Host header on HTTP/1.1, a target it can route) and sets
// host, uri and path.
func (r *request) resolveTarget() error {
	// RFC 9112 3.2: one Host on HTTP/1.1, and not an empty one (an empty
	// Host is for a target without authority, which no app has).
	if r.hosts > 1 || (r.hosts == 0 || r.host == "") && !r.http10 || !validHost(r.host) {
		return errMissingHost
	}
	t := r.target
	switch {
	case t == "*":
		if r.method != "OPTIONS" {
			return errMalformed
		}
		r.uri, r.path = "*", "*"
		return nil
	case t[0] == '/':
	default:
		// Absolute form: its authority replaces the Host header.
		rest, ok := strings.CutPrefix(t, "http://")
		if !ok {
			if rest, ok = strings.CutPrefix(t, "https://"); !ok {
				return errMalformed
			}
		}
		i := strings.IndexAny(rest, "/?")
		if i < 0 {
			i = len(rest)
		}
		if i == 0 {
			return errMalformed
		}
		r.host, t = rest[:i], rest[i:]
		if t == "" || t[0] == '?' {
			t = "/" + t // one allocation; rare
		}
		// The authority as net/http reads it, or 400: a numeric port,
		// brackets around an IPv6 address, and no percent-encoding
		// (net/http would decode it, and read another host name).
		if !validHost(r.host) || strings.IndexByte(r.host, '%') >= 0 {
			return errMalformed
		}
		if _, err := url.ParseRequestURI(r.target); err != nil {
			return errMalformed
		}
	}
	r.uri = t
	path := t
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if strings.IndexByte(path, '%') >= 0 {
		p, err := url.PathUnescape(path)
		if err != nil {
			return errMalformed
		}
		path = p
	}
	r.path = path
	return nil
}

// checkHead applies the framing rules to one request head: bad for the
// shapes that are refused, unknown for a head that does not parse.
func checkHead(head []byte) headFraming {
	var r request
	switch err := parseRequest(string(head), &r); err {
	case nil, ErrBadFraming:
		return r.framing
	default:
		return headFraming{unknown: true}
	}
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// tokenChars marks the characters of an RFC 9110 token.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validToken[T string | []byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// validValue refuses control characters but horizontal tab.
func validValue[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validTarget refuses control characters and spaces in a request target.
func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts what may appear in a Host header: host, optional
// port, IPv6 literal.
func validHost(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"#/<>?@\\^`{|}", c) >= 0 {
			return false
		}
	}
	return true
}

func parseHex(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 15 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

func parseDecimal(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// aspNetPrefix starts the headers the ASP.NET Core Module and the IIS
// integration middleware exchange (MS-ASPNETCORE-TOKEN, -EVENT,
// -CLIENTCERT, -WINAUTHTOKEN, ...).
const aspNetPrefix = "Ms-Aspnetcore-"

// isAspNetPrivate reports whether a header name starts with aspNetPrefix.
func isAspNetPrivate(name string) bool {
	return len(name) > len(aspNetPrefix) && name[0]|0x20 == 'm' && strings.EqualFold(name[:len(aspNetPrefix)], aspNetPrefix)
}
