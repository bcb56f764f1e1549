package membership

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// simID returns the id "name@127.0.0.1:port".
func simID(name string, port int) string {
	return fmt.Sprintf("%s@127.0.0.1:%d", name, port)
}

// newCluster starts count nodes named node00, node01, … on ports 4000, 4001, …, all seeded
// with the plain address of the first, and lets them converge.
func newCluster(s *sim, count int) []*simNode {
	return newClusterWith(s, count, nil)
}

// newClusterWith is newCluster with every node's configuration passed through change first.
func newClusterWith(s *sim, count int, change func(cfg *Config)) []*simNode {
	nodes := make([]*simNode, count)
	for i := range count {
		name := fmt.Sprintf("node%02d", i)
		cfg := simConfig(name)
		if i > 0 {
			cfg.Seeds = []string{"127.0.0.1:4000"}
		}
		if change != nil {
			change(cfg)
		}
		nodes[i] = s.add(simID(name, 4000+i), cfg)
	}
	s.advance(2 * time.Second)
	s.requireFullMesh(nodes...)
	return nodes
}

// requireOneUpEach asserts n got exactly one node_up for every other node of nodes and no
// node_down at all.
func requireOneUpEach(t *testing.T, n *simNode, nodes []*simNode) {
	t.Helper()
	require.Empty(t, n.downs(), "%s should have seen no node going down", n.id)
	for _, o := range nodes {
		if o == n {
			continue
		}
		require.Equal(t, []string{"up " + o.id.String()}, n.eventsAbout(o),
			"%s should have got exactly one node_up for %s", n.id, o.id)
	}
	require.Len(t, n.events, len(nodes)-1, "%s: one event per other node, no more", n.id)
}

// keepFullMesh configures a node to stay a full mesh at any size (Monitors 0).
func keepFullMesh(cfg *Config) { cfg.Monitors = 0 }

func TestCoreJoin32NodesThroughOneSeed(t *testing.T) {
	s := newSim(t)
	nodes := newClusterWith(s, 32, keepFullMesh)
	s.advance(10 * time.Second)
	s.requireFullMesh(nodes...)
	for _, n := range nodes {
		requireOneUpEach(t, n, nodes)
		require.Len(t, n.core.conns, 31, "%s: exactly one stream per pair, no leftovers", n.id)
	}
}

func TestCoreJoinConvergesWithoutWaitingForAHeartbeat(t *testing.T) {
	for _, name := range []string{"aaa", "mmm", "zzz"} { // smallest, middle, largest id
		t.Run(name, func(t *testing.T) {
			s := newSim(t)
			nodes := newCluster(s, 8)
			s.advance(5 * time.Second) // well converged, heartbeats flowing
			start := s.now

			joiner := s.add(simID(name, 4100), simConfig(name, "127.0.0.1:4003"))
			all := append(nodes, joiner)
			took := s.advanceUntil(time.Second, func() bool { return s.fullMesh(all...) },
				"every node should list %s connected", joiner.id)
			require.Zero(t, took, "the join should complete within the handshake round trips, with no time passing")
			require.Equal(t, start, s.now)
			for _, n := range nodes {
				require.Equal(t, []string{"up " + joiner.id.String()}, n.eventsAbout(joiner), "%s: one node_up for the joiner", n.id)
			}
			requireOneUpEach(t, joiner, all)
		})
	}
}

func TestCoreJoinLargerIDWaitsAtMostDialGrace(t *testing.T) {
	// a never hears of z (the seed's push to a is lost), so the pair a–z depends on z, the
	// larger id, dialling a once its grace period is over.
	s := newSim(t)
	seed := s.add(simID("mmm", 4000), nil)
	a := s.add(simID("aaa", 4001), simConfig("aaa", "127.0.0.1:4000"))
	s.advance(2 * time.Second)
	s.drop = func(from, to *simNode, msg *Message) bool {
		return from == seed && to == a && msg.Update != nil
	}
	z := s.add(simID("zzz", 4002), simConfig("zzz", "127.0.0.1:4000"))
	require.NotContains(t, a.connectedIDs(), z.id.String(), "a should not know z yet: the push was dropped")
	grace := z.core.dialGrace()
	took := s.advanceUntil(2*grace, func() bool { return s.fullMesh(seed, a, z) }, "a and z should connect")
	t.Logf("a and z connected after %v (dial grace %v)", took, grace)
	require.Positive(t, took, "scenario check: only z's delayed dial can connect the pair")
	require.LessOrEqual(t, took, grace+10*time.Millisecond, "the larger id should dial within its dial grace (%v)", grace)
	requireOneUpEach(t, a, []*simNode{seed, a, z})
	requireOneUpEach(t, z, []*simNode{seed, a, z})
}

