package http1

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Request heads are parsed strictly, so that nothing ambiguous is ever
// forwarded: Content-Length together with Transfer-Encoding, differing
// or malformed Content-Length values (a repeated one written
// differently: "05", "5"), any Transfer-Encoding but a single
// "chunked", Transfer-Encoding on HTTP/1.0 and obsolete line folding are
// ErrBadFraming, which a server answers with 400 and a closed
// connection. What a proxy forwards is written afresh (AppendFraming),
// so the next hop sees one framing only: the one that was checked.

// Parse errors of a request head.
var (
	ErrMalformed   = errors.New("malformed request head")
	ErrBadVersion  = errors.New("unsupported HTTP version")
	ErrBadExpect   = errors.New("unsupported Expect")
	ErrMissingHost = errors.New("missing or repeated Host header")
	// ErrBadFraming: ambiguous message framing, never forwarded (400).
	ErrBadFraming = errors.New("ambiguous request framing")
)

// Framing is what a request head says about the body that follows it.
type Framing struct {
	Bad     bool // refused: ambiguous (ErrBadFraming)
	Tunnel  bool // upgrade or CONNECT
	Chunked bool
	Length  int64
}

// Field kinds of request header lines. The codec sets the first four;
// the caller may give the fields it left KindKeep kinds of its own,
// from KindCaller up (a proxy's X-Forwarded-For, say).
const (
	KindKeep   = iota // not the codec's: forwarded as sent, unless the caller says otherwise
	KindDrop          // hop-by-hop, or framing the forwarded head writes afresh
	KindHost          // Host: forwarded first, always
	KindLength        // Content-Length: written afresh from the framing
	KindCaller = 16
)

// Field is one header line of a request head, as substrings of the head.
type Field struct {
	Name, Value string
	Kind        uint8
}

// Request is one parsed request head. Its strings are substrings of
// Head, so a request costs one allocation, for the head itself.
type Request struct {
	Head    string
	Method  string
	Target  string // as sent
	URI     string // origin-form to forward: path and query, or "*" (ResolveTarget)
	Path    string // decoded path, for routing (ResolveTarget)
	Host    string // Host header, or the authority of an absolute-form target
	HTTP10  bool
	Fields  []Field
	Framing Framing

	HasLength  bool // a Content-Length header was sent
	Conn       ConnOptions
	Upgrade    string // the protocol asked for, when the request upgrades; never h2c
	Expect100  bool
	TETrailers bool // TE: trailers

	hosts int // Host headers seen
}

// HasBody reports whether a body follows the head.
func (r *Request) HasBody() bool { return r.Framing.Chunked || r.Framing.Length > 0 }

// KeepAlive reports whether the client wants the connection kept open.
func (r *Request) KeepAlive() bool {
	if r.HTTP10 {
		return r.Conn.KeepAlive && !r.Conn.Close
	}
	return !r.Conn.Close
}

// IsUpgrade reports whether the request asks to switch protocols.
func (r *Request) IsUpgrade() bool { return r.Upgrade != "" && r.Conn.Upgrade }

// Request header names the codec acts on; see headerKind.
const (
	hkOther = iota // any other name: the caller's
	hkTE
	hkHost
	hkExpect
	hkUpgrade
	hkConnection
	hkContentLength
	hkTransferEncoding
	hkHopByHop // Trailer, Keep-Alive, Proxy-Connection, Proxy-Authorization
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
	case 10:
		switch {
		case strings.EqualFold(name, "Connection"):
			return hkConnection
		case strings.EqualFold(name, "Keep-Alive"):
			return hkHopByHop
		}
	case 14:
		if strings.EqualFold(name, "Content-Length") {
			return hkContentLength
		}
	case 16:
		if strings.EqualFold(name, "Proxy-Connection") {
			return hkHopByHop
		}
	case 17:
		if strings.EqualFold(name, "Transfer-Encoding") {
			return hkTransferEncoding
		}
	case 19:
		if strings.EqualFold(name, "Proxy-Authorization") {
			return hkHopByHop
		}
	}
	return hkOther
}

