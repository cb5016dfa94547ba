// Package controlplane is the control plane of ancm: it owns the desired set
// of apps (from the config file and from the API), supervises their
// processes, keeps applied apps in an embedded store, captures their output,
// records lifecycle events and publishes every app's endpoints as a table
// with revisions for data planes to follow.
//
// The work is done by Supervisor and the types it owns; the gRPC services in
// service_*.go only translate requests, responses and errors (containerd's
// split of service.go and local.go). The package does not proxy HTTP: that is
// the data plane's job, and the data plane learns everything it knows through
// the public API.
//
// # Lifecycle
//
// Each app is owned by one goroutine (app.go) that receives every event of
// the app (API calls, instance reports, offline-file changes, timers) and
// runs it through the pure decision function next (decide.go,
// reconcile.go), which refuses events the app's state cannot take with an
// error; the owner carries out the effects. A runner (runner.go) runs one
// process and reports what happens to it, deciding nothing. An instance
// that exits without being asked is restarted at once, then with capped,
// jittered exponential backoff that resets after a stable run; more than
// rapid_fails_per_minute failures in a rolling minute put the app in FAILED
// (with rapid_fails_per_minute = 0 the first failure does). A change of how
// an app runs is rolled out as a new generation, rolling or recreate; old
// instances drain once every data plane has confirmed a table without them
// (planes.go). docs/architecture.md has the details.
//
// # Metrics and traffic
//
// Metrics (metrics.go) is a prometheus.Collector built at scrape time from
// Supervisor.List (app states, instances) and from the event stream,
// followed as WatchEvents follows it (restarts by reason, exec-to-ready
// durations); it reads no app's internals. TrafficService (traffic.go)
// keeps the data planes' traffic reports, 60 seconds per report stream,
// and sums them per app and generation for GetTraffic (ancmctl top).
//
// # Decisions the contract leaves open
//
//   - An app defined in the config file cannot be changed or deleted through
//     the API (FailedPrecondition): the file is its one source of truth, and
//     SIGHUP re-reads it. Applied apps live in the store.
//   - A stopped instance is first published as draining, so data planes send
//     it nothing new, and signalled once they have confirmed that table and
//     finished its requests, or after rollout.drain_timeout.
//   - Captured output goes to state_dir/logs/APP/APP.INDEX.log, one line per
//     line of output in the CRI log format (time, stream, text), rotated at
//     max_size keeping max_files older files.
package controlplane
