// Package buildinfo says which build of meshnode is running: its version, commit and build
// date. The commit and date come from the VCS stamp the Go toolchain writes into the binary
// (debug.ReadBuildInfo) where the build has one; a build without it (-buildvcs=false, or no
// repository at hand) falls back to the values `make build` sets with
//
//	-ldflags "-X github.com/meshnode/meshnode/internal/buildinfo.version=…
//	          -X github.com/meshnode/meshnode/internal/buildinfo.commit=…
//	          -X github.com/meshnode/meshnode/internal/buildinfo.modified=true
//	          -X github.com/meshnode/meshnode/internal/buildinfo.date=…"
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// Set at link time by `make build`; empty otherwise. modified is "true" for a build of a
// work tree that differed from commit.
var (
	version  string
	commit   string
	modified string
	date     string
)

// Info describes one build.
type Info struct {
	// Version is the release (as `git describe` names it) or module version; "dev" when
	// neither is known.
	Version string
	// Commit is the full commit hash the build came from; empty when unknown.
	Commit string
	// Modified reports that the work tree differed from Commit (VCS stamp only).
	Modified bool
	// Date is the build date, or the commit's date from the VCS stamp; zero when unknown.
	Date time.Time
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
	// Platform is GOOS/GOARCH.
	Platform string
}

// Get returns the running binary's build information.
func Get() Info {
	info := Info{Version: version, Commit: commit, Modified: modified == "true", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if t, err := time.Parse(time.RFC3339, date); err == nil {
		info.Date = t.UTC()
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		fromBuildInfo(&info, bi)
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	return info
}

// fromBuildInfo takes what bi knows: its VCS stamp wins over the link-time values, which a
// stale Makefile variable could have set; a module version fills a missing release.
func fromBuildInfo(info *Info, bi *debug.BuildInfo) {
	if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		info.Commit = rev
		info.Modified = settings["vcs.modified"] == "true"
		if t, err := time.Parse(time.RFC3339, settings["vcs.time"]); err == nil && info.Date.IsZero() {
			info.Date = t.UTC()
		}
	}
}

// ShortCommit returns the first 12 characters of the commit ("unknown" when unknown), with
// "-dirty" when the work tree was modified.
func (i Info) ShortCommit() string {
	c := i.Commit
	if c == "" {
		return "unknown"
	}
	if len(c) > 12 {
		c = c[:12]
	}
	if i.Modified {
		c += "-dirty"
	}
	return c
}

// DateString returns the build date in RFC 3339 ("unknown" when unknown).
func (i Info) DateString() string {
	if i.Date.IsZero() {
		return "unknown"
	}
	return i.Date.Format(time.RFC3339)
}

// Proto returns the build in the API's form.
func (i Info) Proto() *clusterv1.BuildInfo {
	out := &clusterv1.BuildInfo{
		Version: i.Version, Commit: i.Commit, Modified: i.Modified,
		GoVersion: i.GoVersion, Platform: i.Platform, ProtocolVersion: membership.ProtocolVersion,
	}
	if !i.Date.IsZero() {
		out.BuildTime = timestamppb.New(i.Date)
	}
	return out
}
