package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
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
		`meshnode_build_info{build_date="`,
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

// Invalid options are refused like invalid configuration: before anything listens, every
// invalid field in one *membership.ConfigError.
func TestStartRefusesInvalidListenerAddressesAndTLSFilesBeforeListening(t *testing.T) {
	port := freePorts(t, 1)[0]
	cfg := testConfig("a")
	cfg.Port = port
	cfg.HeartbeatMissThreshold = 101
	_, err := Start(t.Context(), cfg, WithLogger(quietLogger()), WithMetricsAddr("notanaddr"),
		WithTLS(TLSFiles{CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"}))
	var ce *membership.ConfigError
	require.ErrorAs(t, err, &ce)
	require.ErrorIs(t, err, membership.ErrInvalidConfig)
	fields := make([]string, len(ce.Problems))
	for i, p := range ce.Problems {
		fields[i] = p.Field
	}
	require.Equal(t, []string{"HeartbeatMissThreshold", "MetricsAddr", "TLS"}, fields)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err, "the node's port was never bound")
	require.NoError(t, l.Close())

	require.NoError(t, Validate(testConfig("a"), WithMetricsAddr(":0")))
	require.ErrorAs(t, Validate(testConfig("a"), WithMetricsAddr("127.0.0.1:99999")), &ce)
}
