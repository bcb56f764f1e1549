package membership

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// overlayCluster starts count nodes with K = k, all seeded with node00, and lets them
// converge: every node sees every other connected.
func overlayCluster(t *testing.T, count, k int) (*sim, []*simNode) {
	t.Helper()
	s := newSim(t)
	nodes := newClusterWith(s, count, func(cfg *Config) { cfg.Monitors = k })
	s.advanceUntil(60*time.Second, func() bool { return s.fullMesh(nodes...) }, "%d nodes with K=%d should converge", count, k)
	s.advance(5 * time.Second)
	return s, nodes
}

// quietOverlay starts count nodes through change (their K among it), in a simulation that
// keeps no log, and runs it until every node holds every other connected.
func quietOverlay(t *testing.T, count int, change func(cfg *Config)) (*sim, []*simNode) {
	t.Helper()
	s := newSim(t)
	s.quiet = true
	nodes := newClusterWith(s, count, change)
	s.advanceUntil(60*time.Second, func() bool { return everyNodeConnected(nodes, len(nodes)-1) },
		"%d nodes should converge", count)
	return s, nodes
}

// topoOf returns the topology of the given live nodes, as every node that holds that view
// computes it.
func topoOf(nodes []*simNode, k int) *topology {
	ids := make([]NodeID, len(nodes))
	for i, n := range nodes {
		ids[i] = n.id
	}
	return newTopology(ids, k)
}

// requireOverlayStreams checks that each node streams to at most 2K peers and to every
// neighbour the topology gives it.
func requireOverlayStreams(t *testing.T, nodes []*simNode, k int) {
	t.Helper()
	topo := topoOf(nodes, k)
	for _, n := range nodes {
		var direct []NodeID
		for m := range n.core.members.all() {
			if m.conn != 0 {
				direct = append(direct, m.id)
			}
		}
		require.LessOrEqual(t, len(direct), 2*k, "%s streams to %d peers, more than 2K", n.id, len(direct))
		for _, nb := range topo.neighbours(n.id) {
			require.Contains(t, direct, nb, "%s should stream to its neighbour %s", n.id, nb)
		}
	}
}

func TestOverlayFormsAboveKPlusOneWithBoundedStreams(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	requireOverlayStreams(t, nodes, k)
	s.advance(30 * time.Second)
	for _, n := range nodes {
		requireOneUpEach(t, n, nodes)
		requireAlternating(t, n)
	}
	info, ok := nodes[0].info(nodes[39])
	require.True(t, ok)
	require.Equal(t, StatusConnected, info.Status, "a node far away is listed connected")
}

func TestOverlayMessagesPerNodeStayFlatAsTheClusterGrows(t *testing.T) {
	const k = 4
	rates := func(count int) (perNode, perStream float64) {
		s, nodes := overlayCluster(t, count, k)
		s.quiet = true
		return messagesPerNodePerInterval(s, nodes)
	}
	small, smallPerStream := rates(30)
	large, largePerStream := rates(120)
	// Per node the rate follows the degree, which grows towards 2K as the rings repeat fewer
	// neighbours; per stream it is flat.
	require.InDelta(t, smallPerStream, largePerStream, 0.1*smallPerStream,
		"messages per stream per interval: %.2f at 30 nodes, %.2f at 120", smallPerStream, largePerStream)
	require.LessOrEqual(t, small, float64(2*k)+0.5, "a node sends about one message per stream per interval")
	require.LessOrEqual(t, large, float64(2*k)+0.5, "a node sends about one message per stream per interval")
}

// hopsBound is ⌈log_K N⌉ + 2.
func hopsBound(n, k int) int { return int(math.Ceil(math.Log(float64(n))/math.Log(float64(k)))) + 2 }

func TestOverlayCrashIsReportedDownEverywhereAtOnce(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	victim := nodes[17]
	victim.crash() // every stream closes: its observers alert, the alerts spread
	for _, n := range nodes {
		if n == victim {
			continue
		}
		require.Equal(t, []string{"up " + victim.id.String(), "down " + victim.id.String() + " connection_closed"},
			n.eventsAbout(victim), "%s should report the crash once, with the observers' reason", n.id)
	}
	s.advance(30 * time.Second)
	for _, n := range nodes {
		if n != victim {
			require.Len(t, n.eventsAbout(victim), 2, "%s: nothing more about the crashed node", n.id)
		}
	}
}

// TestOverlayCrashedNodeIsRedialledWithBackoff: the nodes that would be a crashed node's
// neighbours redial it, each dial refused (nothing listens there), and back off up to
// ReconnectMaxDelay, as in a full mesh: at half an interval, every crash added 2K dials a
// second to the cluster for as long as the nodes remembered it.
func TestOverlayCrashedNodeIsRedialledWithBackoff(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 24, k)
	victim := nodes[11]
	crashedAt := s.now
	victim.crash()
	const window = time.Minute
	s.advance(window)
	addr := victim.id.Address()
	dialers := 0
	for _, n := range allBut(nodes, victim) {
		dials := n.dialsToSince(addr, crashedAt)
		if len(dials) == 0 {
			continue
		}
		dialers++
		cfg := n.cfg
		// Backoff from ReconnectBaseDelay doubling to ReconnectMaxDelay, each jittered down
		// by at most half: about a dozen dials a minute, where half an interval made 120.
		require.LessOrEqual(t, len(dials), 25, "%s should back off its redials of crashed %s: %d dials in %v",
			n.id, victim.id, len(dials), window)
		last := dials[len(dials)-1].Sub(dials[len(dials)-2])
		require.GreaterOrEqual(t, last, cfg.ReconnectMaxDelay/2,
			"%s: the backoff of its redials of %s should grow to ReconnectMaxDelay (jittered down by at most half)", n.id, victim.id)
		for i := 1; i < len(dials); i++ {
			require.LessOrEqual(t, dials[i].Sub(dials[i-1]), cfg.ReconnectMaxDelay+10*time.Millisecond,
				"%s: the backoff is capped at ReconnectMaxDelay", n.id)
		}
	}
	require.Positive(t, dialers, "the crashed node's would-be neighbours should redial it")
	require.LessOrEqual(t, dialers, 2*k, "only the crashed node's would-be neighbours redial it")
}

// TestOverlayNodeDropsTheNeighbourListsOfADecisionOnceItIsOver: deciding a crash looks up
// the observers of the victim and of its observers, and a node caches those lists for the
// burst of alerts; a steady basis would keep them for good, so a node drops them once its
// ticks find them unused.
func TestOverlayNodeDropsTheNeighbourListsOfADecisionOnceItIsOver(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	victim := nodes[17]
	victim.crash()
	cached := 0
	for _, n := range nodes {
		if n != victim {
			cached += len(n.core.basisCache)
		}
	}
	require.Positive(t, cached, "deciding the crash should look up (and cache) the victim's observers")
	s.advance(10 * time.Second)
	for _, n := range nodes {
		if n != victim {
			require.Nil(t, n.core.basisCache, "%s should have dropped the neighbour lists of a decision that is over", n.id)
		}
	}
}

// overlayWithJoiner forms 30 nodes with K = 4 and registers, without starting it, a joiner
// seeded with the first of them.
func overlayWithJoiner(t *testing.T) (s *sim, nodes []*simNode, seed, joiner *simNode) {
	t.Helper()
	const k = 4
	s, nodes = overlayCluster(t, 30, k)
	seed = nodes[0]
	cfg := simConfig("joiner", seed.id.String())
	cfg.Monitors = k
	return s, nodes, seed, s.create(simID("joiner", 4500), cfg)
}

func TestOverlayJoinerWhoseFirstHandshakeTimedOutGetsTheViewWhenItTriesAgain(t *testing.T) {
	s, nodes, seed, joiner := overlayWithJoiner(t)
	// The seed handles the joiner's hello, but its answer never arrives (a busy seed, a dial
	// that gave up): the cluster knows the joiner, which knows nobody, and dials again.
	lost := false
	var views []int // entries of the seed's hellos to the joiner
	s.drop = func(from, to *simNode, msg *Message) bool {
		if from == seed && to == joiner && msg.Hello != nil {
			views = append(views, len(msg.Hello.View))
			if !lost {
				lost = true
				return true
			}
		}
		return false
	}
	defer func() { s.drop = nil }()
	joiner.start()
	all := append(slices.Clone(nodes), joiner)
	s.advanceUntil(30*time.Second, func() bool { return lost && s.fullMesh(all...) },
		"the joiner should learn every node once it reaches the seed again")
	require.Len(t, joiner.connectedIDs(), len(nodes), "the joiner knows every node")
	require.GreaterOrEqual(t, len(views), 2, "the joiner should have reached the seed again")
	require.GreaterOrEqual(t, views[1], len(nodes)-1, "the seed's second hello should carry its view, though it knows the joiner")
}

