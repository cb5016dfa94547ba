package config

import (
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ancm-dev/ancm/config/envfile"
)

// Limits of the values that the contract does not bound itself.
const (
	MaxNameLength  = 63
	MaxLogMaxFiles = 1000
	// MaxQueueSize keeps queue_size within the API's uint32 and within
	// reason.
	MaxQueueSize = 1 << 20
)

// problem is one rule an app breaks. key is the key as written in the file
// ("health.interval"), which is also the AppSpec field path below "app.".
// at, when set, locates the problem more precisely for a file position:
// "hosts[2]" or "env[NAME]".
type problem struct {
	key, at, msg string
}

// checkApp validates an app whose fields are decoded and defaulted, and
// normalizes hosts, path_prefix and stop_signal in place. Both the config
// file and the API go through it, so both refuse the same things.
func checkApp(a *App) []problem {
	var ps []problem
	bad := func(key, at, format string, args ...any) {
		ps = append(ps, problem{key: key, at: at, msg: fmt.Sprintf(format, args...)})
	}

	if err := checkName(a.Name); err != nil {
		bad("name", "", "%v", err)
	}
	switch {
	case a.Command == "":
		bad("command", "", "required")
	case strings.IndexByte(a.Command, 0) >= 0:
		bad("command", "", "must not contain a NUL byte")
	}
	for i, s := range a.Args {
		if strings.IndexByte(s, 0) >= 0 {
			bad("args", "args["+strconv.Itoa(i)+"]", "argument %d must not contain a NUL byte", i)
		}
	}
	if strings.IndexByte(a.Dir, 0) >= 0 {
		bad("dir", "", "must not contain a NUL byte")
	}
	for _, k := range sortedKeys(a.Env) {
		if !envfile.ValidName(k) {
			bad("env", "env["+k+"]", "%q is not a valid environment variable name (letters, digits and _, not starting with a digit)", k)
		} else if strings.IndexByte(a.Env[k], 0) >= 0 {
			bad("env", "env["+k+"]", "value of %s must not contain a NUL byte", k)
		}
	}

	seen := make(map[string]int, len(a.Hosts))
	for i, h := range a.Hosts {
		at := "hosts[" + strconv.Itoa(i) + "]"
		n, err := normalizeHost(h)
		if err != nil {
			bad("hosts", at, "%v", err)
			continue
		}
		if j, dup := seen[n]; dup {
			bad("hosts", at, "%q is listed twice (also at index %d)", n, j)
			continue
		}
		seen[n] = i
		a.Hosts[i] = n
	}
	if p, err := normalizePathPrefix(a.PathPrefix); err != nil {
		bad("path_prefix", "", "%v", err)
	} else {
		a.PathPrefix = p
	}

	if a.Start != StartOnDemand && a.Start != StartEager {
		bad("start", "", "must be %q or %q, not %q", StartOnDemand, StartEager, a.Start)
	}
	if a.Processes < 1 || a.Processes > MaxProcesses {
		bad("processes", "", "must be between 1 and %d, not %d", MaxProcesses, a.Processes)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"startup_timeout", a.StartupTimeout},
		{"shutdown_timeout", a.ShutdownTimeout},
		{"request_timeout", a.RequestTimeout},
		{"health.interval", a.Health.Interval},
	} {
		if d.v <= 0 {
			bad(d.key, "", "must be greater than 0, not %s", d.v)
		}
	}
	if a.RapidFailsPerMinute < 0 || a.RapidFailsPerMinute > MaxRapidFailsPerMinute {
		bad("rapid_fails_per_minute", "", "must be between 0 and %d, not %d", MaxRapidFailsPerMinute, a.RapidFailsPerMinute)
	}
	if sig, err := canonicalSignal(a.StopSignal); err != nil {
		bad("stop_signal", "", "%q is not a known signal name (use a name such as SIGTERM, TERM or sigterm)", a.StopSignal)
	} else {
		a.StopSignal = sig
	}
	if a.QueueSize < 0 || a.QueueSize > MaxQueueSize {
		bad("queue_size", "", "must be between 0 and %d, not %d", MaxQueueSize, a.QueueSize)
	}
	if a.OfflineFile != "" {
		if p, err := normalizeOfflineFile(a.OfflineFile); err != nil {
			bad("offline_file", "", "%v", err)
		} else {
			a.OfflineFile = p
		}
	}
	if a.Compat != "" && a.Compat != CompatASPNETCore {
		bad("compat", "", "must be \"\" or %q, not %q", CompatASPNETCore, a.Compat)
	}
	switch a.Protocol {
	case ProtocolHTTP1:
	case ProtocolH2C:
		if a.Health.Path != "" {
			bad("health.path", "", "is an HTTP/1.1 check, and protocol = \"h2c\" apps speak HTTP/2 only: leave it out (readiness is then the port accepting connections)")
		}
	default:
		bad("protocol", "", "must be %q or %q, not %q", ProtocolHTTP1, ProtocolH2C, a.Protocol)
	}
	if p := a.Health.Path; p != "" && (!strings.HasPrefix(p, "/") || strings.ContainsFunc(p, isSpaceOrControl)) {
		bad("health.path", "", "must be a request path starting with \"/\", not %q", p)
	}
	if r := a.Rollout.Strategy; r != RolloutRolling && r != RolloutRecreate {
		bad("rollout.strategy", "", "must be %q or %q, not %q", RolloutRolling, RolloutRecreate, r)
	}
	if n := a.Rollout.MaxSurge; n < 1 || (a.Processes >= 1 && n > a.Processes) {
		bad("rollout.max_surge", "", "must be between 1 and processes (%d), not %d", max(a.Processes, 1), n)
	}
	if a.Rollout.MinReady < 0 {
		bad("rollout.min_ready", "", "must not be negative, not %s", a.Rollout.MinReady)
	}
	if a.Rollout.DrainTimeout <= 0 {
		bad("rollout.drain_timeout", "", "must be greater than 0, not %s", a.Rollout.DrainTimeout)
	}
	if a.StdoutLog.MaxSize < MinLogMaxSize {
		bad("stdout_log.max_size", "", "must be at least 1KB, not %d bytes", a.StdoutLog.MaxSize)
	}
	if a.StdoutLog.MaxFiles < 1 || a.StdoutLog.MaxFiles > MaxLogMaxFiles {
		bad("stdout_log.max_files", "", "must be between 1 and %d, not %d", MaxLogMaxFiles, a.StdoutLog.MaxFiles)
	}
	return append(ps, checkIsolation(a)...)
}

