package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/ancm-dev/ancm/api/client"
	"github.com/ancm-dev/ancm/config"
)

func TestPeerAllowRules(t *testing.T) {
	for _, tc := range []struct {
		uid, euid uint32
		ok        bool
	}{
		{uid: 0, euid: 0, ok: true},
		{uid: 0, euid: 1000, ok: true},
		{uid: 1000, euid: 1000, ok: true},
		{uid: 1001, euid: 1000, ok: false},
		{uid: 65534, euid: 0, ok: false},
	} {
		err := allowPeer(&unix.Ucred{Uid: tc.uid, Pid: 42}, tc.euid)
		if (err == nil) != tc.ok {
			t.Errorf("uid %d, daemon euid %d: err = %v, want allowed=%v", tc.uid, tc.euid, err, tc.ok)
		}
		if err != nil && !errors.Is(err, errPeerRefused) {
			t.Errorf("uid %d: err = %v, want errPeerRefused", tc.uid, err)
		}
	}
}

// lockedBuffer is a log sink that tests read while the server writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// servePeer serves the control API (health only) on a unix socket in a
// fresh directory that others may traverse, and returns the socket path and
// the server's log.
func servePeer(t *testing.T) (string, *lockedBuffer) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ancm-peer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ancm.sock")
	ln, addr, err := listenControl("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	log := hclog.New(&hclog.LoggerOptions{Output: io.MultiWriter(logs, t.Output()), Level: hclog.Debug})
	srv, hs, err := newGRPCServer(log, &config.File{}, addr.Network)
	if err != nil {
		t.Fatal(err)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return sock, logs
}

func healthCheck(sock string) error {
	conn, err := client.Dial("unix://"+sock, client.TLSFiles{})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestPeerCredSameUserAllowed(t *testing.T) {
	sock, _ := servePeer(t)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode = %o, want 600", perm)
	}
	if err := healthCheck(sock); err != nil {
		t.Fatalf("health check as uid %d: %v", os.Geteuid(), err)
	}
}

// helperEnv makes the test binary, run again, act as a client that dials
// the socket it names (go-plugin's helperProcess).
const helperEnv = "ANCM_PEER_HELPER_SOCKET"

// TestPeerHelperDial is not a test: it is the client process of
// TestPeerCredOtherUserRefused, run as another uid.
func TestPeerHelperDial(t *testing.T) {
	sock := os.Getenv(helperEnv)
	if sock == "" {
		t.Skip("helper process only")
	}
	// The socket itself is reachable: only the peer check can refuse us.
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Printf("dial: %v\n", err)
		os.Exit(3)
	}
	c.Close()
	err = healthCheck(sock)
	fmt.Printf("uid=%d code=%s err=%v\n", os.Geteuid(), status.Code(err), err)
	if status.Code(err) == codes.Unavailable {
		os.Exit(0)
	}
	os.Exit(1)
}

func TestPeerCredOtherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	sock, logs := servePeer(t)
	// Open the socket to everyone, as a mistaken chmod would: the uid check
	// must still refuse a stranger.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	// The test binary sits in a directory only root can read; copy it to
	// one the other uid can execute from.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(filepath.Dir(sock), "helper.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}

	const nobody = 65534
	cmd := exec.Command(exe, "-test.run=^TestPeerHelperDial$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+sock)
	cmd.Dir = filepath.Dir(sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as uid %d: %v, want refused with Unavailable\n%s", nobody, err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("uid=%d code=Unavailable", nobody)) {
		t.Fatalf("client output:\n%s", out)
	}
	if l := logs.String(); !strings.Contains(l, "peer refused") || !strings.Contains(l, fmt.Sprintf("uid=%d", nobody)) {
		t.Errorf("server log lacks a warning naming uid %d:\n%s", nobody, l)
	}

	// Root still gets in on the same socket.
	if err := healthCheck(sock); err != nil {
		t.Errorf("root after a refused peer: %v", err)
	}
}
