package membership

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lastDown returns n's last node_down event about peer.
func lastDown(t *testing.T, n, peer *simNode) Event {
	t.Helper()
	for i := len(n.events) - 1; i >= 0; i-- {
		if e := n.events[i]; e.Type == EventNodeDown && e.Node.ID == peer.id {
			return e
		}
	}
	require.FailNowf(t, "no node_down", "%s reported no node_down for %s; log: %v", n.id, peer.id, n.eventLog())
	return Event{}
}

// hasDown reports whether n reported peer down at least once.
func hasDown(n, peer *simNode) bool {
	return hasDownSince(n, peer, 0)
}

// hasDownSince reports whether n reported peer down in its events after the first skip.
func hasDownSince(n, peer *simNode, skip int) bool {
	for _, e := range n.events[skip:] {
		if e.Type == EventNodeDown && e.Node.ID == peer.id {
			return true
		}
	}
	return false
}

// noStreamTo asserts n holds no open stream to peer.
func noStreamTo(t *testing.T, n, peer *simNode) {
	t.Helper()
	require.Nil(t, n.streamEnd(peer), "%s should hold no stream to %s", n.id, peer.id)
	for _, e := range n.ends {
		require.False(t, e.peer != nil && e.peer.node == peer, "%s still has an open stream to %s", n.id, peer.id)
	}
}

func TestCoreHeartbeatTimeoutWindowAndRecovery(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	s.advance(5 * time.Second)
	// Freeze c the instant a heard from it: a's silence starts exactly at the freeze.
	s.advanceUntil(2*time.Second, func() bool {
		info, _ := a.info(c)
		return info.LastHeartbeat.Equal(s.now)
	}, "a should hear c's heartbeat")
	frozenAt := s.now
	c.frozen = true
	incarnation, coreBefore := c.core.incarnation, c.core

	s.advance(3*time.Second - 10*time.Millisecond)
	require.False(t, hasDown(a, c), "a must not time c out before interval × threshold (3s); log: %v", a.eventLog())
	s.advanceUntil(time.Second, func() bool { return hasDown(a, c) && hasDown(b, c) },
		"a and b should time c out within 3s + one interval")

	for _, n := range []*simNode{a, b} {
		ev := lastDown(t, n, c)
		require.Equal(t, ReasonHeartbeatTimeout, ev.Reason, "%s should report heartbeat_timeout for a frozen node", n.id)
		require.GreaterOrEqual(t, ev.Time.Sub(ev.Node.LastHeartbeat), 3*time.Second, "%s: down only after 3s without a heartbeat", n.id)
		require.LessOrEqual(t, ev.Time.Sub(frozenAt), 4*time.Second, "%s: down within 3s + one interval of the freeze", n.id)
		require.Equal(t, StatusDisconnected, ev.Node.Status)
		noStreamTo(t, n, c)
		require.NotContains(t, n.connectedIDs(), c.id.String())
	}
	sinceFreeze := lastDown(t, a, c).Time.Sub(frozenAt)
	t.Logf("a reported c down %v after its last heartbeat", sinceFreeze)
	require.GreaterOrEqual(t, sinceFreeze, 3*time.Second, "a heard c last at the freeze: not down before 3s")
	require.LessOrEqual(t, sinceFreeze, 3*time.Second+a.cfg.HeartbeatInterval, "a: down within 3s + one interval of the freeze")

	// Thawed, c comes back by itself: no restart, a new node_up, then quiet.
	c.frozen = false
	s.advanceUntil(10*time.Second, func() bool { return s.fullMesh(a, b, c) }, "c should reconnect after it thaws")
	s.advance(30 * time.Second)
	s.requireFullMesh(a, b, c)
	require.Same(t, coreBefore, c.core)
	require.Equal(t, incarnation, c.core.incarnation, "c was not restarted")
	for _, n := range []*simNode{a, b} {
		require.Equal(t, []string{"up " + c.id.String(), "down " + c.id.String() + " heartbeat_timeout", "up " + c.id.String()},
			n.eventsAbout(c), "%s: up, heartbeat_timeout, up again and nothing more", n.id)
	}
	for _, n := range nodes {
		requireAlternating(t, n)
	}
}

