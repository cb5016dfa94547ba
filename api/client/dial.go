package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ancm-dev/ancm/internal/pemfile"
)

// EnvAddr is the environment variable that names the control address.
const EnvAddr = "ANCM_ADDR"

// ErrBadAddress is returned for a control address that is neither unix:// nor
// tcp://.
var ErrBadAddress = errors.New("control address must be unix:///path or tcp://host:port")

// Address is a parsed control address.
type Address struct {
	Network string // "unix" or "tcp"
	Path    string // socket path, or host:port
}

func (a Address) String() string { return a.Network + "://" + a.Path }

// ParseAddress parses "unix:///path", "tcp://host:port", a bare absolute path
// (taken as a unix socket) or a bare host:port (taken as tcp). A TCP port is
// a number; any other scheme ("http://...") is refused.
func ParseAddress(s string) (Address, error) {
	switch {
	case strings.HasPrefix(s, "unix://"):
		p := strings.TrimPrefix(s, "unix://")
		if p == "" {
			return Address{}, fmt.Errorf("%q: empty socket path: %w", s, ErrBadAddress)
		}
		return Address{Network: "unix", Path: p}, nil
	case strings.HasPrefix(s, "tcp://"):
		hp := strings.TrimPrefix(s, "tcp://")
		if err := checkHostPort(hp); err != nil {
			return Address{}, fmt.Errorf("%q: %v: %w", s, err, ErrBadAddress)
		}
		return Address{Network: "tcp", Path: hp}, nil
	case strings.HasPrefix(s, "/"):
		return Address{Network: "unix", Path: s}, nil
	case strings.Contains(s, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		return Address{}, fmt.Errorf("%q: scheme %q is not unix or tcp: %w", s, scheme, ErrBadAddress)
	default:
		if checkHostPort(s) == nil {
			return Address{Network: "tcp", Path: s}, nil
		}
		return Address{}, fmt.Errorf("%q: %w", s, ErrBadAddress)
	}
}

// checkHostPort checks HOST:PORT with a numeric port.
func checkHostPort(hp string) error {
	_, port, err := net.SplitHostPort(hp)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// DefaultStateDir is where a daemon started with default settings keeps its
// state: /var/lib/ancm for root, $XDG_STATE_HOME/ancm (or
// ~/.local/state/ancm) for anyone else.
func DefaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/ancm"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "ancm")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "ancm")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("ancm-%d", os.Geteuid()))
}

// DefaultAddress is the control address of a daemon started with default
// settings: the socket ancm.sock in DefaultStateDir.
func DefaultAddress() string {
	return "unix://" + filepath.Join(DefaultStateDir(), "ancm.sock")
}

// ResolveAddress picks the control address: the flag if set, then
// $ANCM_ADDR, then DefaultAddress.
func ResolveAddress(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv(EnvAddr); env != "" {
		return env
	}
	return DefaultAddress()
}

// TLSFiles names the PEM files for a TLS connection to a tcp control
// address. CAFile verifies the server; CertFile and KeyFile are the client's
// certificate.
type TLSFiles struct {
	CAFile   string
	CertFile string
	KeyFile  string
	// ServerName overrides the name checked in the server's certificate.
	ServerName string
}

// Enabled reports whether any TLS file is set.
func (t TLSFiles) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// ClientTLSConfig builds the TLS config of a client from the files.
func (t TLSFiles) ClientTLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pool, err := pemfile.CertPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("a client certificate needs both --cert and --key")
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Dial opens a gRPC client connection to a control address. It does not
// block: the first RPC reports a daemon that is not there. A tcp address
// uses TLS when files are given, plain text otherwise.
func Dial(addr string, files TLSFiles, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	a, err := ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if a.Network == "tcp" && files.Enabled() {
		cfg, err := files.ClientTLSConfig()
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	target := "passthrough:///" + a.Path
	if a.Network == "unix" {
		target = "unix://" + a.Path
	}
	all := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)
	conn, err := grpc.NewClient(target, all...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}