// TestOverlayJoinerTheSeedNeverAnswersLearnsTheViewFromItsNeighboursHandshakes: the seed
// admits the joiner, tells the cluster, but its answers never reach the joiner (a busy seed),
// and no heartbeat gets through on the joiner's streams (a busy formation closes them before
// the heartbeats' digests can start a sync). The joiner still learns every node, from the
// handshakes its neighbours open to it.
func TestOverlayJoinerTheSeedNeverAnswersLearnsTheViewFromItsNeighboursHandshakes(t *testing.T) {
	s, nodes, seed, joiner := overlayWithJoiner(t)
	s.drop = func(from, to *simNode, msg *Message) bool {
		return from == seed && to == joiner || (to == joiner || from == joiner) && msg.Heartbeat != nil
	}
	defer func() { s.drop = nil }()
	joiner.start()
	s.advanceUntil(30*time.Second, func() bool { return len(joiner.knownIDs()) >= len(nodes) },
		"the joiner should learn every node from its neighbours' handshakes")
}

// TestOverlayJoinerThatHasNotSeenTheOverlayReportsNoDownOfItsOwn: a joiner whose seed never
// answers meets the cluster through the neighbours that dial it (the seed admitted it and
// told them). While it knows only those few it is outside the overlay, where a closed or
// silent stream would be a down; but their hellos say that the cluster runs the overlay, so
// it reports nobody down on its own word. Here only one neighbour reaches it and the answers
// to its requests for the view are lost: that neighbour's stream closes (a dialler that gave
// up, a stream the overlay no longer needs), goes silent, closes with its redial hanging,
// and the neighbour finally crashes, half a minute before the view arrives. Once it does,
// the joiner reports the crashed node down as the cluster decided, once, and every other
// node up.
func TestOverlayJoinerThatHasNotSeenTheOverlayReportsNoDownOfItsOwn(t *testing.T) {
	s, nodes, seed, joiner := overlayWithJoiner(t)
	all := append(slices.Clone(nodes), joiner)
	neighbour := s.byID(topoOf(all, 4).observers(joiner.id)[0])
	require.NotEqual(t, seed, neighbour, "the seed is the joiner's observer: pick another")
	silent := false // the neighbour's heartbeats to the joiner are lost too
	s.drop = func(from, to *simNode, msg *Message) bool {
		return to == joiner && (from != neighbour || msg.Update != nil || silent && msg.Heartbeat != nil)
	}
	defer func() { s.drop = nil }()
	joiner.start()
	reached := func(what string) {
		t.Helper()
		s.advanceUntil(30*time.Second, func() bool { return joiner.streamEnd(neighbour) != nil },
			"%s should have a stream to the joiner %s", neighbour.id, what)
	}
	reached("once the seed admitted it")
	require.False(t, joiner.core.overlay(), "the joiner, which knows only the node that dialled it, is outside the overlay")

	// The stream closes: the joiner redials.
	s.breakHalf(joiner, neighbour)
	reached("again after the stream closed")
	// The stream goes silent past the timeout.
	silent = true
	s.advance(2 * time.Duration(joiner.cfg.HeartbeatMissThreshold) * joiner.cfg.HeartbeatInterval)
	silent = false
	reached("again after the stream went silent")
	// The stream closes and the redial hangs.
	s.hangDials([]*simNode{joiner}, []*simNode{neighbour}, true)
	s.breakHalf(joiner, neighbour)
	s.advance(joiner.cfg.DialTimeout + 2*time.Second)
	s.hangDials([]*simNode{joiner}, []*simNode{neighbour}, false)
	neighbour.crash()
	// Well past ten intervals since the neighbour's last hello: a joiner of a busy formation
	// can wait that long for its view, its redials refused or timing out meanwhile.
	s.advance(30 * time.Second)
	require.False(t, joiner.core.overlay(), "the joiner is still outside the overlay")
	require.Empty(t, joiner.downs(), "a joiner that has not seen the overlay yet reports no node down on its own word")

	s.drop = nil
	s.advanceUntil(30*time.Second, func() bool {
		return len(joiner.connectedIDs()) == len(nodes)-1 && len(joiner.eventsAbout(neighbour)) > 1
	}, "the joiner should learn the view: every live node up, the crashed one down")
	require.Equal(t, "down "+neighbour.id.String()+" connection_closed", joiner.eventsAbout(neighbour)[1],
		"the joiner reports the crashed node down as the cluster decided")
	require.Len(t, joiner.downs(), 1, "the joiner reports only the crashed node down")
}

func TestOverlayJoinAndLeaveReachEveryNode(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	joiner := s.add(simID("joiner", 4500), func() *Config {
		cfg := simConfig("joiner", nodes[5].id.String())
		cfg.Monitors = k
		return cfg
	}())
	all := append(slices.Clone(nodes), joiner)
	s.advanceUntil(5*time.Second, func() bool { return s.fullMesh(all...) }, "the join reaches every node")
	s.advance(5 * time.Second)
	requireOverlayStreams(t, all, k)
	for _, n := range nodes {
		require.Equal(t, []string{"up " + joiner.id.String()}, n.eventsAbout(joiner))
	}
	require.Len(t, joiner.connectedIDs(), len(nodes), "the joiner knows every node")

	leaver := nodes[23]
	leaver.stop()
	for _, n := range all {
		if n != leaver {
			require.Equal(t, []string{"up " + leaver.id.String(), "down " + leaver.id.String() + " graceful_shutdown"},
				n.eventsAbout(leaver), "%s should report the leave at once", n.id)
		}
	}
	s.advance(30 * time.Second)
	for _, n := range all {
		if n != leaver {
			require.Len(t, n.eventsAbout(leaver), 2, "%s: the node that left is not redialled or revived", n.id)
		}
	}
}

func TestOverlayOneBadLinkTakesNobodyDown(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	subject := nodes[11]
	observers := topoOf(nodes, k).observers(subject.id)
	var observer *simNode
	for _, n := range nodes {
		if n.id == observers[0] {
			observer = n
		}
	}
	s.partition([]*simNode{subject}, []*simNode{observer}, true)
	s.advance(20 * time.Second) // the observer times the stream out and alerts; redials fail
	for _, n := range nodes {
		require.Empty(t, n.downs(), "%s: one observer's bad link takes nobody down", n.id)
	}
	s.partition([]*simNode{subject}, []*simNode{observer}, false)
	s.advance(20 * time.Second)
	requireOverlayStreams(t, nodes, k)
	for _, n := range nodes {
		require.Empty(t, n.downs(), "%s: nobody went down", n.id)
	}
}

func TestOverlayBadLinksOneAfterAnotherNeverAddUpToADownAndTheirAlertsExpire(t *testing.T) {
	const k = 4 // H = 4: every observer must agree
	s, nodes := overlayCluster(t, 40, k)
	subject, observers := subjectWithKObservers(t, s, nodes, k)
	lifetime := nodes[0].core.alertLifetime()
	// Each observer in turn loses its link to the subject long enough to alert, and gets it
	// back; the cuts are an alert's lifetime apart, so no two alerts ever count together.
	for _, observer := range observers {
		s.partition([]*simNode{subject}, []*simNode{observer}, true)
		s.advance(10 * time.Second)
		s.partition([]*simNode{subject}, []*simNode{observer}, false)
		s.advance(lifetime + 5*time.Second)
	}
	for _, n := range nodes {
		require.Empty(t, n.downs(), "%s: bad links an alert's lifetime apart take nobody down", n.id)
	}
	s.advance(lifetime + time.Second)
	for _, n := range nodes {
		require.Nil(t, n.core.alerts[subject.id], "%s: every alert about %s expired a lifetime after it came", n.id, subject.id)
		require.Zero(t, n.core.alertExpiries.len(), "%s: nothing left to expire", n.id)
	}
}

func TestOverlayStreamClosedByALiveSubjectRaisesNoAlert(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	subject := nodes[11]
	var observer *simNode
	for _, n := range nodes {
		if n.id == topoOf(nodes, k).observers(subject.id)[0] {
			observer = n
		}
	}
	alerts := countAlertsAbout(t, s, subject)
	s.breakStream(subject, observer) // the subject's side closes it, as its detector would
	s.advance(10 * time.Second)
	require.Zero(t, *alerts, "the observer redials its subject before it alerts: a live subject answers, and nobody hears of it")
	requireOverlayStreams(t, nodes, k)
	for _, n := range nodes {
		require.Empty(t, n.downs(), "%s: nobody went down", n.id)
	}
}

