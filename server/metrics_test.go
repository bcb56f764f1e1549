package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMetricsEndpointReportsTheEngine(t *testing.T) {
	ports := freePorts(t, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	a := startNode(t, testConfig("a"))
	cfg := testConfig("b", a.LocalID().String())
	b, err := Start(t.Context(), cfg, WithLogger(quietLogger()), WithMetricsAddr(addr))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Stop(t.Context()) })
	requireFullMesh(t, 5*time.Second, a, b)

	var body string
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		body = string(data)
		return strings.Contains(body, "meshnode_heartbeats_received_total") && !strings.Contains(body, "meshnode_heartbeats_received_total 0\n")
	}, 5*time.Second, 50*time.Millisecond, "heartbeats from a should be counted")
	for _, want := range []string{
		`meshnode_nodes{status="connected"} 1`,
		`meshnode_peer_streams{state="established"} 1`,
		`meshnode_node_events_total{reason="",type="node_up"} 1`,
		"meshnode_heartbeats_sent_total",
		"meshnode_heartbeat_lateness_seconds_bucket",
		"meshnode_dials_total",
		"meshnode_watchers 0",
		`grpc_server_started_total{grpc_method="ListNodes",grpc_service="cluster.v1.MembershipService",grpc_type="unary"} 0`,
	} {
		require.Contains(t, body, want)
	}
	require.NotContains(t, body, `grpc_service="cluster.v1.PeerService"`, "peer streams are not counted as RPCs, so they have no series")
}
