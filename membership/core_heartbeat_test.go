package membership

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCoreHeartbeatsComeOncePerIntervalEachWay(t *testing.T) {
	// Each direction of every stream carries one heartbeat per interval on average, however
	// a wake-up groups them, and none comes later than maxBeatGap after the one before.
	s := newSim(t)
	nodes := newCluster(s, 8)
	s.advance(10 * time.Second)
	interval := nodes[0].cfg.HeartbeatInterval
	maxGap := nodes[0].core.maxBeatGap()
	from := s.now
	const window = 100 * time.Second
	s.advance(window)
	intervals := int(window / interval)
	for _, n := range nodes {
		for _, peer := range nodes {
			if peer == n {
				continue
			}
			var times []time.Time
			for _, m := range n.sent {
				if m.to == peer && m.msg.Heartbeat != nil && !m.at.Before(from) {
					times = append(times, m.at)
				}
			}
			require.LessOrEqual(t, len(times), intervals+intervals/50,
				"%s → %s: %d heartbeats in %v, want about one per interval (%v)", n.id, peer.id, len(times), window, interval)
			require.GreaterOrEqual(t, len(times), intervals-intervals/20,
				"%s → %s: %d heartbeats in %v, want about one per interval (%v)", n.id, peer.id, len(times), window, interval)
			for i := 1; i < len(times); i++ {
				require.LessOrEqual(t, times[i].Sub(times[i-1]), maxGap,
					"%s → %s: heartbeat %d came %v after the one before (at most %v)", n.id, peer.id, i, times[i].Sub(times[i-1]), maxGap)
			}
		}
	}
}

// A peer advertising a heartbeat interval far beyond the configurable range (an old or hostile
// version: 1300000h) must not overflow threshold × interval into a silence limit in the past,
// which took it down at every tick and back up at every redial.
func TestCorePeerIntervalBeyondTheRangeNeverOverflowsTheSilenceLimit(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := simConfig("a")
	require.NoError(t, cfg.Validate())
	c := newCore(MustParseNodeID("a@127.0.0.1:4000"), 1, cfg, now, rand.New(rand.NewPCG(1, 2)), nil)
	c.start(now)
	peer := MustParseNodeID("b@127.0.0.1:4001")
	id := c.accept(now)
	c.receive(now, id, &Message{Hello: &Hello{
		ID: peer, Incarnation: 1, ProtocolVersion: ProtocolVersion,
		HeartbeatInterval: 1300000 * time.Hour, MissThreshold: 3,
	}})
	c.receive(now, id, &Message{Heartbeat: &Heartbeat{}}) // confirms the stream: b is up
	require.Equal(t, 1, c.connected)
	require.Equal(t, 3*MaxHeartbeatInterval, c.conns[id].timeout, "the silence limit uses the interval clamped to the range")
	for range 100 {
		now = now.Add(100 * time.Millisecond)
		c.tick(now)
	}
	for _, o := range c.takeOutputs() {
		require.False(t, o.kind == outEvent && o.event.Type == EventNodeDown, "b was reported down: %+v", o.event)
	}
	require.Equal(t, 1, c.connected, "b stays up")
}

// A change of a node's attributes goes out at once on every stream, not with the next
// heartbeat, and every peer reports it once as node_updated with the new values; the
// heartbeats after it carry no attributes and report nothing.
func TestCoreAttributesReachEveryPeerAtOnceAsNodeUpdated(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 4)
	s.advance(3 * time.Second)
	skip := make([]int, len(nodes))
	for i, n := range nodes {
		skip[i] = len(n.events)
	}
	changed := nodes[0]
	changed.core.setAttributes(s.now, 5, map[string]string{"role": "db"})
	changed.flush()
	s.settle() // deliveries only: the clock does not move
	for i, n := range nodes[1:] {
		var updates []Event
		for _, e := range n.eventsSince(skip[i+1]) {
			if e.Type == EventNodeUpdated {
				updates = append(updates, e)
			}
		}
		require.Len(t, updates, 1, "%s: one node_updated", n.id)
		require.Equal(t, changed.id, updates[0].Node.ID)
		require.Equal(t, 5, updates[0].Node.ProcessCount)
		require.Equal(t, map[string]string{"role": "db"}, updates[0].Node.Metadata)
		require.Equal(t, s.now, updates[0].Time, "within the round trip, not an interval later")
		info, ok := n.info(changed)
		require.True(t, ok)
		require.Equal(t, map[string]string{"role": "db"}, info.Metadata)
	}
	s.advance(5 * time.Second)
	for i, n := range nodes[1:] {
		count := 0
		for _, e := range n.eventsSince(skip[i+1]) {
			if e.Type == EventNodeUpdated {
				count++
			}
		}
		require.Equal(t, 1, count, "%s: the later heartbeats report nothing new", n.id)
	}
	for _, e := range changed.eventsSince(skip[0]) {
		require.NotEqual(t, EventNodeUpdated, e.Type, "a node does not report its own change")
	}
}
