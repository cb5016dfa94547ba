package config

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
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
