package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Load reads and parses the config file at path. A file that cannot be
// read is an error wrapping the os error; a file with problems is an
// *Error listing every one of them.
func Load(path string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(src, path)
}

// Parse parses a config file read from filename. Relative paths in it are
// resolved against the directory of filename, or against the working
// directory when filename has none.
func Parse(src []byte, filename string) (*File, error) {
	p, err := newParser(filename)
	if err != nil {
		return nil, err
	}
	body := p.parse(src)
	if body == nil {
		return nil, p.d.err()
	}
	f := p.file(body, false)
	if err := p.d.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// ParseApps parses the app blocks of a file given to `ancmctl apply -f`.
// The schema and the checks are those of Parse; top-level settings are
// allowed, checked for unknown keys only, and ignored. At least one app
// block is required.
func ParseApps(src []byte, filename string) ([]App, error) {
	p, err := newParser(filename)
	if err != nil {
		return nil, err
	}
	body := p.parse(src)
	if body == nil {
		return nil, p.d.err()
	}
	f := p.file(body, true)
	if len(f.Apps) == 0 && !p.sawApp {
		p.d.add(hcl.Range{Filename: filename, Start: hcl.InitialPos}, "", "", `no app block: apply needs at least one app "NAME" { ... }`)
	}
	if err := p.d.err(); err != nil {
		return nil, err
	}
	return f.Apps, nil
}

type parser struct {
	d      diags
	base   string // absolute directory relative paths are resolved against
	sawApp bool
}

func newParser(filename string) (*parser, error) {
	base, err := filepath.Abs(filepath.Dir(filename))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", filename, err)
	}
	return &parser{d: diags{file: filename}, base: base}, nil
}

// parse parses src with HCL's native syntax. It returns nil after a syntax
// error: what follows one is too unreliable to check.
func (p *parser) parse(src []byte) *hclsyntax.Body {
	f, hd := hclsyntax.ParseConfig(src, p.d.file, hcl.InitialPos)
	if hd.HasErrors() {
		var partial *hclsyntax.Body
		if f != nil {
			partial, _ = f.Body.(*hclsyntax.Body)
		}
		for _, h := range hd {
			app, key := "", ""
			if h.Subject != nil && partial != nil {
				app, key = locate(partial, src, *h.Subject)
			}
			p.d.addHCL(hcl.Diagnostics{h}, app, key)
		}
		return nil
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		p.d.add(hcl.Range{Start: hcl.InitialPos}, "", "", "not an HCL native syntax body")
		return nil
	}
	return body
}

// locate finds the app and key a syntax error stands in, as far as the
// partial body that HCL recovered tells.
func locate(body *hclsyntax.Body, src []byte, subject hcl.Range) (app, key string) {
	for _, b := range body.Blocks {
		if !b.Range().ContainsPos(subject.Start) {
			continue
		}
		if b.Type == "app" {
			if len(b.Labels) > 0 {
				app = b.Labels[0]
			}
			return app, locateKey(b.Body, src, subject, "")
		}
		if k := locateKey(b.Body, src, subject, b.Type+"."); k != "" {
			return "", k
		}
		return "", b.Type
	}
	return "", locateKey(body, src, subject, "")
}

// locateKey names the attribute of body that subject lies in. When none
// does, as for a second definition of a key, which HCL leaves out of the
// body, the subject's own text is taken when it is a key.
func locateKey(body *hclsyntax.Body, src []byte, subject hcl.Range, prefix string) string {
	for name, attr := range body.Attributes {
		if attr.SrcRange.ContainsPos(subject.Start) {
			return prefix + name
		}
	}
	for _, b := range body.Blocks {
		if b.Range().ContainsPos(subject.Start) {
			if k := locateKey(b.Body, src, subject, prefix+b.Type+"."); k != "" {
				return k
			}
			return prefix + b.Type
		}
	}
	if s, e := subject.Start.Byte, subject.End.Byte; 0 <= s && s < e && e <= len(src) {
		if text := string(src[s:e]); hclsyntax.ValidIdentifier(text) {
			return prefix + text
		}
	}
	return ""
}

// resolve makes a path absolute against the config file's directory.
func (p *parser) resolve(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(p.base, path)
}