func TestOverlayNodeCutFromItsObserversIsDownEverywhereAndBackAfterHealing(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	subject := nodes[29]
	rest := allBut(nodes, subject)
	s.partition([]*simNode{subject}, rest, true) // isolated: every stream goes silent
	s.advance(10 * time.Second)
	for _, n := range rest {
		require.Equal(t, []string{"up " + subject.id.String(), "down " + subject.id.String() + " heartbeat_timeout"},
			n.eventsAbout(subject), "%s should report the isolated node down", n.id)
	}
	s.partition([]*simNode{subject}, rest, false)
	s.advanceUntil(30*time.Second, func() bool { return s.fullMesh(nodes...) }, "the isolated node comes back once healed")
	for _, n := range rest {
		require.Equal(t, []string{"up " + subject.id.String(), "down " + subject.id.String() + " heartbeat_timeout", "up " + subject.id.String()},
			n.eventsAbout(subject), "%s: down once, up once", n.id)
		requireAlternating(t, n)
	}
}

// subjectWithKObservers returns a node of nodes that has k distinct observers, and them.
func subjectWithKObservers(t *testing.T, s *sim, nodes []*simNode, k int) (*simNode, []*simNode) {
	t.Helper()
	for _, n := range nodes {
		if ids := topoOf(nodes, k).observers(n.id); len(ids) == k {
			observers := make([]*simNode, len(ids))
			for i, id := range ids {
				observers[i] = s.byID(id)
			}
			return n, observers
		}
	}
	require.FailNow(t, "no node has K distinct observers", "%d nodes, K = %d", len(nodes), k)
	return nil, nil
}

func TestOverlayNodeStillReachedByOneObserverStaysDownUntilTheCutHeals(t *testing.T) {
	const k = 10
	s, nodes := overlayCluster(t, 40, k)
	subject, observers := subjectWithKObservers(t, s, nodes, k)
	// Cut from 9 of its 10 observers (a quorum); the tenth still reaches it.
	cutFrom := observers[1:]
	s.partition([]*simNode{subject}, cutFrom, true)
	wantDown := []string{"up " + subject.id.String(), "down " + subject.id.String() + " heartbeat_timeout"}
	for _, n := range nodes {
		if n == subject {
			continue
		}
		s.advanceUntil(20*time.Second, func() bool { return n.core.members.get(subject.id).isDown() },
			"%s should report %s down once 9 of its 10 observers lost it", n.id, subject.id)
	}
	// Long past an alert's lifetime: the observer that still reaches it does not bring it back.
	s.advance(3 * time.Minute)
	for _, n := range nodes {
		if n != subject {
			require.Equal(t, wantDown, n.eventsAbout(subject),
				"%s: one observer reaching %s is not enough to bring it back while 9 cannot", n.id, subject.id)
		}
	}
	s.partition([]*simNode{subject}, cutFrom, false)
	s.advanceUntil(30*time.Second, func() bool { return s.fullMesh(nodes...) }, "%s comes back once the cut heals", subject.id)
	for _, n := range nodes {
		if n != subject {
			require.Equal(t, append(wantDown, "up "+subject.id.String()), n.eventsAbout(subject), "%s: down once, up once", n.id)
			requireAlternating(t, n)
		}
	}
}

func TestOverlayCrashRefusedByAMajorityOfObserversIsDecidedWithoutTheSlowOnes(t *testing.T) {
	const k = 10
	s, nodes := overlayCluster(t, 40, k)
	subject, observers := subjectWithKObservers(t, s, nodes, k)
	slow := observers[:k/2-1] // four observers get no CPU: they notice nothing
	for _, o := range slow {
		o.starved = true
	}
	subject.crash() // the six others find its port refusing their redials
	start := s.now
	for _, n := range nodes {
		if n == subject || slices.Contains(slow, n) {
			continue
		}
		s.advanceUntil(time.Second, func() bool { return n.core.members.get(subject.id).isDown() },
			"%s should report the crash within a second: 6 of its 10 observers found nothing listening", n.id)
		require.Equal(t, []string{"up " + subject.id.String(), "down " + subject.id.String() + " connection_closed"},
			n.eventsAbout(subject), "%s reports the crash once, with the observers' reason", n.id)
		require.Len(t, n.downs(), 1, "%s: only the crashed node is down", n.id)
	}
	// Without the refusals it would take nine observers: the slow four count only once their
	// own observers time them out, after interval × threshold.
	require.Less(t, s.now.Sub(start), time.Second, "decided before any slow observer could be suspected")
}

func TestOverlayRefusalsFromHalfTheObserversDecideNothing(t *testing.T) {
	const k = 10
	s, nodes := overlayCluster(t, 40, k)
	subject, observers := subjectWithKObservers(t, s, nodes, k)
	var receiver, from *simNode
	for _, n := range nodes {
		if n != subject && !slices.Contains(observers, n) {
			if peer := firstPeer(n, nodes); peer != nil && peer != subject {
				receiver, from = n, peer
				break
			}
		}
	}
	require.NotNil(t, receiver, "a node that does not observe the subject, with a stream")
	incarnation := receiver.core.members.get(subject.id).incarnation
	refusal := func(o *simNode) *Alert {
		return &Alert{Subject: subject.id, Incarnation: incarnation, Observer: o.id, Reason: ReasonConnectionClosed,
			Refused: true, Hop: 2, Seq: 10}
	}
	// Five of ten say nothing listens there (a firewall that rejects half the cluster, say):
	// no majority, and five alerts are short of H.
	for _, o := range observers[:k/2] {
		s.inject(from, receiver, &Message{Alerts: []*Alert{refusal(o)}})
	}
	s.advance(2 * time.Second)
	for _, n := range nodes {
		require.Empty(t, n.downs(), "%s: refusals from half the observers take nobody down", n.id)
	}
	s.inject(from, receiver, &Message{Alerts: []*Alert{refusal(observers[k/2])}})
	down := "down " + subject.id.String() + " connection_closed"
	for _, n := range allBut(nodes, subject) {
		s.advanceUntil(2*time.Second, func() bool { return slices.Contains(n.eventsAbout(subject), down) },
			"%s should report the subject down once six of its ten observers say nothing listens there", n.id)
	}
	// The observers do reach it: their up alerts, newer than the refusals, bring it back.
	s.advanceUntil(30*time.Second, func() bool { return s.fullMesh(nodes...) }, "the subject comes back: its observers reach it")
	for _, n := range allBut(nodes, subject) {
		require.Equal(t, []string{"up " + subject.id.String(), down, "up " + subject.id.String()}, n.eventsAbout(subject),
			"%s: down once on the refusals, up once", n.id)
	}
}

func TestOverlayPortThatRefusesMostObserversGoesDownOnceNotOverAndOver(t *testing.T) {
	const k = 10
	s, nodes := overlayCluster(t, 40, k)
	subject, observers := subjectWithKObservers(t, s, nodes, k)
	refusing := observers[:k/2+1] // a firewall resets six observers' connections; four still get through
	s.partition([]*simNode{subject}, refusing, true)
	for _, o := range refusing {
		s.breakStream(subject, o)
	}
	s.advance(2 * time.Minute) // many rounds of redials, each refused
	for _, n := range allBut(nodes, subject) {
		events := n.eventsAbout(subject)
		require.Equal(t, 3, len(events), "%s: %d events, the first %v: want down once on the refusals, back once its "+
			"four other observers reach it, then up: six of ten are short of H, and the refusals decide only once",
			n.id, len(events), events[:min(6, len(events))])
		require.Equal(t, []string{"up " + subject.id.String(), "up " + subject.id.String()}, []string{events[0], events[2]},
			"%s: up, down, up", n.id)
	}
}

func TestOverlayFallsBackToAFullMeshAtKPlusOne(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, k+2, k) // one above the full mesh's size
	require.True(t, nodes[0].core.overlay())
	nodes[k+1].stop()
	s.advance(5 * time.Second)
	live := nodes[:k+1]
	for _, n := range live {
		require.False(t, n.core.overlay(), "%s: K+1 nodes are a full mesh", n.id)
		for _, o := range live {
			if o != n {
				require.NotNil(t, n.streamEnd(o), fmt.Sprintf("%s streams to %s in the full mesh", n.id, o.id))
			}
		}
	}
	// In the full mesh every node checks every peer again: heartbeats go both ways on every
	// stream, including those that carried them one way only in the overlay.
	from := s.now
	const window = 20 * time.Second
	s.advance(window)
	intervals := int(window / nodes[0].cfg.HeartbeatInterval)
	for _, n := range live {
		for _, o := range live {
			if o != n {
				require.GreaterOrEqual(t, heartbeatsSent(n, o, from), intervals-intervals/10,
					"%s → %s: about one heartbeat per interval in the full mesh", n.id, o.id)
			}
		}
		require.Equal(t, []string{"up " + nodes[k+1].id.String(), "down " + nodes[k+1].id.String() + " graceful_shutdown"},
			n.eventsAbout(nodes[k+1]), "%s: the node that left, once down", n.id)
		for _, o := range live {
			if o != n {
				require.Equal(t, []string{"up " + o.id.String()}, n.eventsAbout(o), "%s: no down for %s, which never failed", n.id, o.id)
			}
		}
	}
}

