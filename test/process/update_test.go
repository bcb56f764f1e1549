package process_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
)

// `node update` on one node reaches another node's `node watch` as node_updated within a
// round trip: the heartbeat interval is 30 s, so the change cannot be riding on a heartbeat
// that was due anyway.
func TestProcessUpdateReachesAPeersWatchAsNodeUpdated(t *testing.T) {
	slow := []string{"--heartbeat-interval", "30s"}
	a := startAgent(t, "a", slow...)
	b := startAgent(t, "b", append(slow, "--seeds", a.id.String())...)
	requireMesh(t, 10*time.Second, a, b)
	text := startCommand(t, "watch", "--addr", b.addr)
	asJSON := startCommand(t, "watch", "--json", "--addr", b.addr)
	require.Eventually(t, func() bool {
		return strings.Contains(text.stdout.String(), "snapshot") && strings.Contains(asJSON.stdout.String(), "snapshot")
	}, 10*time.Second, 20*time.Millisecond)

	sent := time.Now()
	out, code := runNode(t, "update", "--addr", a.addr, "--metadata", "role=db,zone=eu-1", "--process-count", "3")
	require.Equal(t, 0, code, out)
	require.Equal(t, "Updated "+a.id.String()+": metadata role=db,zone=eu-1, 3 processes\n", out)
	require.Eventually(t, func() bool {
		return strings.Contains(text.stdout.String(), "node_updated "+a.id.String()+" metadata role=db,zone=eu-1, 3 processes")
	}, 5*time.Second, 5*time.Millisecond, "watch output: %s", text.stdout.String())
	require.Less(t, time.Since(sent), 5*time.Second, "well within one heartbeat interval (30 s)")

	require.Eventually(t, func() bool { return strings.Contains(asJSON.stdout.String(), "nodeUpdated") }, 5*time.Second, 5*time.Millisecond)
	lines := splitLines(asJSON.stdout.String())
	var e clusterv1.Event
	require.NoError(t, protojson.Unmarshal([]byte(lines[len(lines)-1]), &e))
	require.Equal(t, a.id.String(), e.GetNodeUpdated().GetNode().GetId())
	require.Equal(t, map[string]string{"role": "db", "zone": "eu-1"}, e.GetNodeUpdated().GetNode().GetMetadata())
	require.Equal(t, uint32(3), e.GetNodeUpdated().GetNode().GetProcessCount())
}
