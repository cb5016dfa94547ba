package config

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// schema names the keys a body may hold.
type schema struct {
	attrs  []string
	blocks []string
}

var (
	fileSchema = schema{
		attrs: []string{"listen", "control", "state_dir", "log_level", "log_format", "access_log", "insecure",
			"max_connections", "send_timeout", "trusted_proxies", "access_log_format", "metrics_listen"},
		blocks: []string{"control_tls", "https", "app"},
	}
	tlsSchema = schema{attrs: []string{"cert_file", "key_file", "client_ca_file"}}
	appSchema = schema{
		attrs: []string{"command", "args", "dir", "env", "hosts", "path_prefix", "strip_prefix", "start", "processes",
			"startup_timeout", "shutdown_timeout", "request_timeout", "rapid_fails_per_minute",
			"stop_signal", "queue_size", "offline_file", "error_detail", "compat", "protocol",
			"user", "group", "env_file", "inherit_env"},
		blocks: []string{"health", "stdout_log", "rollout", "limits"},
	}
	healthSchema    = schema{attrs: []string{"path", "interval"}}
	rolloutSchema   = schema{attrs: []string{"strategy", "max_surge", "min_ready", "drain_timeout"}}
	stdoutLogSchema = schema{attrs: []string{"enabled", "max_size", "max_files"}}
)

// scope decodes the keys of one body: the file, an app, or a block nested
// in an app.
type scope struct {
	p      *parser
	app    string // for diagnostics; "" at the top level
	prefix string // "health." in a nested block
	body   *hclsyntax.Body
	// pos is where each key's value stands, for checks made after
	// decoding; failed holds keys that could not be decoded, so that a
	// later check does not report them again. Both are shared with the
	// scopes of nested blocks.
	pos    map[string]hcl.Range
	failed map[string]bool
}

func (p *parser) scope(body *hclsyntax.Body, app string) *scope {
	return &scope{p: p, app: app, body: body, pos: map[string]hcl.Range{}, failed: map[string]bool{}}
}

func (s *scope) nested(body *hclsyntax.Body, name string) *scope {
	return &scope{p: s.p, app: s.app, prefix: s.prefix + name + ".", body: body, pos: s.pos, failed: s.failed}
}

func (s *scope) errf(rng hcl.Range, key, format string, args ...any) {
	s.failed[key] = true
	s.p.d.addf(rng, s.app, key, format, args...)
}

// checkKeys reports every attribute and block the schema does not know,
// and attributes written as blocks or blocks as attributes.
func (s *scope) checkKeys(sc schema) {
	for name, attr := range s.body.Attributes {
		switch {
		case slices.Contains(sc.attrs, name):
		case slices.Contains(sc.blocks, name):
			s.errf(attr.NameRange, s.prefix+name, "must be a block: %s { ... }", name)
		default:
			s.errf(attr.NameRange, s.prefix+name, "unknown key%s", suggest(name, sc.attrs, sc.blocks))
		}
	}
	for _, b := range s.body.Blocks {
		switch {
		case slices.Contains(sc.blocks, b.Type):
		case slices.Contains(sc.attrs, b.Type):
			s.errf(b.TypeRange, s.prefix+b.Type, "must be an argument: %s = ...", b.Type)
		default:
			s.errf(b.TypeRange, s.prefix+b.Type, "unknown block%s", suggest(b.Type, sc.blocks, sc.attrs))
		}
	}
}

// block returns the only block of a type with no labels, or nil.
func (s *scope) block(typ string) *hclsyntax.Block {
	var found *hclsyntax.Block
	for _, b := range s.body.Blocks {
		if b.Type != typ {
			continue
		}
		key := s.prefix + typ
		if len(b.Labels) > 0 {
			s.errf(b.LabelRanges[0], key, "a %s block takes no label", typ)
		}
		if found != nil {
			s.errf(b.TypeRange, key, "block given twice (first at line %d)", found.TypeRange.Start.Line)
			continue
		}
		found = b
	}
	return found
}

// value evaluates an attribute. ok is false when it is absent, null, or
// could not be evaluated; the last is reported.
func (s *scope) value(name string) (v cty.Value, attr *hclsyntax.Attribute, ok bool) {
	attr = s.body.Attributes[name]
	if attr == nil {
		return cty.NilVal, nil, false
	}
	key := s.prefix + name
	s.pos[key] = attr.Expr.Range()
	v, hd := attr.Expr.Value(nil)
	if hd.HasErrors() {
		s.failed[key] = true
		s.p.d.addHCL(hd, s.app, key)
		return cty.NilVal, attr, false
	}
	if !v.IsWhollyKnown() {
		s.errf(attr.Expr.Range(), key, "must be a constant")
		return cty.NilVal, attr, false
	}
	if v.IsNull() {
		return cty.NilVal, attr, false
	}
	return v, attr, true
}

func (s *scope) typeErr(attr *hclsyntax.Attribute, want string, v cty.Value) {
	s.errf(attr.Expr.Range(), s.prefix+attr.Name, "must be %s, not %s", want, typeName(v.Type()))
}

// describe names a value's type, or says it is null.
func describe(v cty.Value) string {
	if v.IsNull() {
		return "null"
	}
	return typeName(v.Type())
}