func TestCoreSuspectedSilenceSleepsUntilItsRecheck(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 2)
	a, b := nodes[0], nodes[1]
	s.advance(5 * time.Second)
	b.frozen = true
	suspected := func() *peerConn {
		if m := a.core.members.get(b.id); m != nil {
			if pc := a.core.conns[m.conn]; pc != nil && !pc.suspectSince.IsZero() {
				return pc
			}
		}
		return nil
	}
	s.advanceUntil(5*time.Second, func() bool { return suspected() != nil }, "a should suspect the frozen b")
	recheck := suspected().suspectSince.Add(a.core.confirmDelay())
	require.True(t, a.core.wakeAt.After(s.now),
		"while b is only suspected, a sleeps until the re-check at %v, not waking at once (asked for %v at %v)", recheck, a.core.wakeAt, s.now)
	require.False(t, a.core.wakeAt.After(recheck), "a wakes up for the re-check at %v (asked for %v)", recheck, a.core.wakeAt)
	s.advanceUntil(time.Second, func() bool { return hasDown(a, b) }, "a should time b out after the re-check")
}

func TestCoreHealthyClusterHasNoDownsFor60s(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 5)
	s.advance(60 * time.Second)
	s.requireFullMesh(nodes...)
	for _, n := range nodes {
		requireOneUpEach(t, n, nodes)
	}
}

func TestCoreStaggeredFreezesTimeOutInOrder(t *testing.T) {
	s := newSim(t)
	var nodes []*simNode
	for i, name := range []string{"a", "b", "c", "d", "e"} {
		cfg := simConfig(name)
		if i > 0 {
			cfg.Seeds = []string{"127.0.0.1:4000"}
		}
		nodes = append(nodes, s.add(simID(name, 4000+i), cfg))
		s.advance(700 * time.Millisecond) // staggered joins
	}
	s.advance(3 * time.Second)
	s.requireFullMesh(nodes...)
	a, e := nodes[0], nodes[4]
	frozen := []*simNode{nodes[3], nodes[1], nodes[2]} // d, then b, then c
	frozenAt := map[*simNode]time.Time{}
	for _, n := range frozen {
		n.frozen = true
		frozenAt[n] = s.now
		s.advance(1500 * time.Millisecond)
	}
	s.advance(5 * time.Second)

	for _, watcher := range []*simNode{a, e} {
		var want []string
		for _, n := range frozen {
			want = append(want, "down "+n.id.String()+" heartbeat_timeout")
			ev := lastDown(t, watcher, n)
			require.GreaterOrEqual(t, ev.Time.Sub(ev.Node.LastHeartbeat), 3*time.Second, "%s: %s down before 3s of silence", watcher.id, n.id)
			require.LessOrEqual(t, ev.Time.Sub(frozenAt[n]), 3*time.Second+watcher.cfg.HeartbeatInterval,
				"%s: %s should be down within 3s + one interval of its freeze", watcher.id, n.id)
		}
		require.Equal(t, want, watcher.downs(), "%s: nodes frozen one after the other go down in that order", watcher.id)
	}
	s.requireFullMesh(a, e)
}

func TestCoreCrashReportsConnectionClosedAtOnceThenRedialsQuietly(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 4)
	d := nodes[3]
	s.advance(3 * time.Second)
	crashedAt := s.now
	d.crash()
	for _, n := range nodes[:3] {
		require.Equal(t, []string{"up " + d.id.String(), "down " + d.id.String() + " connection_closed"}, n.eventsAbout(d),
			"%s should see the crash at once (no time passed)", n.id)
		require.Equal(t, crashedAt, lastDown(t, n, d).Time)
		info, ok := n.info(d)
		require.True(t, ok, "%s should still know %s", n.id, d.id)
		require.Equal(t, StatusDisconnected, info.Status)
	}
	s.advance(30 * time.Second)
	addr := d.id.Address()
	for _, n := range nodes[:3] {
		require.Equal(t, []string{"up " + d.id.String(), "down " + d.id.String() + " connection_closed"}, n.eventsAbout(d),
			"%s: redials of a node already down emit nothing", n.id)
		dials := n.dialsToSince(addr, crashedAt)
		require.GreaterOrEqual(t, len(dials), 6, "%s should keep redialling %s", n.id, d.id)
		require.LessOrEqual(t, len(dials), 20, "%s should back off, not hammer %s: %d dials in 30s", n.id, d.id, len(dials))
		require.LessOrEqual(t, dials[0].Sub(crashedAt), n.cfg.ReconnectBaseDelay+10*time.Millisecond, "%s: first redial soon", n.id)
		for i := 1; i < len(dials); i++ {
			gap := dials[i].Sub(dials[i-1])
			require.LessOrEqual(t, gap, n.cfg.ReconnectMaxDelay+10*time.Millisecond, "%s: backoff is capped", n.id)
		}
		last := dials[len(dials)-1].Sub(dials[len(dials)-2])
		require.GreaterOrEqual(t, last, n.cfg.ReconnectMaxDelay/2, "%s: backoff grew to the cap (jittered down by at most half)", n.id)
		require.Greater(t, last, dials[1].Sub(dials[0]), "%s: backoff grows", n.id)
	}
	s.requireFullMesh(nodes[:3]...)
}

