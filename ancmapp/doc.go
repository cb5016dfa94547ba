// Package ancmapp is the Go side of the contract between ancmd and the web
// apps it hosts (docs/apps.md). An app calls ListenAndServe instead of
// http.ListenAndServe and gets, in one call:
//
//   - the listener ancmd asked for: 127.0.0.1:$ANCM_PORT (or $PORT), or, when
//     the app runs without ancmd, $ANCM_FALLBACK_ADDR or ":8080";
//   - the ANCM-Token check: behind ancmd (ANCM_TOKEN set), a request without
//     the right token is answered 400, so that nothing but the proxy can talk
//     to the app; the token header never reaches the handler;
//   - the client's address, scheme and host restored from X-Forwarded-For,
//     X-Forwarded-Proto and X-Forwarded-Host, but only on requests that
//     carried the right token (ClientAddr, Scheme, r.RemoteAddr, r.Host);
//   - the app's path base (ANCM_PATH_BASE) through PathBase. ancmd does not
//     strip it: the handler sees the full path;
//   - a graceful stop on SIGTERM or SIGINT: in-flight requests finish, bounded
//     by a timeout (10s by default), and ListenAndServe returns nil.
//
// Serve gives the same with a caller's http.Server, context, listener,
// shutdown timeout and logger; Middleware and Env.Middleware give the token
// check and header restoration alone, for apps that run their own server.
//
// The package is not a reverse proxy, a router or a framework: it trusts
// forwarded headers only from ancmd and does nothing else to the request.
// It uses nothing outside the standard library but go-hclog for its few log
// lines, which go to stderr, where ancmd captures them.
package ancmapp
