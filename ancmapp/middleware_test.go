package ancmapp

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// echo answers with what the handler saw of the request.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "token=%q remote=%s client=%s scheme=%s host=%s base=%q verified=%t path=%s",
		r.Header.Get(HeaderToken), r.RemoteAddr, ClientAddr(r), Scheme(r), r.Host, PathBase(r), Verified(r), r.URL.Path)
})

func get(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestMiddlewareToken(t *testing.T) {
	srv := httptest.NewServer(Env{Token: "s3cret", PathBase: "/shop/"}.Middleware(echo))
	defer srv.Close()

	fwd := http.Header{
		"X-Forwarded-For":   {"203.0.113.9, 198.51.100.7"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host":  {"shop.example.com"},
	}
	with := func(h http.Header, kv ...string) http.Header {
		h = h.Clone()
		if h == nil {
			h = http.Header{}
		}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}

	tests := []struct {
		name   string
		header http.Header
		status int
		want   []string // substrings of the body
		not    []string
	}{
		{name: "missing token", header: with(fwd), status: 400, want: []string{"missing or wrong ANCM-Token"}},
		{name: "wrong token", header: with(fwd, HeaderToken, "s3creT"), status: 400},
		{name: "token prefix", header: with(fwd, HeaderToken, "s3cre"), status: 400},
		{name: "empty token", header: with(fwd, HeaderToken, ""), status: 400},
		{name: "two tokens", header: with(fwd, HeaderToken, "s3cret", HeaderToken, "s3cret"), status: 400},
		{
			name:   "right token restores forwarded values",
			header: with(fwd, HeaderToken, "s3cret"),
			status: 200,
			want: []string{`token=""`, "remote=198.51.100.7:0 ", "client=198.51.100.7 ", "scheme=https ",
				"host=shop.example.com ", `base="/shop"`, "verified=true"},
			not: []string{"s3cret", "203.0.113.9"},
		},
		{
			name:   "right token, forwarded entry with port, ipv6",
			header: with(nil, HeaderToken, "s3cret", "X-Forwarded-For", "[2001:db8::1]:4711"),
			status: 200,
			want:   []string{"remote=[2001:db8::1]:4711 ", "client=2001:db8::1 ", "scheme=http ", "host=127.0.0.1:"},
		},
		{
			name:   "right token, bad forwarded values ignored",
			header: with(nil, HeaderToken, "s3cret", "X-Forwarded-For", "not-an-ip", "X-Forwarded-Proto", "gopher", "X-Forwarded-Host", "a b"),
			status: 200,
			want:   []string{"remote=127.0.0.1:", "client=127.0.0.1 ", "scheme=http ", "host=127.0.0.1:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, srv.URL+"/shop/cart", tt.header)
			if status != tt.status {
				t.Fatalf("status %d, want %d; body %q", status, tt.status, body)
			}
			for _, s := range tt.want {
				if !strings.Contains(body, s) {
					t.Errorf("body %q lacks %q", body, s)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(body, s) {
					t.Errorf("body %q has %q", body, s)
				}
			}
			if status == 200 && !strings.Contains(body, "path=/shop/cart") {
				t.Errorf("path base was stripped: %q", body)
			}
		})
	}
}

func TestMiddlewareWithoutToken(t *testing.T) {
	srv := httptest.NewServer(Env{}.Middleware(echo))
	defer srv.Close()

	status, body := get(t, srv.URL+"/", http.Header{
		HeaderToken:         {"whatever"},
		"X-Forwarded-For":   {"203.0.113.9"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host":  {"evil.example"},
	})
	if status != 200 {
		t.Fatalf("status %d: %q", status, body)
	}
	// Untouched, and forwarded headers not trusted.
	for _, s := range []string{`token="whatever"`, "remote=127.0.0.1:", "client=127.0.0.1 ", "scheme=http ", "host=127.0.0.1:", `base=""`, "verified=false"} {
		if !strings.Contains(body, s) {
			t.Errorf("body %q lacks %q", body, s)
		}
	}
}

func TestMiddlewareTwice(t *testing.T) {
	env := Env{Token: "s3cret"}
	srv := httptest.NewServer(env.Middleware(env.Middleware(echo)))
	defer srv.Close()
	if status, body := get(t, srv.URL, http.Header{HeaderToken: {"s3cret"}}); status != 200 {
		t.Fatalf("status %d: %q", status, body)
	}
	if status, _ := get(t, srv.URL, nil); status != 400 {
		t.Fatalf("status %d without token", status)
	}
}

func TestMiddlewareFromEnv(t *testing.T) {
	t.Setenv(EnvToken, "from-env")
	t.Setenv(EnvPathBase, "/")
	srv := httptest.NewServer(Middleware(echo))
	defer srv.Close()
	if status, _ := get(t, srv.URL, http.Header{HeaderToken: {"other"}}); status != 400 {
		t.Fatalf("status %d with a wrong token", status)
	}
	status, body := get(t, srv.URL, http.Header{HeaderToken: {"from-env"}})
	if status != 200 || !strings.Contains(body, `base=""`) {
		t.Fatalf("status %d: %q", status, body)
	}
}

func TestPathBaseOutsideMiddleware(t *testing.T) {
	t.Setenv(EnvPathBase, "/api/")
	r := httptest.NewRequest(http.MethodGet, "/api/x", nil)
	if got := PathBase(r); got != "/api" {
		t.Fatalf("PathBase = %q", got)
	}
	if got := ClientAddr(r); got != "192.0.2.1" {
		t.Fatalf("ClientAddr = %q", got)
	}
}

func FuzzForwardedHeaders(f *testing.F) {
	for _, s := range []string{"", "1.2.3.4", "1.2.3.4, 5.6.7.8", "[::1]:80", "::ffff:1.2.3.4", "fe80::1%eth0", " , ,", "host:port", "[", "1.2.3.4:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ip, _, ok := lastForwardedFor([]string{v})
		if ok && !ip.IsValid() {
			t.Fatalf("%q: ok with invalid ip", v)
		}
		if h := lastEntry([]string{v}); validHost(h) && strings.ContainsAny(h, " ,/") {
			t.Fatalf("%q: host %q accepted", v, h)
		}
	})
}
