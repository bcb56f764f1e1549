package main

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshnode/meshnode/client"
	"github.com/meshnode/meshnode/examples/resolver/echo"
	"github.com/meshnode/meshnode/membership"
)

// startTestBackend starts a backend on loopback; it leaves when the test ends.
func startTestBackend(t *testing.T, name string, seeds ...string) *backend {
	t.Helper()
	cfg := membership.DefaultConfig()
	cfg.Name, cfg.BindHost, cfg.Port, cfg.Seeds = name, "127.0.0.1", 0, seeds
	cfg.HeartbeatInterval = 300 * time.Millisecond
	b, err := start(context.Background(), cfg, "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.leave(ctx, 0)
	})
	return b
}

// The example end to end: three backends, a caller through meshnode:///, and a graceful
// leave, in the documented order, that fails no call.
func TestExampleBalancesAndLeavesWithoutFailedCalls(t *testing.T) {
	api1 := startTestBackend(t, "api1")
	seed := api1.node.LocalID().Address()
	startTestBackend(t, "api2", seed)
	api3 := startTestBackend(t, "api3", seed)

	cc, err := grpc.NewClient("meshnode:///"+seed+"?metadata.role=api&port_key=app_port",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(client.RoundRobinServiceConfig))
	require.NoError(t, err)
	defer cc.Close()

	var mu sync.Mutex
	seen := map[string]int{}
	var failed, total atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			callCtx, callCancel := context.WithTimeout(ctx, time.Second)
			name, err := echo.Call(callCtx, cc, "hi")
			callCancel()
			if err != nil && ctx.Err() == nil {
				failed.Add(1)
				t.Log(err)
			}
			mu.Lock()
			seen[name]++
			mu.Unlock()
			total.Add(1)
		}
	}()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["api1"] > 0 && seen["api2"] > 0 && seen["api3"] > 0
	}, 10*time.Second, 5*time.Millisecond, "every backend gets calls")

	leaveCtx, leaveCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer leaveCancel()
	require.NoError(t, api3.leave(leaveCtx, 100*time.Millisecond))
	after := total.Load()
	require.Eventually(t, func() bool { return total.Load() > after+100 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	wg.Wait()
	require.Zero(t, failed.Load(), "no call fails while a backend leaves")
}
