package membership

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// heldClock is the system clock whose timers can be held: a timer that comes due while held
// never calls its function, as if the process never scheduled the timer's goroutine.
type heldClock struct {
	SystemClock
	mu   sync.Mutex
	held bool
}

func (c *heldClock) hold(held bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = held
}

func (c *heldClock) AfterFunc(d time.Duration, f func()) Timer {
	return time.AfterFunc(d, func() {
		c.mu.Lock()
		held := c.held
		c.mu.Unlock()
		if !held {
			f()
		}
	})
}

// startClockedMemNode starts a Cluster named name on network with a heartbeat every 200 ms
// and clock.
func startClockedMemNode(t *testing.T, network *memNet, name string, port int, clock Clock, seeds ...string) *Cluster {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.Seeds, cfg.HeartbeatInterval = name, seeds, 200*time.Millisecond
	return startConfiguredMemNode(t, network, cfg, port, WithClock(clock))
}

// A node busy with messages runs its timed work (heartbeats, silence checks) between them
// when its timer's goroutine does not get to run: on a busy machine that goroutine waits for
// the node's lock behind long batches, or for a core, and the node fell silent for seconds
// while it handled its peers' messages, so that its observers timed it out. Here a's timer
// never fires once held; c's heartbeats keep a's inbox busy, and a still finds b silent.
func TestNodeWhoseTimerDoesNotFireRunsItsTickBetweenMessages(t *testing.T) {
	network := newMemNet()
	clock := &heldClock{}
	b := startClockedMemNode(t, network, "b", 2, SystemClock{})
	c := startClockedMemNode(t, network, "c", 3, SystemClock{}, b.LocalID().String())
	a := startClockedMemNode(t, network, "a", 1, clock, b.LocalID().String())
	all := []*Cluster{a, b, c}
	require.Eventually(t, func() bool {
		for _, n := range all {
			if count, _ := n.ConnectedCount(); count != 2 {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond, "a, b and c should see each other connected")

	clock.hold(true)
	network.faultsOf(b).freeze()
	require.Eventually(t, func() bool {
		info, err := a.Node(b.LocalID())
		return err == nil && info.Status == StatusDisconnected
	}, 10*time.Second, 10*time.Millisecond,
		"a, whose timer no longer fires, should still find b silent: c's heartbeats reach a's inbox every 200 ms, and a's tick should run between them")
	connected, err := a.IsConnected(c.LocalID())
	require.NoError(t, err)
	require.True(t, connected, "a should still hold c connected: its heartbeats to c go out from the same ticks")

	clock.hold(false)
	network.faultsOf(b).heal()
	for _, n := range all {
		require.NoError(t, n.Stop(context.Background()))
	}
	network.serve.Wait()
}
