package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
)

// BenchmarkJoinAndLeave measures one node joining a converged 32-node cluster over real gRPC
// on loopback, until every member sees it up, then leaving gracefully, until every member sees
// it down; join-ns/op and leave-ns/op split the time. Its CPU and allocation profiles
// (-cpuprofile, -memprofile) are the cost of a join's handshakes, one per member, in one
// process: go test -run '^$' -bench JoinAndLeave -benchtime 200x -benchmem ./server/
func BenchmarkJoinAndLeave(b *testing.B) {
	const members = 32
	cfg := func(name string, seeds ...string) *membership.Config {
		c := testConfig(name, seeds...)
		c.HeartbeatInterval = time.Second
		return c
	}
	nodes := make([]*Node, members)
	for i := range nodes {
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].LocalID().String()}
		}
		n, err := Start(context.Background(), cfg(fmt.Sprintf("m%d", i), seeds...), WithLogger(quietLogger()))
		require.NoError(b, err)
		nodes[i] = n
	}
	b.Cleanup(func() {
		for _, n := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = n.Stop(ctx)
			cancel()
		}
	})
	require.Eventually(b, func() bool {
		for _, n := range nodes {
			if c, _ := n.ConnectedCount(); c != members-1 {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "the %d members should form a full mesh", members)

	joiner := cfg("joiner", nodes[0].LocalID().String())
	joiner.Port = freePorts(b, 1)[0] // one id throughout: each join is a new incarnation
	joinerID, err := membership.ParseNodeID(fmt.Sprintf("joiner@127.0.0.1:%d", joiner.Port))
	require.NoError(b, err)
	var ups, downs atomic.Int32
	allUp, allDown := make(chan struct{}, 1), make(chan struct{}, 1)
	for _, n := range nodes {
		n.Subscribe(func(e membership.Event) {
			if e.Node.ID != joinerID {
				return
			}
			switch e.Type {
			case membership.EventNodeUp:
				if ups.Add(1) == members {
					allUp <- struct{}{}
				}
			case membership.EventNodeDown:
				if downs.Add(1) == members {
					allDown <- struct{}{}
				}
			}
		})
	}
	wait := func(ch chan struct{}, what string) {
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			b.Fatalf("not every member saw the joiner %s within 30 s", what)
		}
	}
	var joining, leaving time.Duration
	b.ResetTimer()
	for range b.N {
		ups.Store(0)
		downs.Store(0)
		t0 := time.Now()
		j, err := Start(context.Background(), joiner, WithLogger(quietLogger()))
		require.NoError(b, err)
		wait(allUp, "up")
		t1 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		require.NoError(b, j.Stop(ctx))
		cancel()
		wait(allDown, "down")
		joining, leaving = joining+t1.Sub(t0), leaving+time.Since(t1)
	}
	b.ReportMetric(float64(joining.Nanoseconds())/float64(b.N), "join-ns/op")
	b.ReportMetric(float64(leaving.Nanoseconds())/float64(b.N), "leave-ns/op")
}
