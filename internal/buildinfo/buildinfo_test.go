package buildinfo

import (
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTheVCSStampWinsOverLinkTimeValues(t *testing.T) {
	info := Info{Version: "v1.2.3", Commit: "from-ldflags"}
	fromBuildInfo(&info, &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
		{Key: "vcs.modified", Value: "true"},
	}})
	require.Equal(t, "v1.2.3", info.Version)
	require.Equal(t, "0123456789abcdef0123456789abcdef01234567", info.Commit)
	require.Equal(t, "0123456789ab-dirty", info.ShortCommit())
	require.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), info.Date)
}

func TestWithoutAStampTheLinkTimeValuesStay(t *testing.T) {
	info := Info{Commit: "abc", Date: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}
	fromBuildInfo(&info, &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}})
	require.Equal(t, "v0.9.0", info.Version, "a module version names a build without a release")
	require.Equal(t, "abc", info.ShortCommit())
	require.Equal(t, "2026-01-02T00:00:00Z", info.DateString())
}

func TestUnknownBuild(t *testing.T) {
	require.Equal(t, "unknown", Info{}.ShortCommit())
	require.Equal(t, "unknown", Info{}.DateString())
	require.NotEmpty(t, Get().Version)
}
