package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a NOTIFY_SOCKET of the test's own: it collects the
// datagrams ancmd sends, as systemd would.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "ancm-notify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) messages() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// count is how many messages so far have the line.
func (n *notifySocket) count(line string) int {
	c := 0
	for _, m := range n.messages() {
		for l := range strings.SplitSeq(m, "\n") {
			if l == line {
				c++
			}
		}
	}
	return c
}

// ancmd speaks sd_notify: READY=1 once both planes serve, RELOADING=1 (with
// MONOTONIC_USEC) then READY=1 around a SIGHUP, WATCHDOG=1 while the unit
// sets WatchdogSec, STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	n := newNotifySocket(t)
	d := prepareDaemon(t, helloApp)
	d.extraEnv = []string{"NOTIFY_SOCKET=" + n.path, "WATCHDOG_USEC=200000"}
	d.start("serve")

	waitFor(t, 10*time.Second, "READY=1", func() bool { return n.count("READY=1") == 1 })
	// The proxy serves by the time READY=1 is sent.
	if code, _ := get(t, d.url("/")); code != 200 {
		t.Errorf("GET / after READY=1: %d", code)
	}
	waitFor(t, 10*time.Second, "WATCHDOG=1 twice", func() bool { return n.count("WATCHDOG=1") >= 2 })

	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "RELOADING=1, then READY=1", func() bool { return n.count("READY=1") == 2 })
	var reload string
	for _, m := range n.messages() {
		if strings.Contains(m, "RELOADING=1") {
			reload = m
		}
	}
	if !strings.Contains(reload, "\nMONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", reload)
	}

	d.stop()
	if n.count("STOPPING=1") != 1 {
		t.Errorf("no STOPPING=1 before exit; messages: %q", n.messages())
	}
	if d.exitErr != nil {
		t.Errorf("ancmd exit: %v", d.exitErr)
	}
}
