package server

import (
	"context"
	"net"
	"strconv"
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

// Handlers given to Start see the node's first peers: the join that happens inside Start.
func TestHandlerOptionsSeeTheFirstPeers(t *testing.T) {
	seed := startNode(t, testConfig("seed"))
	var mu sync.Mutex
	var got []string
	note := func(s string) {
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
	}
	startNode(t, testConfig("worker", seed.LocalID().String()),
		WithNodeUpHandler(func(n membership.NodeInfo) { note("up " + n.ID.Name()) }),
		WithNodeDownHandler(func(n membership.NodeInfo, r membership.DownReason) { note("down " + n.ID.Name() + " " + r.String()) }),
		WithNodeUpdatedHandler(func(n membership.NodeInfo) { note("updated " + n.ID.Name() + " " + n.Metadata["role"]) }),
		WithStatusChangeHandler(func(prev, cur membership.ClusterStatus) { note(prev.String() + "->" + cur.String()) }),
	)
	require.NoError(t, seed.SetMetadata(map[string]string{"role": "api"}))
	require.NoError(t, seed.Stop(t.Context()))
	want := []string{"stopped->starting", "up seed", "starting->running", "updated seed api", "down seed graceful_shutdown"}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(want)
	}, 5*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.ElementsMatch(t, want, got, "each handler runs on its own goroutine: only their union is compared")
}

// offsetClock is the system clock an hour ahead.
type offsetClock struct{ membership.SystemClock }

func (c offsetClock) Now() time.Time { return time.Now().Add(time.Hour) }

// countingSink counts heartbeats sent.
type countingSink struct {
	mu   sync.Mutex
	sent int
}

func (s *countingSink) HeartbeatSent()                                 { s.mu.Lock(); s.sent++; s.mu.Unlock() }
func (s *countingSink) HeartbeatReceived(time.Duration, time.Duration) {}
func (s *countingSink) DialStarted()                                   {}

func (s *countingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// The engine's clock, random seed, resolver and an extra metrics sink are server options.
func TestEngineOptions(t *testing.T) {
	seed := startNode(t, testConfig("seed"))
	cfg := testConfig("worker", "dns+seed.mesh.test:"+strconv.Itoa(seed.Addr().(*net.TCPAddr).Port))
	sink := &countingSink{}
	worker := startNode(t, cfg, WithClock(offsetClock{}), WithRandSeed(7), WithMetricsSink(sink),
		WithResolver(staticResolver{"seed.mesh.test": {"127.0.0.1"}}))
	requireFullMesh(t, 5*time.Second, seed, worker)
	require.Eventually(t, func() bool { return sink.count() > 0 }, 5*time.Second, 10*time.Millisecond, "the sink sees heartbeats")
	events := worker.RecentEvents()
	require.NotEmpty(t, events)
	require.WithinDuration(t, time.Now().Add(time.Hour), events[0].Time, time.Minute, "events are stamped by the node's clock")
}

// staticResolver answers host lookups from a table.
type staticResolver map[string][]string

func (r staticResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if addrs, ok := r[host]; ok {
		return addrs, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (staticResolver) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}