func TestOverlayHeartbeatsGoFromSubjectToObserverOnly(t *testing.T) {
	// In the overlay a node checks only its subjects: a stream carries heartbeats to the
	// observer every interval, and from the observer every quietBeatEvery intervals only,
	// unless it is its subject's subject too.
	const k = 4
	s, nodes := overlayCluster(t, 30, k)
	topo := topoOf(nodes, k)
	from := s.now
	const window = 20 * time.Second
	s.advance(window)
	intervals := int(window / nodes[0].cfg.HeartbeatInterval)
	streams, oneWay := 0, 0
	for _, n := range nodes {
		for _, o := range nodes {
			if o == n || n.streamEnd(o) == nil {
				continue
			}
			streams++
			sent := heartbeatsSent(n, o, from)
			if topo.isObserver(o.id, n.id) {
				require.GreaterOrEqual(t, sent, intervals-intervals/10, "%s → %s, its observer: about one heartbeat per interval", n.id, o.id)
				continue
			}
			oneWay++
			require.LessOrEqual(t, sent, intervals/quietBeatEvery+1, "%s → %s, which does not check it: a heartbeat every %d intervals", n.id, o.id, quietBeatEvery)
			require.GreaterOrEqual(t, sent, intervals/quietBeatEvery-1, "%s → %s, which does not check it: still a heartbeat every %d intervals", n.id, o.id, quietBeatEvery)
		}
	}
	require.Greater(t, oneWay, streams/4, "most streams in a 30-node overlay link a node to a peer that does not check it")
	for _, n := range nodes {
		requireAlternating(t, n)
		for _, o := range nodes {
			if o != n {
				require.Equal(t, []string{"up " + o.id.String()}, n.eventsAbout(o), "%s: no down for %s, which never failed", n.id, o.id)
			}
		}
	}
}

// heartbeatsSent counts the heartbeats n sent to peer since from.
func heartbeatsSent(n, peer *simNode, from time.Time) int {
	return len(heartbeatTimes(n, peer, from, n.s.now.Add(time.Nanosecond)))
}

func TestOverlayAQuarterCrashingAtOnceIsReportedDownEverywhere(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	var victims, survivors []*simNode
	for i, n := range nodes {
		if i%4 == 1 {
			victims = append(victims, n)
		} else {
			survivors = append(survivors, n)
		}
	}
	for _, v := range victims {
		v.up = false // all at once: nothing runs in between
	}
	for _, v := range victims {
		v.up = true
		v.crash()
	}
	s.advance(5 * time.Second) // dials to the victims fail at once; nothing times out
	for _, n := range survivors {
		for _, v := range victims {
			require.Equal(t, []string{"up " + v.id.String(), "down " + v.id.String() + " connection_closed"},
				n.eventsAbout(v), "%s should report %s down once", n.id, v.id)
		}
	}
	s.advance(30 * time.Second)
	s.requireFullMesh(survivors...)
	requireOverlayStreams(t, survivors, k)
	for _, n := range survivors {
		for _, v := range victims {
			require.Len(t, n.eventsAbout(v), 2, "%s: %s is not brought back", n.id, v.id)
		}
	}
}

// TestOverlayAttributesReachEveryNode changes one node's metadata in a 40-node overlay: the
// nodes without a stream to it learn it from their neighbours' relays, each reports one
// node_updated, and a joiner learns every node's metadata with the view.
func TestOverlayAttributesReachEveryNode(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	changed := nodes[7]
	skip := make(map[*simNode]int, len(nodes))
	for _, n := range nodes {
		skip[n] = len(n.events)
	}
	changed.core.setAttributes(s.now, 3, map[string]string{"role": "api"})
	changed.flush()
	s.settle()
	for _, n := range nodes {
		if n == changed {
			continue
		}
		updates := 0
		for _, e := range n.eventsSince(skip[n]) {
			if e.Type == EventNodeUpdated && e.Node.ID == changed.id {
				updates++
			}
		}
		require.Equal(t, 1, updates, "%s: one node_updated for %s", n.id, changed.id)
		info, ok := n.info(changed)
		require.True(t, ok)
		require.Equal(t, map[string]string{"role": "api"}, info.Metadata, "%s should know the new metadata", n.id)
	}
	joiner := s.add(simID("joiner", 4500), func() *Config {
		cfg := simConfig("joiner", nodes[0].id.String())
		cfg.Monitors = k
		return cfg
	}())
	s.advance(2 * time.Second)
	info, ok := joiner.info(changed)
	require.True(t, ok)
	require.Equal(t, map[string]string{"role": "api"}, info.Metadata, "a joiner learns the metadata with the view")
}

// TestOverlayFormationAtOnceDialsEachNeighbourAboutOnce boots 200 nodes within half a second
// through one seed, with K = 10: while the view keeps growing, the streams wait for it to
// settle, so a node dials about the neighbours it ends up with, not one set per view on the
// way (every dial is a new connection).
func TestOverlayFormationAtOnceDialsEachNeighbourAboutOnce(t *testing.T) {
	const count, k = 200, 10
	s := newSim(t)
	s.dialLatency = 2 * time.Millisecond
	nodes := overlayNodes(s, count, k, false)
	for i, n := range nodes {
		n.boot()
		if i%4 == 3 {
			s.step() // four nodes start every 10 ms: half a second of joins
		}
	}
	s.advanceUntil(30*time.Second, func() bool { return everyNodeConnected(nodes, count-1) }, "200 nodes started within half a second should converge")
	s.advance(5 * time.Second)
	requireOverlayStreams(t, nodes, k)
	dials := 0
	for _, n := range nodes {
		dials += len(n.dials)
	}
	perNode := float64(dials) / count
	t.Logf("%.1f dials per node (2K = %d)", perNode, 2*k)
	// Each of the about 2K neighbour pairs of a node is dialled once, by one side, and each
	// node dials the seed: about K+1 dials per node, with some slack.
	require.LessOrEqual(t, perNode, 1.2*float64(k+1), "a node dials about once per neighbour pair it ends up with")
}

// TestOverlayNodeThatCrashesBeforeItsObserversReachItIsDownEverywhere lets a node join a
// 40-node overlay and crash at once, before any of its observers has a stream to it: they
// learn it from the relayed join, their dials are refused, and the cluster decides it down.
func TestOverlayNodeThatCrashesBeforeItsObserversReachItIsDownEverywhere(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	joinerID := MustParseNodeID(simID("joiner", 4500))
	ids := []NodeID{joinerID}
	for _, n := range nodes {
		ids = append(ids, n.id)
	}
	neighbours := newTopology(ids, k).neighbours(joinerID)
	seed := slices.IndexFunc(nodes, func(n *simNode) bool { return !slices.Contains(neighbours, n.id) })
	s.dialLatency = 50 * time.Millisecond // the joiner's own dials to its neighbours are still under way at the crash
	joiner := s.add(joinerID.String(), func() *Config {
		cfg := simConfig("joiner", nodes[seed].id.String()) // a seed that is not its neighbour
		cfg.Monitors = k
		return cfg
	}())
	s.advanceUntil(time.Second, func() bool {
		for _, n := range nodes {
			if len(n.eventsAbout(joiner)) == 0 {
				return false
			}
		}
		return true
	}, "every node should learn the join")
	for _, n := range nodes {
		require.Equal(t, []string{"up " + joiner.id.String()}, n.eventsAbout(joiner), "%s learns the join", n.id)
	}
	observers := newTopology(ids, k).observers(joinerID)
	for _, n := range nodes {
		if slices.Contains(observers, n.id) {
			require.Nil(t, n.streamEnd(joiner), "scenario check: observer %s has no stream to the joiner yet", n.id)
		}
	}
	joiner.crash()
	took := s.advanceUntil(10*time.Second, func() bool {
		for _, n := range nodes {
			if !n.core.members.get(joiner.id).isDown() {
				return false
			}
		}
		return true
	}, "every node should report the joiner down once its observers' dials are refused")
	t.Logf("down everywhere %v after the crash", took)
	require.Less(t, took, 3*time.Second, "two refused dials, half an interval apart at most, decide it")
	for _, n := range nodes {
		events := n.eventsAbout(joiner)
		require.Len(t, events, 2, "%s reports the joiner up once and down once: %v", n.id, events)
		require.Contains(t, []string{"down " + joiner.id.String() + " connection_refused", "down " + joiner.id.String() + " connection_closed"},
			events[1], "%s reports the observers' reason", n.id)
	}
}

