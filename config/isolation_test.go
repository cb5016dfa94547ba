package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

func asRoot(t *testing.T, uid int) {
	t.Helper()
	old := euid
	euid = func() int { return uid }
	t.Cleanup(func() { euid = old })
}

func parseIn(t *testing.T, dir, src string) (*File, error) {
	t.Helper()
	p := filepath.Join(dir, "ancm.hcl")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(p)
}

func TestIsolationKeys(t *testing.T) {
	asRoot(t, 0)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("A=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := parseIn(t, dir, `
app "a" {
  command     = "x"
  user        = "nobody"
  group       = "nogroup"
  env_file    = ".env"
  inherit_env = false
  limits {
    memory     = "512MB"
    cpu        = 1.5
    pids       = 512
    open_files = 65536
  }
}
`)
	if err != nil {
		t.Fatal(err)
	}
	a := f.Apps[0]
	want := Limits{Memory: 512 << 20, CPU: 1.5, Pids: 512, OpenFiles: 65536}
	if a.User != "nobody" || a.Group != "nogroup" || a.EnvFile != ".env" || a.InheritEnv || a.Limits != want {
		t.Errorf("app = %+v", a)
	}
	if EnvFilePath(&a) != filepath.Join(dir, ".env") {
		t.Errorf("EnvFilePath = %q", EnvFilePath(&a))
	}
	back, err := AppFromProto(roundTrip(t, a.Proto()))
	if err != nil || !back.Equal(a) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if ws := Warnings(f); len(ws) != 0 {
		t.Errorf("warnings for an app with a user: %v", ws)
	}
}

func roundTrip(t *testing.T, spec *ancmv1.AppSpec) *ancmv1.AppSpec {
	t.Helper()
	raw, err := proto.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var got ancmv1.AppSpec
	if err := proto.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

func TestIsolationErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.env"), []byte("OK=1\nnot an assignment\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		uid  int
		body string
		want string
	}{
		{"missing user", 0, `user = "no-such-user-here"`, `ancm.hcl:3:10: app "a": user: no such user "no-such-user-here"`},
		{"missing group", 0, `group = "no-such-group-here"`, `ancm.hcl:3:11: app "a": group: no such group "no-such-group-here"`},
		{"user while not root", 1000, `user = "nobody"`, `ancm.hcl:3:10: app "a": user: needs ancmd to run as root (it runs as uid 1000)`},
		{"limits while not root", 1000, "limits {\n  memory = \"1GB\"\n}", `ancm.hcl:4:12: app "a": limits.memory: needs ancmd to run as root`},
		{"env_file missing", 0, `env_file = "none.env"`, `app "a": env_file: stat ` + filepath.Join(dir, "none.env") + `: no such file`},
		{"env_file a directory", 0, `env_file = "."`, `app "a": env_file: ` + dir + `: not a regular file`},
		{"env_file malformed", 0, `env_file = "bad.env"`, `app "a": env_file: ` + filepath.Join(dir, "bad.env") + `:2: want KEY=VALUE`},
		{"memory too small", 0, "limits {\n  memory = \"1MB\"\n}", `limits.memory: must be at least 4MB, not 1MB`},
		{"cpu out of range", 0, "limits {\n  cpu = 0\n  pids = 4\n}", `limits.pids: must be between 8 and`},
		{"cpu negative", 0, "limits {\n  cpu = -1\n}", `limits.cpu: must be between 0.01 and 4096 cores, not -1`},
		{"open_files", 0, "limits {\n  open_files = 3\n}", `limits.open_files: must be between 16`},
		{"unknown limit", 0, "limits {\n  memroy = 1\n}", `limits.memroy: unknown key; did you mean "memory"?`},
		{"cpu type", 0, "limits {\n  cpu = \"1\"\n}", `limits.cpu: must be a number, not a string`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asRoot(t, tc.uid)
			_, err := parseIn(t, dir, "app \"a\" {\n  command = \"x\"\n  "+tc.body+"\n}\n")
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestIsolationFromTheAPI(t *testing.T) {
	asRoot(t, 0)
	spec := &ancmv1.AppSpec{Name: "a", Command: "x", Dir: "/", User: "no-such-user-here", Limits: &ancmv1.Limits{Pids: 2}}
	_, err := AppFromProto(spec)
	var fe FieldErrors
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), `app.user: no such user`) || !strings.Contains(err.Error(), "app.limits.pids: must be between 8") {
		t.Errorf("got %v", err)
	}
	a, err := AppFromProto(&ancmv1.AppSpec{Name: "a", Command: "x", Dir: "/"})
	if err != nil || !a.InheritEnv {
		t.Errorf("unset inherit_env = %v, %v; want true", a.InheritEnv, err)
	}
}

func TestRootWarnings(t *testing.T) {
	asRoot(t, 0)
	f, err := parseIn(t, t.TempDir(), "app \"a\" {\n  command = \"x\"\n}\n\napp \"b\" {\n  command = \"x\"\n  path_prefix = \"/b\"\n  user = \"nobody\"\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	ws := Warnings(f)
	if len(ws) != 1 || ws[0].App != "a" || ws[0].Line != 1 || ws[0].Key != "user" || !strings.Contains(ws[0].String(), "ancm.hcl:1:1: app \"a\": user: warning: the app will run as root") {
		t.Errorf("warnings = %v", ws)
	}
	asRoot(t, 1000)
	if ws := Warnings(f); len(ws) != 0 {
		t.Errorf("warnings under a non-root ancmd: %v", ws)
	}
}
