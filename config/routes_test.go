package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestCheckRoutes(t *testing.T) {
	app := func(name, prefix string, hosts ...string) App {
		a := defaultApp(name)
		a.Command, a.Dir, a.PathPrefix, a.Hosts = "x", "/", prefix, hosts
		return a
	}
	for _, tc := range []struct {
		name string
		apps []App
		want []string // one substring per expected diagnostic
	}{
		{"none", nil, nil},
		{"one", []App{app("a", "/")}, nil},
		{"two any-host apps, same prefix", []App{app("a", "/"), app("b", "/")},
			[]string{`app "b": path_prefix: path prefix "/" on any host is already claimed by app "a"`}},
		{"two any-host apps, other prefixes", []App{app("a", "/"), app("b", "/b"), app("c", "/b/c")}, nil},
		{"any host and a host", []App{app("a", "/"), app("b", "/", "b.com")}, nil},
		{"same host", []App{app("a", "/x", "a.com", "b.com"), app("b", "/x", "c.com", "b.com")},
			[]string{`app "b": path_prefix: path prefix "/x" on host "b.com" is already claimed by app "a"`}},
		{"same hosts", []App{app("a", "/", "a.com", "b.com"), app("b", "/", "b.com", "a.com")},
			[]string{`on hosts "b.com", "a.com" is already claimed by app "a"`}},
		{"same host, other prefix", []App{app("a", "/x", "a.com"), app("b", "/y", "a.com")}, nil},
		{"exact host and wildcard", []App{app("a", "/", "a.example.com"), app("b", "/", "*.example.com")}, nil},
		{"same wildcard", []App{app("a", "/", "*.example.com"), app("b", "/", "*.example.com")},
			[]string{`on host "*.example.com" is already claimed by app "a"`}},
		{"nested wildcards", []App{app("a", "/", "*.example.com"), app("b", "/", "*.a.example.com")}, nil},
		{"three ways", []App{app("a", "/"), app("b", "/"), app("c", "/")},
			[]string{`app "b"`, `app "c": path_prefix: path prefix "/" on any host is already claimed by app "a"`, `app "c": path_prefix: path prefix "/" on any host is already claimed by app "b"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRoutes(tc.apps)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
			ds := diagnostics(t, err)
			if len(ds) != len(tc.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%v", len(ds), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(ds[i].String(), w) {
					t.Errorf("diagnostic %d = %q, want it to contain %q", i, ds[i], w)
				}
			}
		})
	}
}

func TestCheckRoutesPositions(t *testing.T) {
	a, b := defaultApp("a"), defaultApp("b")
	a.DeclRange = hcl.Range{Filename: "one.hcl", Start: hcl.Pos{Line: 3, Column: 1}}
	b.DeclRange = hcl.Range{Filename: "two.hcl", Start: hcl.Pos{Line: 7, Column: 2}}
	err := CheckRoutes([]App{a, b})
	want := `two.hcl:7:2: app "b": path_prefix: path prefix "/" on any host is already claimed by app "a" (one.hcl:3:1)`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}

	// Apps from the API have no position.
	err = CheckRoutes([]App{defaultApp("a"), defaultApp("b")})
	want = `app "b": path_prefix: path prefix "/" on any host is already claimed by app "a"`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}