// Known reports whether the codec acts on a request header name: one
// that frames the message, routes it (Host), or is hop-by-hop. The
// fields of every other name are the caller's (KindKeep).
func Known(name string) bool { return headerKind(name) != hkOther }

// ParseRequest parses a complete request head (up to and including the
// empty line) into r, reusing r's field slice. It returns ErrBadFraming
// for the shapes that are refused, ErrMalformed for anything it cannot
// parse, ErrBadVersion and ErrBadExpect; r.Framing is filled as far as
// the head was read. ResolveTarget checks the rest.
func ParseRequest(head string, r *Request) error {
	*r = Request{Head: head, Fields: r.Fields[:0]}
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
	line, s := CutLine(s)
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !ValidToken(method) || target == "" || !ValidTarget(target) {
		return ErrMalformed
	}
	r.Method, r.Target = method, target
	switch proto {
	case "HTTP/1.1":
	case "HTTP/1.0":
		r.HTTP10 = true
	default:
		if len(proto) == 8 && strings.HasPrefix(proto, "HTTP/") && proto[6] == '.' {
			return ErrBadVersion
		}
		return ErrMalformed
	}
	if method == "CONNECT" {
		r.Framing.Tunnel = true
	}
	var teCount int
	var teValue, lengthValue string
	for {
		line, s = CutLine(s)
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			r.Framing.Bad = true // obs-fold could hide a framing header
			return ErrBadFraming
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return ErrMalformed
		}
		name, value := line[:colon], TrimOWS(line[colon+1:])
		if !ValidToken(name) || !ValidValue(value) {
			return ErrMalformed
		}
		f := Field{Name: name, Value: value, Kind: KindKeep}
		switch headerKind(name) {
		case hkOther:
		case hkTE:
			f.Kind = KindDrop
			r.TETrailers = r.TETrailers || HasToken(value, "trailers")
		case hkHost:
			f.Kind = KindHost
			r.hosts++
			r.Host = value
		case hkExpect:
			f.Kind = KindDrop
			if !strings.EqualFold(value, "100-continue") {
				return ErrBadExpect
			}
			r.Expect100 = true
		case hkUpgrade:
			f.Kind = KindDrop
			// h2c is an upgrade of this hop only: a tunnel to a server
			// speaking HTTP/2 would carry requests the proxy never sees
			// (h2c smuggling).
			if !HasToken(value, "h2c") {
				r.Upgrade = value
			}
		case hkConnection:
			f.Kind = KindDrop
			r.Conn.Add(value)
		case hkContentLength:
			f.Kind = KindLength
			// Repeated, it must be repeated as it was written: "05"
			// and "5" are one length here but an error to net/http
			// (RFC 9110 8.6 lets a recipient refuse both).
			n, ok := parseDecimal(value)
			if !ok || (r.HasLength && value != lengthValue) {
				r.Framing.Bad = true
				return ErrBadFraming
			}
			r.HasLength, r.Framing.Length, lengthValue = true, n, value
		case hkTransferEncoding:
			f.Kind = KindDrop
			teCount++
			teValue = value
		default:
			// Hop-by-hop: Trailer, Keep-Alive, Proxy-Connection,
			// Proxy-Authorization.
			f.Kind = KindDrop
		}
		r.Fields = append(r.Fields, f)
	}
	if teCount > 0 {
		if r.HasLength || r.HTTP10 || teCount != 1 || !strings.EqualFold(teValue, "chunked") {
			r.Framing.Bad = true
			return ErrBadFraming
		}
		r.Framing.Chunked = true
		r.Framing.Length = 0
	}
	if r.IsUpgrade() {
		r.Framing.Tunnel = true
	}
	return nil
}

