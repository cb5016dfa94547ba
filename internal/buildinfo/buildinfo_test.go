package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.time", Value: "2026-01-02T15:04:05Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	for _, tc := range []struct {
		name             string
		bi               *debug.BuildInfo
		ldVersion, ldRev string
		want             Info
		str              string
	}{
		{
			name: "no build info",
			want: Info{Version: "dev"},
			str:  "dev go",
		},
		{
			name: "go build in a work tree",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs},
			want: Info{Version: "dev", Revision: "0123456789abcdef0123", Time: "2026-01-02T15:04:05Z", Modified: true, GoVersion: "go1.26.8"},
			str:  "dev (0123456789ab, 2026-01-02T15:04:05Z, modified) go1.26.8",
		},
		{
			name: "go install at a version",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}},
			want: Info{Version: "v1.2.3", GoVersion: "go1.26.8"},
			str:  "v1.2.3 go1.26.8",
		},
		{
			name:      "ldflags win over the build info",
			bi:        &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			ldVersion: "v1.3.0-4-gabcdef-dirty", ldRev: "abcdef",
			want: Info{Version: "v1.3.0-4-gabcdef-dirty", Revision: "abcdef", Modified: true, GoVersion: "go1.26.8"},
			str:  "v1.3.0-4-gabcdef-dirty (abcdef) go1.26.8",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := read(tc.bi, tc.ldVersion, tc.ldRev)
			if tc.bi == nil {
				tc.want.GoVersion = got.GoVersion
			}
			if got != tc.want {
				t.Errorf("read = %+v, want %+v", got, tc.want)
			}
			if s := got.String(); !strings.HasPrefix(s, tc.str) {
				t.Errorf("String() = %q, want it to start with %q", s, tc.str)
			}
		})
	}
}
