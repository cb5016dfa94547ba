package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ancm-dev/ancm/config"
)

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.hcl")
	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(good, []byte("app \"a\" {\n  command = \"/bin/true\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("app \"a\" {\n  processes = 0\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     []string
		stderrHave string
	}{
		{name: "help", args: []string{"--help"}, stdout: []string{"serve", "control", "proxy", "validate", "version", "-c, --config", "Exit codes"}},
		{name: "help verb", args: []string{"help", "proxy"}, stdout: []string{"--control", "--listen", "--access-log"}},
		{name: "verb help", args: []string{"validate", "--help"}, stdout: []string{"validate -c FILE"}},
		{name: "version", args: []string{"version"}, stdout: []string{"ancmd ", " go1."}},
		{name: "version flag", args: []string{"--version"}, stdout: []string{"ancmd "}},
		{name: "validate", args: []string{"validate", "-c", good}, stdout: []string{"good.hcl: ok (1 apps)"}},
		{name: "validate long flag", args: []string{"validate", "--config", good}, stdout: []string{"ok (1 apps)"}},
		{name: "validate errors", args: []string{"validate", "-c", bad}, code: 1, stderrHave: "bad.hcl:2:"},
		{name: "validate missing file", args: []string{"validate", "-c", filepath.Join(dir, "none.hcl")}, code: 1, stderrHave: "none.hcl"},
		{name: "validate without -c", args: []string{"validate"}, code: 2, stderrHave: "-c FILE is required"},
		{name: "serve without -c", args: []string{"serve"}, code: 2, stderrHave: "-c FILE is required"},
		{name: "serve bad config", args: []string{"-c", bad}, code: 1, stderrHave: "processes"},
		{name: "unknown verb", args: []string{"frob"}, code: 2, stderrHave: `unknown command "frob"`},
		{name: "unknown flag", args: []string{"serve", "--nope"}, code: 2, stderrHave: "unknown flag: --nope"},
		{name: "proxy bad control", args: []string{"proxy", "--control", "http://x"}, code: 2, stderrHave: `scheme "http"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out.String(), errb.String())
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			if !strings.Contains(errb.String(), tc.stderrHave) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderrHave, errb.String())
			}
		})
	}
}

func TestRestartChanges(t *testing.T) {
	base := config.File{Listen: "127.0.0.1:8080", Control: "unix:///s/ancm.sock", StateDir: "/s", LogLevel: "info", LogFormat: "text"}
	for _, tc := range []struct {
		name   string
		change func(f *config.File)
		want   []string
	}{
		{name: "nothing", change: func(*config.File) {}},
		{name: "apps and log_level apply", change: func(f *config.File) {
			f.LogLevel = "debug"
			f.Apps = []config.App{{Name: "a"}}
		}},
		{name: "listen", change: func(f *config.File) { f.Listen = "0.0.0.0:80" }, want: []string{"listen"}},
		{name: "control and state_dir", change: func(f *config.File) {
			f.Control = "tcp://127.0.0.1:7070"
			f.StateDir = "/t"
		}, want: []string{"control", "state_dir"}},
		{name: "log_format, access_log, insecure", change: func(f *config.File) {
			f.LogFormat = "json"
			f.AccessLog = true
			f.Insecure = true
		}, want: []string{"log_format", "access_log", "insecure"}},
		{name: "control_tls added", change: func(f *config.File) {
			f.ControlTLS = &config.TLS{CertFile: "/c", KeyFile: "/k", ClientCAFile: "/ca"}
		}, want: []string{"control_tls.cert_file", "control_tls.key_file", "control_tls.client_ca_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := base
			tc.change(&next)
			var got []string
			for _, c := range restartChanges(&base, &next) {
				got = append(got, c.key)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("restartChanges = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestReloadCoversEveryKey fails when a top-level key of the config file is
// neither applied on reload (liveKeys) nor named by restartChanges, so that
// a new setting cannot be ignored by SIGHUP without a word.
func TestReloadCoversEveryKey(t *testing.T) {
	cur := config.File{}
	all := config.File{Listen: "x", Control: "x", StateDir: "x", LogFormat: "x", AccessLog: true, Insecure: true,
		AccessLogFormat: "x", MetricsListen: "x",
		ControlTLS:     &config.TLS{CertFile: "x", KeyFile: "x", ClientCAFile: "x"},
		MaxConnections: 1, SendTimeout: 1, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::1/128")},
		HTTPS: &config.HTTPS{Listen: "x"}}
	named := map[string]bool{}
	for _, c := range restartChanges(&cur, &all) {
		named[c.key] = true
	}
	for _, k := range config.Keys() {
		top, _, _ := strings.Cut(k, ".")
		if slices.Contains(liveKeys, top) || named[k] || named[top] || config.IsBlock(k) {
			continue
		}
		t.Errorf("config key %s: a reload neither applies it (liveKeys) nor warns that it needs a restart (restartChanges)", k)
	}
}

func TestManPages(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"man", dir}, &out, &errb); code != 0 {
		t.Fatalf("man: exit %d: %s", code, errb.String())
	}
	for _, name := range []string{"ancmd.8", "ancmd-serve.8", "ancmd-proxy.8", "ancmd-validate.8"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if !strings.Contains(string(b), ".TH \"ANCMD\" \"8\"") {
			t.Errorf("%s has no ANCMD(8) title:\n%.200s", name, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ancmd-man.8")); err == nil {
		t.Error("the hidden man verb has a page of its own")
	}
}