func TestOverlayNodeThatJoinsAfterACrashNeverListsTheCrashedNodeConnected(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	victim := nodes[17]
	victim.crash()
	s.advance(2 * time.Second) // decided down everywhere; the others keep it in their view as down
	for i, seed := range []*simNode{nodes[3], nodes[17+1]} {
		joiner := s.add(simID(fmt.Sprintf("late%d", i), 4600+i), func() *Config {
			cfg := simConfig(fmt.Sprintf("late%d", i), seed.id.String())
			cfg.Monitors = k
			return cfg
		}())
		s.advance(10 * time.Second)
		require.NotContains(t, joiner.connectedIDs(), victim.id.String(),
			"a node that joined after the crash must not list the crashed node as connected")
		require.Empty(t, joiner.eventsAbout(victim), "the joiner never saw the crashed node up")
		require.Len(t, joiner.connectedIDs(), len(nodes)-1+i, "the joiner knows every live node")
	}
}

func TestOverlayDecisionAboutAnUnknownNodeKeepsALateAliveClaimOut(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	n := nodes[0]
	ghost := MustParseNodeID(simID("ghost", 4700))
	pc := n.core.sortedConns()[0]
	n.core.onAlert(s.now, pc, &Alert{Subject: ghost, Incarnation: 7, Observer: pc.peer, Reason: ReasonConnectionClosed, Decided: true})
	n.core.merge(s.now, pc.id, []MemberEntry{{ID: ghost, Incarnation: 7}}, 0) // a stale claim that it is alive
	s.advance(5 * time.Second)
	require.NotContains(t, n.connectedIDs(), ghost.String(), "a node decided down before this node heard of it stays down")
	require.Empty(t, n.eventsAboutID(ghost), "no up for a node the cluster decided down")
}

func TestOverlayStreamChangeLongAfterTheLastViewChangeIsNoStall(t *testing.T) {
	// A stream change asks the streams to follow the view again at once, counted from the
	// view's last change, long past: a wake-up due at once, which must not pass for a stall
	// (a stalled node extends every deadline and holds back its node_up reports).
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	s.advance(2 * time.Minute)
	n := nodes[5]
	var peer *simNode
	for _, p := range nodes {
		if m := n.core.members.get(p.id); m != nil && m.conn != 0 {
			peer = p
			break
		}
	}
	require.NotNil(t, peer, "%s streams to a neighbour", n.id)
	logged := len(n.logs)
	s.inject(peer, n, &Message{Unlink: &Unlink{}})
	s.advance(5 * time.Second)
	for _, l := range n.logs[logged:] {
		require.NotContains(t, l.text, "stalled", "%s ran on time: %s at %s", n.id, l.text, l.at)
	}
	require.False(t, n.core.holdUps(), "%s holds back its node_up reports as if it had stalled", n.id)
	requireOverlayStreams(t, nodes, k)
}

func TestOverlaySubjectTakesItsObserversNewStreamAfterACut(t *testing.T) {
	// A subject does not check an observer that it does not observe itself, so when the link
	// between them is cut it keeps the dead stream, while the observer times it out and
	// redials. Once the link is back the subject takes the observer's new stream, whichever
	// of the two ids is the smaller, instead of rejecting it as a duplicate until its own
	// timeout.
	const k = 4
	s, nodes := overlayCluster(t, 30, k)
	topo := topoOf(nodes, k)
	var observer, subject *simNode
	for _, o := range nodes {
		for _, n := range nodes {
			if o != n && o.id.Compare(n.id) > 0 && topo.isObserver(o.id, n.id) && !topo.isObserver(n.id, o.id) && n.streamEnd(o) != nil {
				observer, subject = o, n
			}
		}
	}
	require.NotNil(t, observer, "some observer has a larger id than a subject that does not observe it")
	old := subject.streamEnd(observer)
	s.partition([]*simNode{observer}, []*simNode{subject}, true)
	s.breakHalf(observer, subject) // the observer sees its stream fail, the subject nothing
	s.advance(5 * time.Second)     // past the subject's silence limit, short of its quiet timeout
	require.Same(t, old, subject.streamEnd(observer), "the subject still holds the stream the cut killed")
	s.partition([]*simNode{observer}, []*simNode{subject}, false)
	s.advanceUntil(4*time.Second, func() bool {
		e := subject.streamEnd(observer)
		return e != nil && e != old && observer.streamEnd(subject) == e.peer
	}, "%s should take %s's new stream once the link is back", subject.id, observer.id)
	for _, n := range nodes {
		requireAlternating(t, n)
		if n != subject {
			require.Equal(t, []string{"up " + subject.id.String()}, n.eventsAbout(subject), "%s: one cut link takes nobody down", n.id)
		}
	}
}

// TestOverlayObserverThatReadsHeartbeatsLateGivesASilenceOneMoreTimeout makes one observer
// slow (half the heartbeats it watches never come, so they arrive an interval late on
// average) and freezes one of its subjects: the slow observer alerts only after a second
// timeout, its punctual peers at the first, and the frozen node is reported down everywhere.
func TestOverlayObserverThatReadsHeartbeatsLateGivesASilenceOneMoreTimeout(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 30, k)
	slow := nodes[0]
	topo := topoOf(nodes, k)
	subject := s.byID(topo.subjects(slow.id)[0])
	beats := map[*simNode]int{}
	s.drop = func(from, to *simNode, msg *Message) bool {
		if to != slow || msg.Heartbeat == nil {
			return false
		}
		beats[from]++
		return beats[from]%2 == 0
	}
	defer func() { s.drop = nil }()
	s.advance(15 * time.Second)
	require.True(t, slow.core.slowLocally(), "an observer whose heartbeats come an interval late on average finds itself slow")
	for _, n := range nodes[1:] {
		require.False(t, n.core.slowLocally(), "%s reads its heartbeats on time", n.id)
	}
	require.Empty(t, slow.downs(), "a slow observer whose peers' gaps stay below the timeout reports nobody down")

	frozenAt := s.now
	subject.frozen = true
	alertedAt := func(observer *simNode) time.Duration {
		for _, m := range sentSince(observer, frozenAt) {
			for _, a := range m.msg.Alerts {
				if a.Observer == observer.id && a.Subject == subject.id && !a.Up {
					return m.at.Sub(frozenAt)
				}
			}
		}
		return -1
	}
	limit := time.Duration(slow.cfg.HeartbeatMissThreshold) * slow.cfg.HeartbeatInterval
	s.advanceUntil(3*limit, func() bool {
		for _, n := range nodes {
			if n != subject && !slices.Contains(n.downs(), "down "+subject.id.String()+" heartbeat_timeout") {
				return false
			}
		}
		return true
	}, "every node should report the frozen subject down")
	slowAt := alertedAt(slow)
	require.Greater(t, slowAt, limit+limit/6, "the slow observer should give the silence one more timeout before it alerts")
	for _, o := range topo.observers(subject.id) {
		if obs := s.byID(o); obs != slow {
			at := alertedAt(obs)
			require.Positive(t, at, "%s should alert about its frozen subject", obs.id)
			require.LessOrEqual(t, at, limit+limit/6, "%s reads its heartbeats on time and alerts at the first timeout", obs.id)
		}
	}
}

// TestOverlayObserverWhoseDialHangsGivesUpOnceOthersAlert freezes a node just as one of its
// observers lost its stream to it: the observer's redial hangs (nothing answers, nothing
// refuses). Once the other observers report the silence, the observer gives up on its dial
// instead of waiting out DialTimeout, and the frozen node is reported down everywhere within
// interval × threshold + interval + 0.5 s.
func TestOverlayObserverWhoseDialHangsGivesUpOnceOthersAlert(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 30, k)
	subject := nodes[7]
	observer := s.byID(topoOf(nodes, k).observers(subject.id)[0])
	s.dialLatency = time.Minute // a dial reaches nothing: it hangs until its deadline
	frozenAt := s.now
	subject.frozen = true
	s.breakHalf(observer, subject)
	cfg := subject.cfg
	bound := time.Duration(cfg.HeartbeatMissThreshold)*cfg.HeartbeatInterval + cfg.HeartbeatInterval + cfg.HeartbeatInterval/2
	took := s.advanceUntil(bound, func() bool {
		for _, n := range nodes {
			if n != subject && !slices.Contains(n.downs(), "down "+subject.id.String()+" heartbeat_timeout") {
				return false
			}
		}
		return true
	}, "every node should report the frozen node down though one observer's dial to it hangs")
	t.Logf("the frozen node was reported down everywhere in %v", took)
	require.Less(t, s.now.Sub(frozenAt), cfg.DialTimeout, "the observer should not wait out its dial")
}

