package dataplane

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// TestFrontEndsAnswerAlike sends the same requests over the three front
// ends (HTTP/1.1, HTTP/1.1 over TLS, HTTP/2) and checks that the one
// proxy core gives them the same answers: the forwarded head's rules
// (token replaced, forged and aliased X-Forwarded-* dropped, the
// client's X-Request-Id kept, X-Forwarded-Proto of the front end) and
// the same statuses and headers for every error: no route, FAILED,
// STOPPED, OFFLINE, and an instance that never answers (504).
func TestFrontEndsAnswerAlike(t *testing.T) {
	be := echoBackend(t, "b")
	hung := serveLoopback(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }) // reads, never answers
	failed := idle("failed", "/failed", 10)
	failed.State = ancmv1.AppState_APP_STATE_FAILED
	stopped := idle("stopped", "/stopped", 10)
	stopped.State = ancmv1.AppState_APP_STATE_STOPPED
	offline := idle("offline", "/offline", 10)
	offline.State = ancmv1.AppState_APP_STATE_OFFLINE
	offline.OfflineBody = []byte("<h1>back soon</h1>")
	slow := running("slow", "/slow", nil, readyAddr(0, hung, "tok"))
	slow.RequestTimeout = durationpb.New(300 * time.Millisecond)
	th := newTLSHarness(t, Options{}, TLSOptions{HTTP2: true}, [][]string{{"shop.example"}},
		running("ok", "/ok", nil, ready(0, be, "tok")), failed, stopped, offline, slow)

	pool := x509.NewCertPool()
	pool.AddCert(th.ca.cert)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "shop.example"}
	h1 := &http.Transport{}
	h1tls := &http.Transport{TLSClientConfig: tlsConf, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	t.Cleanup(h1.CloseIdleConnections)
	t.Cleanup(h1tls.CloseIdleConnections)
	fronts := []struct {
		name, base, proto, xfp string
		client                 *http.Client
	}{
		{"http/1.1", "http://" + th.addr, "HTTP/1.1", "http", &http.Client{Transport: h1, Timeout: 20 * time.Second}},
		{"http/1.1+tls", "https://" + th.tlsAddr, "HTTP/1.1", "https", &http.Client{Transport: h1tls, Timeout: 20 * time.Second}},
		{"h2", "https://" + th.tlsAddr, "HTTP/2.0", "https", th.h2Client(t)},
	}
	type answer struct {
		status                     int
		retryAfter, ctype, noStore bool
		body                       string
	}
	results := map[string][]answer{}
	for _, fe := range fronts {
		// A request with forged headers reaches the app as the contract says.
		req, _ := http.NewRequest("GET", fe.base+"/ok/x?y=1", nil)
		req.Header.Set("Ancm-Token", "forged")
		req.Header.Set("X-Forwarded-Proto", "gopher")
		req.Header.Set("X_Forwarded_Host", "evil")
		req.Header.Set("Ms-Aspnetcore-Token", "forged")
		req.Header.Set("X-Request-Id", "client-id-1")
		res, err := fe.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", fe.name, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.Proto != fe.proto || res.StatusCode != 200 {
			t.Fatalf("%s: %s %d %q", fe.name, res.Proto, res.StatusCode, body)
		}
		e := decodeEcho(t, string(body))
		switch {
		case e.Path != "/ok/x?y=1":
			t.Errorf("%s: path %q", fe.name, e.Path)
		case e.Header.Get("Ancm-Token") != "tok" || len(e.Header.Values("Ancm-Token")) != 1:
			t.Errorf("%s: tokens %q", fe.name, e.Header.Values("Ancm-Token"))
		case e.Header.Get("Ms-Aspnetcore-Token") != "":
			t.Errorf("%s: a client's MS-ASPNETCORE-TOKEN reached the app", fe.name)
		case e.Header.Get("X-Forwarded-Proto") != fe.xfp:
			t.Errorf("%s: X-Forwarded-Proto %q, want %q", fe.name, e.Header.Get("X-Forwarded-Proto"), fe.xfp)
		case e.Header.Get("X-Request-Id") != "client-id-1":
			t.Errorf("%s: X-Request-Id %q", fe.name, e.Header.Get("X-Request-Id"))
		case strings.Contains(string(body), "evil"):
			t.Errorf("%s: an underscore alias reached the app: %s", fe.name, body)
		}
		// The error answers.
		for _, path := range []string{"/nowhere", "/failed", "/stopped", "/offline/p", "/slow"} {
			res, err := fe.client.Get(fe.base + path)
			if err != nil {
				t.Fatalf("%s %s: %v", fe.name, path, err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			a := answer{
				status:     res.StatusCode,
				retryAfter: res.Header.Get("Retry-After") != "",
				ctype:      strings.HasPrefix(res.Header.Get("Content-Type"), "text/html"),
				noStore:    res.Header.Get("Cache-Control") == "no-store",
				body:       string(body),
			}
			if path != "/offline/p" {
				// The page names the request; ids differ per request.
				id := res.Header.Get("X-Request-Id")
				if id == "" || !strings.Contains(a.body, id) {
					t.Errorf("%s %s: X-Request-Id %q not on the page %q", fe.name, path, id, a.body)
				}
				a.body = strings.ReplaceAll(a.body, id, "ID")
			}
			results[path] = append(results[path], a)
		}
	}
	want := map[string]int{"/nowhere": 404, "/failed": 502, "/stopped": 503, "/offline/p": 503, "/slow": 504}
	for path, as := range results {
		if as[0].status != want[path] {
			t.Errorf("%s: status %d, want %d", path, as[0].status, want[path])
		}
		if (as[0].status == 503) != as[0].retryAfter || !as[0].ctype {
			t.Errorf("%s: %+v", path, as[0])
		}
		for i, a := range as[1:] {
			if a != as[0] {
				t.Errorf("%s: %s answers %+v, %s %+v", path, fronts[i+1].name, a, fronts[0].name, as[0])
			}
		}
	}
}