func TestCoreGracefulStopIsOneDownAndNoRedial(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 4)
	a, b, d := nodes[0], nodes[1], nodes[3]
	s.advance(3 * time.Second)
	leftInc := d.core.incarnation
	d.stop()
	stoppedAt := s.now
	for _, n := range nodes[:3] {
		require.Equal(t, []string{"up " + d.id.String(), "down " + d.id.String() + " graceful_shutdown"}, n.eventsAbout(d),
			"%s should see exactly one graceful_shutdown at once", n.id)
		require.NotContains(t, n.connectedIDs(), d.id.String())
	}
	s.advance(30 * time.Second)
	for _, n := range nodes[:3] {
		require.Equal(t, []string{"up " + d.id.String(), "down " + d.id.String() + " graceful_shutdown"}, n.eventsAbout(d),
			"%s: nothing more about a node that left", n.id)
		for _, at := range n.dialsTo(d.id.Address()) {
			require.True(t, at.Before(stoppedAt), "%s must not redial %s, which left gracefully (dial at +%v)", n.id, d.id, at.Sub(stoppedAt))
		}
		require.NotContains(t, n.knownIDs(), d.id.String(), "%s should not list a node that left", n.id)
	}

	// Stale gossip: b's full view still says the left incarnation is alive.
	dialsBefore := len(a.dials)
	events := len(a.events)
	s.inject(b, a, &Message{Update: &Update{Full: true, ReplyRequested: true, Entries: []MemberEntry{
		{ID: nodes[1].id, Incarnation: nodes[1].core.incarnation},
		{ID: nodes[2].id, Incarnation: nodes[2].core.incarnation},
		{ID: d.id, Incarnation: leftInc},
	}}})
	s.advance(10 * time.Second)
	require.Len(t, a.dials, dialsBefore, "stale gossip must not make a dial the node that left")
	require.Empty(t, a.eventsSince(events), "stale gossip must not bring the node back")
	require.NotContains(t, a.knownIDs(), d.id.String())
	s.requireFullMesh(nodes[:3]...)
}

func TestCorePartitionedNodeEventsAlternate(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 4)
	a, d := nodes[0], nodes[3]
	rest := nodes[:3]
	wantDowns := 0
	for _, length := range []time.Duration{500 * time.Millisecond, 4 * time.Second, 10 * time.Second,
		500 * time.Millisecond, 30 * time.Second, 3500 * time.Millisecond, 2 * time.Minute} {
		s.partition([]*simNode{d}, rest, true)
		s.advance(length)
		if length > 3*time.Second {
			wantDowns++
			for _, n := range rest {
				require.NotContains(t, n.connectedIDs(), d.id.String(), "%s should see %s gone after a %v partition", n.id, d.id, length)
			}
			require.Empty(t, d.connectedIDs(), "d should see everyone gone after a %v partition", length)
		}
		s.partition([]*simNode{d}, rest, false)
		s.advanceUntil(10*time.Second, func() bool { return s.fullMesh(nodes...) }, "heal after a %v partition", length)
		s.advance(3 * time.Second)
	}
	for _, n := range nodes {
		requireAlternating(t, n)
	}
	var downs int
	for _, line := range a.eventsAbout(d) {
		if line != "up "+d.id.String() {
			require.Equal(t, "down "+d.id.String()+" heartbeat_timeout", line, "a partition is noticed by the failure detector")
			downs++
		}
	}
	require.Equal(t, wantDowns, downs, "a should report d down once per partition longer than the timeout: %v", a.eventsAbout(d))
}

func TestCorePartitionsHealByThemselves(t *testing.T) {
	for _, length := range []time.Duration{30 * time.Second, 10 * time.Minute} {
		t.Run(length.String(), func(t *testing.T) {
			s := newSim(t)
			nodes := newCluster(s, 5)
			left, right := nodes[:2], nodes[2:]
			s.partition(left, right, true)
			s.advance(length)
			s.requireFullMesh(left...)
			s.requireFullMesh(right...)
			for _, n := range left {
				require.Equal(t, []string{nodes[1-indexOf(nodes, n)].id.String()}, n.connectedIDs(), "%s sees only its side", n.id)
			}
			s.partition(left, right, false)
			took := s.advanceUntil(10*time.Second, func() bool { return s.fullMesh(nodes...) }, "the cluster should heal after a %v partition", length)
			t.Logf("healed %v after a %v partition", took, length)
			s.advance(10 * time.Second)
			s.requireFullMesh(nodes...)
			for _, n := range nodes {
				requireAlternating(t, n)
				side, other := left, right
				if indexOf(left, n) < 0 {
					side, other = right, left
				}
				for _, o := range side {
					if o != n {
						require.Equal(t, []string{"up " + o.id.String()}, n.eventsAbout(o), "%s: its own side never went down", n.id)
					}
				}
				for _, o := range other {
					require.Equal(t, []string{"up " + o.id.String(), "down " + o.id.String() + " heartbeat_timeout", "up " + o.id.String()},
						n.eventsAbout(o), "%s: the other side went down once and came back", n.id)
				}
			}
		})
	}
}

