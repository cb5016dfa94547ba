package envfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxSize bounds the file read, so that a wrong path (a log, a device)
// fails fast instead of filling memory.
const MaxSize = 1 << 20

// Var is one assignment, in file order.
type Var struct {
	Name, Value string
	Line        int
}

// Error is a problem at one line of a file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// ErrTooLarge is wrapped when a file is larger than MaxSize.
var ErrTooLarge = errors.New("env file too large")

// ErrNotRegular is wrapped when the path is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// Read parses the file at path. A later assignment to a name wins over an
// earlier one when the result is applied in order.
// A path that is not a regular file (a FIFO, a device, a directory) is an
// error before it is opened: reading one could block or never end.
func Read(path string) ([]Var, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%s: %w (more than %d bytes)", path, ErrTooLarge, MaxSize)
	}
	return Parse(path, string(data))
}

// Parse parses the text of an env file; name is used in errors.
func Parse(name, text string) ([]Var, error) {
	p := &parser{name: name}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), MaxSize+1)
	for sc.Scan() {
		p.lines = append(p.lines, strings.TrimSuffix(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var vars []Var
	for p.i < len(p.lines) {
		v, ok, err := p.next()
		if err != nil {
			return nil, err
		}
		if ok {
			vars = append(vars, v)
		}
	}
	return vars, nil
}

type parser struct {
	name  string
	lines []string
	i     int // next line, 0-based
}

func (p *parser) errf(line int, format string, args ...any) error {
	return &Error{File: p.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// next parses the assignment that starts at line i, which may take several
// lines. ok is false for a blank or comment line.
func (p *parser) next() (Var, bool, error) {
	lineNo := p.i + 1
	line := strings.TrimLeft(p.lines[p.i], " \t")
	p.i++
	if line == "" || line[0] == '#' || line[0] == ';' {
		return Var{}, false, nil
	}
	if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		line = strings.TrimLeft(rest, " \t")
	}
	name, value, found := strings.Cut(line, "=")
	name = strings.TrimRight(name, " \t")
	if !found {
		return Var{}, false, p.errf(lineNo, "want KEY=VALUE, not %q", clip(line))
	}
	if !ValidName(name) {
		return Var{}, false, p.errf(lineNo, "%q is not a valid variable name (letters, digits and _, not starting with a digit)", clip(name))
	}
	value = strings.TrimLeft(value, " \t")
	var err error
	switch {
	case strings.HasPrefix(value, "'"):
		value, err = p.quoted(lineNo, value[1:], '\'')
	case strings.HasPrefix(value, `"`):
		value, err = p.quoted(lineNo, value[1:], '"')
	default:
		value = strings.TrimRight(value, " \t")
	}
	if err != nil {
		return Var{}, false, err
	}
	if strings.IndexByte(value, 0) >= 0 {
		return Var{}, false, p.errf(lineNo, "value of %s has a NUL byte", name)
	}
	return Var{Name: name, Value: value, Line: lineNo}, true, nil
}

// quoted reads a value from after its opening quote up to the closing one,
// across lines if need be.
func (p *parser) quoted(start int, s string, q byte) (string, error) {
	var b strings.Builder
	for {
		for j := 0; j < len(s); j++ {
			c := s[j]
			switch {
			case c == q:
				if tail := strings.TrimLeft(s[j+1:], " \t"); tail != "" && tail[0] != '#' {
					return "", p.errf(p.i, "unexpected %q after the closing quote", clip(tail))
				}
				return b.String(), nil
			case c == '\\' && q == '"':
				if j+1 == len(s) {
					// A backslash at the end of the line joins it with the
					// next.
					goto nextLine
				}
				j++
				switch e := s[j]; e {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case '"', '\\', '$', '`':
					b.WriteByte(e)
				default:
					b.WriteByte('\\')
					b.WriteByte(e)
				}
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('\n')
	nextLine:
		if p.i >= len(p.lines) {
			return "", p.errf(start, "unterminated %c quote", q)
		}
		s = p.lines[p.i]
		p.i++
	}
}

// ValidName reports whether k is a portable environment variable name.
func ValidName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
