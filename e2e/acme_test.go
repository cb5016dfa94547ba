package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var pebble struct {
	once sync.Once
	bin  string
	err  error
}

// buildPebble builds Pebble, the ACME test server, at the version go.mod
// pins (a tool of the module).
func buildPebble(t *testing.T) string {
	t.Helper()
	pebble.once.Do(func() {
		pebble.bin = filepath.Join(bin.dir, "pebble")
		out, err := exec.Command("go", "build", "-o", pebble.bin, "github.com/letsencrypt/pebble/v2/cmd/pebble").CombinedOutput()
		if err != nil {
			pebble.err = fmt.Errorf("build pebble: %v\n%s", err, out)
		}
	})
	if pebble.err != nil {
		t.Fatal(pebble.err)
	}
	return pebble.bin
}

// startPebble runs Pebble on loopback with every challenge taken as valid
// (PEBBLE_VA_ALWAYS_VALID) and returns its directory URL; its own
// certificate is signed by ca.
func startPebble(t *testing.T, ca *pki) string {
	t.Helper()
	binary := buildPebble(t)
	listen, mgmt := freeAddr(t), freeAddr(t)
	cert, key := ca.issue("pebble", false, "127.0.0.1")
	conf := filepath.Join(ca.dir, "pebble.json")
	ca.write(conf, []byte(fmt.Sprintf(`{"pebble": {"listenAddress": %q, "managementListenAddress": %q,
  "certificate": %q, "privateKey": %q, "httpPort": 5002, "tlsPort": 5001,
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}`, listen, mgmt, cert, key)))
	cmd := exec.Command(binary, "-config", conf, "-strict=false")
	cmd.Env = append(os.Environ(), "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	out := newSyncBuffer()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pebble output:\n%s", out.String())
		}
	})
	waitFor(t, 20*time.Second, "pebble to listen", func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "https://" + listen + "/dir"
}

// TestACMECertificateFromPebble has ancmd obtain a certificate for an
// app's host from a real ACME server (Pebble, on loopback) and serve a
// request with it.
func TestACMECertificateFromPebble(t *testing.T) {
	ca := newPKI(t, "pebble's own CA")
	dir := startPebble(t, ca)
	https := freeAddr(t)
	d := newDaemon(t, fmt.Sprintf(`
https {
  listen = %q
  acme {
    email        = "ops@example.com"
    directory    = %q
    ca_root_file = %q
  }
}

app "web" {
  command = "TESTAPP"
  args    = ["serve"]
  hosts   = ["acme.test"]
  start   = "eager"
}
`, https, dir, ca.caFile))
	d.waitState("web", "APP_STATE_RUNNING", 20*time.Second)
	var conn *tls.Conn
	waitFor(t, 60*time.Second, "a certificate from pebble", func() bool {
		c, err := tls.Dial("tcp", https, &tls.Config{ServerName: "acme.test", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			return false
		}
		st := c.ConnectionState()
		if len(st.PeerCertificates) == 0 || !strings.Contains(st.PeerCertificates[0].Issuer.CommonName, "Pebble") ||
			len(st.PeerCertificates[0].DNSNames) != 1 || st.PeerCertificates[0].DNSNames[0] != "acme.test" {
			c.Close()
			return false
		}
		conn = c
		return true
	})
	defer conn.Close()
	code, body := exchange(t, conn, bufio.NewReader(conn), "GET /hello HTTP/1.1\r\nHost: acme.test\r\n\r\n")
	if r := decodeReply(t, body); code != 200 || r.Path != "/hello" || r.Headers["X-Forwarded-Proto"][0] != "https" {
		t.Errorf("request with the ACME certificate: %d %+v", code, r)
	}
	if entries, err := os.ReadDir(filepath.Join(d.dir, "acme")); err != nil || len(entries) == 0 {
		t.Errorf("acme storage under state_dir: %v %v", entries, err)
	}
}
