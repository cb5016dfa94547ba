package dataplane

import (
	"context"
	"errors"
	"html"
	"net/http"
	"strconv"
	"strings"

	"github.com/ancm-dev/ancm/dataplane/http1"
)

// Sentinel errors of the data plane. Every failure of a request wraps one of
// them, and statusFor maps them to an HTTP status in one place.
var (
	// ErrNoRoute: no app matches the request's host and path (404).
	ErrNoRoute = errors.New("no app matches host and path")
	// ErrNotSynced: no routing table has arrived yet (503).
	ErrNotSynced = errors.New("routing table not synced yet")
	// ErrQueueFull: more than queue_size requests wait for a start (503).
	ErrQueueFull = errors.New("start queue is full")
	// ErrStopped: the app is stopped or stopping (503).
	ErrStopped = errors.New("app is stopped")
	// ErrOffline: the app's offline file exists (503 with its content).
	ErrOffline = errors.New("app is offline")
	// ErrUnavailable: the app has no instance to take the request (503).
	ErrUnavailable = errors.New("app has no ready instance")
	// ErrFailed: the app reached its rapid-fail limit (502).
	ErrFailed = errors.New("app has failed")
	// ErrStartFailed: activation failed or did not finish in time (502).
	ErrStartFailed = errors.New("app failed to start")
	// ErrBackend: the instance refused, reset or broke the exchange (502).
	ErrBackend = errors.New("backend error")
	// ErrTimeout: no response within request_timeout (504).
	ErrTimeout = errors.New("no response within request_timeout")
	// ErrBadFraming: ambiguous message framing, never forwarded (400).
	ErrBadFraming = http1.ErrBadFraming

	errWatchProtocol = errors.New("watch protocol violation")
)

// statusClientClosed is recorded (never sent) when the client went away
// before an answer, as nginx does.
const statusClientClosed = 499

// retryAfter is the Retry-After value, in seconds, of 503 answers.
const retryAfter = "5"

// requestError is a failed request: the sentinel it wraps decides the
// status; app, instance and cause are for the log and the error page.
type requestError struct {
	kind     error // one of the sentinels above
	app      *app
	instance int // -1 when no instance was involved
	reason   string
	logTail  []string
	cause    error
}

func (e *requestError) Error() string {
	var b strings.Builder
	b.WriteString(e.kind.Error())
	if e.reason != "" {
		b.WriteString(": ")
		b.WriteString(e.reason)
	}
	if e.cause != nil {
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	}
	return b.String()
}

func (e *requestError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func newError(kind error, a *app, cause error) *requestError {
	return &requestError{kind: kind, app: a, instance: -1, cause: cause}
}

// statusFor maps a request failure to its HTTP status. It is the only
// place that does.
func statusFor(err error) int {
	switch {
	case errors.Is(err, ErrNoRoute):
		return http.StatusNotFound
	case errors.Is(err, ErrBadFraming):
		return http.StatusBadRequest
	case errors.Is(err, ErrTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrNotSynced), errors.Is(err, ErrQueueFull), errors.Is(err, ErrStopped),
		errors.Is(err, ErrOffline), errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled):
		return statusClientClosed
	default: // ErrFailed, ErrStartFailed, ErrBackend and anything unforeseen
		return http.StatusBadGateway
	}
}

// errorAnswer logs a failed request and returns its status and page (nil
// for statusClientClosed, which is never sent).
func (p *Proxy) errorAnswer(r *request, err error) (int, []byte) {
	status := statusFor(err)
	var re *requestError
	errors.As(err, &re)
	if p.logger.IsDebug() {
		args := []any{"method", r.Method, "host", r.Host, "path", r.Path, "status", status, "error", err}
		if re != nil && re.app != nil {
			args = append(args, "app", re.app.name)
			if re.instance >= 0 {
				args = append(args, "instance", re.instance)
			}
		}
		p.logger.Debug("request failed", args...)
	}
	if status == statusClientClosed {
		return status, nil
	}
	body := errorPage(status, re, r.id())
	if errors.Is(err, ErrOffline) && re != nil && re.app != nil && len(re.app.offlineBody) > 0 {
		body = re.app.offlineBody
	}
	return status, body
}

// writeError answers a failed request on an HTTP/1.1 connection and
// returns the status it chose; keep tells whether the connection stays
// open after it.
func (p *Proxy) writeError(c *clientConn, r *request, err error, keep bool) int {
	status, body := p.errorAnswer(r, err)
	if status == statusClientClosed {
		return status
	}
	w := c.bw
	if r.HTTP10 {
		_, _ = w.WriteString("HTTP/1.0 ")
	} else {
		_, _ = w.WriteString("HTTP/1.1 ")
	}
	_, _ = w.WriteString(strconv.Itoa(status) + " " + http.StatusText(status) +
		"\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n")
	if status == http.StatusServiceUnavailable {
		_, _ = w.WriteString("Retry-After: " + retryAfter + "\r\n")
	}
	_, _ = w.WriteString("Content-Type: text/html; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	if r.requestID != "" || r.idSeq != 0 {
		_, _ = w.WriteString(headerRequestID + ": " + r.id() + "\r\n")
	}
	http1.EndHead(w, keep, r.HTTP10)
	if r.Method != "HEAD" {
		_, _ = w.Write(body)
	}
	_ = w.Flush()
	if !keep && r.HasBody() {
		c.linger = true
	}
	return status
}

// errorPage renders the HTML body of an error answer. The app is named on
// 5xx pages; the captured log tail appears only with error_detail; the
// request id, when there is one, closes the page.
func errorPage(status int, re *requestError, requestID string) []byte {
	title := strconv.Itoa(status) + " " + http.StatusText(status)
	var msg string
	switch status {
	case http.StatusNotFound:
		msg = "No application is configured for this host and path."
	case http.StatusBadRequest:
		msg = "The request is malformed."
	case http.StatusGatewayTimeout:
		msg = "The application did not respond in time."
	case http.StatusServiceUnavailable:
		msg = "The application is not available right now. Please retry later."
	default:
		msg = "The application could not handle the request."
	}
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>")
	b.WriteString(title)
	b.WriteString("</title></head>\n<body>\n<h1>")
	b.WriteString(title)
	b.WriteString("</h1>\n<p>")
	if re != nil && re.app != nil && status >= 500 {
		b.WriteString("Application <strong>")
		b.WriteString(html.EscapeString(re.app.name))
		b.WriteString("</strong>: ")
	}
	b.WriteString(msg)
	b.WriteString("</p>\n")
	if re != nil && re.app != nil && re.app.errorDetail && status == http.StatusBadGateway {
		if re.reason != "" {
			b.WriteString("<p>")
			b.WriteString(html.EscapeString(re.reason))
			b.WriteString("</p>\n")
		}
		tail := re.logTail
		if len(tail) == 0 {
			tail = re.app.logTail
		}
		if len(tail) > 0 {
			b.WriteString("<pre>")
			for _, line := range tail {
				b.WriteString(html.EscapeString(line))
				b.WriteByte('\n')
			}
			b.WriteString("</pre>\n")
		}
	}
	if requestID != "" {
		b.WriteString("<p>Request ID: <code>")
		b.WriteString(html.EscapeString(requestID))
		b.WriteString("</code></p>\n")
	}
	b.WriteString("<hr><address>ancm</address>\n</body></html>\n")
	return []byte(b.String())
}
