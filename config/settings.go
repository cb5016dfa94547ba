package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/ancm-dev/ancm/api/client"
)

// checkListen checks a data-plane listen address, HOST:PORT.
func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want HOST:PORT, as \"127.0.0.1:8080\"", s)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("%q: the port must be a number from 0 to 65535", s)
	}
	return nil
}

// controlAddress checks a control address and returns it in canonical
// form. A relative socket path is resolved against the config file's
// directory.
func (p *parser) controlAddress(s string) (string, error) {
	if !strings.HasPrefix(s, "unix://") && !strings.HasPrefix(s, "tcp://") {
		return "", fmt.Errorf("%q: want unix:///path/to/socket or tcp://host:port", s)
	}
	addr, err := client.ParseAddress(s)
	if err != nil {
		return "", err
	}
	if addr.Network == "unix" {
		addr.Path = p.resolve(addr.Path)
	}
	return addr.String(), nil
}

// defaultStateDir is the state_dir of a config that names none: the one
// ancmctl looks in when it is given no address.
func defaultStateDir() string {
	return client.DefaultStateDir()
}