func TestCoreSimultaneousDialKeepsOneStream(t *testing.T) {
	for _, order := range []string{"a first", "b first"} {
		t.Run(order, func(t *testing.T) {
			s := newSim(t)
			a := s.create(simID("a", 4001), simConfig("a", simID("b", 4002)))
			b := s.create(simID("b", 4002), simConfig("b", simID("a", 4001)))
			if order == "a first" {
				a.boot()
				b.boot()
			} else {
				b.boot()
				a.boot()
			}
			s.settle()
			s.requireFullMesh(a, b)
			s.advance(10 * time.Second)
			s.requireFullMesh(a, b)
			require.Equal(t, []string{"up " + b.id.String()}, a.eventLog(), "a: exactly one node_up, no down")
			require.Equal(t, []string{"up " + a.id.String()}, b.eventLog(), "b: exactly one node_up, no down")
			require.Len(t, a.core.conns, 1, "a should keep exactly one stream")
			require.Len(t, b.core.conns, 1, "b should keep exactly one stream")
			require.Len(t, a.ends, 1)
			require.Same(t, a.streamEnd(b).peer, b.streamEnd(a), "both sides should use the same stream")
		})
	}
}

func TestCoreConnectionRefusedSeedThenJoins(t *testing.T) {
	s := newSim(t)
	a := s.add(simID("a", 4001), simConfig("a", simID("b", 4002)))
	require.Equal(t, []string{"down " + simID("b", 4002) + " connection_refused"}, a.eventLog(),
		"a should report its seed refused once")
	s.advance(20 * time.Second)
	require.Equal(t, []string{"down " + simID("b", 4002) + " connection_refused"}, a.eventLog(),
		"redials of a node already down emit nothing")
	require.Greater(t, len(a.dialsTo("127.0.0.1:4002")), 3, "a should keep redialling its seed")
	require.Empty(t, a.connectedIDs())

	b := s.add(simID("b", 4002), nil)
	s.advanceUntil(a.cfg.ReconnectMaxDelay+time.Second, func() bool { return s.fullMesh(a, b) },
		"a should join b once b runs")
	s.advance(5 * time.Second)
	require.Equal(t, []string{"down " + b.id.String() + " connection_refused", "up " + b.id.String()}, a.eventLog())
	require.Equal(t, []string{"up " + a.id.String()}, b.eventLog())
}

func TestCoreLocalIDNeverListed(t *testing.T) {
	s := newSim(t)
	s.aliases["localhost:4001"] = "127.0.0.1:4001"
	self := simID("a", 4001)
	a := s.add(self, simConfig("a", self, "127.0.0.1:4001", "other@127.0.0.1:4001", "localhost:4001"))
	s.advance(3 * time.Second)
	require.Empty(t, a.knownIDs(), "a node seeded with its own address should know nobody")
	require.Empty(t, a.events)
	require.Len(t, a.dialsTo("localhost:4001"), 1, "a seed that turned out to be the node itself is not dialled again")
	require.Empty(t, a.dialsTo("127.0.0.1:4001"), "a seed with the node's own address is never dialled")

	b := s.add(simID("b", 4002), simConfig("b", self, "localhost:4001"))
	c := s.add(simID("c", 4003), simConfig("c", "127.0.0.1:4002", simID("c", 4003)))
	s.advance(3 * time.Second)
	s.requireFullMesh(a, b, c)
	for _, n := range []*simNode{a, b, c} {
		require.NotContains(t, n.knownIDs(), n.id.String(), "%s should never list itself", n.id)
		for _, e := range n.events {
			require.NotEqual(t, n.id, e.Node.ID, "%s should never report an event about itself", n.id)
		}
	}
	// Gossip naming the local node changes nothing either.
	s.inject(b, a, &Message{Update: &Update{Full: true, Entries: []MemberEntry{{ID: a.id, Incarnation: a.core.incarnation + 7}}}})
	s.advance(2 * time.Second)
	require.NotContains(t, a.knownIDs(), a.id.String())
	s.requireFullMesh(a, b, c)
}

