package config

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// reference is the operators' reference that every key must be in.
const reference = "../docs/configuration.md"

// keyRow is a table row of the reference whose first cell is a key:
// "| `app.health.path` | string | ... |".
var keyRow = regexp.MustCompile("^\\|\\s*`([a-z0-9_.]+)`\\s*\\|(.*)\\|\\s*$")

// referenceRows returns the cells after the key of each key row.
func referenceRows(t *testing.T) map[string][]string {
	t.Helper()
	src, err := os.ReadFile(reference)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for line := 1; sc.Scan(); line++ {
		m := keyRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if _, dup := rows[m[1]]; dup {
			t.Errorf("%s:%d: %s has a second row", reference, line, m[1])
		}
		cells := strings.Split(m[2], "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows[m[1]] = cells
	}
	return rows
}

func TestBlockSchemas(t *testing.T) {
	for block, ok := range schemaBlocks() {
		if !ok {
			t.Errorf("block %s is in a schema but has no entry in blockSchemas: add its schema there", block)
		}
	}
	named := schemaBlocks()
	for block := range blockSchemas {
		if _, ok := named[block]; block != "" && !ok {
			t.Errorf("blockSchemas has %s, which no schema names", block)
		}
	}
}

// TestKeysDocumented fails when a key the parser accepts is missing from
// docs/configuration.md, or the reference has a row for a key that the
// parser does not know. A key's row gives its type, default, values, an
// example and what a reload does with a change.
func TestKeysDocumented(t *testing.T) {
	rows := referenceRows(t)
	keys := Keys()
	for _, k := range keys {
		cells, ok := rows[k]
		if !ok {
			t.Errorf("%s: no row for the key %s: add `| `%s` | type | default | values | example | on reload |`", reference, k, k)
			continue
		}
		if len(cells) != 5 {
			t.Errorf("%s: the row of %s has %d cells after the key, want 5 (type, default, values, example, on reload)", reference, k, len(cells))
			continue
		}
		for i, name := range []string{"type", "default", "values", "example", "on reload"} {
			if cells[i] == "" {
				t.Errorf("%s: the row of %s has no %s", reference, k, name)
			}
		}
		if IsBlock(k) != (cells[0] == "block") {
			t.Errorf("%s: %s has type %q; the parser takes it as a block: %v", reference, k, cells[0], IsBlock(k))
		}
	}
	for k := range rows {
		if !slices.Contains(keys, k) {
			t.Errorf("%s: a row for %s, which the config package does not know", reference, k)
		}
	}
}

// TestReferenceExamples checks that every hcl example of the reference is
// a file the parser accepts.
func TestReferenceExamples(t *testing.T) {
	src, err := os.ReadFile(reference)
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	in, start, n := false, 0, 0
	for i, line := range strings.Split(string(src), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case !in && trimmed == "```hcl":
			in, start, block = true, i+2, nil
		case in && trimmed == "```":
			in = false
			n++
			text := strings.Join(block, "\n")
			if _, err := Parse([]byte(text), "/etc/ancm/ancm.hcl"); err != nil {
				t.Errorf("%s: the example at line %d is refused:\n%v", reference, start, err)
			}
		case in:
			block = append(block, line)
		}
	}
	if n == 0 {
		t.Errorf("%s: no hcl example", reference)
	}
}

// TestContribConfig checks the config file the package installs.
func TestContribConfig(t *testing.T) {
	f, err := Load("../contrib/ancm.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if f.StateDir != "/var/lib/ancm" {
		t.Errorf("state_dir = %q, want the unit's StateDirectory /var/lib/ancm", f.StateDir)
	}
}

// TestReferenceDefaults checks each default of the reference that is one
// literal, as "`120s`" or "`"on_demand"`", against what the parser fills
// in for a file that leaves the key out.
func TestReferenceDefaults(t *testing.T) {
	f, err := Parse([]byte("app \"x\" {\n  command = \"y\"\n}\n"), "/etc/ancm/ancm.hcl")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for key, cells := range referenceRows(t) {
		if len(cells) != 5 {
			continue // TestKeysDocumented reports it
		}
		lit, ok := soleLiteral(cells[1])
		if !ok || key == "control" { // control's default names STATE_DIR
			continue
		}
		var v reflect.Value
		if rest, ok := strings.CutPrefix(key, "app."); ok {
			v = fieldOf(reflect.ValueOf(f.Apps[0]), rest)
		} else if rest, ok := strings.CutPrefix(key, "https."); ok {
			v = fieldOf(reflect.ValueOf(*defaultHTTPS()), rest) // the block is nil when left out
		} else {
			v = fieldOf(reflect.ValueOf(*f), key)
		}
		if !v.IsValid() {
			t.Errorf("%s: the default of %s is %s, but no field of File or App is named after the key", reference, key, lit)
			continue
		}
		checked++
		if want, got := lit, defaultText(v, lit); got != want {
			t.Errorf("%s: the default of %s is %s; the parser's is %s", reference, key, want, got)
		}
	}
	if checked < 15 {
		t.Errorf("only %d defaults checked", checked)
	}
}

