package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics and that every error it reports
// carries a position.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.hcl")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	for _, s := range []string{
		"",
		"app",
		"app \"a\" {",
		"app \"a\" { command = \"x\" }",
		"app \"a\" {\n command = \"x\"\n env = { A = 1, A = 2 }\n}",
		"app \"\" {}\napp \"\" {}",
		"app \"a\" \"b\" { health \"x\" {} }",
		"listen = ${x}",
		"control = \"tcp://\"",
		"app \"a\" {\n command = [for x in [1]: x]\n hosts = [null]\n}",
		"app \"a\" {\n processes = 1e400\n queue_size = -1e400\n}",
		"app \"a\" {\n stdout_log { max_size = 1e19 }\n}",
		"\xff\xfe",
		"a = <<EOT\nx\nEOT",
		"app \"a\" {\n command = \"x\"\n command = \"y\"\n}",
		"app \"a\" { env = { \"\" = \"\" } }",
		"app \"a\" {\n command = \"x\"\n user = \"nobody\"\n group = 7\n env_file = \"/dev/null\"\n limits {\n  memory = \"1GB\"\n  cpu = 1e400\n  pids = -1\n  open_files = \"x\"\n }\n}",
		"app \"a\" { limits = 1\n limits { cpu = 0.001 } }",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Parse(src, "fuzz.hcl")
		if err == nil {
			if file == nil {
				t.Fatal("no file and no error")
			}
			for _, a := range file.Apps {
				if _, err := AppFromProto(a.Proto()); err != nil {
					t.Fatalf("app %q from the file is refused through the API: %v", a.Name, err)
				}
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || len(e.Diagnostics) == 0 {
			t.Fatalf("err = %v (%T), want *Error with diagnostics", err, err)
		}
		for _, d := range e.Diagnostics {
			if d.File != "fuzz.hcl" || d.Line < 1 || d.Column < 1 {
				t.Fatalf("diagnostic without a position: %#v", d)
			}
		}
	})
}