func TestCoreSeedReachedTwiceAtOnceIsOneUp(t *testing.T) {
	// A node that reaches the same peer over two streams at once (the seed listed by address
	// and by id, or under two addresses) must see it up once, never down.
	cases := map[string]struct {
		dialer, seed string
		aliases      bool // seeds: two addresses of the seed, else its address and its id
	}{
		"smaller dials, address and id": {"aaa", "zzz", false},
		"larger dials, address and id":  {"zzz", "aaa", false},
		"smaller dials, two addresses":  {"aaa", "zzz", true},
		"larger dials, two addresses":   {"zzz", "aaa", true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := newSim(t)
			s.aliases["seed.local:4000"] = "127.0.0.1:4000"
			seeds := []string{"127.0.0.1:4000", tc.seed + "@127.0.0.1:4000"}
			if tc.aliases {
				seeds = []string{"127.0.0.1:4000", "seed.local:4000"}
			}
			seed := s.add(simID(tc.seed, 4000), nil)
			dialer := s.add(simID(tc.dialer, 4001), simConfig(tc.dialer, seeds...))
			s.advance(10 * time.Second)
			s.requireFullMesh(seed, dialer)
			require.Equal(t, []string{"up " + seed.id.String()}, dialer.eventLog(), "the dialler sees its seed up once")
			require.Equal(t, []string{"up " + dialer.id.String()}, seed.eventLog(), "the seed sees the dialler up once")
			require.Len(t, dialer.core.conns, 1, "one stream remains")
			require.Len(t, seed.core.conns, 1, "one stream remains")
		})
	}
}

func TestCoreAcceptedStreamIsUpOnlyOnceTheDiallerConfirms(t *testing.T) {
	// b dials a; a answers b's hello, then b dies before its first heartbeat reaches a (in
	// real life: a handled the hello late, after b had given up). a must report nothing.
	s := newSim(t)
	a := s.add("a@127.0.0.1:4001", nil)
	b := s.create("b@127.0.0.1:4002", simConfig("b", "a@127.0.0.1:4001"))
	b.boot()
	for step := 0; ; step++ {
		require.Less(t, step, 100, "a never answered b's hello")
		if answered := slices.ContainsFunc(slices.Collect(maps.Values(a.core.conns)), func(pc *peerConn) bool { return pc.handshaken() }); answered {
			break
		}
		task := s.queue[0]
		s.queue = s.queue[1:]
		task.f()
	}
	require.Empty(t, a.eventLog(), "a hello alone does not bring a node up")
	b.crash()
	s.advance(5 * time.Second)
	require.Empty(t, a.eventLog(), "a stream that died unconfirmed reports nothing: no up, no down")
	require.NotContains(t, a.knownIDs(), b.id.String(), "a node known only through that stream is dropped")
}

func TestCoreFormationAtOnceDialsInWaves(t *testing.T) {
	// 48 nodes boot at the same instant through one seed: every node learns the whole
	// cluster at once, yet never has more than maxConcurrentDials dials in flight, and the
	// mesh forms with no down at all.
	s := newSim(t)
	s.dialLatency = 30 * time.Millisecond // dials take time, so they overlap
	var nodes []*simNode
	for i := range 48 {
		cfg := simConfig(fmt.Sprintf("node%02d", i))
		if i > 0 {
			cfg.Seeds = []string{"127.0.0.1:4000"}
		}
		nodes = append(nodes, s.create(simID(fmt.Sprintf("node%02d", i), 4000+i), cfg))
	}
	for _, n := range nodes {
		n.boot()
	}
	peak := 0
	took := s.advanceUntil(30*time.Second, func() bool {
		for _, n := range nodes {
			peak = max(peak, n.core.dialsInFlight())
		}
		return s.fullMesh(nodes...)
	}, "48 nodes started at once should form a full mesh")
	t.Logf("formed in %v of simulated time; at most %d dials in flight on one node", took, peak)
	require.LessOrEqual(t, peak, maxConcurrentDials)
	for _, n := range nodes {
		require.Empty(t, n.downs(), "%s: no down during the formation", n.id)
	}
}

