package server

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
)

func TestHandlersRunOutsideLocksAndASlowOneDelaysOnlyItself(t *testing.T) {
	a := startNode(t, testConfig("a"))
	release := make(chan struct{})
	var mu sync.Mutex
	var fast []string
	var reentrant []int

	unsubSlow := a.OnNodeUp(func(membership.NodeInfo) { <-release }) // stuck until released
	defer unsubSlow()
	a.OnNodeUp(func(n membership.NodeInfo) {
		// A handler may call back into the node: it never runs under the node's lock.
		count, err := a.ConnectedCount()
		if err != nil {
			count = -1
		}
		mu.Lock()
		fast = append(fast, n.ID.Name())
		reentrant = append(reentrant, count)
		mu.Unlock()
	})
	var order []string
	a.Subscribe(func(e membership.Event) {
		if e.Type == membership.EventNodeUp || e.Type == membership.EventNodeDown {
			mu.Lock()
			order = append(order, e.Type.String()+" "+e.Node.ID.Name())
			mu.Unlock()
		}
	})

	b := startNode(t, testConfig("b", a.LocalID().String()))
	c := startNode(t, testConfig("c", a.LocalID().String()))
	require.NoError(t, b.Stop(t.Context()))
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fast) == 2 && len(order) == 3
	}, 5*time.Second, 10*time.Millisecond, "other handlers get every event while one handler is stuck")
	mu.Lock()
	require.ElementsMatch(t, []string{"b", "c"}, fast)
	require.NotContains(t, reentrant, -1, "queries from inside a handler work")
	var aboutB []string
	for _, e := range order {
		if strings.HasSuffix(e, " b") {
			aboutB = append(aboutB, e)
		}
	}
	require.Equal(t, []string{"node_up b", "node_down b"}, aboutB, "a node's events arrive in order: up before down")
	mu.Unlock()
	requireFullMesh(t, time.Second, a, c) // the engine was never blocked
	close(release)
}

func TestUnsubscribeStopsTheCalls(t *testing.T) {
	a := startNode(t, testConfig("a"))
	var mu sync.Mutex
	calls := 0
	unsubscribe := a.OnStatusChange(func(_, _ membership.ClusterStatus) {
		mu.Lock()
		calls++
		mu.Unlock()
	})
	unsubscribe()
	unsubscribe() // idempotent
	b := startNode(t, testConfig("b", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b)
	require.NoError(t, a.Stop(t.Context()))
	mu.Lock()
	defer mu.Unlock()
	require.Zero(t, calls, "no call after unsubscribe")
}

func TestQueriesOnAStoppedNodeReturnErrNotRunning(t *testing.T) {
	a := startNode(t, testConfig("a"))
	require.NoError(t, a.Stop(t.Context()))
	_, err := a.Nodes()
	require.ErrorIs(t, err, membership.ErrNotRunning)
	_, err = a.ConnectedCount()
	require.ErrorIs(t, err, membership.ErrNotRunning)
	_, err = a.Node(a.LocalID())
	require.ErrorIs(t, err, membership.ErrNotRunning)
	_, err = a.Uptime()
	require.ErrorIs(t, err, membership.ErrNotRunning)
	require.Equal(t, membership.ClusterStopped, a.Status())
	require.NoError(t, a.Start(t.Context()), "a stopped node can start again")
	require.Equal(t, membership.ClusterRunning, a.Status())
}
