package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
)

// TestOverlayFormationAtOnceOverRealStreams starts 32 nodes at the same moment through one
// seed with K = 4 (an overlay from 6 nodes on), over real gRPC on loopback: every node must
// see every other connected, stream to at most 2K peers, and nobody may be reported down.
func TestOverlayFormationAtOnceOverRealStreams(t *testing.T) {
	const members, k = 32, 4
	config := func(name string, seeds ...string) *membership.Config {
		c := testConfig(name, seeds...)
		c.HeartbeatInterval = 2 * time.Second // a loaded test machine is no reason for a down
		c.Monitors = k
		return c
	}
	nodes := make([]*Node, members)
	nodes[0] = startNode(t, config("m00"))
	seed := nodes[0].LocalID().String()
	var downs sync.Map
	var wg sync.WaitGroup
	for i := 1; i < members; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := Start(context.Background(), config(fmt.Sprintf("m%02d", i), seed), WithLogger(quietLogger()),
				WithEventHandler(func(e membership.Event) {
					if e.Type == membership.EventNodeDown {
						downs.Store(fmt.Sprintf("m%02d saw %s down (%s)", i, e.Node.ID, e.Reason), true)
					}
				}))
			if err == nil {
				nodes[i] = n
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		var stops sync.WaitGroup
		for _, n := range nodes[1:] {
			if n != nil {
				stops.Add(1)
				go func() {
					defer stops.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					_ = n.Stop(ctx)
				}()
			}
		}
		stops.Wait()
	})
	for i, n := range nodes {
		require.NotNil(t, n, "node %d should start", i)
	}
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if c, _ := n.ConnectedCount(); c != members-1 {
				return false
			}
		}
		return true
	}, 60*time.Second, 50*time.Millisecond, "every node should see the other %d connected", members-1)
	var over string
	require.Eventually(t, func() bool {
		over = ""
		for _, n := range nodes {
			infos, err := n.Nodes()
			require.NoError(t, err)
			direct := 0
			for _, info := range infos {
				if info.Direct {
					direct++
				}
			}
			if direct > 2*k {
				over += fmt.Sprintf(" %s:%d", n.LocalID().Name(), direct)
			}
		}
		return over == ""
	}, 30*time.Second, 50*time.Millisecond, "every node should end up streaming to at most 2K peers; over:%s", over)
	downs.Range(func(key, _ any) bool {
		t.Errorf("no node may be reported down in a formation: %s", key)
		return true
	})
}