// Protocols an app may speak to the data plane.
const (
	ProtocolHTTP1 = "http1"
	ProtocolH2C   = "h2c" // cleartext HTTP/2 with prior knowledge: gRPC servers
)

// CompatASPNETCore is the compat value that speaks the IIS integration
// contract.
const CompatASPNETCore = "aspnetcore"

var (
	logLevels  = []string{"trace", "debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

// checkName checks an app name: it becomes a file name (captured logs) and
// a label in URLs and tables.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("must not be empty")
	case len(name) > MaxNameLength:
		return fmt.Errorf("%q is longer than %d characters", name, MaxNameLength)
	case name[0] == '.' || name[0] == '-':
		return fmt.Errorf("%q must not start with %q", name, name[0])
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q has %q: use letters, digits, '.', '_' and '-'", name, r)
		}
	}
	return nil
}

// normalizeHost lower-cases a host pattern and checks that it is a DNS name
// ("app.example.com") or a wildcard for the names one label below a domain
// ("*.example.com"), without scheme, port or path.
func normalizeHost(h string) (string, error) {
	n := strings.ToLower(h)
	switch {
	case n == "":
		return "", fmt.Errorf("empty host")
	case strings.Contains(n, "://"):
		return "", fmt.Errorf("%q: a host has no scheme", h)
	case strings.Contains(n, "/"):
		return "", fmt.Errorf("%q: a host has no path (use path_prefix)", h)
	case strings.Contains(n, ":"):
		return "", fmt.Errorf("%q: a host has no port", h)
	case len(n) > 253:
		return "", fmt.Errorf("%q: longer than 253 characters", h)
	}
	name := n
	if rest, ok := strings.CutPrefix(n, "*."); ok {
		name = rest
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if !validDNSLabel(l) {
			if strings.Contains(l, "*") {
				return "", fmt.Errorf("%q: a wildcard is allowed only as the whole first label, as in \"*.example.com\"", h)
			}
			return "", fmt.Errorf("%q is not a DNS name or \"*.domain\" pattern", h)
		}
	}
	return n, nil
}

// validDNSLabel accepts 1..63 of letters, digits, '-' and '_', not starting
// or ending with '-'. Underscores are not valid in host names but occur in
// DNS names of internal services, so they are let through.
func validDNSLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// normalizePathPrefix checks a path_prefix and writes it in its one form:
// starting with "/", no trailing "/" unless it is "/", no empty or "."
// segments. ".." segments, queries and fragments are refused.
func normalizePathPrefix(p string) (string, error) {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("%q must start with \"/\"", p)
	case strings.ContainsAny(p, "?#"):
		return "", fmt.Errorf("%q: a path prefix has no query or fragment", p)
	case strings.ContainsFunc(p, isSpaceOrControl):
		return "", fmt.Errorf("%q: a path prefix has no spaces or control characters", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", fmt.Errorf("%q: a path prefix has no \"..\"", p)
		}
	}
	return path.Clean(p), nil
}

// normalizeOfflineFile checks that an offline file names a file inside the
// app's dir.
func normalizeOfflineFile(p string) (string, error) {
	if filepath.IsAbs(p) {
		return "", fmt.Errorf("%q must be relative to dir", p)
	}
	c := filepath.Clean(p)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") || strings.IndexByte(c, 0) >= 0 {
		return "", fmt.Errorf("%q must name a file inside dir", p)
	}
	return c, nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }
