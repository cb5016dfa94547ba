package dataplane

import "strings"

// route finds the app for a request's host and path, or nil.
//
// Precedence (also in doc.go): the host is tried in tiers, most specific
// first: the exact host, then wildcard hosts from the longest suffix to the
// shortest, then apps without hosts. Within a tier the longest matching path
// prefix wins. A tier with no matching prefix falls through to the next one,
// so an any-host app at "/" still serves paths a host-specific app does not
// claim.
func (t *table) route(host, path string) *app {
	if list, ok := t.exact[host]; ok {
		if a := matchPrefix(list, path); a != nil {
			return a
		}
	}
	if len(t.wild) > 0 {
		// "a.b.example.com" tries ".b.example.com", ".example.com", ".com".
		// The wildcard stands for at least one character: ".example.com"
		// itself does not match "*.example.com".
		for i := 1; i < len(host); i++ {
			if host[i] != '.' {
				continue
			}
			if list, ok := t.wild[host[i:]]; ok {
				if a := matchPrefix(list, path); a != nil {
					return a
				}
			}
		}
	}
	return matchPrefix(t.any, path)
}

// matchPrefix returns the first app in list (longest prefix first) whose
// prefix matches path.
func matchPrefix(list []*app, path string) *app {
	for _, a := range list {
		if prefixMatches(a.prefix, path) {
			return a
		}
	}
	return nil
}

// prefixMatches reports whether path is prefix or below it: "/api" matches
// "/api" and "/api/x" but not "/apix". "/" matches every path.
func prefixMatches(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

// normalizePrefix gives a path prefix a leading slash and no trailing one
// (except for "/" itself).
func normalizePrefix(p string) string {
	if p == "" || p == "/" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "/"
	}
	return p
}

// normalizeHost strips the port and a trailing dot from a Host header or a
// configured host and lower-cases it. It does not allocate when the host is
// already lower case.
func normalizeHost(h string) string {
	if h == "" {
		return ""
	}
	if h[0] == '[' {
		// IPv6 literal, with or without a port.
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if strings.IndexByte(h[:i], ':') < 0 {
			h = h[:i]
		}
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
