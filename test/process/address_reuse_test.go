package process_test

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
)

// TestProcessNodeAtADeadNodesAddressJoinsOnceAndNeverFlaps kills b and starts c, another
// node, on b's port (a pod's IP and port reused by another pod). a keeps redialling b's id
// for a while, and reaches c there: c must come up once and never go down on a, a never go
// down on c, and b stay down.
func TestProcessNodeAtADeadNodesAddressJoinsOnceAndNeverFlaps(t *testing.T) {
	timing := []string{"--heartbeat-interval", "500ms", "--heartbeat-miss-threshold", "2"}
	a := startAgent(t, "a", timing...)
	b := startAgent(t, "b", append(timing, "--seeds", a.id.String())...)
	requireMesh(t, 10*time.Second, a, b)
	la := watch(t, a)
	b.signal(syscall.SIGKILL)
	b.waitExit(10 * time.Second)
	require.Eventually(t, func() bool { _, down := la.down(b.id); return down }, 5*time.Second, 10*time.Millisecond, "a should report b down")

	port := b.id.Address()[strings.LastIndex(b.id.Address(), ":")+1:]
	_, err := strconv.Atoi(port)
	require.NoError(t, err)
	c := startAgent(t, "c", append(timing, "--port", port, "--seeds", a.id.String())...)
	require.Equal(t, b.id.Address(), c.id.Address(), "c listens where b did")
	lc := watch(t, c)
	requireMesh(t, 10*time.Second, a, c)

	// The flap came every ~2 s while a redialled b; watch well past several redials.
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		require.Zero(t, la.count(membership.EventNodeDown, c.id), "a should never report c down")
		require.Zero(t, lc.count(membership.EventNodeDown, a.id), "c should never report a down")
		require.Zero(t, la.count(membership.EventNodeUp, b.id), "b is dead: a should never report it up")
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, 1, la.count(membership.EventNodeUp, c.id), "a should report c up once")
	require.Equal(t, 1, la.count(membership.EventNodeDown, b.id), "a should report b down once")
	require.NotContains(t, a.logText(), "dialled node answered with another id")
	require.Contains(t, a.logText(), "another node holds the address of a node that is down")
}