// indexOf returns the index of n in nodes, -1 if absent.
func indexOf(nodes []*simNode, n *simNode) int {
	for i, o := range nodes {
		if o == n {
			return i
		}
	}
	return -1
}

func TestCoreForgetsNodesGoneLongerThanReconnectTimeout(t *testing.T) {
	s := newSim(t)
	nodes := newClusterWith(s, 4, func(cfg *Config) { cfg.ReconnectTimeout = 10 * time.Second })
	a, b, d := nodes[0], nodes[1], nodes[3]
	s.advance(2 * time.Second)
	oldInc := d.core.incarnation
	d.crash()
	crashedAt := s.now
	s.advance(9 * time.Second)
	for _, n := range nodes[:3] {
		require.Contains(t, n.knownIDs(), d.id.String(), "%s should still know %s before the reconnect timeout", n.id, d.id)
	}
	s.advance(3 * time.Second)
	for _, n := range nodes[:3] {
		require.NotContains(t, n.knownIDs(), d.id.String(), "%s should forget %s after the reconnect timeout", n.id, d.id)
		require.Equal(t, []string{"up " + d.id.String(), "down " + d.id.String() + " connection_closed"}, n.eventsAbout(d),
			"%s: forgetting is silent", n.id)
	}
	forgottenAt := s.now

	// Stale gossip naming the forgotten incarnation brings nothing back.
	s.inject(b, a, &Message{Update: &Update{Full: true, ReplyRequested: true, Entries: []MemberEntry{
		{ID: nodes[1].id, Incarnation: nodes[1].core.incarnation},
		{ID: nodes[2].id, Incarnation: nodes[2].core.incarnation},
		{ID: d.id, Incarnation: oldInc},
	}}})
	s.advance(30 * time.Second)
	for _, n := range nodes[:3] {
		require.NotContains(t, n.knownIDs(), d.id.String(), "%s: stale gossip must not revive a forgotten node", n.id)
		for _, at := range n.dialsTo(d.id.Address()) {
			require.True(t, at.Before(forgottenAt), "%s dialled forgotten %s at +%v after the crash", n.id, d.id, at.Sub(crashedAt))
		}
	}
	s.requireFullMesh(nodes[:3]...)

	// A new incarnation of the forgotten node is welcome again.
	d = d.restart()
	s.advance(3 * time.Second)
	s.requireFullMesh(nodes[0], nodes[1], nodes[2], d)
	for _, n := range nodes[:3] {
		require.Equal(t, []string{"up " + d.id.String(), "down " + d.id.String() + " connection_closed", "up " + d.id.String()},
			n.eventsAbout(d), "%s: the restarted node is up again", n.id)
	}
}

func TestCoreMixedHeartbeatSettingsNeverMisjudge(t *testing.T) {
	s := newSim(t)
	fastCfg := simConfig("fast")
	fastCfg.HeartbeatInterval = 300 * time.Millisecond
	slowCfg := simConfig("slow", "127.0.0.1:4001")
	slowCfg.HeartbeatInterval = 2 * time.Second
	fast := s.add(simID("fast", 4001), fastCfg)
	slow := s.add(simID("slow", 4002), slowCfg)
	mid := s.add(simID("mid", 4003), simConfig("mid", "127.0.0.1:4002"))
	all := []*simNode{fast, slow, mid}
	s.advance(60 * time.Second)
	s.requireFullMesh(all...)
	for _, n := range all {
		requireOneUpEach(t, n, all)
	}

	// Each still detects the other within its own pace: 3 × the peer's interval.
	fast.frozen = true
	frozenAt := s.now
	s.advanceUntil(2*time.Second, func() bool { return hasDown(slow, fast) && hasDown(mid, fast) }, "a frozen fast node is detected quickly")
	for _, n := range []*simNode{slow, mid} {
		ev := lastDown(t, n, fast)
		require.Equal(t, ReasonHeartbeatTimeout, ev.Reason)
		require.GreaterOrEqual(t, ev.Time.Sub(ev.Node.LastHeartbeat), 900*time.Millisecond, "%s: 3 × 300ms of silence first", n.id)
		require.LessOrEqual(t, ev.Time.Sub(frozenAt), 900*time.Millisecond+300*time.Millisecond, "%s: within 3 × 300ms + one interval", n.id)
	}
	fast.frozen = false
	s.advanceUntil(10*time.Second, func() bool { return s.fullMesh(all...) }, "fast comes back")
	s.advance(5 * time.Second)

	slow.frozen = true
	frozenAt = s.now
	fastSeen, midSeen := len(fast.events), len(mid.events)
	s.advance(4 * time.Second)
	require.False(t, hasDownSince(fast, slow, fastSeen), "fast must allow the slow node 3 × 2s, not 3 × 300ms")
	s.advanceUntil(3*time.Second, func() bool { return hasDownSince(fast, slow, fastSeen) && hasDownSince(mid, slow, midSeen) },
		"a frozen slow node is detected")
	for _, n := range []*simNode{fast, mid} {
		ev := lastDown(t, n, slow)
		require.Equal(t, ReasonHeartbeatTimeout, ev.Reason)
		require.GreaterOrEqual(t, ev.Time.Sub(ev.Node.LastHeartbeat), 6*time.Second, "%s: 3 × 2s of silence first", n.id)
		require.LessOrEqual(t, ev.Time.Sub(frozenAt), 6*time.Second+2*time.Second, "%s: within 3 × 2s + one interval", n.id)
	}
	for _, n := range all {
		requireAlternating(t, n)
	}
}

