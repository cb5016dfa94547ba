package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// errPeerRefused is the handshake error for a unix socket peer whose uid is
// neither root nor the daemon's.
var errPeerRefused = errors.New("peer not allowed on the control socket")

// peerCreds are the transport credentials of the control API on a unix
// socket. The socket's mode 0600 already keeps others out; peerCreds checks
// again with SO_PEERCRED and refuses a peer that is neither root nor the
// daemon's own effective uid, so that a socket made reachable by mistake (a
// chmod, a bind mount into a container) does not hand out control.
type peerCreds struct {
	credentials.TransportCredentials // insecure: no TLS on a local socket
	log                              hclog.Logger
	euid                             uint32
}

func newPeerCreds(log hclog.Logger) credentials.TransportCredentials {
	return &peerCreds{
		TransportCredentials: insecure.NewCredentials(),
		log:                  log,
		euid:                 uint32(os.Geteuid()),
	}
}

// peerInfo is the AuthInfo of a connection accepted by peerCreds.
type peerInfo struct {
	credentials.CommonAuthInfo
	Uid uint32
	Gid uint32
	Pid int32
}

func (peerInfo) AuthType() string { return "peercred" }

func (p *peerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cred, err := peerCred(conn)
	if err != nil {
		p.log.Warn("cannot read peer credentials; connection refused", "error", err)
		return nil, nil, err
	}
	if err := allowPeer(cred, p.euid); err != nil {
		p.log.Warn("peer refused", "uid", cred.Uid, "pid", cred.Pid, "allowed_uid", p.euid)
		return nil, nil, err
	}
	return conn, peerInfo{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity},
		Uid:            cred.Uid,
		Gid:            cred.Gid,
		Pid:            cred.Pid,
	}, nil
}

func (p *peerCreds) ClientHandshake(_ context.Context, _ string, _ net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peercred: server-side credentials only")
}

func (p *peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (p *peerCreds) Clone() credentials.TransportCredentials {
	c := *p
	return &c
}

// allowPeer admits root and the daemon's own effective uid.
func allowPeer(cred *unix.Ucred, euid uint32) error {
	if cred.Uid == 0 || cred.Uid == euid {
		return nil
	}
	return fmt.Errorf("uid %d: %w", cred.Uid, errPeerRefused)
}

// peerCred reads SO_PEERCRED of a unix socket connection.
func peerCred(conn net.Conn) (*unix.Ucred, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("peercred: %T is not a socket", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return cred, nil
}
