package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// ErrInvalid is matched by every validation error of this package, from a
// config file (*Error) or from the API (FieldErrors): errors.Is(err,
// ErrInvalid) tells a bad config from a file that could not be read.
var ErrInvalid = errors.New("invalid config")

// Diagnostic is one problem found in a config file.
type Diagnostic struct {
	File   string // the file name as given to Load or Parse
	Line   int    // 1-based; 0 only for apps that came without a position
	Column int    // 1-based, in characters
	App    string // the app's name as written, "" for top-level settings
	Key    string // as written in the file: "processes", "health.interval"
	// Message says what is wrong, in lower case.
	Message string
}

// String formats the diagnostic as FILE:LINE:COL: app "NAME": KEY: message,
// leaving out the parts that are empty.
func (d Diagnostic) String() string {
	var b strings.Builder
	if pos := d.Position(); pos != "" {
		b.WriteString(pos)
		b.WriteString(": ")
	}
	if d.App != "" {
		fmt.Fprintf(&b, "app %q: ", d.App)
	}
	if d.Key != "" {
		b.WriteString(d.Key)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// Position is FILE:LINE:COL, or "" for a diagnostic without a position.
func (d Diagnostic) Position() string {
	if d.Line <= 0 {
		return d.File
	}
	pos := strconv.Itoa(d.Line) + ":" + strconv.Itoa(d.Column)
	if d.File == "" {
		return pos
	}
	return d.File + ":" + pos
}

// Error holds every problem found in a config file, sorted by position.
type Error struct {
	Diagnostics []Diagnostic
}

// Error joins the diagnostics, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// FieldError is one problem in an AppSpec that came through the API. Field
// is the proto field path, "app.processes" or "app.health.interval".
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// FieldErrors is every problem found in an AppSpec, in field order.
type FieldErrors []*FieldError

// Error joins the problems with "; ".
func (e FieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = fe.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap gives errors.As access to each *FieldError.
func (e FieldErrors) Unwrap() []error {
	errs := make([]error, len(e))
	for i, fe := range e {
		errs[i] = fe
	}
	return errs
}

// diags collects diagnostics while a file is checked.
type diags struct {
	file string
	list []Diagnostic
}

func (d *diags) add(rng hcl.Range, app, key, msg string) {
	line, col := rng.Start.Line, rng.Start.Column
	if line <= 0 {
		line, col = 1, 1
	}
	if col <= 0 {
		col = 1
	}
	d.list = append(d.list, Diagnostic{File: d.file, Line: line, Column: col, App: app, Key: key, Message: msg})
}

func (d *diags) addf(rng hcl.Range, app, key, format string, args ...any) {
	d.add(rng, app, key, fmt.Sprintf(format, args...))
}

// addHCL adds diagnostics that HCL itself reported, keeping their
// positions.
func (d *diags) addHCL(hd hcl.Diagnostics, app, key string) {
	for _, h := range hd {
		if h.Severity != hcl.DiagError {
			continue
		}
		var rng hcl.Range
		switch {
		case h.Subject != nil:
			rng = *h.Subject
		case h.Context != nil:
			rng = *h.Context
		}
		msg := h.Summary
		if h.Detail != "" {
			msg += "; " + h.Detail
		}
		d.add(rng, app, key, msg)
	}
}

// err returns the collected diagnostics as an *Error, or nil.
func (d *diags) err() error {
	if len(d.list) == 0 {
		return nil
	}
	list := slices.Clone(d.list)
	slices.SortStableFunc(list, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return &Error{Diagnostics: list}
}