// file decodes the top-level body. With appsOnly, top-level settings are
// not decoded.
func (p *parser) file(body *hclsyntax.Body, appsOnly bool) *File {
	s := p.scope(body, "")
	s.checkKeys(fileSchema)
	f := &File{Path: p.d.file}
	if !appsOnly {
		p.settings(s, f)
	}

	names := map[string]hcl.Range{}
	var routed []routedApp
	for _, b := range body.Blocks {
		if b.Type != "app" {
			continue
		}
		p.sawApp = true
		a, scope, ok := p.app(b)
		if !ok {
			continue
		}
		if first, dup := names[a.Name]; dup {
			p.d.addf(b.LabelRanges[0], a.Name, "name", "another app with this name is at line %d", first.Start.Line)
			continue
		}
		names[a.Name] = b.LabelRanges[0]
		f.Apps = append(f.Apps, a)
		if !scope.failed["hosts"] && !scope.failed["path_prefix"] {
			routed = append(routed, routedApp{app: a, pos: scope.pos})
		}
	}
	for _, c := range routeConflicts(routed) {
		later := routed[c.j]
		rng, ok := later.pos["path_prefix"]
		if !ok {
			rng = later.app.DeclRange
		}
		p.d.add(rng, later.app.Name, "path_prefix", c.message(routed[c.i].app))
	}
	return f
}

// settings decodes the top-level settings into f and checks them.
func (p *parser) settings(s *scope, f *File) {
	f.Listen = DefaultListen
	f.LogLevel = DefaultLogLevel
	f.LogFormat = DefaultLogFormat
	f.MaxConnections = DefaultMaxConnections
	f.SendTimeout = DefaultSendTimeout

	if s.str("listen", &f.Listen) {
		if err := checkListen(f.Listen); err != nil {
			s.errf(s.pos["listen"], "listen", "%v", err)
		}
	}
	stateDir := ""
	if s.str("state_dir", &stateDir) && stateDir == "" {
		s.errf(s.pos["state_dir"], "state_dir", "must not be empty")
	}
	if stateDir == "" {
		stateDir = defaultStateDir()
	}
	f.StateDir = p.resolve(stateDir)

	if s.str("log_level", &f.LogLevel) && !slices.Contains(logLevels, f.LogLevel) {
		s.errf(s.pos["log_level"], "log_level", "must be one of %s, not %q", strings.Join(logLevels, "|"), f.LogLevel)
	}
	if s.str("log_format", &f.LogFormat) && !slices.Contains(logFormats, f.LogFormat) {
		s.errf(s.pos["log_format"], "log_format", "must be one of %s, not %q", strings.Join(logFormats, "|"), f.LogFormat)
	}
	s.boolean("access_log", &f.AccessLog)
	if s.str("access_log_format", &f.AccessLogFormat) && !slices.Contains(logFormats, f.AccessLogFormat) {
		s.errf(s.pos["access_log_format"], "access_log_format", "must be one of %s, not %q", strings.Join(logFormats, "|"), f.AccessLogFormat)
	}
	if s.str("metrics_listen", &f.MetricsListen) && f.MetricsListen != "" {
		if err := checkListen(f.MetricsListen); err != nil {
			s.errf(s.pos["metrics_listen"], "metrics_listen", "%v", err)
		}
	}
	s.boolean("insecure", &f.Insecure)
	s.integer("max_connections", &f.MaxConnections)
	if f.MaxConnections < 1 || f.MaxConnections > MaxMaxConnections {
		s.errf(s.pos["max_connections"], "max_connections", "must be 1..%d, not %d", MaxMaxConnections, f.MaxConnections)
	}
	s.duration("send_timeout", &f.SendTimeout)
	if f.SendTimeout <= 0 {
		s.errf(s.pos["send_timeout"], "send_timeout", "must be more than 0, not %s", f.SendTimeout)
	}
	p.https(s, f)

	if b := s.block("control_tls"); b != nil {
		t := s.nested(b.Body, "control_tls")
		t.checkKeys(tlsSchema)
		f.ControlTLS = &TLS{}
		for _, k := range []struct {
			name string
			dst  *string
		}{
			{"cert_file", &f.ControlTLS.CertFile},
			{"key_file", &f.ControlTLS.KeyFile},
			{"client_ca_file", &f.ControlTLS.ClientCAFile},
		} {
			t.str(k.name, k.dst)
			switch {
			case *k.dst != "":
				*k.dst = p.resolve(*k.dst)
			case !t.failed["control_tls."+k.name]:
				t.errf(b.DefRange(), "control_tls."+k.name, "required: control_tls needs cert_file, key_file and client_ca_file")
			}
		}
	}

	f.Control = "unix://" + filepath.Join(f.StateDir, DefaultSocketName)
	control := ""
	if s.str("control", &control) {
		addr, err := p.controlAddress(control)
		if err != nil {
			s.errf(s.pos["control"], "control", "%v", err)
			return
		}
		f.Control = addr
		if strings.HasPrefix(addr, "tcp://") && f.ControlTLS == nil && !f.Insecure {
			s.errf(s.pos["control"], "control", "a tcp address needs a control_tls block (cert_file, key_file, client_ca_file), or insecure = true to serve the API without TLS")
		}
	}
}

