package server

import (
	"context"
	"strings"
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
	require.Eventually(t, func() bool {
		return xlog.count("a node refused the stream: its monitors (K) differs") == 1
	}, 5*time.Second, 10*time.Millisecond, "the refused node says why")
	require.Eventually(t, func() bool {
		h := x.Health()
		return len(h.Seeds) == 1 && h.Seeds[0].FailedDials >= 3 && strings.Contains(h.Seeds[0].LastError, "monitors 4 here, 10 in the hello")
	}, 5*time.Second, 10*time.Millisecond, "x keeps redialling its seed, refused each time, and its health says why")
	require.Equal(t, 1, xlog.count("a node refused the stream"), "rate-limited: one line however many dials")
	require.Equal(t, 0, xlog.count("seed unreachable"), "one line, not two")
	require.Equal(t, 1, alog.count("refused a node whose monitors (K) differs"), "the seed says so once")
	require.Equal(t, 1, alog.count("peer_monitors=10"))
	xn, err := x.ConnectedCount()
	require.NoError(t, err)
	require.Zero(t, xn)
	_, err = a.Node(x.LocalID())
	require.ErrorIs(t, err, membership.ErrNodeNotFound)
	require.NoError(t, x.Stop(context.Background()))
}