// TestOverlayObserverThatSawAHeartbeatComeLateAllowsASilenceThatMuchLonger drops one
// heartbeat of each peer of an observer, so that each comes an interval late. For the next
// lateWindow, a silence there must last the timeout and that interval before the observer
// alerts, while the subject's other observers alert at the timeout; once two windows of
// punctual heartbeats have passed, the observer alerts at the timeout again.
func TestOverlayObserverThatSawAHeartbeatComeLateAllowsASilenceThatMuchLonger(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 30, k)
	late := nodes[0]
	topo := topoOf(nodes, k)
	dropped := map[*simNode]bool{}
	s.drop = func(from, to *simNode, msg *Message) bool {
		if to != late || msg.Heartbeat == nil || dropped[from] {
			return false
		}
		dropped[from] = true
		return true
	}
	s.advance(3 * time.Second)
	s.drop = nil
	require.False(t, late.core.slowLocally(), "one late heartbeat per peer does not make the observer slow on the whole")

	limit := time.Duration(late.cfg.HeartbeatMissThreshold) * late.cfg.HeartbeatInterval
	alertAbout := func(subject *simNode) map[NodeID]time.Duration {
		frozenAt := s.now
		subject.frozen = true
		s.advanceUntil(3*limit, func() bool {
			for _, n := range nodes {
				if !n.frozen && !slices.Contains(n.downs(), "down "+subject.id.String()+" heartbeat_timeout") {
					return false
				}
			}
			return true
		}, "every node should report the frozen subject %s down", subject.id)
		at := map[NodeID]time.Duration{}
		for _, o := range topo.observers(subject.id) {
			for _, m := range sentSince(s.byID(o), frozenAt) {
				for _, a := range m.msg.Alerts {
					if _, seen := at[o]; !seen && a.Observer == o && a.Subject == subject.id && !a.Up {
						at[o] = m.at.Sub(frozenAt)
					}
				}
			}
		}
		return at
	}

	first := alertAbout(s.byID(topo.subjects(late.id)[0]))
	require.Contains(t, first, late.id, "the observer should alert about its first frozen subject")
	require.GreaterOrEqual(t, first[late.id], limit+late.cfg.HeartbeatInterval*9/10,
		"the observer that saw heartbeats come an interval late should allow the silence that interval more")
	for o, at := range first {
		if o != late.id {
			require.LessOrEqual(t, at, limit+limit/6, "%s saw its heartbeats on time and alerts at the first timeout", o)
		}
	}

	s.advance(2*late.core.lateWindow() + time.Second)
	gone := s.byID(topo.subjects(late.id)[0])
	topo = topoOf(slices.DeleteFunc(slices.Clone(nodes), func(n *simNode) bool { return n == gone }), k)
	second := alertAbout(s.byID(topo.subjects(late.id)[0]))
	require.Contains(t, second, late.id, "the observer should alert about its second frozen subject")
	require.LessOrEqual(t, second[late.id], limit+limit/6,
		"two windows of punctual heartbeats later, the observer alerts at the first timeout again")
}

func TestOverlayAlertOlderThanOneAlreadyHeardFromItsObserverIsNotPassedOn(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	subject := nodes[11]
	observer := s.byID(topoOf(nodes, k).observers(subject.id)[0])
	// a node that neither watches nor is the subject, and one of its peers to hear from
	var receiver, from *simNode
	for _, n := range nodes {
		if n == subject || n == observer || slices.Contains(topoOf(nodes, k).neighbours(subject.id), n.id) {
			continue
		}
		if peer := firstPeer(n, nodes); peer != nil && peer != subject && peer != observer {
			receiver, from = n, peer
			break
		}
	}
	require.NotNil(t, receiver, "a node away from the subject with a stream")
	incarnation := receiver.core.members.get(subject.id).incarnation
	down := &Alert{Subject: subject.id, Incarnation: incarnation, Observer: observer.id, Reason: ReasonConnectionClosed, Hop: 2, Seq: 10}
	up := &Alert{Subject: subject.id, Incarnation: incarnation, Observer: observer.id, Up: true, Hop: 2, Seq: 11}

	s.inject(from, receiver, &Message{Alerts: []*Alert{up}}) // the later alert comes first
	relayed := countAlertsAbout(t, s, subject)
	s.inject(from, receiver, &Message{Alerts: []*Alert{down}}) // then the earlier, late
	s.advance(5 * time.Second)
	require.Zero(t, *relayed, "an alert older than the one the receiver holds from the same observer is stale: nobody passes it on")
	for _, n := range nodes {
		require.Empty(t, n.downs(), "%s: nobody went down", n.id)
	}
}

// allBut returns nodes without n.
func allBut(nodes []*simNode, n *simNode) []*simNode {
	return slices.DeleteFunc(slices.Clone(nodes), func(m *simNode) bool { return m == n })
}

// firstPeer returns a node of nodes that n has an established stream with (nil if none).
func firstPeer(n *simNode, nodes []*simNode) *simNode {
	for _, p := range nodes {
		if p != n && n.streamEnd(p) != nil {
			return p
		}
	}
	return nil
}

// countAlertsAbout counts, from now until the test ends, the alerts about subject that any
// node sends.
func countAlertsAbout(t *testing.T, s *sim, subject *simNode) *int {
	count := new(int)
	s.drop = func(_, _ *simNode, msg *Message) bool {
		for _, a := range msg.Alerts {
			if a.Subject == subject.id {
				*count++
			}
		}
		return false
	}
	t.Cleanup(func() { s.drop = nil })
	return count
}

func TestOverlayStaleDecisionAfterTheSubjectCameBackTakesNobodyDown(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	subject := nodes[29]
	rest := allBut(nodes, subject)
	var decision *Alert // one of the decisions that took the subject down, as sent
	s.drop = func(_, _ *simNode, msg *Message) bool {
		for _, a := range msg.Alerts {
			if a.Subject == subject.id && a.Decided && decision == nil {
				decision = new(*a)
			}
		}
		return false
	}
	t.Cleanup(func() { s.drop = nil })
	s.partition([]*simNode{subject}, rest, true)
	s.advanceUntil(30*time.Second, func() bool {
		for _, n := range rest {
			if len(n.downs()) == 0 {
				return false
			}
		}
		return true
	}, "the isolated node should be reported down everywhere")
	require.NotNil(t, decision, "the nodes relay a decision")
	s.partition([]*simNode{subject}, rest, false)
	s.advanceUntil(30*time.Second, func() bool { return s.fullMesh(nodes...) }, "the isolated node comes back once healed")

	// A copy of a decision that took the subject down, delayed on a slow stream, reaches a
	// node after the subject came back.
	receiver := nodes[3]
	from := firstPeer(receiver, nodes)
	require.NotNil(t, from, "the receiver has a stream")
	s.inject(from, receiver, &Message{Alerts: []*Alert{decision}})
	s.advance(20 * time.Second)
	for _, n := range rest {
		require.Equal(t, []string{"up " + subject.id.String(), "down " + subject.id.String() + " heartbeat_timeout", "up " + subject.id.String()},
			n.eventsAbout(subject), "%s: a decision older than the subject's return takes it down nowhere", n.id)
	}
}

// A node that joins while the cluster is still a full mesh dials every member; a first dial
// that fails (a busy formation, a cut link) reports that member down, connection_refused, as
// a full mesh does. Once the cluster has grown into an overlay, it holds that member alive,
// and the member is not even the joiner's neighbour: the joiner lists it up again rather than
// down for as long as it runs.
func TestOverlayMemberDownOnlyOnAFirstDialIsUpOnceTheClusterIsAnOverlay(t *testing.T) {
	const k = 4
	const grown = 34
	idOf := func(i int) string { return simID(fmt.Sprintf("node%02d", i), 4000+i) }
	joinerID := simID("joiner", 4500)
	parse := func(text string) NodeID {
		id, err := ParseNodeID(text)
		require.NoError(t, err)
		return id
	}
	ids := []NodeID{parse(joinerID)}
	for i := range grown {
		ids = append(ids, parse(idOf(i)))
	}
	neighbours := newTopology(ids, k).neighbours(ids[0])
	s := newSim(t)
	small := newClusterWith(s, k, func(cfg *Config) { cfg.Monitors = k }) // K nodes: a full mesh
	var far *simNode                                                      // a member the joiner will not stream to once the cluster is an overlay
	for _, n := range small[1:] {
		if !slices.Contains(neighbours, n.id) {
			far = n
			break
		}
	}
	require.NotNil(t, far, "one of the first nodes is not the joiner's neighbour in the grown cluster")
	cfg := simConfig("joiner", small[0].id.String())
	cfg.Monitors = k
	joiner := s.create(joinerID, cfg)
	s.partition([]*simNode{joiner}, []*simNode{far}, true) // the joiner's dials to it fail
	joiner.start()
	s.advanceUntil(10*time.Second, func() bool { return joiner.core.members.get(far.id).isDown() },
		"the joiner's first dial of %s fails: down, as in a full mesh", far.id)
	all := append(slices.Clone(small), joiner)
	for i := k; i < grown; i++ {
		cfg := simConfig(fmt.Sprintf("node%02d", i), small[0].id.String())
		cfg.Monitors = k
		all = append(all, s.add(idOf(i), cfg))
	}
	s.advanceUntil(time.Minute, func() bool { return s.fullMesh(all...) },
		"every node, the joiner included, should list every other connected once the overlay holds them")
	require.Equal(t, []string{"down " + far.id.String() + " connection_refused", "up " + far.id.String()},
		joiner.eventsAbout(far), "the joiner: down on its failed dial, up once the overlay holds it alive")
}

