package process_test

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
)

// In JSON mode every line names the node that wrote it, membership lines name the peer and
// the reason as fields, and watchers that end on their own deadline or with the node's stop
// are no warnings.
func TestProcessJSONLogsNameTheNodeThePeerAndTheReason(t *testing.T) {
	a := startAgent(t, "a")
	b := startAgent(t, "b", "--seeds", a.id.String())
	requireMesh(t, 10*time.Second, a, b)

	// Watchers with a deadline of their own, and one still open when a stops.
	api := a.client().API()
	for range 5 {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		stream, err := api.WatchEvents(ctx, &clusterv1.WatchEventsRequest{Snapshot: true})
		require.NoError(t, err)
		for {
			if _, err := stream.Recv(); err != nil {
				break
			}
		}
		cancel()
	}
	open, err := api.WatchEvents(t.Context(), &clusterv1.WatchEventsRequest{})
	require.NoError(t, err)
	_, _ = open.Header()

	out, code := runNode(t, "update", "--addr", b.addr, "--metadata", "role=db")
	require.Equal(t, 0, code, out)
	require.Eventually(t, func() bool { return len(a.logRecords("Node updated: "+b.id.String())) == 1 }, 5*time.Second, 10*time.Millisecond)

	b.signal(syscall.SIGTERM)
	require.Equal(t, 0, b.waitExit(10*time.Second))
	require.Eventually(t, func() bool { return len(a.logRecords("Node left: "+b.id.String()+" (graceful_shutdown)")) == 1 }, 5*time.Second, 10*time.Millisecond)
	a.signal(syscall.SIGTERM)
	require.Equal(t, 0, a.waitExit(10*time.Second))

	left := a.logRecords("Node left: " + b.id.String() + " (graceful_shutdown)")[0]
	require.Equal(t, b.id.String(), left["peer"])
	require.Equal(t, "graceful_shutdown", left["reason"])
	joined := a.logRecords("Node joined: " + b.id.String())[0]
	require.Equal(t, b.id.String(), joined["peer"])
	require.IsType(t, "", joined["incarnation"], "64-bit integers as strings")
	updated := a.logRecords("Node updated: " + b.id.String())[0]
	require.Equal(t, b.id.String(), updated["peer"])
	require.Equal(t, "role=db", updated["metadata"])
	require.Len(t, b.logRecords("local node updated through the API"), 1)

	for _, p := range []*proc{a, b} {
		for _, line := range splitLines(p.logText()) {
			var rec map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
			require.Equal(t, p.id.String(), rec["node"], "every line names the node that wrote it: %s", line)
			require.Equal(t, 1, strings.Count(line, `"node":`), "one node field: %s", line)
			require.NotEqual(t, "WARN", rec["level"], "nothing here is a warning: %s", line)
		}
	}
}
