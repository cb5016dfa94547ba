package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// CheckRoutes reports apps that claim the same route: equal path prefixes
// and a host pattern in common, or equal path prefixes and no hosts on
// either (both serve any host). An exact host and a wildcard that covers
// it do not conflict, nor does an app with hosts and one without: the data
// plane prefers an exact host to a wildcard and a wildcard to any host.
// The apps must be valid (as Parse, ParseApps and AppFromProto return
// them). The error is an *Error with one diagnostic per conflicting pair,
// on the later app, naming the earlier one with its file:line:column when
// its DeclRange is set.
func CheckRoutes(apps []App) error {
	routed := make([]routedApp, len(apps))
	for i, a := range apps {
		routed[i] = routedApp{app: a}
	}
	var list []Diagnostic
	for _, c := range routeConflicts(routed) {
		later := apps[c.j]
		d := Diagnostic{App: later.Name, Key: "path_prefix", Message: c.message(apps[c.i])}
		if r := later.DeclRange; r.Start.Line > 0 {
			d.File, d.Line, d.Column = r.Filename, r.Start.Line, r.Start.Column
		}
		list = append(list, d)
	}
	if len(list) == 0 {
		return nil
	}
	return &Error{Diagnostics: list}
}

// conflict is a pair of apps, i before j, that claim the same route.
type conflict struct {
	i, j   int
	prefix string
	hosts  []string // the host patterns both claim; nil when both take any host
}

func routeConflicts(apps []routedApp) []conflict {
	var cs []conflict
	for j := range apps {
		for i := range j {
			a, b := apps[i].app, apps[j].app
			if a.PathPrefix != b.PathPrefix {
				continue
			}
			if len(a.Hosts) == 0 && len(b.Hosts) == 0 {
				cs = append(cs, conflict{i: i, j: j, prefix: b.PathPrefix})
				continue
			}
			var common []string
			for _, h := range b.Hosts {
				for _, g := range a.Hosts {
					if h == g {
						common = append(common, h)
					}
				}
			}
			if len(common) > 0 {
				cs = append(cs, conflict{i: i, j: j, prefix: b.PathPrefix, hosts: common})
			}
		}
	}
	return cs
}

// message says which route the earlier app already claims.
func (c conflict) message(earlier App) string {
	var what string
	switch len(c.hosts) {
	case 0:
		what = "any host"
	case 1:
		what = fmt.Sprintf("host %q", c.hosts[0])
	default:
		q := make([]string, len(c.hosts))
		for i, h := range c.hosts {
			q[i] = fmt.Sprintf("%q", h)
		}
		what = "hosts " + strings.Join(q, ", ")
	}
	return fmt.Sprintf("path prefix %q on %s is already claimed by app %q%s", c.prefix, what, earlier.Name, where(earlier.DeclRange))
}

// where is " (FILE:LINE:COL)" for a range that is set, or "".
func where(r hcl.Range) string {
	if r.Start.Line <= 0 {
		return ""
	}
	if r.Filename == "" {
		return fmt.Sprintf(" (%d:%d)", r.Start.Line, r.Start.Column)
	}
	return fmt.Sprintf(" (%s:%d:%d)", r.Filename, r.Start.Line, r.Start.Column)
}
