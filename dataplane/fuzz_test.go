package dataplane

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
)

// referenceRoute is the documented precedence written the slow, obvious
// way: tiers exact, wildcard by suffix length, any-host; longest prefix
// within a tier; ties by name.
func referenceRoute(tb *table, host, path string) *app {
	best := func(match func(a *app) (bool, int)) *app {
		var found *app
		foundRank := -1
		for _, a := range tb.apps {
			ok, rank := match(a)
			if !ok || !prefixMatches(a.prefix, path) {
				continue
			}
			if rank > foundRank || (rank == foundRank && (len(a.prefix) > len(found.prefix) ||
				len(a.prefix) == len(found.prefix) && a.name < found.name)) {
				found, foundRank = a, rank
			}
		}
		return found
	}
	if a := best(func(a *app) (bool, int) {
		for _, h := range a.hosts {
			if h == host {
				return true, 0
			}
		}
		return false, 0
	}); a != nil {
		return a
	}
	// Wildcards: the longest matching suffix that has a prefix match.
	var found *app
	foundSuffix := -1
	for _, a := range tb.apps {
		for _, h := range a.hosts {
			suffix, ok := strings.CutPrefix(h, "*")
			if !ok || !strings.HasPrefix(suffix, ".") || !strings.HasSuffix(host, suffix) || len(host) == len(suffix) {
				continue
			}
			if !prefixMatches(a.prefix, path) {
				continue
			}
			if len(suffix) > foundSuffix || (len(suffix) == foundSuffix && (len(a.prefix) > len(found.prefix) ||
				len(a.prefix) == len(found.prefix) && a.name < found.name)) {
				found, foundSuffix = a, len(suffix)
			}
		}
	}
	if found != nil {
		return found
	}
	return best(func(a *app) (bool, int) { return len(a.hosts) == 0, 0 })
}

func FuzzRoute(f *testing.F) {
	for _, s := range [][2]string{
		{"example.com", "/"}, {"EXAMPLE.com:80", "/admin/x"}, {"a.example.com", "/api"},
		{"x.eu.example.com", "/api/v2"}, {"docs.example.org", "/docs"}, {"[::1]:1", "/api/v20"},
		{"", ""}, {".", "*"}, {"a..example.com", "//api"}, {"www.example.com.", "/admin"},
	} {
		f.Add(s[0], s[1])
	}
	tb := routingTable(f)
	f.Fuzz(func(t *testing.T, host, path string) {
		h := normalizeHost(host)
		got := tb.route(h, path)
		want := referenceRoute(tb, h, path)
		if got != want {
			name := func(a *app) string {
				if a == nil {
					return "<nil>"
				}
				return a.name
			}
			t.Fatalf("route(%q, %q) = %s, reference says %s", h, path, name(got), name(want))
		}
		if got != nil && !prefixMatches(got.prefix, path) {
			t.Fatalf("route(%q, %q) = %s whose prefix %q does not match", h, path, got.name, got.prefix)
		}
	})
}

func FuzzRewriteHeaders(f *testing.F) {
	f.Add("secret", "forged", "203.0.113.1, 10.0.0.1", "192.0.2.9:5555", "example.com:8080", false, true)
	f.Add("", "", "", "[2001:db8::1]:80", "", true, false)
	f.Add("t", "t", "x", "not-an-addr", "h", false, false)
	f.Fuzz(func(t *testing.T, token, clientToken, xff, remote, host string, aspnet, isTLS bool) {
		in := &http.Request{Header: http.Header{}, RemoteAddr: remote, Host: host}
		if isTLS {
			in.TLS = &tls.ConnectionState{}
		}
		if clientToken != "" {
			in.Header.Set("ANCM-Token", clientToken)
			in.Header.Set("MS-ASPNETCORE-TOKEN", clientToken)
		}
		if xff != "" {
			in.Header["X-Forwarded-For"] = []string{xff, xff}
		}
		out := in.Header.Clone()
		rewriteHeaders(out, in, token, aspnet)

		wantToken := []string(nil)
		if token != "" {
			wantToken = []string{token}
		}
		if got := out["Ancm-Token"]; strings.Join(got, "\x00") != strings.Join(wantToken, "\x00") || len(got) != len(wantToken) {
			t.Fatalf("ANCM-Token = %q, want %q", got, wantToken)
		}
		ms := out["Ms-Aspnetcore-Token"]
		if aspnet && token != "" {
			if len(ms) != 1 || ms[0] != token {
				t.Fatalf("MS-ASPNETCORE-TOKEN = %q", ms)
			}
		} else if len(ms) != 0 {
			t.Fatalf("client MS-ASPNETCORE-TOKEN kept: %q", ms)
		}
		ip := clientIP(remote)
		got := out["X-Forwarded-For"]
		switch {
		case ip == "" && len(got) != 0:
			t.Fatalf("X-Forwarded-For %q without a client IP", got)
		case ip != "" && (len(got) != 1 || !strings.HasSuffix(got[0], ip)):
			t.Fatalf("X-Forwarded-For %q does not end with %q", got, ip)
		case ip != "" && xff != "" && got[0] != xff+", "+xff+", "+ip:
			t.Fatalf("X-Forwarded-For %q lost the client's list %q", got[0], xff)
		}
		wantProto := "http"
		if isTLS {
			wantProto = "https"
		}
		if p := out["X-Forwarded-Proto"]; len(p) != 1 || p[0] != wantProto {
			t.Fatalf("X-Forwarded-Proto %q", p)
		}
		if xfh := out.Get("X-Forwarded-Host"); xfh != host {
			t.Fatalf("X-Forwarded-Host %q, want %q", xfh, host)
		}
	})
}
