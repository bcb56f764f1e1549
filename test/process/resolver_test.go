package process_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshnode/meshnode/client"
	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
)

// servedBy makes calls through a meshnode:/// channel until every one of a round reaches
// exactly the given nodes. The call is the membership API's own GetLocalNode, so the answer
// names the node that served it (a target without port= resolves to membership ports).
func servedBy(t *testing.T, api clusterv1.MembershipServiceClient, within time.Duration, names ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		seen := map[string]int{}
		for range 3 * len(names) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := api.GetLocalNode(ctx, &clusterv1.GetLocalNodeRequest{})
			cancel()
			if err != nil {
				return false
			}
			seen[resp.GetNode().GetName()]++
		}
		for _, n := range names {
			if seen[n] == 0 {
				return false
			}
		}
		return len(seen) == len(names)
	}, within, 20*time.Millisecond, "calls should reach exactly %v", names)
}

// Real `node agent` processes; a grpc.ClientConn dialled with meshnode:/// balances round
// robin over the ones with role=api and follows SIGSTOP, SIGKILL and SIGTERM.
func TestProcessResolverFollowsTheCluster(t *testing.T) {
	hb := []string{"--heartbeat-interval", "500ms", "--heartbeat-miss-threshold", "2"}
	seed := startAgent(t, "seed1", append(hb, "--metadata", "role=seed")...)
	api := func(name string) *proc {
		return startAgent(t, name, append(hb, "--metadata", "role=api", "--seeds", seed.addr)...)
	}
	w1, w2, w3 := api("worker1"), api("worker2"), api("worker3")
	requireMesh(t, 10*time.Second, seed, w1, w2, w3)

	cc, err := grpc.NewClient("meshnode:///"+seed.addr+","+w1.addr+"?metadata.role=api",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(client.RoundRobinServiceConfig))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	mesh := clusterv1.NewMembershipServiceClient(cc)
	servedBy(t, mesh, 10*time.Second, "worker1", "worker2", "worker3")

	// Frozen: its connections stay open, so only the resolver can take it out, once the
	// cluster decides (interval × threshold = 1 s) and the event arrives.
	start := time.Now()
	w2.signal(syscall.SIGSTOP)
	servedBy(t, mesh, 5*time.Second, "worker1", "worker3")
	t.Logf("SIGSTOP: calls stopped reaching worker2 within %s", time.Since(start))

	start = time.Now()
	w3.signal(syscall.SIGKILL)
	servedBy(t, mesh, 5*time.Second, "worker1")
	t.Logf("SIGKILL: calls stopped reaching worker3 within %s", time.Since(start))

	// worker2 thaws and rejoins: it gets calls again.
	w2.signal(syscall.SIGCONT)
	servedBy(t, mesh, 10*time.Second, "worker1", "worker2")

	// worker1 is also a seed of the target: when it leaves, its calls stop before it exits.
	w1.signal(syscall.SIGTERM)
	require.Equal(t, 0, w1.waitExit(10*time.Second))
	servedBy(t, mesh, 5*time.Second, "worker2")
}