// An observer whose dial slots are all taken by dials that hang (neighbours too busy to
// answer) still probes a subject whose stream closed at once: the probe finds the crashed
// node's port refusing within a round trip, where waiting for a slot would take a hanging
// dial's timeout.
func TestOverlayObserverBusyWithHangingDialsStillProbesACrashAtOnce(t *testing.T) {
	const k = 10
	s, nodes := overlayCluster(t, 40, k)
	subject, observers := subjectWithKObservers(t, s, nodes, k)
	busy := observers[:6]
	topo := topoOf(nodes, k)
	for _, o := range busy {
		hung := 0
		for _, id := range topo.subjects(o.id) {
			p := s.byID(id)
			if hung == maxConcurrentDials || p == subject || slices.Contains(observers, p) {
				continue
			}
			p.starved = true // answers no dial while it gets no CPU
			if o.streamEnd(p) != nil {
				s.breakStream(o, p) // its observer probes it: a dial that hangs
			}
			hung++
		}
		require.Equal(t, maxConcurrentDials, hung, "%s: enough subjects to hang its dials on", o.id)
	}
	s.advance(100 * time.Millisecond)
	for _, o := range busy {
		require.GreaterOrEqual(t, o.core.dialsInFlight(), maxConcurrentDials, "%s: every dial slot taken by a hanging dial", o.id)
	}

	subject.crash()
	refused := func(o *simNode) bool {
		set := o.core.alerts[subject.id]
		if set == nil {
			return false
		}
		mark, ok := set.by[o.id]
		return ok && !mark.up && mark.refused
	}
	for _, o := range busy {
		s.advanceUntil(time.Second, func() bool { return refused(o) },
			"%s should find %s's port refusing within a second, its hanging dials notwithstanding", o.id, subject.id)
	}
}

// TestOverlayNewObserverTimesASilentSubjectFromTheStart: a node that starts to check a peer
// it already streams to (the peer's observer left, and it takes its place) hears from the
// peer every tenth interval until it says so. The gap to the first heartbeat after that is
// not the peer's lateness: counted as such, it stretched the new observer's timeout by up to
// two timeouts, and a node that froze in the next 20 s was reported down seconds late.
func TestOverlayNewObserverTimesASilentSubjectFromTheStart(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	topo := topoOf(nodes, k)
	var subject, leaver, heir *simNode
	for _, n := range nodes {
		observers := topo.observers(n.id)
		for _, o := range observers {
			rest := slices.DeleteFunc(slices.Clone(nodes), func(x *simNode) bool { return x.id == o })
			for _, id := range topoOf(rest, k).observers(n.id) {
				// A new observer that the subject already monitors: their stream exists, and
				// only the subject's quiet heartbeats cross it.
				if !slices.Contains(observers, id) && slices.Contains(topo.subjects(n.id), id) {
					subject, leaver, heir = n, s.byID(o), s.byID(id)
				}
			}
		}
		if subject != nil {
			break
		}
	}
	require.NotNil(t, subject, "some node's observer, leaving, should be replaced by a node it monitors")
	stream := func() *peerConn { return heir.core.conns[heir.core.members.get(subject.id).conn] }
	require.NotNil(t, stream(), "%s streams to %s before %s leaves", heir.id, subject.id, leaver.id)
	require.False(t, stream().watching, "%s does not check %s before %s leaves", heir.id, subject.id, leaver.id)
	s.advanceUntil(20*time.Second, func() bool { return s.now.Sub(stream().lastBeat) >= 5*time.Second },
		"%s hears %s's quiet heartbeats 10 intervals apart", heir.id, subject.id)

	leaver.stop()
	var live []*simNode
	for _, n := range nodes {
		if n != leaver {
			live = append(live, n)
		}
	}
	s.advanceUntil(5*time.Second, func() bool {
		pc := stream()
		return pc != nil && pc.watching && !pc.toldQuiet && !pc.lastBeat.IsZero()
	}, "%s checks %s once %s left, and hears its heartbeats", heir.id, subject.id, leaver.id)
	s.advance(2 * time.Second)

	subject.frozen = true
	cfg := subject.cfg
	bound := cfg.HeartbeatInterval*time.Duration(cfg.HeartbeatMissThreshold) + cfg.HeartbeatInterval + 500*time.Millisecond
	var notYet []string
	s.advanceUntil(bound, func() bool {
		notYet = notYet[:0]
		for _, n := range live {
			if n != subject && !n.core.members.get(subject.id).isDown() {
				notYet = append(notYet, n.id.String())
			}
		}
		return len(notYet) == 0
	}, "every node should report the frozen %s down within interval × threshold + interval + 0.5 s (its new observer %s alerting in time)",
		subject.id, heir.id)
}

// TestOverlayNodeThatMissedACrashLearnsItFromAPeersView: a node that never heard the alerts
// nor the decision about a crashed node (in a formation, it may learn of the node from a
// view sent before the crash, and have no stream yet on which the news could come) held it
// up for good: a view that holds it down does not overrule the alerts, and nothing else
// would tell. When a peer's view disagrees (here, the view in the hello of a stream set up
// again), the node now dials the crashed node, finds nothing listening, and reports it down
// as the others did.
func TestOverlayNodeThatMissedACrashLearnsItFromAPeersView(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 24, k)
	topo := topoOf(nodes, k)
	victim := nodes[7]
	var deaf *simNode
	for _, n := range nodes {
		if n != victim && !slices.Contains(topo.neighbours(victim.id), n.id) {
			deaf = n
			break
		}
	}
	require.NotNil(t, deaf, "some node is not the victim's neighbour")
	s.drop = func(_, to *simNode, msg *Message) bool {
		if to != deaf {
			return false
		}
		for _, a := range msg.Alerts {
			if a.Subject == victim.id {
				return true // it hears nothing about the crash
			}
		}
		return false
	}
	victim.crash()
	for _, n := range nodes {
		if n == victim || n == deaf {
			continue
		}
		s.advanceUntil(10*time.Second, func() bool { return n.core.members.get(victim.id).isDown() },
			"%s should report the crashed %s down", n.id, victim.id)
	}
	require.False(t, deaf.core.members.get(victim.id).isDown(), "%s heard no alert about %s yet", deaf.id, victim.id)
	s.advance(5 * time.Second)
	require.False(t, deaf.core.members.get(victim.id).isDown(), "%s heard no alert about %s", deaf.id, victim.id)
	var peer *simNode
	for _, n := range nodes {
		if n != victim && n != deaf && deaf.streamEnd(n) != nil {
			peer = n
			break
		}
	}
	require.NotNil(t, peer, "%s streams to some node", deaf.id)
	s.breakStream(deaf, peer) // set up again: the peer's hello holds the victim down
	s.advanceUntil(20*time.Second, func() bool { return deaf.core.members.get(victim.id).isDown() },
		"%s, deaf to the alerts, should report %s down once a peer's view holds it down and its own dial finds nothing there",
		deaf.id, victim.id)
	require.Equal(t, []string{"up " + victim.id.String(), "down " + victim.id.String() + " connection_closed"},
		deaf.eventsAbout(victim), "%s reports the crash once, with the cluster's reason", deaf.id)
}

// In the overlay a join changes every node's view at about the same moment. For a quarter
// of an interval after a node's heartbeats first find its view changed they carry the digest
// from before, so that no node walks its table while the news spreads; then every node's
// heartbeats carry the new view's digest, and no node sends a whole view for a join that
// spread by itself.
func TestOverlayHeartbeatsCarryTheNewDigestOnceNewsHasSpread(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	before := nodes[0].core.viewDigest()
	for _, n := range nodes {
		require.Equal(t, before, n.core.viewDigest(), "%s: a settled cluster holds one view", n.id)
	}
	joinedAt := s.now
	joiner := s.add(simID("joiner", 4500), func() *Config {
		cfg := simConfig("joiner", nodes[5].id.String())
		cfg.Monitors = k
		return cfg
	}())
	all := append(slices.Clone(nodes), joiner)
	settle := nodes[0].core.digestSettle()
	s.advanceUntil(settle/2, func() bool {
		for _, n := range nodes {
			if len(n.eventsAbout(joiner)) == 0 {
				return false
			}
		}
		return true
	}, "the join reaches every node at once")
	s.advance(settle - (s.now.Sub(joinedAt)) - time.Millisecond)
	early := 0
	for _, n := range nodes {
		// A node that opens a stream (the joiner's neighbours, and the nodes whose neighbours
		// the join changed) says its current digest in its hello, and carries it from then on.
		sent := sentSince(n, joinedAt)
		if slices.ContainsFunc(sent, func(m simSent) bool { return m.msg.Hello != nil }) {
			continue
		}
		for _, m := range sent {
			if m.msg.Heartbeat != nil {
				early++
				require.Equal(t, before, m.msg.Heartbeat.ViewDigest,
					"%s: a heartbeat %v after the join carries the digest from before it", n.id, m.at.Sub(joinedAt))
			}
		}
	}
	require.Positive(t, early, "heartbeats go out while the join spreads")

	s.advance(settle + 2*nodes[0].cfg.HeartbeatInterval)
	after := joiner.core.viewDigest()
	require.NotEqual(t, before, after, "the join changes the view's digest")
	late := joinedAt.Add(2 * settle)
	for _, n := range all {
		require.Equal(t, after, n.core.viewDigest(), "%s holds the view with the joiner", n.id)
		for _, m := range sentSince(n, joinedAt) {
			if hb := m.msg.Heartbeat; hb != nil && !m.at.Before(late) {
				require.Equal(t, after, hb.ViewDigest, "%s: a heartbeat %v after the join carries the new digest", n.id, m.at.Sub(joinedAt))
			}
			if u := m.msg.Update; u != nil {
				require.False(t, u.Full, "%s sent its whole view %v after a join that spread by itself", n.id, m.at.Sub(joinedAt))
			}
		}
	}
}

