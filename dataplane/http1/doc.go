// Package http1 is the data plane's HTTP/1.1 codec: it reads and checks
// message heads and bodies, writes heads, relays bodies, and pools
// connections to servers. It knows HTTP (RFC 9110, RFC 9112) and nothing
// of ancm: no routing, no apps, no forwarded headers, no timeouts of its
// own. The proxy (package dataplane) decides which fields it adds or
// drops, when a wait ends and what a failure is answered with; the codec
// decides where a message ends and whether its framing can be read one
// way only.
//
// # API
//
//   - Heads: ReadHead reads one head through its empty line (a line
//     ends at LF and nowhere else, however long it is); ParseRequest and
//     Request.ResolveTarget parse a request head, ParseResponse a
//     response head.
//   - Writing: Request.AppendFraming appends the framing of a request to
//     forward (the rest of the forwarded head is the caller's);
//     WriteResponseHead writes a response head to a client, keeping the
//     fields Response.Drop keeps; EndHead ends a head.
//   - Bodies: CopyN, CopyChunked (re-framed), CopyDechunked, CopyDecoded
//     and CopyToEOF; BodyMode picks the framing of a relayed response and
//     says whether its connection can be reused, RelayBody copies it.
//   - Connections: Pool and Conn, keep-alive connections to one server
//     address, taken and given back by one exchange at a time, with no
//     goroutine of their own; Prober and ProbeFD check a socket without
//     reading from it.
//
// # Rules
//
// What is refused, and why, is said where it is decided: request.go
// (ErrBadFraming: Content-Length with Transfer-Encoding, differing
// lengths, any coding but one "chunked", Transfer-Encoding on HTTP/1.0,
// obsolete line folding), response.go (ErrBadResponse) and body.go
// (ErrBadChunk). A forwarded message is written afresh from what was
// parsed, so the next hop reads exactly the framing that was checked.
//
// The rules are pinned by differential tests against net/http's own
// readers on the raw bytes (differential_test.go: request and response
// streams with shapes around every buffer size, and two fuzzers), and by
// the data plane's smuggling, backend-safety and finding tests, which
// run them through the whole proxy. Changes here need those tests
// extended, not loosened.
package http1
