package main

import (
	"os"
	"runtime/debug"
)

// defaultGOGC is the daemon's GC percent unless GOGC is set. The live
// heap of a proxy is small (about 2 MB under load), so with Go's default
// of 100 the heap goal stays at the runtime's 4 MB floor and a load that
// allocates per connection (a TLS handshake allocates ~40 KB in
// crypto/tls and the connection's buffers) starts a GC cycle every ~45
// connections: 44 cycles a second at 2,500 new TLS connections a second,
// about a tenth of ancmd's CPU. 200 halves the cycles for a few MB of
// heap under such a load (docs/benchmarks.md, "New TLS connections").
const defaultGOGC = 200

// setGCPercent applies defaultGOGC when the environment does not choose.
func setGCPercent() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(defaultGOGC)
	}
}