// typeName names a value's type in the words of the config file.
func typeName(t cty.Type) string {
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "a bool"
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		return "a list"
	case t.IsObjectType() || t.IsMapType():
		return "a map"
	}
	return t.FriendlyName()
}

func (s *scope) str(name string, dst *string) bool {
	v, attr, ok := s.value(name)
	if !ok {
		return false
	}
	if v.Type() != cty.String {
		s.typeErr(attr, "a string", v)
		return false
	}
	*dst = v.AsString()
	return true
}

func (s *scope) boolean(name string, dst *bool) {
	v, attr, ok := s.value(name)
	if !ok {
		return
	}
	if v.Type() != cty.Bool {
		s.typeErr(attr, "true or false", v)
		return
	}
	*dst = v.True()
}

func (s *scope) integer(name string, dst *int) {
	v, attr, ok := s.value(name)
	if !ok {
		return
	}
	if v.Type() != cty.Number {
		s.typeErr(attr, "a whole number", v)
		return
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		s.errf(attr.Expr.Range(), s.prefix+name, "must be a whole number")
		return
	}
	n, acc := bf.Int64()
	if acc != big.Exact || n > math.MaxInt32 || n < math.MinInt32 {
		// Not formatted: printing a number like 1e99999999 takes minutes.
		s.errf(attr.Expr.Range(), s.prefix+name, "number out of range")
		return
	}
	*dst = int(n)
}

func (s *scope) duration(name string, dst *time.Duration) {
	v, attr, ok := s.value(name)
	if !ok {
		return
	}
	if v.Type() != cty.String {
		s.typeErr(attr, "a duration string such as \"10s\"", v)
		return
	}
	d, err := time.ParseDuration(v.AsString())
	if err != nil {
		s.errf(attr.Expr.Range(), s.prefix+name, "%q is not a duration: use a number with a unit, as \"10s\", \"2m\" or \"1h30m\"", v.AsString())
		return
	}
	*dst = d
}

func (s *scope) size(name string, dst *int64) {
	v, attr, ok := s.value(name)
	if !ok {
		return
	}
	key := s.prefix + name
	switch v.Type() {
	case cty.String:
		n, err := ParseSize(v.AsString())
		if err != nil {
			s.errf(attr.Expr.Range(), key, "%v", err)
			return
		}
		*dst = n
	case cty.Number:
		bf := v.AsBigFloat()
		n, acc := bf.Int64()
		if !bf.IsInt() || acc != big.Exact || n < 0 {
			s.errf(attr.Expr.Range(), key, "must be a whole number of bytes or a size such as \"10MB\"")
			return
		}
		*dst = n
	default:
		s.typeErr(attr, "a size such as \"10MB\"", v)
	}
}

// strings decodes a list of strings, noting where each element stands as
// "KEY[i]".
func (s *scope) strings(name string, dst *[]string) {
	v, attr, ok := s.value(name)
	if !ok {
		return
	}
	key := s.prefix + name
	t := v.Type()
	if !t.IsTupleType() && !t.IsListType() && !t.IsSetType() {
		s.typeErr(attr, "a list of strings", v)
		return
	}
	elems, _ := hcl.ExprList(attr.Expr)
	out := make([]string, 0, v.LengthInt())
	bad := false
	for i, it := 0, v.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		rng := attr.Expr.Range()
		if len(elems) == v.LengthInt() {
			rng = elems[i].Range()
		}
		s.pos[fmt.Sprintf("%s[%d]", key, i)] = rng
		if ev.IsNull() || ev.Type() != cty.String {
			s.errf(rng, key, "element %d must be a string, not %s", i, describe(ev))
			bad = true
			continue
		}
		out = append(out, ev.AsString())
	}
	if !bad {
		*dst = out
	}
}

// stringMap decodes a map of strings, noting where each key stands as
// "KEY[NAME]".
func (s *scope) stringMap(name string, dst *map[string]string) {
	v, attr, ok := s.value(name)
	if !ok {
		return
	}
	key := s.prefix + name
	t := v.Type()
	if !t.IsObjectType() && !t.IsMapType() {
		s.typeErr(attr, "a map of strings, as { NAME = \"value\" }", v)
		return
	}
	bad := false
	pairs, _ := hcl.ExprMap(attr.Expr)
	seen := map[string]hcl.Range{}
	for _, kv := range pairs {
		kval, hd := kv.Key.Value(nil)
		if hd.HasErrors() || kval.IsNull() || !kval.IsKnown() || kval.Type() != cty.String {
			continue
		}
		k := kval.AsString()
		if first, dup := seen[k]; dup {
			s.errf(kv.Key.Range(), key, "%s is given twice (first at line %d)", k, first.Start.Line)
			bad = true
		}
		seen[k] = kv.Key.Range()
		s.pos[key+"["+k+"]"] = kv.Key.Range()
	}
	out := make(map[string]string, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		kv, ev := it.Element()
		k := kv.AsString()
		if ev.IsNull() || ev.Type() != cty.String {
			rng, ok := seen[k]
			if !ok {
				rng = attr.Expr.Range()
			}
			s.errf(rng, key, "value of %s must be a string, not %s", k, describe(ev))
			bad = true
			continue
		}
		out[k] = ev.AsString()
	}
	if !bad {
		*dst = out
	}
}
