package envfile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // NAME=VALUE
	}{
		{"plain", "A=1\nB=two words\n", []string{"A=1", "B=two words"}},
		{"blanks and comments", "\n  # c\n; c\nA = 1 \n\t\n", []string{"A=1"}},
		{"export", "export A=1\nexport\tB=2\nexportC=3\n", []string{"A=1", "B=2", "exportC=3"}},
		{"empty value", "A=\nB=''\nC=\"\"\n", []string{"A=", "B=", "C="}},
		{"single quotes literal", `A='x \n $HOME "q"'`, []string{`A=x \n $HOME "q"`}},
		{"double quote escapes", `A="x\n\t\"q\" \\ \$HOME \z"`, []string{"A=x\n\t\"q\" \\ $HOME \\z"}},
		{"no expansion", "A=$HOME\nB=${X}", []string{"A=$HOME", "B=${X}"}},
		{"hash inside value", "A=a#b\nB='c#d' # comment", []string{"A=a#b", "B=c#d"}},
		{"multi-line quotes", "A=\"one\ntwo\"\nB='x\ny'\nC=\"j\\\noin\"", []string{"A=one\ntwo", "B=x\ny", "C=join"}},
		{"equals in value", "A=b=c", []string{"A=b=c"}},
		{"crlf", "A=1\r\nB=\"2\"\r\n", []string{"A=1", "B=2"}},
		{"later wins is kept in order", "A=1\nA=2", []string{"A=1", "A=2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars, err := Parse("f", tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range vars {
				got = append(got, v.Name+"="+v.Value)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"A=1\nB\n", "f:2: want KEY=VALUE"},
		{"1A=x", "f:1: \"1A\" is not a valid variable name"},
		{"A-B=x", "f:1: \"A-B\" is not a valid variable name"},
		{"A=1\nB=\"open\nmore", "f:2: unterminated \" quote"},
		{"A='x' y", "f:1: unexpected \"y\" after the closing quote"},
		{"=x", "f:1: \"\" is not a valid variable name"},
	} {
		_, err := Parse("f", tc.in)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(p, []byte("X=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars, err := Read(p)
	if err != nil || len(vars) != 1 || vars[0].Value != "1" || vars[0].Line != 1 {
		t.Fatalf("Read = %v, %v", vars, err)
	}
	if _, err := Read(p + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	for _, p := range []string{"/dev/null", "/dev/zero", t.TempDir()} {
		if _, err := Read(p); !errors.Is(err, ErrNotRegular) {
			t.Errorf("Read(%s) = %v, want ErrNotRegular", p, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"A=1", "export B='x'", "C=\"a\\\nb\"", "# c\n;d\n", "D=\"x", "E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vars, err := Parse("f", s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Line < 1 {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		for _, v := range vars {
			if !ValidName(v.Name) || strings.IndexByte(v.Value, 0) >= 0 {
				t.Fatalf("bad var %q=%q", v.Name, v.Value)
			}
		}
	})
}