func TestCoreOneWayCutIsOneDownEachSideThenHeals(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 3)
	a, c := nodes[0], nodes[2]
	s.advance(3 * time.Second)
	// c's messages to a are lost; a's still reach c. a stops hearing c and closes the stream.
	s.cutOneWay(c, a, true)
	s.advance(10 * time.Second)
	require.Equal(t, []string{"up " + c.id.String(), "down " + c.id.String() + " heartbeat_timeout"}, a.eventsAbout(c),
		"a stops hearing c: heartbeat_timeout, once")
	require.Equal(t, []string{"up " + a.id.String(), "down " + a.id.String() + " connection_closed"}, c.eventsAbout(a),
		"c sees a close the stream: connection_closed, once")
	require.Equal(t, []string{nodes[1].id.String()}, a.connectedIDs(), "a still sees b")
	require.Equal(t, []string{nodes[1].id.String()}, c.connectedIDs(), "c still sees b")
	require.Equal(t, []string{a.id.String(), c.id.String()}, nodes[1].connectedIDs(), "b is untouched by the cut")
	s.cutOneWay(c, a, false)
	s.advanceUntil(10*time.Second, func() bool { return s.fullMesh(nodes...) }, "the link is back")
	s.advance(10 * time.Second)
	for _, n := range nodes {
		requireAlternating(t, n)
	}
	require.Len(t, a.eventsAbout(c), 3)
	require.Len(t, c.eventsAbout(a), 3)
}

func TestCoreCutOffNodeReturnsThroughItsSeed(t *testing.T) {
	// b is cut off long enough for everyone to forget it (and it them). Its seed is its way
	// back at once; the rest of the mesh follows once the tombstones that keep stale gossip
	// from reviving forgotten nodes expire.
	s := newSim(t)
	nodes := newClusterWith(s, 3, func(cfg *Config) {
		cfg.ReconnectTimeout = 10 * time.Second
		cfg.TombstoneTimeout = 30 * time.Second
	})
	a, b := nodes[0], nodes[2]
	s.advance(3 * time.Second)
	s.partition([]*simNode{b}, nodes[:2], true)
	s.advance(20 * time.Second)
	require.Empty(t, b.knownIDs(), "b should have forgotten the nodes it could not reach")
	require.NotContains(t, a.knownIDs(), b.id.String(), "a should have forgotten b")
	s.partition([]*simNode{b}, nodes[:2], false)
	s.advanceUntil(b.cfg.ReconnectMaxDelay+time.Second, func() bool { return a.core.isConnectedTo(b.id) && b.core.isConnectedTo(a.id) },
		"b should reach its seed again once the cut heals")
	s.advanceUntil(b.cfg.TombstoneTimeout+10*time.Second, func() bool { return s.fullMesh(nodes...) },
		"the full mesh should be back once the tombstones expire")
	s.advance(10 * time.Second)
	s.requireFullMesh(nodes...)
	for _, n := range nodes {
		requireAlternating(t, n)
	}
	require.Equal(t, []string{"up " + b.id.String(), "down " + b.id.String() + " heartbeat_timeout", "up " + b.id.String()}, a.eventsAbout(b))
}