// hellosSince returns the hellos n sent to peer from since on.
func hellosSince(n, peer *simNode, since time.Time) []*Hello {
	return sentTo(n, peer, since, func(m *Message) *Hello { return m.Hello })
}

// fullUpdatesSince returns the whole views n sent to peer as updates from since on.
func fullUpdatesSince(n, peer *simNode, since time.Time) []*Update {
	return sentTo(n, peer, since, func(m *Message) *Update {
		if m.Update != nil && m.Update.Full {
			return m.Update
		}
		return nil
	})
}

func TestCoreHandshakeCarriesViewsOnlyToAPeerThatLacksThem(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 5)
	a, b := nodes[1], nodes[2] // a has the smaller id: it dials b again at once

	// A stream between two nodes that know the same cluster: both prove it with their
	// digests, and no view goes either way.
	since := s.now
	s.breakStream(a, b)
	s.advance(2 * time.Second)
	s.requireFullMesh(nodes...)
	fromA, fromB := hellosSince(a, b, since), hellosSince(b, a, since)
	require.Len(t, fromA, 1, "%s should have dialled %s again with one hello", a.id, b.id)
	require.Len(t, fromB, 1, "%s should have answered %s's dial with one hello", b.id, a.id)
	require.NotZero(t, fromA[0].ViewDigest, "the dialler's hello carries its view digest")
	require.Equal(t, fromA[0].ViewDigest, fromB[0].ViewDigest, "both nodes know the same cluster")
	require.Empty(t, fromA[0].View, "the dialler sends only its digest")
	require.Empty(t, fromB[0].View, "the accepting side's view would tell the dialler nothing new")
	require.Empty(t, fullUpdatesSince(a, b, since), "the accepting side lacks nothing: no view follows")

	// A joiner knows only itself: the seed's hello lists the whole cluster, and its digest is
	// that of the cluster with the joiner, which the seed learns from the joiner's hello. No
	// other view goes either way while the joiner meets every member: each of them knows the
	// joiner's cluster once it knows the joiner.
	since = s.now
	joiner := s.add(simID("joiner", 4100), simConfig("joiner", "127.0.0.1:4000"))
	seedHellos := hellosSince(nodes[0], joiner, since)
	require.Len(t, seedHellos, 1, "the seed should answer the joiner's dial with one hello")
	require.Len(t, seedHellos[0].View, len(nodes)-1, "the seed's hello lists every node but itself")
	s.advance(2 * time.Second)
	s.requireFullMesh(append(nodes, joiner)...)
	require.Equal(t, joiner.core.viewDigest(), seedHellos[0].ViewDigest,
		"the seed's hello gives the digest of its view with the joiner in it")
	for _, n := range nodes {
		require.Empty(t, fullUpdatesSince(joiner, n, since), "the joiner should send %s no view", n.id)
		require.Empty(t, fullUpdatesSince(n, joiner, since), "%s should send the joiner no view", n.id)
		if n != nodes[0] {
			for _, h := range append(hellosSince(n, joiner, since), hellosSince(joiner, n, since)...) {
				require.Empty(t, h.View, "a hello between %s and the joiner should carry no view", n.id)
			}
		}
	}
}

