package controlplane

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortOutsideEphemeralRange: instance ports are free, below the
// kernel's ephemeral range (where outgoing connections take their local
// ports), and not handed out twice in a row of recentPorts picks.
func TestFreePortOutsideEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	if low-minAppPort <= 4*recentPorts {
		t.Skipf("ephemeral range starts at %d: the kernel picks", low)
	}
	seen := map[int]bool{}
	for range recentPorts {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < minAppPort || p >= low {
			t.Fatalf("port %d outside [%d, %d)", p, minAppPort, low)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice within %d picks", p, recentPorts)
		}
		seen[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		l.Close()
	}
}