func TestCoreLoneSurvivorRedialsItsSeedAndMemberWithoutFlapping(t *testing.T) {
	// b's only peer a (also its seed) restarts: b redials a as a member and, being cut off
	// from everyone, through its seed too. However the two dials land, a is up once more.
	for _, names := range [][2]string{{"aaa", "zzz"}, {"zzz", "aaa"}} {
		t.Run(names[0]+" seeds "+names[1], func(t *testing.T) {
			s := newSim(t)
			s.dialLatency = 50 * time.Millisecond // so the two dials can overlap
			a := s.add(simID(names[0], 4000), nil)
			b := s.add(simID(names[1], 4001), simConfig(names[1], "127.0.0.1:4000"))
			s.advance(3 * time.Second)
			for i := range 12 {
				a.crash()
				s.advance(time.Duration(300+i*700) * time.Millisecond)
				a = a.restart()
				s.advanceUntil(b.cfg.ReconnectMaxDelay+time.Second, func() bool { return s.fullMesh(a, b) }, "b finds a again (round %d)", i)
				s.advance(5 * time.Second)
				require.Len(t, b.core.conns, 1, "one stream remains")
			}
			requireAlternating(t, b)
			require.Len(t, b.eventsAbout(a), 25, "b: up, then a down and an up per restart: %v", b.eventsAbout(a))
		})
	}
}

func TestCoreShortStallBlamesNobody(t *testing.T) {
	// c's process stalls for half the timeout: nobody times it out, and c does not blame its
	// peers for the silence it caused itself.
	s := newSim(t)
	nodes := newCluster(s, 3)
	c := nodes[2]
	s.advance(5 * time.Second)
	for range 3 {
		c.frozen = true
		s.advance(1500 * time.Millisecond)
		c.frozen = false
		s.advance(5 * time.Second)
	}
	s.requireFullMesh(nodes...)
	for _, n := range nodes {
		requireOneUpEach(t, n, nodes)
	}
}

func TestCoreNodeThatMissedTheLeaveStopsRedialling(t *testing.T) {
	// c is cut off from d when d leaves: c sees d time out, then learns from the others'
	// views that d left, and stops redialling it, without another event.
	s := newSim(t)
	nodes := newCluster(s, 4)
	c, d := nodes[2], nodes[3]
	s.advance(3 * time.Second)
	s.partition([]*simNode{c}, []*simNode{d}, true)
	d.stop()
	for _, n := range nodes[:2] {
		require.Equal(t, []string{"up " + d.id.String(), "down " + d.id.String() + " graceful_shutdown"}, n.eventsAbout(d))
	}
	s.advance(20 * time.Second)
	require.Equal(t, []string{"up " + d.id.String(), "down " + d.id.String() + " heartbeat_timeout"}, c.eventsAbout(d),
		"c could not hear the leave: it sees d time out, once")
	require.NotContains(t, c.knownIDs(), d.id.String(), "c should learn from gossip that d left")
	since := s.now
	s.advance(30 * time.Second)
	require.Empty(t, c.dialsToSince(d.id.Address(), since), "c must stop redialling a node that left")
	require.Len(t, c.eventsAbout(d), 2, "no further events about d")
	s.requireFullMesh(nodes[:3]...)
}

func TestCoreLeaveOnTheOlderOfTwoStreamsIsAGracefulShutdown(t *testing.T) {
	// b's stream to a went silent at a; b dials a second one, which a takes, keeping the old
	// one open until b's side drops it. b leaves before a's answer on the new stream reaches
	// it, so its leave goes out on the old stream only. a must take that leave as b's word (the
	// old stream was authenticated as b, the same incarnation): b left gracefully, it did not
	// lose its connection.
	s := newSim(t)
	nodes := newCluster(s, 3)
	b, a, c := nodes[0], nodes[1], nodes[2] // b has the smaller id: a takes its new stream
	s.advance(3 * time.Second)
	old := b.streamEnd(a)
	require.NotNil(t, old, "b streams to a")
	s.cutOneWay(b, a, true)
	ma := a.core.members.get(b.id)
	s.advanceUntil(10*time.Second, func() bool { return a.core.liveStream(s.now, ma) == nil },
		"a should find b's stream silent once b's heartbeats stop reaching it")
	require.Equal(t, old.peer.id, ma.conn, "a still holds b's old stream when it finds it silent")
	s.cutOneWay(b, a, false)

	b.core.dial(s.now, b.core.members.get(a.id)) // b's second stream to a
	b.flush()
	s.runNext()      // the dial reaches a, and b's hello goes out on the new stream
	b.starved = true // a's answer on the new stream waits for b, which leaves first
	for ma.conn == old.peer.id && len(s.queue) > 0 {
		s.runNext()
	}
	require.NotEqual(t, old.peer.id, ma.conn, "a should take b's new stream")
	require.NotNil(t, a.ends[old.peer.id], "a keeps the old stream open until b drops it")

	b.starved, b.backlog = false, nil
	b.stop()
	s.advance(5 * time.Second)
	for _, n := range []*simNode{a, c} {
		require.Equal(t, []string{"up " + b.id.String(), "down " + b.id.String() + " graceful_shutdown"}, n.eventsAbout(b),
			"%s should see b leave gracefully, once", n.id)
		require.NotContains(t, n.knownIDs(), b.id.String(), "%s should not list a node that left", n.id)
	}
	require.Equal(t, c.core.viewDigest(), a.core.viewDigest(), "a and c should hold the same view")
}

