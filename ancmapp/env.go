package ancmapp

import (
	"net"
	"os"
	"strconv"
	"strings"
)

// Names of the environment variables ancmd sets for an app, and of the
// variable ancmapp reads when the app runs without ancmd.
const (
	EnvPort         = "ANCM_PORT"
	EnvPortAlias    = "PORT"
	EnvToken        = "ANCM_TOKEN"
	EnvApp          = "ANCM_APP"
	EnvInstance     = "ANCM_INSTANCE"
	EnvPathBase     = "ANCM_PATH_BASE"
	EnvFallbackAddr = "ANCM_FALLBACK_ADDR"
)

// DefaultFallbackAddr is where ListenAndServe listens when neither ANCM_PORT
// nor PORT nor ANCM_FALLBACK_ADDR is set: the app was started by hand.
const DefaultFallbackAddr = ":8080"

// Env is what ancmd told an app through its environment.
type Env struct {
	// Addr is the address to listen on: "127.0.0.1:" followed by ANCM_PORT
	// (or PORT when ANCM_PORT is unset), else ANCM_FALLBACK_ADDR, else
	// DefaultFallbackAddr.
	Addr string
	// Port is the port from ANCM_PORT or PORT, 0 when unset or not a number.
	Port int
	// Token is ANCM_TOKEN, the secret every proxied request carries in the
	// ANCM-Token header. Empty when not behind ancmd.
	Token string
	// App is ANCM_APP, the app's name in the ancmd config.
	App string
	// Instance is ANCM_INSTANCE, 0-based; 0 when unset.
	Instance int
	// PathBase is ANCM_PATH_BASE, the app's path_prefix, as set ("/" for an
	// app mounted at the root). PathBase(r) gives it without trailing slash.
	PathBase string
	// Behind reports whether the app runs behind ancmd, which is when
	// ANCM_TOKEN is set. Only then are forwarded headers trusted.
	Behind bool
}

// FromEnv reads the app's environment.
func FromEnv() Env {
	e := Env{
		Token:    os.Getenv(EnvToken),
		App:      os.Getenv(EnvApp),
		PathBase: os.Getenv(EnvPathBase),
	}
	e.Behind = e.Token != ""
	e.Instance, _ = strconv.Atoi(os.Getenv(EnvInstance))

	port := os.Getenv(EnvPort)
	if port == "" {
		port = os.Getenv(EnvPortAlias)
	}
	switch {
	case port != "":
		// An invalid port is kept as it is, so that listening on it fails
		// with an error that names it.
		e.Addr = net.JoinHostPort("127.0.0.1", port)
		if p, err := strconv.Atoi(port); err == nil && p > 0 && p < 1<<16 {
			e.Port = p
		}
	case os.Getenv(EnvFallbackAddr) != "":
		e.Addr = os.Getenv(EnvFallbackAddr)
	default:
		e.Addr = DefaultFallbackAddr
	}
	return e
}

// normPathBase turns "/" and "/app/" into "" and "/app", so that
// PathBase(r)+"/x" is always a good path.
func normPathBase(p string) string {
	p = strings.TrimRight(p, "/")
	if p != "" && !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}
