// Package dataplane is ancm's HTTP reverse proxy: the data plane. It
// follows the control plane's endpoint table over the public gRPC API
// (WatchEndpoints), routes each request to an app, asks the control plane
// to Activate an app that has no ready instance, balances over the app's
// instances and proxies to them on loopback.
//
// It is not a process supervisor and holds no configuration of its own:
// everything it knows comes from the control plane, and it talks to the
// control plane only through a grpc.ClientConnInterface, also when both run
// in one process, so one control plane can feed several data planes.
//
// # Routing
//
// The Host header is normalized (port and trailing dot dropped, lower
// case). Apps are then tried in host tiers, most specific first:
//
//  1. apps listing the exact host;
//  2. apps listing a wildcard "*.example.com" that matches the host (any
//     depth of subdomain, never example.com itself), longest suffix first;
//  3. apps with no hosts, which match any host.
//
// Within a tier the longest matching path prefix wins; "/api" matches
// "/api" and "/api/x" but not "/apix", "/" matches everything. A tier
// with no matching prefix falls through to the next, so a host-specific
// app at "/v2" and an any-host app at "/" split that host's paths between
// them. No match is a 404 page. An app learns its base from
// ANCM_PATH_BASE; see Paths for strip_prefix.
//
// # App states
//
// RUNNING with a ready, non-draining instance is proxied. IDLE, STARTING
// and RUNNING without one wait for an activation: one Activate RPC per app
// however many requests arrive, at most queue_size waiting requests (the
// rest get 503 with Retry-After, and still trigger the start, so
// queue_size 0 means "start, but hold no request"), each waiting up to
// startup_timeout (then 502) or until its client leaves. When Activate reports ready at revision R the
// waiters are released once the table has R (or shows a ready instance).
// A failed activation, and the FAILED state, answer 502; STOPPED and
// STOPPING 503; OFFLINE 503 with the offline file as text/html.
//
// # Balancing and health
//
// New requests go to the ready, non-draining instance with the fewest
// outstanding requests, ties broken round-robin. An instance that refuses
// or resets a fresh connection is ejected at once, and one that lets
// ejectAfterTimeouts (3) requests in a row go without a response head
// within request_timeout (a hung or stopped process: the kernel still
// accepts its connections) is ejected the same way; a response resets
// the count. An ejection lasts until the control plane publishes the
// instance ready at a newer revision, or 30s pass (so that a failure the
// control plane never saw cannot bench an instance for good); when every
// instance is ejected they are used anyway. A failed pooled connection
// ejects nothing: the instance may have closed it as the request left.
//
// # Retries
//
// A request is sent at most twice (forward.go, retryable):
//
//   - one that never reached its instance (the dial failed, or the
//     connection broke before its socket took a byte; a pooled
//     connection found closed before use is not an attempt at all) is
//     sent again, whatever its method;
//   - an idempotent one (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) whose
//     connection failed after it was sent and before any byte of an
//     answer is sent again;
//   - in both cases only if its body can be sent again: none, or a
//     Content-Length body that arrived whole with the head;
//   - never: a POST or PATCH that reached an instance, a request that
//     timed out (it already waited request_timeout), one that got part
//     of an answer, one whose client left.
//
// The retry goes to another instance when the app has one; after a failed
// pooled connection, to the same instance over a fresh connection; when
// the app's only instance refused (it crashed, or the control plane
// restarted and took its instances along), it waits as a first request
// does for the control plane to have an instance ready. request_timeout
// bounds all of it, from the first byte sent to the response head: a
// request that waited that long for an instance gets 504. Activate
// itself waits through a control plane that is unreachable or answers
// Unavailable, and its answer carries the epoch, so a waiter is released
// only by the table of the control plane that answered.
//
// # Errors
//
// Every failure wraps one of the package's sentinel errors and statusFor
// maps them to a status in one place: 404, 400, 502, 503 (with
// Retry-After), 504 when no response headers arrive within
// request_timeout. Causes are logged at debug with app and instance; the
// optional access log is the only per-request info line.
//
// # Serving
//
// Serve is the only way in: the package has its own HTTP/1.1 server and
// forwarder over its own codec (package http1), no net/http server,
// ReverseProxy or Transport on the request path. One goroutine per client
// connection reads a head, checks it (http1.ParseRequest: 400 for
// ambiguous framing; 431 beyond 64 KiB), routes it,
// writes the rewritten head and the body to a pooled connection to the
// instance, reads the answer and relays it, flushing whenever the
// instance has nothing more buffered. Connections to instances have no
// goroutines of their own; request_timeout and the check that the client
// is still there are read deadlines on the instance's connection. An
// instance connection goes back to the pool only after a complete,
// well-framed exchange, and one with anything to read when it is taken
// again (bytes beyond the last response, its end) is closed unused, so
// a misbehaving instance cannot put its bytes in another client's
// answer. Response heads that could be read two ways (invalid names,
// control characters, a Transfer-Encoding but "chunked", a 101 to a
// request that did not ask for it) are answered with 502.
//
// Where a line ends is decided in one place for both directions
// (http1.ReadHead): at LF only, however long the line, so a line longer than a
// read buffer is never cut into a false end of head. Header names that
// read as one the proxy sets or strips once "_" is read as "-"
// (X_Forwarded_Host, Ancm_Token) are dropped, as CGI and WSGI servers
// would merge them into the real header (request.go, classify). An HTTP/1.1 request without a
// Host, or with an empty one, gets 400 (RFC 9112 3.2); a malformed
// chunked request body gets 400 and a closed connection.
//
// # Limits
//
// Serve holds at most max_connections client connections (Options:
// MaxConnections): past it, the accept loop waits, new connections wait
// in the kernel's listen backlog, and "connection limit reached" is
// logged (at most once a minute at warn). The budget is lowered, once at
// New, to what fits in the open-file limit with one instance connection
// per client and 512 descriptors to spare for the rest of the process,
// so a flood of connections never starves the control API beside it.
// Every write to a client must be taken within send_timeout (Options:
// SendTimeout, 60s): a client that stops reading is dropped, and with it
// the instance connection its answer came from.
//
// # Paths
//
// The path is forwarded as sent, unless the app has strip_prefix: then
// path_prefix is taken off ("/shop/cart?x" arrives as "/cart?x", "/shop"
// as "/") and X-Forwarded-Prefix carries it. A client's own
// X-Forwarded-Prefix never reaches the app.
//
// # Metrics, traffic reports and request ids
//
// Each compiled route holds its app's counters (metrics.go): requests by
// status code, latency buckets, in flight, retries, queue rejections,
// carried from one table to the next while the app and its generation
// stay. A request adds to the shard of its client connection, so the
// request path does no label lookup and takes no lock that all cores
// share; Collector and the traffic reports (report.go: every second over
// TrafficService.ReportTraffic, the counters since New) sum the shards.
// Every request gets an X-Request-Id (requestid.go): the client's own if
// sane, else a process prefix with the connection's and the request's
// numbers. The access log line (finish) has client, method, host, path
// with query, status, bytes, duration, user agent, app, generation,
// instance and request id.
//
// # Front ends
//
// Serve takes plain HTTP/1.1 and, on a tls.Listener (TLSConfig,
// Certificates), HTTP/1.1 over TLS and HTTP/2 by ALPN. Every request, of
// either protocol, is an exchange of one proxy core (forward.go) through
// the downstream interface, so routing, queueing, balancing, retries,
// timeouts and error answers are written once; h1.go is the HTTP/1.1
// side, h2.go the HTTP/2 one (package h2, the data plane's own HTTP/2
// server; each stream's request is written as an HTTP/1.1 head and read
// by the HTTP/1.1 parser). Apps with
// protocol = "h2c" are forwarded over cleartext HTTP/2 (h2c.go), with
// streams and trailers end to end. Certificates are picked by SNI, swapped
// whole on Reload and file changes, and may come from an ACME CA
// (acme.go, certmagic).
//
// # Files
//
// proxy.go (Proxy, New, finish), table.go (snapshot, updates), routing.go,
// watch.go (WatchEndpoints loop), activate.go, balance.go (picking,
// ejection), server.go (Serve, shutdown; connection slots shared by every
// listener), limits.go (the connection budget, the file limit), conn.go
// (client connections, send_timeout, the TLS handshake), h1.go (the
// HTTP/1.1 downstream: bodies, 1xx, relay), h2.go (the HTTP/2 front end),
// h2c.go (h2c apps), tls.go (certificates, client certificates), acme.go,
// request.go (the proxy's own request headers, their underscore aliases,
// which trailer fields pass), headers.go (the forwarded head,
// strip_prefix, trusted proxies), forward.go (the exchange: attempts, the
// retry rule, request_timeout), errors.go, stats.go, metrics.go (per-app
// counters, the Collector), report.go (traffic reports), requestid.go.
//
// The HTTP/1.1 codec is package http1 (dataplane/http1): heads, framing,
// bodies and pooled instance connections, with its differential tests
// against net/http; it knows nothing of apps or of the proxy's headers.
// The HTTP/2 server is package h2 (dataplane/h2): frames, streams, flow
// control and HPACK contexts on x/net's Framer, tested with h2spec;
// docs/architecture.md says why it is not x/net's server.
package dataplane