func TestCoreHalfOpenStreamRecovers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		breaker  int // index of the node that sees the stream fail
		peerSees []string
	}{
		// A redial from either side is refused while the old stream looks alive to the peer
		// (a stream the peer hears on is the node: a second one claiming its id is not
		// believed), so it is let in once the peer's failure detector has closed the old one.
		{"smaller id sees the break", 0, []string{"down %s heartbeat_timeout", "up %s"}},
		{"larger id sees the break", 1, []string{"down %s heartbeat_timeout", "up %s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t)
			a := s.add(simID("aaa", 4001), nil)
			z := s.add(simID("zzz", 4002), simConfig("zzz", "127.0.0.1:4001"))
			s.advance(3 * time.Second)
			pair := []*simNode{a, z}
			breaker, peer := pair[tc.breaker], pair[1-tc.breaker]
			s.breakHalf(breaker, peer)
			require.Equal(t, []string{"up " + peer.id.String(), "down " + peer.id.String() + " connection_closed"}, breaker.eventsAbout(peer))
			s.advanceUntil(10*time.Second, func() bool { return s.fullMesh(a, z) }, "the pair reconnects")
			s.advance(10 * time.Second)
			s.requireFullMesh(a, z)
			require.Equal(t, []string{"up " + peer.id.String(), "down " + peer.id.String() + " connection_closed", "up " + peer.id.String()},
				breaker.eventsAbout(peer), "%s: down once, up once", breaker.id)
			want := []string{"up " + breaker.id.String()}
			for _, f := range tc.peerSees {
				want = append(want, fmt.Sprintf(f, breaker.id))
			}
			require.Equal(t, want, peer.eventsAbout(breaker), "%s's view of the break", peer.id)
			require.Len(t, a.core.conns, 1, "the old stream is gone on a")
			require.Len(t, z.core.conns, 1, "the old stream is gone on z")
		})
	}
}

func TestCorePartitionLongerThanTheReconnectTimeoutHeals(t *testing.T) {
	// Both sides forget each other; node00 (everyone's seed) is on the small side. The big
	// side keeps dialling the forgotten seed, and once one stream crosses, gossip probes bring
	// every other forgotten node back: the mesh heals without waiting for tombstones to expire.
	s := newSim(t)
	nodes := newClusterWith(s, 5, func(cfg *Config) {
		cfg.ReconnectTimeout = time.Minute
		cfg.TombstoneTimeout = time.Hour
	})
	left, right := nodes[:2], nodes[2:]
	s.partition(left, right, true)
	s.advance(5 * time.Minute)
	for _, n := range right {
		for _, o := range left {
			require.NotContains(t, n.knownIDs(), o.id.String(), "%s should have forgotten %s", n.id, o.id)
		}
	}
	s.partition(left, right, false)
	took := s.advanceUntil(20*time.Second, func() bool { return s.fullMesh(nodes...) },
		"a partition longer than the reconnect timeout should heal by itself")
	t.Logf("healed %v after a 5m partition with a 1m reconnect timeout", took)
	s.advance(10 * time.Second)
	s.requireFullMesh(nodes...)
	for _, n := range nodes {
		requireAlternating(t, n)
	}
}

func TestCoreForgetsANodeWhoseRedialsHangAtTheReconnectTimeout(t *testing.T) {
	s := newSim(t)
	nodes := newClusterWith(s, 3, func(cfg *Config) { cfg.ReconnectTimeout = 10 * time.Second })
	a, d := nodes[0], nodes[2]
	s.advance(2 * time.Second)
	// d's machine stops answering: a's redials of d get no answer and fail only at their
	// timeout (up to four timeouts once some failed), one after another.
	s.hangDials([]*simNode{a}, []*simNode{d}, true)
	d.crash()
	crashedAt := s.now
	s.advance(9 * time.Second)
	require.Contains(t, a.knownIDs(), d.id.String(), "%s should still know %s before the reconnect timeout", a.id, d.id)
	s.advance(900 * time.Millisecond)
	m := a.core.members.get(d.id)
	require.True(t, m != nil && m.dial != 0, "the test needs a redial of %s in flight when it comes due for forgetting", d.id)
	s.advance(100*time.Millisecond + a.core.cfg.HeartbeatInterval)
	require.NotContains(t, a.knownIDs(), d.id.String(),
		"%s should forget %s at the reconnect timeout, its redial in flight or not", a.id, d.id)
	require.Equal(t, []string{"up " + d.id.String(), "down " + d.id.String() + " connection_closed"}, a.eventsAbout(d),
		"%s: forgetting is silent", a.id)
	s.advance(30 * time.Second)
	require.Empty(t, a.dialsToSince(d.id.Address(), crashedAt.Add(11*time.Second)), "%s redialled forgotten %s", a.id, d.id)
}