// soleLiteral returns the text of a cell that is one `code span`.
func soleLiteral(cell string) (string, bool) {
	if len(cell) < 2 || cell[0] != '`' || cell[len(cell)-1] != '`' || strings.Count(cell, "`") != 2 {
		return "", false
	}
	return cell[1 : len(cell)-1], true
}

// fieldOf follows a dotted key through struct fields named after its
// parts: "health.interval" is Health.Interval.
func fieldOf(v reflect.Value, key string) reflect.Value {
	for part := range strings.SplitSeq(key, ".") {
		name := ""
		for w := range strings.SplitSeq(part, "_") {
			if w != "" {
				name += strings.ToUpper(w[:1]) + w[1:]
			}
		}
		if v.Kind() != reflect.Struct {
			return reflect.Value{}
		}
		v = v.FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, name) }) // ClientCAFile, HTTP2
		if !v.IsValid() {
			return v
		}
	}
	return v
}

// defaultText writes a parsed value the way lit writes it, or says what it
// is when lit does not parse as the field's type.
func defaultText(v reflect.Value, lit string) string {
	unquoted, err := strconv.Unquote(lit)
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		d, perr := time.ParseDuration(unquoted)
		if err != nil || perr != nil || d != time.Duration(v.Int()) {
			return strconv.Quote(time.Duration(v.Int()).String())
		}
	case v.Kind() == reflect.Int64: // a size
		n, perr := ParseSize(unquoted)
		if err != nil || perr != nil || n != v.Int() {
			return strconv.Quote(strconv.FormatInt(v.Int(), 10) + "B")
		}
	case v.Kind() == reflect.Int:
		if lit != strconv.FormatInt(v.Int(), 10) {
			return strconv.FormatInt(v.Int(), 10)
		}
	case v.Kind() == reflect.Bool:
		if lit != strconv.FormatBool(v.Bool()) {
			return strconv.FormatBool(v.Bool())
		}
	case v.Kind() == reflect.String:
		if err != nil || unquoted != v.String() {
			return strconv.Quote(v.String())
		}
	case v.Kind() == reflect.Slice, v.Kind() == reflect.Map:
		if lit != "[]" && lit != "{}" || v.Len() != 0 {
			return fmt.Sprintf("%v", v.Interface())
		}
	default:
		return "a " + v.Kind().String()
	}
	return lit
}

// rangeCell is a values cell that gives a number range: "1..100".
var rangeCell = regexp.MustCompile(`^(-?\d+)\.\.(\d+)$`)

// TestReferenceRanges checks each number range of the reference: its ends
// are accepted, one past them refused.
func TestReferenceRanges(t *testing.T) {
	checked := 0
	for key, cells := range referenceRows(t) {
		if len(cells) != 5 || cells[0] != "number" {
			continue
		}
		m := rangeCell.FindStringSubmatch(cells[2])
		if m == nil {
			continue
		}
		lo, _ := strconv.Atoi(m[1])
		hi, _ := strconv.Atoi(m[2])
		checked++
		for _, tc := range []struct {
			n  int
			ok bool
		}{{lo, true}, {hi, true}, {lo - 1, false}, {hi + 1, false}} {
			src := fileSetting(key, strconv.Itoa(tc.n))
			_, err := Parse([]byte(src), "/etc/ancm/ancm.hcl")
			if (err == nil) != tc.ok {
				t.Errorf("%s: %s is %s, but %s = %d gives %v", reference, key, cells[2], key, tc.n, err)
			}
		}
	}
	if checked < 4 {
		t.Errorf("only %d ranges checked", checked)
	}
}

// fileSetting writes a config file that sets one key, in its block, with
// an app around it if it is an app's.
func fileSetting(key, value string) string {
	parts := strings.Split(key, ".")
	body := parts[len(parts)-1] + " = " + value + "\n"
	for i := len(parts) - 2; i >= 0; i-- {
		switch parts[i] {
		case "app":
			body = "app \"x\" {\n  command = \"y\"\n" + body + "}\n"
		default:
			body = parts[i] + " {\n" + body + "}\n"
		}
	}
	return body
}
