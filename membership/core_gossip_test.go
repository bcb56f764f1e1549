package membership

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// heartbeatsTo returns the heartbeats n sent to peer from since on.
func heartbeatsTo(n, peer *simNode, since time.Time) []*Heartbeat {
	return sentTo(n, peer, since, func(m *Message) *Heartbeat { return m.Heartbeat })
}

// sentTo returns what pick finds (non-nil) in the messages n sent to peer from since on.
func sentTo[T any](n, peer *simNode, since time.Time, pick func(*Message) *T) []*T {
	var out []*T
	for _, m := range n.sent {
		if m.to != peer || m.at.Before(since) {
			continue
		}
		if v := pick(m.msg); v != nil {
			out = append(out, v)
		}
	}
	return out
}

// sentSince returns the messages n sent from since on.
func sentSince(n *simNode, since time.Time) []simSent {
	var out []simSent
	for _, m := range n.sent {
		if !m.at.Before(since) {
			out = append(out, m)
		}
	}
	return out
}

func TestCoreAttributesReachEveryPeerWithTheNextHeartbeat(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 4)
	a := nodes[0]
	s.advance(5 * time.Second)
	for _, peer := range nodes[1:] {
		for _, hb := range heartbeatsTo(a, peer, time.Time{}) {
			require.Nil(t, hb.Attributes, "a heartbeat to %s repeats attributes the handshake already carried", peer.id)
		}
	}

	changedAt := s.now
	a.core.setAttributes(s.now, 5, map[string]string{"role": "db"})
	took := s.advanceUntil(a.cfg.HeartbeatInterval+10*time.Millisecond, func() bool {
		for _, peer := range nodes[1:] {
			info, _ := peer.info(a)
			if info.ProcessCount != 5 || info.Metadata["role"] != "db" {
				return false
			}
		}
		return true
	}, "every peer should see a's new process count and metadata with its next heartbeat")
	t.Logf("attributes spread in %v", took)

	s.advance(5 * time.Second)
	for _, peer := range nodes[1:] {
		hbs := heartbeatsTo(a, peer, changedAt)
		require.GreaterOrEqual(t, len(hbs), 5)
		require.NotNil(t, hbs[0].Attributes, "the first heartbeat to %s after the change carries the attributes", peer.id)
		require.Equal(t, map[string]string{"role": "db"}, hbs[0].Attributes.Metadata)
		require.Equal(t, 5, hbs[0].ProcessCount)
		for i, hb := range hbs[1:] {
			require.Nil(t, hb.Attributes, "heartbeat %d to %s repeats unchanged attributes", i+1, peer.id)
			require.Equal(t, 5, hb.ProcessCount)
		}
	}

	// A process-count-only change (SetProcessCount) spreads the same way.
	changedAt = s.now
	a.core.setAttributes(s.now, 9, map[string]string{"role": "db"})
	s.advance(a.cfg.HeartbeatInterval + 10*time.Millisecond)
	for _, peer := range nodes[1:] {
		info, _ := peer.info(a)
		require.Equal(t, 9, info.ProcessCount, "%s should see the new process count", peer.id)
		require.Equal(t, map[string]string{"role": "db"}, info.Metadata)
		require.NotNil(t, heartbeatsTo(a, peer, changedAt)[0].Attributes)
	}
	// A node joining later gets the current attributes in the handshake.
	late := s.add(simID("late", 4100), simConfig("late", "127.0.0.1:4001"))
	info, _ := late.info(a)
	require.Equal(t, 9, info.ProcessCount)
	require.Equal(t, map[string]string{"role": "db"}, info.Metadata)
}