// TestCoreHandshakeStillSendsWhatTheAcceptingSideLacks checks that a node that learned of
// a newcomer the other side of a handshake does not know passes it on.
func TestCoreHandshakeStillSendsWhatTheAcceptingSideLacks(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 2)
	a, b := nodes[0], nodes[1]
	s.partition([]*simNode{a}, []*simNode{b}, true)
	newcomer := s.create(simID("newcomer", 4100), simConfig("newcomer", a.id.Address()))
	s.partition([]*simNode{b}, []*simNode{newcomer}, true) // b can hear of it only from a
	newcomer.start()
	s.advanceUntil(5*time.Second, func() bool { return a.core.members.get(newcomer.id) != nil }, "a should meet the newcomer")
	require.Nil(t, b.core.members.get(newcomer.id), "b has not heard of the newcomer")

	since := s.now
	s.partition([]*simNode{a}, []*simNode{b}, false)
	s.advanceUntil(30*time.Second, func() bool { return b.core.members.get(newcomer.id) != nil },
		"b should learn of the newcomer from a once the two meet again")
	var views int
	for _, h := range append(hellosSince(a, b, since), hellosSince(b, a, since)...) {
		if len(h.View) > 0 {
			views++
		}
	}
	views += len(fullUpdatesSince(a, b, since)) + len(fullUpdatesSince(b, a, since))
	require.NotZero(t, views, "a view should go between a and b in their handshake")
}

func TestCoreLargerIDGraceGrowsWithTheTable(t *testing.T) {
	// z learns a (a smaller id) while its table is small, then learns many more nodes, as in
	// a formation. The smaller ids have the whole table to dial, so z's grace for a is sized
	// by the table when the dial comes due, not by the table when a was learned.
	start := time.Unix(1_700_000_000, 0)
	z := newCore(MustParseNodeID(simID("zzz", 4002)), 1, fullMeshConfig("zzz"), start, rand.New(rand.NewPCG(1, 1)), nil)
	z.start(start)
	z.takeOutputs()
	a := MustParseNodeID(simID("aaa", 4001))
	z.mergeAlive(start, MemberEntry{ID: a, Incarnation: 1})
	firstGrace := z.dialGrace()
	for i := range 3 * dialGraceWave {
		z.mergeAlive(start, MemberEntry{ID: MustParseNodeID(simID(fmt.Sprintf("b%02d", i), 5000+i)), Incarnation: 1})
	}
	grownGrace := z.dialGrace()
	require.Greater(t, grownGrace, firstGrace+time.Second, "scenario check: the grace should grow with the table")
	dialsTo := func(now time.Time) []string {
		z.tick(now)
		var addrs []string
		for _, o := range z.takeOutputs() {
			if o.kind == outDial {
				addrs = append(addrs, o.addr)
			}
		}
		return addrs
	}
	require.NotContains(t, dialsTo(start.Add(firstGrace)), a.Address(),
		"z should still wait for a's dial once the grace sized by its first, small table is over")
	require.NotContains(t, dialsTo(start.Add(grownGrace-time.Millisecond)), a.Address(),
		"z should wait for a's dial until the grace sized by its grown table (%v) is over", grownGrace)
	require.Contains(t, dialsTo(start.Add(grownGrace)), a.Address(),
		"z should dial a itself once the grown grace (%v) is over", grownGrace)
}

func TestCoreDialGraceIsCapped(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	grace := func(cfg *Config) time.Duration {
		z := newCore(MustParseNodeID(simID("zzz", 4002)), 1, cfg, start, rand.New(rand.NewPCG(1, 1)), nil)
		z.start(start)
		for i := range 2000 {
			z.mergeAlive(start, MemberEntry{ID: MustParseNodeID(simID(fmt.Sprintf("b%04d", i), 10000+i)), Incarnation: 1})
		}
		return z.dialGrace()
	}
	require.Equal(t, maxDialGrace, grace(fullMeshConfig("zzz")), "a full mesh of 2000 members should not push the grace past maxDialGrace")
	overlay := simConfig("zzz")
	require.Equal(t, time.Second, grace(overlay),
		"in the overlay the smaller id dials its 2K = %d neighbours, not the table: two waves of half an interval", 2*overlay.Monitors)
}

// fullMeshConfig is simConfig for a node that stays a full mesh at any size.
func fullMeshConfig(name string, seeds ...string) *Config {
	cfg := simConfig(name, seeds...)
	keepFullMesh(cfg)
	return cfg
}