// HopByName reports whether the request's Connection header names the
// header name, which makes it hop-by-hop.
func (r *Request) HopByName(name string) bool {
	for _, f := range r.Fields {
		if f.Kind == KindDrop && len(f.Name) == 10 && strings.EqualFold(f.Name, "Connection") && HasToken(f.Value, name) {
			return true
		}
	}
	return false
}

// ResolveTarget checks the request beyond its syntax as net/http's
// server would (one Host header on HTTP/1.1, a target it can route) and
// sets Host, URI and Path. Its errors are ErrMissingHost and
// ErrMalformed.
func (r *Request) ResolveTarget() error {
	// RFC 9112 3.2: one Host on HTTP/1.1, and not an empty one (an empty
	// Host is for a target without authority, which no app has).
	if r.hosts > 1 || (r.hosts == 0 || r.Host == "") && !r.HTTP10 || !ValidHost(r.Host) {
		return ErrMissingHost
	}
	t := r.Target
	switch {
	case t == "*":
		if r.Method != "OPTIONS" {
			return ErrMalformed
		}
		r.URI, r.Path = "*", "*"
		return nil
	case t[0] == '/':
	default:
		// Absolute form: its authority replaces the Host header.
		rest, ok := strings.CutPrefix(t, "http://")
		if !ok {
			if rest, ok = strings.CutPrefix(t, "https://"); !ok {
				return ErrMalformed
			}
		}
		i := strings.IndexAny(rest, "/?")
		if i < 0 {
			i = len(rest)
		}
		if i == 0 {
			return ErrMalformed
		}
		r.Host, t = rest[:i], rest[i:]
		if t == "" || t[0] == '?' {
			t = "/" + t // one allocation; rare
		}
		// The authority as net/http reads it, or 400: a numeric port,
		// brackets around an IPv6 address, and no percent-encoding
		// (net/http would decode it, and read another host name).
		if !ValidHost(r.Host) || strings.IndexByte(r.Host, '%') >= 0 {
			return ErrMalformed
		}
		if _, err := url.ParseRequestURI(r.Target); err != nil {
			return ErrMalformed
		}
	}
	r.URI = t
	path := t
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if strings.IndexByte(path, '%') >= 0 {
		p, err := url.PathUnescape(path)
		if err != nil {
			return ErrMalformed
		}
		path = p
	}
	r.Path = path
	return nil
}

// AppendFraming appends the header lines that frame the request as it
// is forwarded: the upgrade it asks for (Connection: Upgrade and its
// Upgrade), TE: trailers when the client accepts trailers, and
// Transfer-Encoding: chunked or the Content-Length of the body as it was
// checked (0 for a POST, PUT or PATCH without one).
func (r *Request) AppendFraming(b []byte) []byte {
	if r.IsUpgrade() {
		b = append(b, "Connection: Upgrade\r\nUpgrade: "...)
		b = append(b, r.Upgrade...)
		b = append(b, "\r\n"...)
	}
	if r.TETrailers {
		b = append(b, "Te: trailers\r\n"...)
	}
	switch {
	case r.Framing.Chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case r.HasLength || r.Framing.Length > 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, r.Framing.Length, 10)
		b = append(b, "\r\n"...)
	case r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH":
		b = append(b, "Content-Length: 0\r\n"...)
	}
	return b
}

// AppendField appends one header line.
func AppendField(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// TrimOWS trims optional whitespace (spaces and tabs) at both ends.
func TrimOWS[T string | []byte](s T) T {
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

// ValidToken reports whether s is an RFC 9110 token.
func ValidToken[T string | []byte](s T) bool {
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

// ValidValue refuses control characters but horizontal tab.
func ValidValue[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// ValidTarget refuses control characters and spaces in a request target
// (HTTP/2's :path too, in dataplane/h2).
func ValidTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// ValidHost accepts what may appear in a Host header (or HTTP/2's
// :authority, in dataplane/h2): host, optional port, IPv6 literal.
func ValidHost(s string) bool {
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