func TestCoreDigestMismatchSyncsTheView(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	s.advance(5 * time.Second)
	// Only a learns of ghost (a node that is not running): nothing is pushed to b or c.
	ghost := MustParseNodeID(simID("ghost", 4999))
	a.core.merge(s.now, 0, []MemberEntry{{ID: ghost, Incarnation: 42}}, 0)
	a.core.runDials(s.now)
	a.flush()
	s.settle()
	require.Contains(t, a.knownIDs(), ghost.String())
	require.NotContains(t, b.knownIDs(), ghost.String())
	require.NotEqual(t, a.core.viewDigest(), b.core.viewDigest())

	took := s.advanceUntil(4*a.cfg.HeartbeatInterval, func() bool {
		return slices.Contains(b.knownIDs(), ghost.String()) && slices.Contains(c.knownIDs(), ghost.String())
	}, "b and c should learn of ghost from the digest mismatch within a few heartbeats")
	t.Logf("view synced in %v", took)
	require.Equal(t, a.core.viewDigest(), b.core.viewDigest())
	require.Equal(t, a.core.viewDigest(), c.core.viewDigest())

	// Converged: no more view traffic.
	s.advance(5 * time.Second)
	for _, n := range nodes {
		require.Equal(t, []string{"down " + ghost.String() + " connection_refused"}, n.eventsAboutID(ghost),
			"%s should report the unreachable node refused once", n.id)
	}
	since := s.now
	s.advance(20 * time.Second)
	for _, n := range nodes {
		for _, m := range sentSince(n, since) {
			require.Nil(t, m.msg.Update, "%s keeps sending view updates after convergence", n.id)
		}
	}
	s.requireFullMesh(nodes...)
}

func TestCoreSteadyStateHeartbeatDoesNotGrowWithClusterSize(t *testing.T) {
	measure := func(count int) (maxSize int, perStreamPerSecond float64) {
		s := newSim(t)
		nodes := newClusterWith(s, count, keepFullMesh) // one stream per pair at every size
		s.advance(5 * time.Second)
		since := s.now
		s.advance(10 * time.Second)
		msgs := 0
		for _, n := range nodes {
			for _, m := range sentSince(n, since) {
				require.NotNil(t, m.msg.Heartbeat, "%d nodes: %s sent a non-heartbeat message in steady state: %+v", count, n.id, m.msg)
				require.Nil(t, m.msg.Heartbeat.Attributes, "unchanged attributes must not ride on heartbeats")
				hb := *m.msg.Heartbeat
				hb.ViewDigest = 0 // a fixed-width hash; its decimal text length varies
				raw, err := json.Marshal(hb)
				require.NoError(t, err)
				maxSize = max(maxSize, len(raw))
				msgs++
			}
		}
		streams := count * (count - 1)
		return maxSize, float64(msgs) / float64(streams) / 10
	}
	small, smallRate := measure(3)
	large, largeRate := measure(24)
	require.Equal(t, small, large, "a steady-state heartbeat must be the same size in a 3-node and a 24-node cluster")
	for _, rate := range []float64{smallRate, largeRate} {
		require.InDelta(t, 1.0, rate, 0.06, "about one heartbeat per stream per interval")
	}
}

func TestCoreHeartbeatsOfAStreamGoInStep(t *testing.T) {
	// Each heartbeat is answered by the other side's, due anyway, so the TCP acknowledgement of
	// one rides on the other: in steady state both directions of a stream send at the same
	// instants, and neither sends more than one heartbeat per interval.
	s := newSim(t)
	nodes := newCluster(s, 6)
	s.advance(5 * time.Second)
	since := s.now
	s.advance(20 * time.Second)
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			at := func(from, to *simNode) map[time.Time]bool {
				out := map[time.Time]bool{}
				for _, m := range sentSince(from, since) {
					if m.to == to && m.msg.Heartbeat != nil {
						out[m.at] = true
					}
				}
				return out
			}
			ab, ba := at(a, b), at(b, a)
			require.InDelta(t, 20, len(ab), 1.5, "%s → %s: one heartbeat per interval", a.id, b.id)
			require.InDelta(t, 20, len(ba), 1.5, "%s → %s: one heartbeat per interval", b.id, a.id)
			inStep := 0
			for ts := range ab {
				if ba[ts] {
					inStep++
				}
			}
			require.GreaterOrEqual(t, inStep, len(ab)-1, "%s and %s should answer each other's heartbeats (%d of %d in step)", a.id, b.id, inStep, len(ab))
		}
	}
}

