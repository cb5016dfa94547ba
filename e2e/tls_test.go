package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	t    *testing.T
	dir  string
	name string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // CA certificate, PEM
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{t: t, dir: dir, name: name, cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue signs a leaf certificate and writes NAME.pem and NAME.key. A server
// certificate is for 127.0.0.1.
func (ca *testCA) issue(name string, server bool) (certFile, keyFile string) {
	t := ca.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// prepareTCPDaemon prepares a daemon whose control address is TCP; top
// holds the extra top-level settings (control_tls, insecure).
func prepareTCPDaemon(t *testing.T, top string) *daemon {
	t.Helper()
	d := prepareDaemon(t, "")
	d.control = "tcp://" + freeAddr(t)
	src := fmt.Sprintf("listen = %q\ncontrol = %q\nstate_dir = %q\nlog_level = \"debug\"\n%s\n", d.listen, d.control, d.dir, top)
	if err := os.WriteFile(d.config, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTLSControlRequiresClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	srvCert, srvKey := ca.issue("server", true)
	cliCert, cliKey := ca.issue("client", false)
	other := newTestCA(t, dir, "other-ca")
	strangerCert, strangerKey := other.issue("stranger", false)

	d := prepareTCPDaemon(t, fmt.Sprintf("control_tls {\n  cert_file = %q\n  key_file = %q\n  client_ca_file = %q\n}\n", srvCert, srvKey, ca.file))
	d.start("serve")
	if !strings.Contains(d.out.String(), "control="+d.control) {
		t.Errorf("ancmd output does not name its control address %s", d.control)
	}

	out, errOut, code := d.ctl("--cacert", ca.file, "--cert", cliCert, "--key", cliKey, "apps")
	if code != 0 || !strings.HasPrefix(out, "APP") {
		t.Fatalf("apps with a client certificate: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = d.ctl("--cacert", ca.file, "--cert", cliCert, "--key", cliKey, "version")
	if code != 0 || !strings.Contains(out, "Server:") {
		t.Errorf("version with a client certificate: exit %d\n%s%s", code, out, errOut)
	}

	// Refused at the TLS handshake: the daemon never answers an RPC, so
	// the client sees the transport fail (Unavailable, exit 6), not a
	// status from the server (Unauthenticated, exit 8).
	for _, tc := range []struct {
		name string
		args []string
		want string // in the one line on stderr
	}{
		// The client offers no certificate that the server's CA list
		// accepts; the server's alert races the client's first write, so
		// the reason is "tls: certificate required" or "broken pipe".
		{"no client certificate", []string{"--cacert", ca.file}, ""},
		{"client certificate from another CA", []string{"--cacert", ca.file, "--cert", strangerCert, "--key", strangerKey}, ""},
		{"server not trusted", []string{"--cert", cliCert, "--key", cliKey}, "certificate signed by unknown authority"},
		{"plain text to a TLS port", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := d.ctl(append(tc.args, "apps")...)
			if code != 6 {
				t.Fatalf("exit %d, want 6\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			checkOneLine(t, errOut)
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr = %q, want %q in it", errOut, tc.want)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
		})
	}
}

func TestTLSPlainTCPNeedsInsecure(t *testing.T) {
	d := prepareTCPDaemon(t, "")
	cmd := exec.Command(bin.ancmd, "validate", "-c", d.config)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("validate of a tcp control without TLS: %v, want a non-zero exit\n%s", err, out)
	}
	// The error names the file, the line of control, and the way out.
	if s := string(out); !strings.Contains(s, d.config+":2") || !strings.Contains(s, "control_tls") || !strings.Contains(s, "insecure = true") {
		t.Errorf("validate output:\n%s\nwant %s:2 naming control_tls and insecure = true", s, d.config)
	}

	// serve refuses it the same way, before listening.
	serve := exec.Command(bin.ancmd, "serve", "-c", d.config)
	done := make(chan struct{})
	var serveOut []byte
	var serveErr error
	go func() { serveOut, serveErr = serve.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = serve.Process.Signal(syscall.SIGKILL)
		<-done
		t.Fatal("ancmd serve started with a tcp control address without TLS")
	}
	if serveErr == nil || !strings.Contains(string(serveOut), "control_tls") {
		t.Errorf("serve: %v\n%s", serveErr, serveOut)
	}

	d = prepareTCPDaemon(t, "insecure = true\n")
	d.start("serve")
	if s := d.out.String(); !strings.Contains(s, "[WARN]") || !strings.Contains(s, "without TLS") {
		t.Errorf("ancmd with insecure = true logged no warning:\n%s", s)
	}
	if out, errOut, code := d.ctl("apps"); code != 0 || !strings.HasPrefix(out, "APP") {
		t.Errorf("apps over plain TCP with insecure = true: exit %d\n%s%s", code, out, errOut)
	}
}
