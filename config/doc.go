// Package config reads ancm's HCL config file (docs/configuration.md)
// into typed, validated structs with every default filled in, and converts
// apps to and from the API's ancm.v1.AppSpec with the same rules, so that an
// app is accepted or refused alike whether it comes from the config file,
// from `ancmctl apply -f` or from a gRPC client.
//
// It is not the desired state: the control plane owns and stores that, and
// decides what a change means for running apps. Nor does it touch the
// filesystem beyond reading the file it is given: it does not check that
// commands, dirs or TLS files exist, which is the supervisor's and the
// server's business at start time.
//
// # Errors
//
// Parse and Load report every problem they find, not only the first, as an
// *Error holding one Diagnostic per problem, sorted by position and
// printed one a line as
//
//	FILE:LINE:COL: app "NAME": KEY: message
//
// where KEY is the key as written ("processes", "health.interval"). HCL's
// own syntax errors keep their positions; after one, nothing else is
// checked. AppFromProto returns FieldErrors, one *FieldError per problem,
// with the proto field path ("app.processes", "app.health.interval"). Both
// match errors.Is(err, ErrInvalid). Values are strictly typed: a number
// where a string is expected, or "3" where a number is, is an error; only
// stdout_log.max_size takes either a size string or a number of bytes. A
// key set to null counts as unset.
//
// # Decisions
//
//   - Sizes: a whole number of bytes, optionally with a unit: B, K, KB, KiB,
//     M, MB, MiB, G, GB, GiB, in any case. All units are 1024-based, as in
//     nginx: "10MB" and "10MiB" are both 10485760 bytes. stdout_log.max_size
//     is at least 1KB.
//   - Signals: a name with or without "SIG", in any case ("SIGTERM",
//     "TERM", "sigterm"), stored in canonical form ("SIGTERM"). Numbers are
//     refused: they differ between platforms.
//   - Durations: Go syntax ("10s", "2m", "1h30m"), greater than zero.
//   - Paths: dir, state_dir, the control_tls files and a relative unix://
//     control socket are resolved against the config file's directory (for
//     Parse, the directory of filename, or the working directory when
//     filename has none) and stored absolute. dir defaults to the config
//     file's directory. offline_file stays relative to dir and must name a
//     file inside it.
//   - Defaults: listen "127.0.0.1:8080"; state_dir client.DefaultStateDir()
//     (/var/lib/ancm for root, else under $XDG_STATE_HOME or ~/.local/state);
//     control "unix://STATE_DIR/ancm.sock", the socket ancmctl finds with no
//     flag; the app defaults are the constants of types.go.
//   - Control: unix:// or tcp:// only. A tcp address needs a control_tls
//     block with cert_file, key_file and client_ca_file, unless
//     insecure = true.
//   - Apps through the API (AppFromProto): there is no file to be relative
//     to, so dir must be absolute; an empty dir means "/", as for a systemd
//     service without WorkingDirectory. `ancmctl apply -f` uses ParseApps,
//     which resolves relative dirs against the applied file on the client's
//     side before the spec is sent.
//   - Names: 1..63 of letters, digits, '.', '_', '-', not starting with '.'
//     or '-': a name becomes a file name.
//   - Hosts: lower-cased; a DNS name or "*.domain" (every name below it),
//     no scheme, port or path; listed once per app.
//   - path_prefix: starts with "/", is cleaned (no "//", "." or trailing
//     "/" unless it is "/"); ".." segments, queries and fragments are
//     refused.
//   - queue_size: 0..1048576; 0 means no queue, a request that would wait
//     gets 503 at once.
//   - Routes: two apps conflict when their path prefixes are equal and they
//     list a host pattern in common, or both list no host (any host). An
//     exact host and a wildcard that covers it do not conflict, nor does an
//     app with hosts and one without: this assumes the data plane prefers
//     an exact host, then a wildcard, then any host, and then the longest
//     prefix. The control plane runs CheckRoutes over the apps it would run
//     after an apply.
//   - log_level and log_format are lower case, as in docs/configuration.md.
//   - ParseApps takes the same file format; top-level settings are allowed
//     and ignored: their names must be known, their values are not
//     checked.
package config