func TestCoreIdentityIsBoundToTheStream(t *testing.T) {
	cases := map[string]func(b, c *simNode) *Message{
		"heartbeat for another node": func(b, c *simNode) *Message {
			return &Message{Heartbeat: &Heartbeat{ID: c.id, AttributesVersion: 1}}
		},
		"leave for another node": func(b, c *simNode) *Message {
			return &Message{Leave: &Leave{ID: c.id, Incarnation: c.core.incarnation}}
		},
		"second hello as another node": func(b, c *simNode) *Message {
			return &Message{Hello: c.core.hello(b.s.now, &Hello{ID: b.id, Incarnation: b.core.incarnation})}
		},
	}
	for name, craft := range cases {
		t.Run(name, func(t *testing.T) {
			s := newSim(t)
			nodes := newCluster(s, 3)
			a, b, c := nodes[0], nodes[1], nodes[2]
			s.advance(3 * time.Second)
			sentBefore, eventsBefore := len(a.sent), len(a.events)

			s.inject(b, a, craft(b, c))

			var rejected bool
			for _, m := range a.sent[sentBefore:] {
				if m.to == b && m.msg.Reject != nil {
					require.Equal(t, RejectBadMessage, m.msg.Reject.Reason)
					rejected = true
				}
			}
			require.True(t, rejected, "a should reject the stream that spoke for another node")
			require.Equal(t, []string{"down " + b.id.String() + " connection_closed"}, eventLines(a.eventsSince(eventsBefore)),
				"a should close b's stream (connection_closed for b) and report nothing about c")
			require.Contains(t, a.connectedIDs(), c.id.String(), "c is still connected to a")
			require.NotContains(t, a.core.tombs, c.id, "c must not be tombstoned on b's word")

			s.advance(10 * time.Second)
			s.requireFullMesh(nodes...)
			require.Equal(t, []string{"up " + c.id.String()}, a.eventsAbout(c), "a: nothing ever happened to c")
			for _, n := range nodes {
				requireAlternating(t, n)
				for _, line := range n.eventLog() {
					require.NotContains(t, line, "graceful_shutdown", "%s: no one left", n.id)
				}
			}
		})
	}
}

func TestCoreGossipCannotTakeDownALiveStream(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	s.advance(3 * time.Second)
	events := len(a.events)
	s.inject(b, a, &Message{Update: &Update{Entries: []MemberEntry{{ID: c.id, Incarnation: c.core.incarnation, Left: true}}}})
	s.advance(10 * time.Second)
	require.Empty(t, a.eventsSince(events), "a's live stream to c outranks b's word that c left")
	s.requireFullMesh(nodes...)
}

// eventLines renders events like simNode.eventLog.
func eventLines(events []Event) []string {
	n := &simNode{events: events}
	return n.eventLog()
}

func TestCoreFasterPeerDoesNotSpeedUpHeartbeats(t *testing.T) {
	// Answering a peer's heartbeat never raises a node's own rate: a node at 1 s next to a
	// peer at 200 ms still sends about one heartbeat per second, and the peer five.
	s := newSim(t)
	fastCfg := simConfig("fast")
	fastCfg.HeartbeatInterval = 200 * time.Millisecond
	fast := s.add(simID("fast", 4001), fastCfg)
	slow := s.add(simID("slow", 4002), simConfig("slow", "127.0.0.1:4001"))
	s.advance(5 * time.Second)
	since := s.now
	s.advance(20 * time.Second)
	require.InDelta(t, 20, len(heartbeatsTo(slow, fast, since)), 1.5, "the 1 s node: one heartbeat per second")
	require.InDelta(t, 100, len(heartbeatsTo(fast, slow, since)), 6, "the 200 ms node: five per second")
}

