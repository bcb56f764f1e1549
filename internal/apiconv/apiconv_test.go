package apiconv

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// Every value survives the round trip, every wire value but UNSPECIFIED is in a table, and an
// unknown value falls back the same way whichever side converts it.
func TestEveryEnumValueRoundTrips(t *testing.T) {
	for _, e := range nodeStatuses {
		require.Equal(t, e.m, NodeStatusFromWire(NodeStatusToWire(e.m)))
	}
	for _, e := range clusterStatuses {
		require.Equal(t, e.m, ClusterStatusFromWire(ClusterStatusToWire(e.m)))
	}
	for _, e := range downReasons {
		require.Equal(t, e.m, DownReasonFromWire(DownReasonToWire(e.m)))
	}
	for _, e := range healthStatuses {
		require.Equal(t, e.m, HealthStatusFromWire(HealthStatusToWire(e.m)))
	}
	require.Len(t, nodeStatuses, len(clusterv1.NodeStatus_name)-1, "every NodeStatus but UNSPECIFIED is mapped")
	require.Len(t, clusterStatuses, len(clusterv1.ClusterStatus_name)-1, "every ClusterStatus but UNSPECIFIED is mapped")
	require.Len(t, downReasons, len(clusterv1.NodeDownReason_name)-1, "every NodeDownReason but UNSPECIFIED is mapped")
	require.Len(t, healthStatuses, len(clusterv1.HealthStatus_name)-1, "every HealthStatus but UNSPECIFIED is mapped")
	require.Equal(t, clusterv1.NodeDownReason_NODE_DOWN_REASON_UNSPECIFIED, DownReasonToWire(99))
	require.Equal(t, membership.DownReason(0), DownReasonFromWire(99))
}

func TestNodeInfoRoundTrips(t *testing.T) {
	in := membership.NodeInfo{
		ID: membership.MustParseNodeID("a@127.0.0.1:4369"), Incarnation: 7, Status: membership.StatusConnected,
		ProcessCount: 3, LastHeartbeat: time.Unix(1_700_000_000, 0).UTC(), Uptime: time.Minute,
		Metadata: map[string]string{"role": "api"}, Direct: true,
	}
	require.Equal(t, in, NodeInfoFromWire(NodeInfoToWire(in)))
	require.Zero(t, NodeInfoToWire(membership.NodeInfo{ProcessCount: -1}).GetProcessCount(), "a negative count is never wrapped")
}
