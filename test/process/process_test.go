package process_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
)

// The seed's three-node example: worker2 seeds only worker1 and meets seed1 by gossip.
func threeNodes(t *testing.T, flags ...string) (seed1, worker1, worker2 *proc) {
	seed1 = startAgent(t, "seed1", flags...)
	worker1 = startAgent(t, "worker1", append(flags, "--seeds", seed1.id.String())...)
	worker2 = startAgent(t, "worker2", append(flags, "--seeds", worker1.addr)...)
	requireMesh(t, 10*time.Second, seed1, worker1, worker2)
	return seed1, worker1, worker2
}

func TestProcessThreeNodeExample(t *testing.T) {
	seed1, _, worker2 := threeNodes(t)
	require.Contains(t, worker2.connected(), seed1.id.String(), "worker2 should meet seed1 through gossip")
}

func TestProcessSIGTERMIsGracefulShutdown(t *testing.T) {
	seed1, worker1, worker2 := threeNodes(t, "--heartbeat-interval", "1s")
	l1, l2 := watch(t, seed1), watch(t, worker1)
	worker2.signal(syscall.SIGTERM)
	require.Equal(t, 0, worker2.waitExit(10*time.Second), "node agent should exit 0 after SIGTERM")
	for _, l := range []*eventLog{l1, l2} {
		require.Eventually(t, func() bool { _, ok := l.down(worker2.id); return ok }, 5*time.Second, 20*time.Millisecond)
		e, _ := l.down(worker2.id)
		require.Equal(t, membership.ReasonGracefulShutdown, e.Reason)
		require.Equal(t, 1, l.count(membership.EventNodeDown, worker2.id), "exactly one node_down for a graceful stop")
	}
}

func TestProcessSIGKILLIsConnectionClosed(t *testing.T) {
	seed1, worker1, worker2 := threeNodes(t, "--heartbeat-interval", "1s", "--heartbeat-miss-threshold", "2")
	l1, l2 := watch(t, seed1), watch(t, worker1)
	start := time.Now()
	worker2.signal(syscall.SIGKILL)
	for _, l := range []*eventLog{l1, l2} {
		// Well under the 2 s heartbeat timeout: the broken stream is the signal.
		require.Eventually(t, func() bool { _, ok := l.down(worker2.id); return ok }, 1500*time.Millisecond, 10*time.Millisecond)
		e, _ := l.down(worker2.id)
		require.Equal(t, membership.ReasonConnectionClosed, e.Reason)
	}
	t.Logf("SIGKILL seen by both peers after %s", time.Since(start))
}

func TestProcessSIGSTOPIsHeartbeatTimeoutAndSIGCONTBringsItBack(t *testing.T) {
	seed1, worker1, worker2 := threeNodes(t, "--heartbeat-interval", "1s", "--heartbeat-miss-threshold", "2")
	l1, l2 := watch(t, seed1), watch(t, worker1)
	start := time.Now()
	worker2.signal(syscall.SIGSTOP)
	for _, l := range []*eventLog{l1, l2} {
		require.Eventually(t, func() bool { _, ok := l.down(worker2.id); return ok }, 8*time.Second, 20*time.Millisecond)
		e, _ := l.down(worker2.id)
		require.Equal(t, membership.ReasonHeartbeatTimeout, e.Reason)
	}
	elapsed := time.Since(start)
	require.GreaterOrEqual(t, elapsed, 1*time.Second, "heartbeat_timeout must not fire before the threshold")
	t.Logf("SIGSTOP seen by both peers after %s", elapsed)
	worker2.signal(syscall.SIGCONT)
	for _, l := range []*eventLog{l1, l2} {
		require.Eventually(t, func() bool { return l.count(membership.EventNodeUp, worker2.id) == 1 }, 10*time.Second, 20*time.Millisecond,
			"worker2 should come back up after SIGCONT without a restart")
	}
	requireMesh(t, 10*time.Second, seed1, worker1, worker2)
}

func TestProcessInvalidConfigExits2ListingEveryField(t *testing.T) {
	out, code := runNode(t, "agent", "--name", "1bad", "--port", "99999", "--heartbeat-interval", "5ms")
	require.Equal(t, 2, code)
	for _, flag := range []string{"--name (NODE_NAME): ", "--port (CLUSTER_PORT): ", "--heartbeat-interval (CLUSTER_HEARTBEAT_INTERVAL): "} {
		require.Contains(t, out, flag, "the error should list every invalid field")
	}
}

func TestProcessClientCommandUnreachableIsOneLine(t *testing.T) {
	out, code := runNode(t, "members", "--addr", "127.0.0.1:1")
	require.Equal(t, 1, code)
	require.Contains(t, out, "cannot reach a node at 127.0.0.1:1")
	require.Equal(t, 1, len(splitLines(out)), "one line, not a stack of gRPC text: %q", out)
}