// TestDialWhoseConnectionTookMostOfTheDialTimeoutStillGetsTimeForTheHellos opens a stream
// after 4.5 s of the 5 s DialTimeout (a loaded machine, where connecting and authenticating
// take that long) and then keeps the dialler from running for 1.5 s: the hellos still have
// HandshakeTimeout from the moment the stream opened, so the join completes instead of
// timing out in its last step and starting over.
func TestDialWhoseConnectionTookMostOfTheDialTimeoutStillGetsTimeForTheHellos(t *testing.T) {
	s := newSim(t)
	seed := s.add(simID("seed", 4000), simConfig("seed"))
	s.dialLatency = 4500 * time.Millisecond
	joiner := s.create(simID("joiner", 4001), simConfig("joiner", seed.id.String()))
	require.Equal(t, 5*time.Second, joiner.cfg.DialTimeout)
	joiner.start()
	// The stream opens at 4.5 s, and the seed's hello then waits for the joiner to run again.
	s.after(4500*time.Millisecond, func() { joiner.starved = true })
	s.advance(6 * time.Second)
	require.Empty(t, joiner.connectedIDs(), "the joiner has not run since its stream opened")
	s.feedTimerFirst(joiner) // its timer first: the dial's deadline is checked before the hello is read
	s.settle()
	require.Equal(t, []string{seed.id.String()}, joiner.connectedIDs(), "the join should complete, the hellos within HandshakeTimeout of the stream opening")
	require.Equal(t, []string{joiner.id.String()}, seed.connectedIDs())
	require.Len(t, joiner.dialsTo(seed.id.Address()), 1, "one dial was enough")
}

// TestAcceptingSideWaitsLongerAfterItsHandshakesTimedOut: on a machine so loaded that a
// dialler's hello reaches the seed 6 s after its stream opened, the first try times out at
// the seed's usual HandshakeTimeout (5 s). The seed then waits twice as long, as the dialler
// does after a failed dial, and the next try completes; with the usual timeout on the
// accepting side every try would fail, however patient the dialler. A prompt handshake
// brings the usual timeout back.
func TestAcceptingSideWaitsLongerAfterItsHandshakesTimedOut(t *testing.T) {
	s := newSim(t)
	seed := s.add(simID("seed", 4000), simConfig("seed"))
	late := map[string]bool{}
	s.delay = func(from, to *simNode, msg *Message) time.Duration {
		if msg.Hello != nil && to == seed && late[from.id.String()] {
			return 6 * time.Second
		}
		return 0
	}
	inboundTimeouts := func() int {
		n := 0
		for _, l := range seed.logs {
			if l.text == "handshake timed out" && slices.Contains(l.attrs, any(false)) {
				n++
			}
		}
		return n
	}
	joined := func(n *simNode) func() bool {
		return func() bool {
			return slices.Contains(seed.connectedIDs(), n.id.String()) && slices.Contains(n.connectedIDs(), seed.id.String())
		}
	}

	first := s.create(simID("first", 4001), simConfig("first", seed.id.String()))
	late[first.id.String()] = true
	first.start()
	s.advanceUntil(time.Minute, joined(first), "a dialler whose hello takes 6 s should join once the seed waits longer")
	require.Equal(t, 1, inboundTimeouts(), "the first try timed out at the seed's usual timeout, and only that one")
	require.Len(t, first.dialsTo(seed.id.Address()), 2, "the second dial was enough")

	prompt := s.add(simID("prompt", 4002), simConfig("prompt", seed.id.String()))
	s.advanceUntil(10*time.Second, joined(prompt), "a prompt dialler joins at once")

	second := s.create(simID("second", 4003), simConfig("second", seed.id.String()))
	late[second.id.String()] = true
	second.start()
	s.advanceUntil(time.Minute, joined(second), "the next late dialler joins as the first did")
	require.Equal(t, 2, inboundTimeouts(), "after the prompt handshake the seed was back to its usual timeout: the late dialler's first try timed out again")
}
