package server

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
)

func TestThreeNodeExampleOverGRPC(t *testing.T) {
	seed1 := startNode(t, testConfig("seed1"))
	worker1 := startNode(t, testConfig("worker1", seed1.LocalID().String()))
	worker2 := startNode(t, testConfig("worker2", worker1.Addr().String()))
	requireFullMesh(t, 5*time.Second, seed1, worker1, worker2)
}

func TestGracefulStopReportsGracefulShutdownOnce(t *testing.T) {
	a := startNode(t, testConfig("a"))
	b := startNode(t, testConfig("b", a.LocalID().String()))
	c := startNode(t, testConfig("c", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b, c)
	ra, rb := record(a), record(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Stop(ctx))
	for _, r := range []*recorder{ra, rb} {
		require.Eventually(t, func() bool { return len(r.downs(c.LocalID())) == 1 }, 5*time.Second, 10*time.Millisecond, "peer should report c down")
	}
	require.Equal(t, []membership.DownReason{membership.ReasonGracefulShutdown}, ra.downs(c.LocalID()))
	require.Equal(t, []membership.DownReason{membership.ReasonGracefulShutdown}, rb.downs(c.LocalID()))
}

func TestKillReportsConnectionClosed(t *testing.T) {
	a := startNode(t, testConfig("a"))
	b := startNode(t, testConfig("b", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b)
	ra := record(a)
	start := time.Now()
	require.NoError(t, b.Kill())
	require.Eventually(t, func() bool { return len(ra.downs(b.LocalID())) == 1 }, 2*time.Second, 5*time.Millisecond)
	require.Equal(t, []membership.DownReason{membership.ReasonConnectionClosed}, ra.downs(b.LocalID()))
	t.Logf("kill detected in %s", time.Since(start))
}

func TestFrozenNodeReportsHeartbeatTimeoutAndRecovers(t *testing.T) {
	a := startNode(t, testConfig("a"))
	b := startNode(t, testConfig("b", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b)
	ra := record(a)
	b.Freeze()
	require.Eventually(t, func() bool { return len(ra.downs(b.LocalID())) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []membership.DownReason{membership.ReasonHeartbeatTimeout}, ra.downs(b.LocalID()))
	b.Thaw()
	require.Eventually(t, func() bool { return ra.ups(b.LocalID()) == 1 }, 10*time.Second, 10*time.Millisecond, "a should see b up again after thaw")
	requireFullMesh(t, 5*time.Second, a, b)
}
