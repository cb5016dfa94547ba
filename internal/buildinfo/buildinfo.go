// Package buildinfo says which build of ancm is running: the version and
// VCS revision that a release build sets with -ldflags, else what the Go
// toolchain recorded in the binary (runtime/debug.ReadBuildInfo). It is
// shared by ancmd, ancmctl and the control plane's GetInfo; it is not a
// place for anything else.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by `make build` (and so by the package) with
//
//	-ldflags "-X github.com/ancm-dev/ancm/internal/buildinfo.version=v1.2.3
//	          -X github.com/ancm-dev/ancm/internal/buildinfo.commit=abc...
//	          -X github.com/ancm-dev/ancm/internal/buildinfo.modified=true"
//
// Any may be empty; the build info fills in what it can.
var (
	version  string
	commit   string
	modified string
)

// Info describes one build.
type Info struct {
	// Version is the release version ("v1.2.3"), the module version of a
	// `go install ...@v1.2.3`, or "dev".
	Version string
	// Revision is the VCS commit the binary was built from, "" when
	// unknown (a build with -buildvcs=false and no -ldflags).
	Revision string
	// Time is the commit's time (RFC 3339), "" when unknown.
	Time string
	// Modified is true when the work tree had uncommitted changes.
	Modified bool
	// GoVersion is the toolchain, "go1.26.8".
	GoVersion string
}

// Read returns the running binary's build.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	info := read(bi, version, commit)
	info.Modified = info.Modified || modified == "true"
	return info
}

func read(bi *debug.BuildInfo, ldVersion, ldCommit string) Info {
	info := Info{Version: ldVersion, Revision: ldCommit, GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Revision == "" {
					info.Revision = s.Value
				}
			case "vcs.time":
				info.Time = s.Value
			case "vcs.modified":
				info.Modified = info.Modified || s.Value == "true"
			}
		}
	}
	if strings.HasSuffix(info.Version, "-dirty") {
		info.Modified = true
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	return info
}

// ShortRevision is the first 12 characters of the revision.
func (i Info) ShortRevision() string {
	if len(i.Revision) > 12 {
		return i.Revision[:12]
	}
	return i.Revision
}

// String is the one-line form `ancmd version` prints:
// "v1.2.3 (abc123def456, 2026-01-02T15:04:05Z, modified) go1.26.8 linux/amd64".
func (i Info) String() string {
	var details []string
	if r := i.ShortRevision(); r != "" {
		details = append(details, r)
	}
	if i.Time != "" {
		details = append(details, i.Time)
	}
	if i.Modified && !strings.HasSuffix(i.Version, "-dirty") {
		details = append(details, "modified")
	}
	s := i.Version
	if len(details) > 0 {
		s += " (" + strings.Join(details, ", ") + ")"
	}
	return fmt.Sprintf("%s %s %s/%s", s, i.GoVersion, runtime.GOOS, runtime.GOARCH)
}