// TestViewDigestIsStableAcrossReleases pins the digest to its definition: FNV-1a 64 over
// each live entry, sorted by id, as the id's String() and the incarnation in big-endian. Nodes
// of different releases compare digests, so a change here would make them sync views for
// nothing.
func TestViewDigestIsStableAcrossReleases(t *testing.T) {
	entries := []MemberEntry{
		{ID: MustParseNodeID("b@[::1]:4370"), Incarnation: 7},
		{ID: MustParseNodeID("a@127.0.0.1:4369"), Incarnation: 1 << 40},
		{ID: MustParseNodeID("c@host:1"), Incarnation: 3, Left: true},
	}
	h := fnv.New64a()
	for _, e := range []MemberEntry{entries[1], entries[0]} {
		_, _ = h.Write([]byte(e.ID.String()))
		_, _ = h.Write(binary.BigEndian.AppendUint64(nil, e.Incarnation))
	}
	require.Equal(t, h.Sum64(), viewDigest(entries))
}

func TestSortedViewDigestEqualsTheDigestOfTheViewWithTheNodeInIt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		var view []MemberEntry
		for i := range rng.IntN(40) {
			view = append(view, MemberEntry{
				ID:          MustParseNodeID(fmt.Sprintf("n%03d@127.0.0.1:%d", rng.IntN(500), 4000+i)),
				Incarnation: rng.Uint64(),
				Left:        rng.IntN(5) == 0,
				Down:        rng.IntN(5) == 0,
			})
		}
		slices.SortFunc(view, func(a, b MemberEntry) int { return a.ID.Compare(b.ID) })
		view = slices.CompactFunc(view, func(a, b MemberEntry) bool { return a.ID == b.ID })
		self := MemberEntry{ID: MustParseNodeID(fmt.Sprintf("n%03d@127.0.0.1:3999", rng.IntN(500))), Incarnation: rng.Uint64()}
		require.Equal(t, viewDigest(append(slices.Clone(view), self)), sortedViewDigest(slices.Values(view), self),
			"trial %d: the one-pass digest should equal the definition", trial)
		// A handshake's digest adds the newcomer too: two extras, in id order.
		newcomer := MemberEntry{ID: MustParseNodeID(fmt.Sprintf("n%03d@127.0.0.1:3998", rng.IntN(500))), Incarnation: rng.Uint64()}
		extras := []MemberEntry{self, newcomer}
		slices.SortFunc(extras, compareEntries)
		require.Equal(t, viewDigest(append(slices.Clone(view), self, newcomer)), sortedViewDigest(slices.Values(view), extras...),
			"trial %d: the one-pass digest with two extras should equal the definition", trial)
		// A newcomer the view holds (another incarnation) counts in place of its entry.
		if len(view) > 0 {
			known := view[rng.IntN(len(view))]
			again := MemberEntry{ID: known.ID, Incarnation: known.Incarnation + 1}
			rest := slices.DeleteFunc(slices.Clone(view), func(e MemberEntry) bool { return e.ID == known.ID })
			extras := []MemberEntry{self, again}
			slices.SortFunc(extras, compareEntries)
			require.Equal(t, viewDigest(append(rest, self, again)), sortedViewDigest(slices.Values(view), extras...),
				"trial %d: an extra replaces the entry of its id", trial)
		}
	}
}

