package dataplane

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// routingTable is a table exercising every tier and prefix rule.
func routingTable(t testing.TB) *table {
	t.Helper()
	route := func(name, prefix string, hosts ...string) *ancmv1.AppRoute {
		return &ancmv1.AppRoute{App: name, PathPrefix: prefix, Hosts: hosts, State: ancmv1.AppState_APP_STATE_RUNNING}
	}
	tb, err := emptyTable().apply(&ancmv1.WatchEndpointsResponse{
		Epoch: "e", Revision: 1, Full: true,
		Apps: []*ancmv1.AppRoute{
			route("any-root", "/"),
			route("any-api", "/api/"),
			route("any-api-v2", "/api/v2"),
			route("exact-root", "/", "Example.com"),
			route("exact-admin", "/admin", "example.com", "www.example.com"),
			route("wild", "/", "*.example.com"),
			route("wild-deep", "/", "*.eu.example.com"),
			route("wild-api", "/api", "*.example.com"),
			route("docs-only", "/docs", "docs.example.org"),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestRoute(t *testing.T) {
	tb := routingTable(t)
	for _, tc := range []struct{ host, path, want string }{
		{"unknown.test", "/", "any-root"},
		{"unknown.test", "/api", "any-api"},
		{"unknown.test", "/api/", "any-api"},
		{"unknown.test", "/apix", "any-root"},
		{"unknown.test", "/api/v2/x", "any-api-v2"},
		{"unknown.test", "/api/v20", "any-api"},
		{"example.com", "/", "exact-root"},
		{"EXAMPLE.COM:8080", "/x", "exact-root"},
		{"example.com.", "/admin/users", "exact-admin"},
		{"www.example.com", "/admin", "exact-admin"},
		{"www.example.com", "/other", "wild"}, // exact tier has no "/": falls to wildcard
		{"a.example.com", "/", "wild"},
		{"a.example.com", "/api/x", "wild-api"},
		{"a.b.example.com", "/api", "wild-api"},
		{"x.eu.example.com", "/api", "wild-deep"}, // longer suffix wins before prefix length
		{"eu.example.com", "/", "wild"},
		{"docs.example.org", "/docs/a", "docs-only"},
		{"docs.example.org", "/", "any-root"},
		{"docs.example.org", "/api", "any-api"},
		{"[::1]:8080", "/", "any-root"},
		{"", "/", "any-root"},
	} {
		a := tb.route(normalizeHost(tc.host), tc.path)
		got := "<nil>"
		if a != nil {
			got = a.name
		}
		if got != tc.want {
			t.Errorf("route(%q, %q) = %s, want %s", tc.host, tc.path, got, tc.want)
		}
	}
}

func TestRouteNoMatch(t *testing.T) {
	tb, err := emptyTable().apply(&ancmv1.WatchEndpointsResponse{Epoch: "e", Revision: 1, Full: true,
		Apps: []*ancmv1.AppRoute{{App: "a", PathPrefix: "/a", Hosts: []string{"a.test"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"a.test", "/"}, {"a.test", "/ab"}, {"b.test", "/a"}, {"x.a.test", "/a"}} {
		if a := tb.route(c[0], c[1]); a != nil {
			t.Errorf("route(%q, %q) = %s, want none", c[0], c[1], a.name)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM:80": "example.com", "example.com.": "example.com", "[::1]:80": "::1",
		"[fe80::1]": "fe80::1", "::1": "::1", "host": "host", "": "",
	} {
		if got := normalizeHost(in); got != want {
			t.Errorf("normalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"": "/", "/": "/", "api": "/api", "/api/": "/api", "//": "/", "/a/b/": "/a/b"} {
		if got := normalizePrefix(in); got != want {
			t.Errorf("normalizePrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTableApply(t *testing.T) {
	ep := func(addr, tok string, ready, draining bool) *ancmv1.Endpoint {
		return &ancmv1.Endpoint{Address: addr, Token: tok, Ready: ready, Draining: draining}
	}
	t0 := emptyTable()
	if _, err := t0.apply(&ancmv1.WatchEndpointsResponse{Epoch: "e", Revision: 1}); err == nil {
		t.Error("incremental update on an empty table accepted")
	}
	t1, err := t0.apply(&ancmv1.WatchEndpointsResponse{Epoch: "e", Revision: 3, Full: true, Apps: []*ancmv1.AppRoute{
		{App: "a", Revision: 2, State: ancmv1.AppState_APP_STATE_RUNNING, Endpoints: []*ancmv1.Endpoint{
			ep("127.0.0.1:1", "x", true, false), ep("127.0.0.1:2", "y", true, true), ep("127.0.0.1:3", "z", false, false)}},
		{App: "b", Revision: 3},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := t1.apps["a"]
	if len(a.endpoints) != 3 || len(a.usable) != 1 || a.usable[0].addr != "127.0.0.1:1" || !a.serving() {
		t.Fatalf("usable endpoints: %+v", a.usable)
	}
	b0 := a.usable[0]
	b0.outstanding.Add(1)
	b0.ejectedAt.Store(1)
	b0.ejectedRev.Store(2)

	// Incremental: b removed, a changed; the backend and its count carry over.
	t2, err := t1.apply(&ancmv1.WatchEndpointsResponse{Epoch: "e", Revision: 4, Removed: []string{"b"}, Apps: []*ancmv1.AppRoute{
		{App: "a", Revision: 4, State: ancmv1.AppState_APP_STATE_RUNNING, Endpoints: []*ancmv1.Endpoint{ep("127.0.0.1:1", "x", true, false)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := t2.apps["b"]; ok {
		t.Error("removed app still present")
	}
	if got := t2.apps["a"].usable[0]; got != b0 || got.outstanding.Load() != 1 || got.ejectedAt.Load() != 0 {
		t.Errorf("backend not carried over, or ejection not cleared by a newer ready revision")
	}
	// A new token at the same address is another backend.
	t3, _ := t2.apply(&ancmv1.WatchEndpointsResponse{Epoch: "e", Revision: 5, Apps: []*ancmv1.AppRoute{
		{App: "a", Revision: 5, State: ancmv1.AppState_APP_STATE_RUNNING, Endpoints: []*ancmv1.Endpoint{ep("127.0.0.1:1", "new", true, false)}},
	}})
	if t3.apps["a"].usable[0] == b0 {
		t.Error("backend with a new token reused the old one")
	}
	if _, err := t3.apply(&ancmv1.WatchEndpointsResponse{Epoch: "other", Revision: 6}); err == nil {
		t.Error("incremental update of another epoch accepted")
	}
	select {
	case <-t1.next:
		t.Error("apply closed next; only publish may")
	default:
	}
}

func TestStatusFor(t *testing.T) {
	for err, want := range map[error]int{
		newError(ErrNoRoute, nil, nil):               404,
		newError(ErrBadFraming, nil, nil):            400,
		newError(ErrQueueFull, nil, nil):             503,
		newError(ErrStopped, nil, nil):               503,
		newError(ErrOffline, nil, nil):               503,
		newError(ErrNotSynced, nil, nil):             503,
		newError(ErrUnavailable, nil, nil):           503,
		newError(ErrFailed, nil, nil):                502,
		newError(ErrStartFailed, nil, nil):           502,
		newError(ErrBackend, nil, nil):               502,
		newError(ErrTimeout, nil, nil):               504,
		newError(ErrBackend, nil, errors.New("EOF")): 502,
	} {
		if got := statusFor(err); got != want {
			t.Errorf("statusFor(%v) = %d, want %d", err, got, want)
		}
	}
	page := string(errorPage(502, &requestError{kind: ErrFailed, app: &app{name: "<x>"}}, ""))
	if !strings.Contains(page, "&lt;x&gt;") || !strings.Contains(page, http.StatusText(502)) {
		t.Errorf("page: %s", page)
	}
}
