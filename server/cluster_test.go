package server

import (
	"context"
	"fmt"
	"reflect"
	"sync"
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

func TestCrashReportsConnectionClosed(t *testing.T) {
	a := startNode(t, testConfig("a"))
	b, bNet := startFaultyNode(t, testConfig("b", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b)
	ra := record(a)
	start := time.Now()
	crash(t, b, bNet)
	require.Eventually(t, func() bool { return len(ra.downs(b.LocalID())) == 1 }, 2*time.Second, 5*time.Millisecond)
	require.Equal(t, []membership.DownReason{membership.ReasonConnectionClosed}, ra.downs(b.LocalID()),
		"the crash is seen, and the leave of the Stop after it reaches nobody")
	t.Logf("crash detected in %s", time.Since(start))
}

// A frozen node goes silent: its peers report it down with heartbeat_timeout. It hears nothing
// either, so it reports them down too; once healed, each sees the other up again.
func TestFrozenNodeReportsHeartbeatTimeoutAndRecovers(t *testing.T) {
	a := startNode(t, testConfig("a"))
	b, bNet := startFaultyNode(t, testConfig("b", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b)
	ra, rb := record(a), record(b)
	bNet.Freeze()
	require.Eventually(t, func() bool { return len(ra.downs(b.LocalID())) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []membership.DownReason{membership.ReasonHeartbeatTimeout}, ra.downs(b.LocalID()))
	require.Eventually(t, func() bool { return len(rb.downs(a.LocalID())) == 1 }, 5*time.Second, 10*time.Millisecond,
		"the frozen node hears nothing either")
	require.Equal(t, []membership.DownReason{membership.ReasonHeartbeatTimeout}, rb.downs(a.LocalID()))
	bNet.Heal()
	require.Eventually(t, func() bool { return ra.ups(b.LocalID()) == 1 && rb.ups(a.LocalID()) == 1 }, 10*time.Second, 10*time.Millisecond,
		"a and b should see each other up again once healed")
	requireFullMesh(t, 5*time.Second, a, b)
	require.Len(t, ra.downs(b.LocalID()), 1, "one down per freeze")
}

func TestThirtyTwoNodesFormThroughOneSeed(t *testing.T) {
	// 32 nodes in one race-instrumented process on two cores: heartbeats at a pace such a
	// process can keep while other test packages run beside it.
	config := func(name string, seeds ...string) *membership.Config {
		cfg := testConfig(name, seeds...)
		cfg.HeartbeatInterval, cfg.DialTimeout = time.Second, 5*time.Second
		return cfg
	}
	seed := startNode(t, config("seed"))
	nodes := []*Node{seed}
	for i := 1; i < 32; i++ {
		nodes = append(nodes, startNode(t, config(fmt.Sprintf("n%02d", i), seed.LocalID().String())))
	}
	requireFullMesh(t, 30*time.Second, nodes...)
}

func TestRestartWithSameIDIsDownThenUp(t *testing.T) {
	a := startNode(t, testConfig("a"))
	b, bNet := startFaultyNode(t, testConfig("b", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b)
	ra := record(a)
	oldInfo, err := a.Node(b.LocalID())
	require.NoError(t, err)
	crash(t, b, bNet)
	bNet.Heal()
	require.NoError(t, b.Start(context.Background()), "a crashed node restarts on the same port")
	require.Eventually(t, func() bool { return ra.ups(b.LocalID()) == 1 }, 5*time.Second, 10*time.Millisecond, "a should see b's new incarnation up")
	require.Equal(t, []membership.DownReason{membership.ReasonConnectionClosed}, ra.downs(b.LocalID()))
	newInfo, err := a.Node(b.LocalID())
	require.NoError(t, err)
	require.Greater(t, newInfo.Incarnation, oldInfo.Incarnation, "a restart is a new incarnation")
}

func TestSimultaneousDialKeepsOneStreamWithoutSpuriousEvents(t *testing.T) {
	// Two nodes on fixed ports seeded with each other, started at the same moment.
	ports := freePorts(t, 2)
	cfgA, cfgB := testConfig("a"), testConfig("b")
	cfgA.Port, cfgB.Port = ports[0], ports[1]
	cfgA.Seeds = []string{fmt.Sprintf("b@127.0.0.1:%d", ports[1])}
	cfgB.Seeds = []string{fmt.Sprintf("a@127.0.0.1:%d", ports[0])}
	var a, b *Node
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = startNode(t, cfgA) }()
	go func() { defer wg.Done(); b = startNode(t, cfgB) }()
	wg.Wait()
	requireFullMesh(t, 10*time.Second, a, b)
	ra, rb := record(a), record(b)
	time.Sleep(3 * cfgA.HeartbeatInterval * time.Duration(cfgA.HeartbeatMissThreshold)) // a whole detection window passes
	require.Empty(t, ra.downs(b.LocalID()), "no spurious down after the tie break")
	require.Empty(t, rb.downs(a.LocalID()), "no spurious down after the tie break")
	requireFullMesh(t, time.Second, a, b)
}

func TestUnreachableSeedReportsRefusedThenJoinsWhenItAppears(t *testing.T) {
	port := freePorts(t, 1)[0]
	seedID := fmt.Sprintf("seed@127.0.0.1:%d", port)
	var mu sync.Mutex
	var downs []membership.DownReason
	cfg := testConfig("late", seedID)
	cfg.ReconnectMaxDelay = 500 * time.Millisecond
	late, err := Start(context.Background(), cfg, WithLogger(quietLogger()), WithEventHandler(func(e membership.Event) {
		if e.Type == membership.EventNodeDown {
			mu.Lock()
			downs = append(downs, e.Reason)
			mu.Unlock()
		}
	}))
	require.NoError(t, err, "a node whose seeds are down still starts")
	t.Cleanup(func() { _ = late.Stop(context.Background()) })
	require.Equal(t, membership.ClusterRunning, late.Status())
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(downs) == 1 && downs[0] == membership.ReasonConnectionRefused
	}, 5*time.Second, 10*time.Millisecond, "the unreachable seed is reported down with connection_refused")
	seedCfg := testConfig("seed")
	seedCfg.Port = port
	seed := startNode(t, seedCfg)
	requireFullMesh(t, 10*time.Second, late, seed)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, downs, 1, "redials of a node already down emit nothing")
}

func TestStopTwiceReturnsNil(t *testing.T) {
	a := startNode(t, testConfig("a"))
	require.NoError(t, a.Stop(t.Context()))
	require.NoError(t, a.Stop(t.Context()), "stopping a stopped node does nothing")
	require.Equal(t, membership.ClusterStopped, a.Status())
	require.Nil(t, a.Addr(), "the port is released")
}

// A Node offers what applications use, no fault hook and none of the engine's plumbing:
// faults come from outside, through the node's network (faultnet).
func TestNodeHasNoFaultHooks(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[*Node](), reflect.TypeFor[*membership.Cluster]()} {
		for _, name := range []string{"Kill", "Freeze", "Thaw"} {
			_, ok := typ.MethodByName(name)
			require.False(t, ok, "%s has %s", typ, name)
		}
	}
	_, ok := reflect.TypeFor[*Node]().MethodByName("ServeConn")
	require.False(t, ok, "the engine's inbound streams are the server's business")
}