// TestTableDigestEqualsTheDigestOfTheView checks the digest a node computes from its table
// (heartbeats carry it) against the definition over its view: seeds never reached, down and
// left nodes, and IPv6 hosts among them.
func TestTableDigestEqualsTheDigestOfTheView(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Unix(1_700_000_000, 0)
	for trial := range 50 {
		cfg := simConfig("self", "seed@127.0.0.1:1", "other@[::1]:2")
		self := MustParseNodeID(fmt.Sprintf("n%03d@127.0.0.1:3999", rng.IntN(100)))
		c := newCore(self, rng.Uint64(), cfg, now, rand.New(rand.NewPCG(1, 2)), nil)
		c.start(now) // the seeds: members by id, incarnation unknown
		var entries []MemberEntry
		for i := range rng.IntN(60) {
			host := "127.0.0.1"
			if rng.IntN(4) == 0 {
				host = "[::1]"
			}
			entries = append(entries, MemberEntry{
				ID:          MustParseNodeID(fmt.Sprintf("n%03d@%s:%d", rng.IntN(100), host, 4000+i)),
				Incarnation: 1 + rng.Uint64N(1<<50),
				Left:        rng.IntN(6) == 0,
				Down:        rng.IntN(6) == 0,
			})
		}
		c.merge(now, 0, entries, 0)
		c.takeOutputs()
		want := viewDigest(append(slices.Clone(c.view()), MemberEntry{ID: self, Incarnation: c.incarnation}))
		require.Equal(t, want, c.viewDigest(), "trial %d: the table's digest should equal the digest of the view with the node in it", trial)
	}
}

// TestOverlayViewThatMissedARelayIsRepairedBySync loses the relays of one join: the
// heartbeats' digests differ, and a view sync brings the join to every node.
func TestOverlayViewThatMissedARelayIsRepairedBySync(t *testing.T) {
	s, nodes, a, ghost := joinWithLostRelays(t)
	s.drop = nil
	for _, n := range nodes[1:] {
		require.NotContains(t, n.knownIDs(), ghost.String(), "%s heard of the join although its relays were lost", n.id)
	}
	took := s.advanceUntil(6*a.cfg.HeartbeatInterval, func() bool { return everyNodeKnows(nodes, ghost) },
		"every node should learn the join from a view sync")
	t.Logf("the join reached every node by sync in %v", took)
}

// TestOverlayRelayLostWhileTheViewKeepsChangingIsRepaired loses the relays of one join while
// the views never stay still for an interval (a node learned every 250 ms, as in a large
// cluster with steady churn): the view syncs still bring the join to every node.
func TestOverlayRelayLostWhileTheViewKeepsChangingIsRepaired(t *testing.T) {
	s, nodes, a, lost := joinWithLostRelays(t) // and its relays stay lost
	for i := 0; ; i++ {
		if i%4 == 0 && everyNodeKnows(nodes, lost) {
			break
		}
		require.Less(t, i, 4*20, "every node should learn the lost join within 20 s of a changing view")
		ghost := MustParseNodeID(simID(fmt.Sprintf("ghost%d", i), 5000+i))
		a.core.merge(s.now, 0, []MemberEntry{{ID: ghost, Incarnation: 1}}, 0)
		a.flush()
		s.advance(250 * time.Millisecond)
	}
}

// joinWithLostRelays forms a 20-node overlay (K = 4) in which the first node, a, learns of
// a node id that nobody else hears of: every relay of it from a is lost (s.drop, still set).
func joinWithLostRelays(t *testing.T) (s *sim, nodes []*simNode, a *simNode, id NodeID) {
	t.Helper()
	s, nodes = overlayCluster(t, 20, 4)
	a = nodes[0]
	id = MustParseNodeID(simID("ghost", 4999))
	s.drop = dropRelaysOf(a, id)
	a.core.merge(s.now, 0, []MemberEntry{{ID: id, Incarnation: 1}}, 0)
	a.flush()
	s.settle()
	return s, nodes, a, id
}

// dropRelaysOf returns a drop rule that loses every update from n naming id, except n's
// whole view (a sync).
func dropRelaysOf(n *simNode, id NodeID) func(from, to *simNode, msg *Message) bool {
	return func(from, _ *simNode, msg *Message) bool {
		return from == n && msg.Update != nil && !msg.Update.Full &&
			slices.ContainsFunc(msg.Update.Entries, func(e MemberEntry) bool { return e.ID == id })
	}
}