// A stream whose peer's message was read and waits in the node's inbox is not silent: on a
// busy node a batch of the inbox runs the tick between two messages, and a heartbeat further
// on in the batch must not let the tick time its stream out. Once nothing waits any more,
// the silence counts again.
func TestCoreStreamWithAMessageWaitingInTheInboxIsNotTimedOut(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 3)
	a, c := nodes[0], nodes[2]
	s.advance(5 * time.Second)
	end := a.streamEnd(c)
	require.NotNil(t, end, "a should stream to c")
	c.frozen = true
	a.core.waiting = map[connID]struct{}{end.id: {}}
	s.advance(6 * time.Second)
	require.False(t, hasDown(a, c), "a must not time c out while a message of c's waits in its inbox; log: %v", a.eventLog())

	a.core.waiting = nil
	s.advanceUntil(5*time.Second, func() bool { return hasDown(a, c) },
		"a should time c out within a timeout and an interval once nothing of c's waits")
	require.Equal(t, ReasonHeartbeatTimeout, lastDown(t, a, c).Reason)
}

// TestCoreFullMeshAllowsTheSilenceOfAHeartbeatTCPRetransmitsOnALossyLink holds back the
// heartbeats of one stream of a 5-node full mesh as TCP does on a lossy link, where a lost
// segment holds up everything behind it until it is retransmitted: once for 0.9 s (lost
// twice), and 5 s later for 2.3 s (lost three times, retried after doubling timeouts), a
// silence of about 3.3 s, past the timeout of 3 s. The observer must not report the live
// sender down: it saw that link's heartbeats come late and allows the silence that much
// longer. A real silence on the same link is still reported, that much later.
func TestCoreFullMeshAllowsTheSilenceOfAHeartbeatTCPRetransmitsOnALossyLink(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 5)
	s.advance(5 * time.Second)
	s.requireFullMesh(nodes...)
	observer, sender := nodes[0], nodes[1]
	require.False(t, observer.core.overlay(), "five nodes with the default monitors are a full mesh")

	var holdUntil time.Time
	var nextHold time.Duration // the next heartbeat sender→observer starts a hold this long
	s.delay = func(from, to *simNode, msg *Message) time.Duration {
		if from != sender || to != observer {
			return 0
		}
		if s.now.Before(holdUntil) {
			return holdUntil.Sub(s.now) // behind the segment being retransmitted
		}
		if nextHold > 0 && msg.Heartbeat != nil {
			holdUntil, nextHold = s.now.Add(nextHold), 0
			return holdUntil.Sub(s.now)
		}
		return 0
	}
	nextHold = 900 * time.Millisecond
	s.advance(5 * time.Second)
	nextHold = 2300 * time.Millisecond
	s.advance(10 * time.Second)
	require.Zero(t, nextHold, "the sender should have sent the heartbeat held back")
	require.Empty(t, observer.downs(), "a heartbeat held back by retransmissions, on a link whose heartbeats came late before, is no silence")
	info, ok := observer.info(sender)
	require.True(t, ok && info.Status == StatusConnected, "the observer should still hold the sender connected: %+v", info)

	// Two windows later the 2.3 s are forgotten; the link is lossy still.
	s.advance(2 * observer.core.lateWindow())
	nextHold = 900 * time.Millisecond
	s.advance(5 * time.Second)
	frozenAt := s.now
	sender.frozen = true
	s.advanceUntil(10*time.Second, func() bool {
		return slices.Contains(observer.downs(), "down "+sender.id.String()+" heartbeat_timeout")
	}, "the observer should report the frozen sender down")
	down := lastDown(t, observer, sender)
	took := down.Time.Sub(frozenAt)
	limit := time.Duration(observer.cfg.HeartbeatMissThreshold) * observer.cfg.HeartbeatInterval
	require.GreaterOrEqual(t, down.Time.Sub(down.Node.LastHeartbeat), limit+800*time.Millisecond,
		"a silence on a link whose heartbeats came 0.9 s late should be allowed about that much more")
	require.LessOrEqual(t, took, limit+900*time.Millisecond+observer.cfg.HeartbeatInterval,
		"a real silence is reported at the timeout plus the lateness seen (0.9 s), within an interval")
}