// News that comes within two intervals of the last (a formation, joins one after another)
// is compared as it is: heartbeats carry the digest of the view their sender holds, or
// digests of views long gone would go round and the syncs that repair views would come late.
func TestOverlayHeartbeatsCarryTheCurrentDigestWhileTheViewKeepsChanging(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	joinerConfig := func(name string) *Config {
		cfg := simConfig(name, nodes[5].id.String())
		cfg.Monitors = k
		return cfg
	}
	first := s.add(simID("first", 4500), joinerConfig("first"))
	settle := nodes[0].core.digestSettle()
	s.advance(settle + 150*time.Millisecond)
	secondAt := s.now
	second := s.add(simID("second", 4501), joinerConfig("second"))
	s.advance(nodes[0].cfg.HeartbeatInterval) // each node's next beats
	after := second.core.viewDigest()
	current, stale := 0, 0
	for _, n := range nodes {
		sent := sentSince(n, secondAt)
		if slices.ContainsFunc(sent, func(m simSent) bool { return m.msg.Hello != nil }) {
			continue // its hello says its current digest (the first test above)
		}
		for _, m := range sent {
			if hb := m.msg.Heartbeat; hb != nil {
				if hb.ViewDigest == after {
					current++
				} else {
					stale++
				}
			}
		}
	}
	require.Positive(t, current, "heartbeats after a second join, %v after the first, carry the view with both", settle+150*time.Millisecond)
	require.Zero(t, stale, "no heartbeat after a second join carries the view from before it (%d do, %d do not)", stale, current)
	s.advance(5 * time.Second)
	for _, n := range append(slices.Clone(nodes), first, second) {
		for _, m := range sentSince(n, secondAt) {
			if u := m.msg.Update; u != nil {
				require.False(t, u.Full, "%s sent its whole view %v after the second join", n.id, m.at.Sub(secondAt))
			}
		}
	}
}

// TestOverlayMemberLeftConnectingWithoutAStreamIsUp: a node that learned a member while it
// was still a full mesh holds it connecting, its first dial to come; when the dial comes due
// the node is in the overlay, which needs no stream to that member. The cluster holds it
// alive, and the node lists it connected at once. Left connecting, nothing would look at it
// again in a quiet cluster: one pair of a 1,024-node formation stayed missing for good.
func TestOverlayMemberLeftConnectingWithoutAStreamIsUp(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 40, k)
	n := nodes[5]
	var m *member
	for _, p := range nodes {
		if p != n && !n.core.isNeighbour(p.id) {
			m = n.core.members.get(p.id)
			break
		}
	}
	require.NotNil(t, m, "%s has a member it streams to in no ring", n.id)
	require.Zero(t, m.conn, "%s has no stream to %s", n.id, m.id)
	// As a full mesh leaves a member it learned: connecting, its first dial due now.
	m.status, m.nextDial = StatusConnecting, n.core.instantOf(s.now)
	n.core.connected--
	n.core.wantDialAt(s.now)
	s.advanceUntil(5*time.Second, func() bool { return m.status == StatusConnected },
		"%s should list %s connected: the cluster holds it alive, and the overlay needs no stream to it", n.id, m.id)
	s.advance(30 * time.Second)
	require.Equal(t, StatusConnected, m.status, "%s should keep %s connected", n.id, m.id)
	require.Zero(t, m.conn, "%s still needs no stream to %s", n.id, m.id)
}

// A partition with one of a node's observers on one side and the node with its nine others
// on the other: the first side decides the node down, on its one observer's alert and the
// suspicion of the nine across the cut, which never alert. Once the partition heals, that
// observer reaches the node again and the nine are no longer suspected: the node comes back
// on that side too. It stayed down there for good, as only an up alert from each observer
// counted, and the nine had never alerted.
func TestOverlayNodeDecidedDownAcrossAPartitionComesBackWhenItHeals(t *testing.T) {
	const k = 10
	s, nodes := overlayCluster(t, 40, k)
	subject, observers := subjectWithKObservers(t, s, nodes, k)
	near := []*simNode{observers[0]}
	far := []*simNode{subject}
	far = append(far, observers[1:]...)
	for _, n := range nodes {
		if n == subject || slices.Contains(observers, n) {
			continue
		}
		if len(near) < 20 {
			near = append(near, n)
		} else {
			far = append(far, n)
		}
	}
	s.partition(near, far, true)
	down := "down " + subject.id.String()
	for _, n := range near {
		s.advanceUntil(20*time.Second, func() bool {
			events := n.eventsAbout(subject)
			return len(events) > 0 && strings.HasPrefix(events[len(events)-1], down)
		}, "%s, on the near side, should report %s down: its one observer there alerts, the nine across the cut are suspected", n.id, subject.id)
	}
	s.partition(near, far, false)
	for _, n := range allBut(nodes, subject) {
		s.advanceUntil(60*time.Second, func() bool {
			m := n.core.members.get(subject.id)
			return m != nil && m.status == StatusConnected
		}, "%s should hold %s up once the partition heals: its observers all reach it", n.id, subject.id)
	}
}

// A crashed node restarted under its name rejoins through its seed, which holds the old
// incarnation down as the cluster decided it. The seed took the new incarnation from the
// join's hello but kept it down, as if the cluster had decided it, until its observers' up
// alerts brought it back; but observers that learn a new incarnation from a relay before
// their own stream to it take it up at once, and raise none. Once the join's stream closed
// (the seed is no neighbour of the node), nothing checked it again: the seed, often every
// node's seed, reported the live node down for good.
func TestOverlaySeedThatHeldACrashedNodeDownTakesItsRestartUp(t *testing.T) {
	s, nodes := overlayCluster(t, 20, 4)
	seed := nodes[0]
	topo := topoOf(nodes, 4)
	var x *simNode
	for _, n := range nodes[1:] {
		if !slices.Contains(topo.neighbours(seed.id), n.id) {
			x = n // the seed streams to it only while it joins
			break
		}
	}
	require.NotNil(t, x, "some node should be no neighbour of the seed")
	i := slices.Index(nodes, x)

	x.crash()
	s.advanceUntil(30*time.Second, func() bool {
		for _, n := range allBut(nodes, x) {
			if m := n.core.members.get(x.id); m == nil || m.status != StatusDisconnected {
				return false
			}
		}
		return true
	}, "every node should decide %s down", x.id)
	s.advance(time.Minute) // its alerts expire; it stays down
	// No up alert about it reaches the seed, as when its observers raise none.
	s.drop = func(from, to *simNode, msg *Message) bool {
		if to != seed {
			return false
		}
		for _, a := range msg.Alerts {
			if a.Subject == x.id && a.Up {
				return true
			}
		}
		return false
	}
	nodes[i] = x.restart()
	s.advanceUntil(30*time.Second, func() bool {
		for _, n := range allBut(nodes, nodes[i]) {
			if m := n.core.members.get(x.id); m == nil || m.status != StatusConnected || m.incarnation != nodes[i].core.incarnation {
				return false
			}
		}
		return true
	}, "every node, the seed %s too, should hold the restarted %s up", seed.id, x.id)
	s.advance(30 * time.Second)
	require.Equal(t, StatusConnected, seed.core.members.get(x.id).status, "the seed should still hold the restarted %s up", x.id)
	require.Equal(t, []string{"up " + x.id.String(), fmt.Sprintf("down %s connection_closed", x.id), "up " + x.id.String()},
		seed.eventsAbout(x), "the seed should report the crash once and the restart once")
}
