package dataplane

// Streaming is httputil.ReverseProxy's, and this file says what the data
// plane relies on, so that a change of proxy core keeps it:
//
//   - Upgrades (WebSocket and any other "Connection: upgrade" request) are
//     forwarded with their Upgrade and Connection headers; on a 101 answer
//     the client and instance connections are spliced until either side
//     closes. request_timeout stops counting at the 101.
//   - Responses without a Content-Length (chunked streams) and
//     text/event-stream responses are flushed after every write, so
//     server-sent events reach the client as the app writes them.
//     Responses with a length are written through the 32 KiB copy buffer
//     and flushed at the end (Proxy.rp.FlushInterval is 0).
//   - Request and response bodies are streamed, never buffered whole;
//     trailers are passed through.
//   - 1xx informational answers (103 Early Hints) are forwarded.
//   - A client that goes away cancels the request to the instance.
