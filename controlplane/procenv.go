package controlplane

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ancm-dev/ancm/config"
)

const (
	// stableRun is how long an instance must stay ready for its backoff to
	// reset.
	stableRun = 10 * time.Second
	// backoffBase and backoffCap bound the delay between restarts after the
	// first, immediate one.
	backoffBase = 100 * time.Millisecond
	backoffCap  = 10 * time.Second
	// healthFailures is how many health checks in a row must fail before an
	// instance is restarted; the first failure takes it out of rotation.
	healthFailures = 3
	// tailOnFailure is how many lines of output a failure carries.
	tailOnFailure = 20
	// captureDrain bounds the wait for an exited process's last output.
	captureDrain = 200 * time.Millisecond
)

// backoff is the delay before the n-th restart in a row: none for the
// first, then doubling from backoffBase up to backoffCap, with ±25% jitter.
func backoff(n int) time.Duration { return jitter(backoffDelay(n)) }

// jitter spreads d by ±25%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
}

func newToken() string {
	var b [16]byte
	_, _ = cryptoRead(b[:])
	return hex.EncodeToString(b[:])
}

var cryptoRead = crand.Read

// Instance ports. A port the kernel hands out for ":0" comes from the
// ephemeral range (net.ipv4.ip_local_port_range), which is also where
// every outgoing connection on the host takes its local port: one of
// them (the data plane's connection to another instance, any client on
// the host) can take an instance's port between the pick and the app's
// bind, and the app fails to start. So ports are picked at random from
// minAppPort up to the start of that range, never in it, and checked
// free; the last recentPorts ports handed out are not picked again, as
// an app may take a while to bind its own. With no room below the range
// (a host that widened it), the kernel picks.
const (
	minAppPort  = 10000
	recentPorts = 512
)

var ports struct {
	sync.Mutex
	low    int              // start of the ephemeral range; 0: not read yet
	recent [recentPorts]int // the last ports handed out, a ring
	next   int
}

// ephemeralLow reads the start of the ephemeral port range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				return v
			}
		}
	}
	return 32768 // the kernel's default
}

// freePort picks a free loopback port for an instance.
func freePort() (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.low == 0 {
		ports.low = ephemeralLow()
	}
	if span := ports.low - minAppPort; span > 4*recentPorts {
		for range 100 {
			p := minAppPort + rand.IntN(span)
			if slices.Contains(ports.recent[:], p) {
				continue
			}
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				continue // in use
			}
			l.Close()
			ports.recent[ports.next] = p
			ports.next = (ports.next + 1) % recentPorts
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// resolveCommand finds the command: a path with a slash is taken relative to
// dir; a bare name is looked for in dir, then in PATH.
func resolveCommand(cmd, dir string, env []string) (string, error) {
	if strings.Contains(cmd, "/") {
		p := cmd
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := checkExecutable(p); err != nil {
			return "", err
		}
		return p, nil
	}
	if p := filepath.Join(dir, cmd); checkExecutable(p) == nil {
		return p, nil
	}
	path := os.Getenv("PATH")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, cmd)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in %s or PATH", cmd, dir)
}

func checkExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("command %s: %w", p, err)
	}
	if st.IsDir() {
		return fmt.Errorf("command %s is a directory", p)
	}
	if st.Mode()&0o111 == 0 {
		return fmt.Errorf("command %s is not executable", p)
	}
	return nil
}

// childEnv is the environment of an instance: base (see baseEnv), then
// the app's env, then the variables of the contract, which win.
func childEnv(base []string, cfg *config.App, index uint32, port int, token string) []string {
	env := base
	for k, v := range cfg.Env {
		env = append(env, k+"="+v)
	}
	p := strconv.Itoa(port)
	env = append(env,
		"PORT="+p,
		"ANCM_PORT="+p,
		"ANCM_TOKEN="+token,
		"ANCM_APP="+cfg.Name,
		"ANCM_INSTANCE="+strconv.Itoa(int(index)),
		"ANCM_PATH_BASE="+cfg.PathPrefix,
	)
	if cfg.Compat == "aspnetcore" {
		env = append(env,
			"ASPNETCORE_PORT="+p,
			"ASPNETCORE_TOKEN="+token,
			"ASPNETCORE_APPL_PATH="+cfg.PathPrefix,
			"ASPNETCORE_IIS_PHYSICAL_PATH="+cfg.Dir,
			// No Windows authentication: without this the IIS integration
			// middleware would trust an MS-ASPNETCORE-WINAUTHTOKEN header.
			"ASPNETCORE_IIS_HTTPAUTH=anonymous",
			"ASPNETCORE_IIS_WEBSOCKETS_SUPPORTED=true",
		)
	}
	return dedupeEnv(env)
}

// dedupeEnv keeps the last value of each variable.
func dedupeEnv(env []string) []string {
	seen := make(map[string]int, len(env))
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := seen[k]; ok {
			out[i] = kv
			continue
		}
		seen[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func envLookup(env []string) func(string) string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

// sendIISShutdown sends the IIS integration shutdown event the ASP.NET Core
// Module sends before it stops a process.
func sendIISShutdown(ctx context.Context, port int, token, pathBase string) error {
	u := fmt.Sprintf("http://127.0.0.1:%d%s/iisintegration", port, strings.TrimSuffix(pathBase, "/"))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("MS-ASPNETCORE-EVENT", "shutdown")
	req.Header.Set("MS-ASPNETCORE-TOKEN", token)
	req.Header.Set("ANCM-Token", token)
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("answered %d, want 202", resp.StatusCode)
	}
	return nil
}
