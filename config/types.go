package config

import (
	"net/netip"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Defaults of the config file, as docs/configuration.md gives them.
const (
	DefaultListen              = "127.0.0.1:8080"
	DefaultStateDir            = "/var/lib/ancm"
	DefaultSocketName          = "ancm.sock"
	DefaultLogLevel            = "info"
	DefaultLogFormat           = "text"
	DefaultPathPrefix          = "/"
	DefaultProcesses           = 1
	DefaultStartupTimeout      = 120 * time.Second
	DefaultShutdownTimeout     = 10 * time.Second
	DefaultRequestTimeout      = 2 * time.Minute
	DefaultRapidFailsPerMinute = 10
	DefaultStopSignal          = "SIGTERM"
	DefaultQueueSize           = 100
	DefaultOfflineFile         = "app_offline.htm"
	DefaultHealthInterval      = 10 * time.Second
	DefaultLogMaxSize          = 10 << 20
	DefaultLogMaxFiles         = 5
	DefaultMaxConnections      = 10000
	DefaultSendTimeout         = 60 * time.Second
	DefaultMaxSurge            = 1
	DefaultMinReady            = time.Second
	DefaultDrainTimeout        = 30 * time.Second

	MaxProcesses           = 100
	MaxRapidFailsPerMinute = 100
	MaxMaxConnections      = 1 << 20
)

// StartMode says when an app's instances are started.
type StartMode string

const (
	StartOnDemand StartMode = "on_demand"
	StartEager    StartMode = "eager"
)

// File is a parsed and validated config file with every default filled in.
type File struct {
	// Path is the file the config was read from; relative paths in it are
	// resolved against its directory.
	Path string

	Listen    string
	Control   string // "unix:///path" or "tcp://host:port"
	StateDir  string // absolute
	LogLevel  string // trace|debug|info|warn|error
	LogFormat string // text|json
	// AccessLog turns on one log line per proxied request.
	AccessLog bool
	// AccessLogFormat is the access log's format, text|json; "" means
	// LogFormat's.
	AccessLogFormat string
	// MetricsListen is where Prometheus metrics are served (HOST:PORT);
	// "" serves none.
	MetricsListen string
	// MaxConnections bounds the client connections the data plane holds
	// at once; past it, new ones wait in the listen backlog.
	MaxConnections int
	// SendTimeout is how long a client may take no bytes of its answer
	// before its connection is closed.
	SendTimeout time.Duration

	// HTTPS is the data plane's TLS listener; nil without an https block.
	HTTPS *HTTPS
	// TrustedProxies are the clients whose X-Forwarded-* headers (and
	// X-Forwarded-Client-Cert) are kept and appended to.
	TrustedProxies []netip.Prefix

	// ControlTLS is required for a tcp control address unless Insecure.
	ControlTLS *TLS
	// Insecure allows a tcp control address without TLS.
	Insecure bool

	Apps []App
}

// TLS names the files of the control API's TLS setup.
type TLS struct {
	CertFile     string
	KeyFile      string
	ClientCAFile string
}

// App is one app block with defaults filled in.
type App struct {
	Name       string
	Command    string
	Args       []string
	Dir        string // absolute
	Env        map[string]string
	Hosts      []string // lower case, no port; "*.example.com" allowed
	PathPrefix string   // starts with "/", no trailing "/" unless it is "/"
	// StripPrefix: the app gets the path without PathPrefix.
	StripPrefix bool

	Start               StartMode
	Processes           int
	StartupTimeout      time.Duration
	ShutdownTimeout     time.Duration
	RequestTimeout      time.Duration
	RapidFailsPerMinute int
	StopSignal          string // canonical name, "SIGTERM"
	QueueSize           int
	OfflineFile         string // relative to Dir; "" disables
	ErrorDetail         bool
	Compat              string // "" or "aspnetcore"
	Protocol            string // how the data plane talks to it: "http1" or "h2c"

	Health    Health
	StdoutLog StdoutLog
	Rollout   Rollout

	// Isolation (isolation.go).
	User       string // "" keeps ancmd's user
	Group      string // "" is the user's primary group
	EnvFile    string // as written: relative to Dir unless absolute
	InheritEnv bool   // start from ancmd's environment (default true)
	Limits     Limits

	// DeclRange is where the app block stands in its file, for errors that
	// involve more than one app; zero for apps that came through the API.
	DeclRange hcl.Range
}

// Limits are an instance's resource limits; zero is no limit.
type Limits struct {
	Memory    int64   // bytes
	CPU       float64 // cores
	Pids      int
	OpenFiles int
}

// Health configures HTTP health checks.
type Health struct {
	Path     string // "" means readiness is the port accepting TCP
	Interval time.Duration
}

// Rollout strategies.
const (
	RolloutRolling  = "rolling"
	RolloutRecreate = "recreate"
)

// Rollout configures how a change that needs new processes is rolled out.
type Rollout struct {
	Strategy     string // RolloutRolling or RolloutRecreate
	MaxSurge     int    // 1..Processes
	MinReady     time.Duration
	DrainTimeout time.Duration
}

// StdoutLog configures output capture.
type StdoutLog struct {
	Enabled  bool
	MaxSize  int64
	MaxFiles int
}