// everyNodeKnows reports whether every node of nodes knows id.
func everyNodeKnows(nodes []*simNode, id NodeID) bool {
	for _, n := range nodes {
		if !slices.Contains(n.knownIDs(), id.String()) {
			return false
		}
	}
	return true
}

// A peer's view asks for what the local node knows better. Whole views come sorted by id and
// are walked in step with the local one; in any other order the answer is the same.
func TestDeltaForAnswersTheSameWhateverTheOrderOfTheirView(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newCore(MustParseNodeID(simID("self", 4000)), 7, fullMeshConfig("self"), now, rand.New(rand.NewPCG(1, 2)), nil)
	c.start(now)
	rng := rand.New(rand.NewPCG(5, 6))
	var local []MemberEntry
	for i := range 60 {
		local = append(local, MemberEntry{ID: MustParseNodeID(simID(fmt.Sprintf("n%02d", i), 5000+i)), Incarnation: 3})
	}
	c.merge(now, 0, local, 0)
	require.Len(t, c.view(), len(local), "the local node learned every entry")

	var theirs, want []MemberEntry
	for i, e := range local {
		switch i % 4 {
		case 0: // they lack it
			want = append(want, e)
		case 1: // they hold an older incarnation
			theirs = append(theirs, MemberEntry{ID: e.ID, Incarnation: 2})
			want = append(want, e)
		default: // they hold it as it is, or newer
			theirs = append(theirs, MemberEntry{ID: e.ID, Incarnation: 3 + uint64(i%2)})
		}
	}
	theirs = append(theirs, MemberEntry{ID: MustParseNodeID(simID("zz", 6000)), Incarnation: 1}) // unknown here
	selfAttrs := c.attrs.clone()
	want = append(want, MemberEntry{ID: c.self, Incarnation: 7, Attrs: &selfAttrs}) // they lack the local node, and its attributes
	slices.SortFunc(theirs, compareEntries)

	sorted := c.deltaFor(theirs)
	shuffled := slices.Clone(theirs)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	require.Equal(t, want, sorted, "the delta of a sorted view")
	require.Equal(t, want, c.deltaFor(shuffled), "the delta of the same view in another order")
}

// A peer's view whose entries hold older attributes than the local node's (or none) is
// answered with the newer ones: a node that missed an attribute change learns it in a sync.
func TestDeltaForCarriesTheAttributesTheirViewHoldsOlder(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newCore(MustParseNodeID(simID("self", 4000)), 7, fullMeshConfig("self"), now, rand.New(rand.NewPCG(1, 2)), nil)
	c.start(now)
	attrs := func(v uint64) *Attributes {
		return &Attributes{Version: v, Metadata: map[string]string{"role": fmt.Sprint("v", v)}}
	}
	var local []MemberEntry
	for i := range 3 {
		local = append(local, MemberEntry{ID: MustParseNodeID(simID(fmt.Sprintf("n%02d", i), 5000+i)), Incarnation: 3, Attrs: attrs(2)})
	}
	c.merge(now, 0, local, 0)
	selfAttrs := c.attrs.clone()
	theirs := []MemberEntry{
		{ID: local[0].ID, Incarnation: 3, Attrs: attrs(1)}, // older
		{ID: local[1].ID, Incarnation: 3},                  // none
		{ID: local[2].ID, Incarnation: 3, Attrs: attrs(2)}, // the same
		{ID: c.self, Incarnation: 7, Attrs: &selfAttrs},
	}
	delta := c.deltaFor(theirs)
	require.Len(t, delta, 2, "only the entries whose attributes they hold older: %v", delta)
	for i, e := range delta {
		require.Equal(t, local[i].ID, e.ID)
		require.NotNil(t, e.Attrs, "%s goes with its attributes", e.ID)
		require.Equal(t, *attrs(2), *e.Attrs, "%s goes with the newer attributes", e.ID)
	}
}
