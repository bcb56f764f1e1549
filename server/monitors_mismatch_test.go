package server

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
)

// Over gRPC, a node started with another --monitors (K) than its seed is refused at the
// handshake: one line on each side, its seed reported unreachable with the reason, and it
// never joins.
func TestMonitorsMismatchRefusedOverGRPC(t *testing.T) {
	withK := func(k int, name string, seeds ...string) *membership.Config {
		cfg := testConfig(name, seeds...)
		cfg.Monitors = k
		cfg.ReconnectMaxDelay = 300 * time.Millisecond
		return cfg
	}
	a, alog := startLoggedNode(t, withK(4, "a"))
	b := startNode(t, withK(4, "b", a.Addr().String()))
	requireFullMesh(t, 5*time.Second, a, b)

	x, xlog := startLoggedNode(t, withK(10, "x", a.Addr().String()))
	requireRefusedBySeed(t, x, xlog, "a node refused the stream: its monitors (K) differs; every node of a cluster needs the same",
		"monitors 4 here, 10 in the hello")
	require.Equal(t, 1, alog.count("refused a node whose monitors (K) differs"), "the seed says so once")
	require.Equal(t, 1, alog.count("peer_monitors=10"))
	_, err := a.Node(x.LocalID())
	require.ErrorIs(t, err, membership.ErrNodeNotFound)
	require.NoError(t, x.Stop(context.Background()))
}