// routedApp is an app whose hosts and path_prefix are valid, with the
// positions of its keys.
type routedApp struct {
	app App
	pos map[string]hcl.Range
}

// app decodes and checks one app block. ok is false when the block has no
// usable name; its body is still checked.
func (p *parser) app(b *hclsyntax.Block) (a App, s *scope, ok bool) {
	name := ""
	if len(b.Labels) > 0 {
		name = b.Labels[0]
	}
	s = p.scope(b.Body, name)
	a = defaultApp(name)
	a.Dir = p.base
	a.DeclRange = b.DefRange()
	ok = true
	switch len(b.Labels) {
	case 1:
		s.pos["name"] = b.LabelRanges[0]
	case 0:
		p.d.add(b.TypeRange, "", "app", `an app block needs a name: app "NAME" { ... }`)
		ok = false
	default:
		p.d.add(b.LabelRanges[1], name, "app", `an app block has one label, its name: app "NAME" { ... }`)
		ok = false
	}

	s.checkKeys(appSchema)
	s.str("command", &a.Command)
	s.strings("args", &a.Args)
	if s.str("dir", &a.Dir) {
		if a.Dir == "" {
			s.errf(s.pos["dir"], "dir", "must not be empty (leave it out for the config file's directory)")
		}
		a.Dir = p.resolve(a.Dir)
	}
	s.stringMap("env", &a.Env)
	s.strings("hosts", &a.Hosts)
	s.str("path_prefix", &a.PathPrefix)
	s.boolean("strip_prefix", &a.StripPrefix)
	var start string
	if s.str("start", &start) {
		a.Start = StartMode(start)
	}
	s.integer("processes", &a.Processes)
	s.duration("startup_timeout", &a.StartupTimeout)
	s.duration("shutdown_timeout", &a.ShutdownTimeout)
	s.duration("request_timeout", &a.RequestTimeout)
	s.integer("rapid_fails_per_minute", &a.RapidFailsPerMinute)
	s.str("stop_signal", &a.StopSignal)
	s.integer("queue_size", &a.QueueSize)
	s.str("offline_file", &a.OfflineFile)
	s.boolean("error_detail", &a.ErrorDetail)
	s.str("compat", &a.Compat)
	s.str("protocol", &a.Protocol)

	if hb := s.block("health"); hb != nil {
		h := s.nested(hb.Body, "health")
		h.checkKeys(healthSchema)
		h.str("path", &a.Health.Path)
		h.duration("interval", &a.Health.Interval)
	}
	if lb := s.block("stdout_log"); lb != nil {
		l := s.nested(lb.Body, "stdout_log")
		l.checkKeys(stdoutLogSchema)
		l.boolean("enabled", &a.StdoutLog.Enabled)
		l.size("max_size", &a.StdoutLog.MaxSize)
		l.integer("max_files", &a.StdoutLog.MaxFiles)
	}
	if rb := s.block("rollout"); rb != nil {
		r := s.nested(rb.Body, "rollout")
		r.checkKeys(rolloutSchema)
		r.str("strategy", &a.Rollout.Strategy)
		r.integer("max_surge", &a.Rollout.MaxSurge)
		r.duration("min_ready", &a.Rollout.MinReady)
		r.duration("drain_timeout", &a.Rollout.DrainTimeout)
	}
	s.isolation(&a)

	for _, pr := range checkApp(&a) {
		if s.failed[pr.key] || pr.key == "name" && !ok {
			continue
		}
		rng, found := s.pos[pr.at]
		if !found {
			rng, found = s.pos[pr.key]
		}
		if !found {
			rng = b.DefRange()
		}
		p.d.add(rng, name, pr.key, pr.msg)
	}
	return a, s, ok
}

// suggest returns `; did you mean "x"?` for the known key closest to name,
// or "".
func suggest(name string, lists ...[]string) string {
	best, bestDist := "", 3
	for _, list := range lists {
		for _, k := range list {
			if d := editDistance(name, k); d < bestDist {
				best, bestDist = k, d
			}
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance of two short ASCII keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
