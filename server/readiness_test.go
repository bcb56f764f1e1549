package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthOf returns a func asking addr's grpc.health.v1 for service's status.
func healthOf(t *testing.T, addr string) func(service string) string {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	hc := healthpb.NewHealthClient(cc)
	return func(service string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return err.Error()
		}
		return resp.GetStatus().String()
	}
}

// Liveness (the empty service name) is SERVING while the process serves; readiness
// (ReadinessService) is SERVING only while the node runs and has a peer connected, or runs
// with no seed (the first node by configuration).
func TestReadinessFollowsMembership(t *testing.T) {
	first := startNode(t, testConfig("first"))
	firstHealth := healthOf(t, first.Addr().String())
	require.Equal(t, "SERVING", firstHealth(""))
	require.Eventually(t, func() bool { return firstHealth(ReadinessService) == "SERVING" }, 5*time.Second, 10*time.Millisecond,
		"the first node by configuration (no seed) is ready alone")

	// A node whose seed answers nothing: alive, not ready.
	lonely := testConfig("lonely", fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0]))
	lonely.DialTimeout = 200 * time.Millisecond
	b := startNode(t, lonely)
	bHealth := healthOf(t, b.Addr().String())
	require.Equal(t, "SERVING", bHealth(""), "liveness: the process serves")
	require.Never(t, func() bool { return bHealth(ReadinessService) == "SERVING" }, 500*time.Millisecond, 50*time.Millisecond,
		"not ready while it has joined nothing")

	// Joined: ready. Alone again: not ready. Joined again: ready.
	c := startNode(t, testConfig("c", b.Addr().String()))
	require.Eventually(t, func() bool { return bHealth(ReadinessService) == "SERVING" }, 5*time.Second, 10*time.Millisecond,
		"b is ready once c joined it")
	cHealth := healthOf(t, c.Addr().String())
	require.Eventually(t, func() bool { return cHealth(ReadinessService) == "SERVING" }, 5*time.Second, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Stop(ctx))
	require.Eventually(t, func() bool { return bHealth(ReadinessService) == "NOT_SERVING" }, 5*time.Second, 10*time.Millisecond,
		"b is alone again: not ready")
	require.Equal(t, "SERVING", bHealth(""), "still alive")
	startNode(t, testConfig("d", b.Addr().String()))
	require.Eventually(t, func() bool { return bHealth(ReadinessService) == "SERVING" }, 5*time.Second, 10*time.Millisecond,
		"b is ready again once d joined")
}
