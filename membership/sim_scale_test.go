package membership

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The overlay at scale, in virtual time. The size is SIM_NODES (default 1,024, just above K³
// where alerts take a second wide hop and view news does not, or 300 under the race detector; `make sim-scale` runs
// 2,048), with the default K = 10. Every node holds the whole view, so the simulation's
// memory grows with N²: about 1 GB at 1,000 nodes, and
// 4,096 nodes run in 20 GiB (`make sim-scale SIM_NODES=4096`, 7 minutes).

// scaleSize is the number of nodes of the scale simulation.
func scaleSize(t *testing.T) int {
	t.Helper()
	text := os.Getenv("SIM_NODES")
	if text == "" && raceEnabled {
		return 300
	}
	if text == "" {
		return 1024
	}
	n, err := strconv.Atoi(text)
	require.NoError(t, err, "SIM_NODES must be a number of nodes")
	require.GreaterOrEqual(t, n, 100, "SIM_NODES: the scale simulation needs at least 100 nodes")
	return n
}

// recordSimFigures appends, when SIM_RESULTS names a file, one JSON line per cluster size:
// messages per node and per stream per interval (bench/cmd/benchreport plots them beside the
// benchmark's cost per node).
func recordSimFigures(t *testing.T, k int, figures map[int][2]float64) {
	t.Helper()
	path := os.Getenv("SIM_RESULTS")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err, "SIM_RESULTS should name a file the test can append to")
	defer func() { require.NoError(t, f.Close()) }()
	for _, n := range slices.Sorted(maps.Keys(figures)) {
		line, err := json.Marshal(map[string]any{"n": n, "k": k,
			"messages_per_node_per_interval": figures[n][0], "messages_per_stream_per_interval": figures[n][1]})
		require.NoError(t, err)
		_, err = f.Write(append(line, '\n'))
		require.NoError(t, err)
	}
}

// scaleCluster starts count nodes with K = k in a quiet simulation, one after another at the
// same instant, all seeded with the first, and lets the overlay converge: every node counts
// every other connected.
func scaleCluster(t *testing.T, count, k int) (*sim, []*simNode) {
	t.Helper()
	s := newSim(t)
	s.quiet = true
	nodes := overlayNodes(s, count, k, true)
	s.advanceUntil(5*time.Minute, func() bool { return everyNodeConnected(nodes, count-1) },
		"%d nodes with K=%d should converge", count, k)
	return s, nodes
}

// overlayNodes registers count nodes with K = k, named node0000, node0001, … on ports 4000,
// 4001, …, all seeded with the first; with start, each is started (and the network settled)
// as soon as it is registered.
func overlayNodes(s *sim, count, k int, start bool) []*simNode {
	nodes := make([]*simNode, count)
	for i := range count {
		name := fmt.Sprintf("node%04d", i)
		cfg := simConfig(name)
		cfg.Monitors = k
		if i > 0 {
			cfg.Seeds = []string{"127.0.0.1:4000"}
		}
		nodes[i] = s.create(simID(name, 4000+i), cfg)
		if start {
			nodes[i].start()
		}
	}
	return nodes
}

// everyNodeConnected reports whether every running node counts want peers connected.
func everyNodeConnected(nodes []*simNode, want int) bool {
	for _, n := range nodes {
		if n.up && n.core.connected != want {
			return false
		}
	}
	return true
}

// messagesPerNodePerInterval counts the messages the nodes send over 10 intervals of 1 s, per
// node and per stream.
func messagesPerNodePerInterval(s *sim, nodes []*simNode) (perNode, perStream float64) {
	streams := 0
	for _, n := range nodes {
		for _, pc := range n.core.conns {
			if pc.handshaken() {
				streams++
			}
		}
	}
	before := 0
	for _, n := range nodes {
		before += n.msgs
	}
	s.advance(10 * time.Second)
	after := 0
	for _, n := range nodes {
		after += n.msgs
	}
	return float64(after-before) / float64(len(nodes)) / 10, float64(after-before) / float64(streams) / 10
}

// newsHops waits until every node of nodes but about reports about with the wanted status
// and returns the smallest and the largest hop count at which a node emitted that event
// (since skip[n]).
func newsHops(t *testing.T, s *sim, nodes []*simNode, about *simNode, status NodeStatus, skip map[*simNode]int, what string) (first, last int) {
	t.Helper()
	s.advanceUntil(10*time.Second, func() bool {
		for _, n := range nodes {
			if n == about || !n.up {
				continue
			}
			m := n.core.members.get(about.id)
			if status == StatusDisconnected {
				if m != nil && m.status != StatusDisconnected {
					return false // (a node that left is taken out of the table)
				}
			} else if m == nil || m.status != status || m.incarnation != about.core.incarnation {
				return false
			}
		}
		return true
	}, "every node should see the %s of %s", what, about.id)
	want := EventNodeUp
	if status == StatusDisconnected {
		want = EventNodeDown
	}
	first = -1
	for _, n := range nodes {
		if n == about || !n.up {
			continue
		}
		seen := 0
		for _, e := range n.brief[skip[n]:] {
			if e.id == about.id && e.typ == want {
				seen++
				last = max(last, e.hop)
				if first < 0 || e.hop < first {
					first = e.hop
				}
			}
		}
		require.Equal(t, 1, seen, "%s should report the %s of %s once", n.id, what, about.id)
	}
	return first, last
}

// countNews counts, from now on, the messages the nodes send that are not heartbeats: the
// cost of the news that spreads. It returns a function that reads the count.
func countNews(s *sim) func() int {
	count := 0
	s.drop = func(_, _ *simNode, msg *Message) bool {
		if msg.Heartbeat == nil {
			count++
		}
		return false
	}
	return func() int { return count }
}

// requireNewsCost checks that spreading one piece of news cost each node at most perNode
// messages on average.
func requireNewsCost(t *testing.T, what string, sent func() int, nodes, perNode int) {
	t.Helper()
	cost := float64(sent()) / float64(nodes)
	t.Logf("%s: %.1f messages per node", what, cost)
	require.LessOrEqual(t, cost, float64(perNode), "spreading a %s should cost each node at most %d messages", what, perNode)
}

// eventCounts records how many events each node of a quiet simulation has emitted so far.
func eventCounts(nodes []*simNode) map[*simNode]int {
	skip := make(map[*simNode]int, len(nodes))
	for _, n := range nodes {
		skip[n] = len(n.brief)
	}
	return skip
}

// TestOverlaySimulationAtScale forms a cluster of SIM_NODES nodes with K = 10 and checks, on
// that one cluster: streams bounded by 2K; messages per node per interval within 10 % of a
// 100-node cluster's; a join, a leave and a crash known by every node within ⌈log_K N⌉ + 2
// hops; one observer's cut link takes nobody down; a subject cut from H of its observers is
// down everywhere.
func TestOverlaySimulationAtScale(t *testing.T) {
	const k = 10
	count := scaleSize(t)
	small, smallNodes := scaleCluster(t, 100, k)
	smallRate, smallPerStream := messagesPerNodePerInterval(small, smallNodes)

	started := time.Now()
	s, nodes := scaleCluster(t, count, k)
	t.Logf("%d nodes converged in %v of virtual time (%v real)", count, s.now.Sub(time.Unix(1_700_000_000, 0)), time.Since(started).Round(time.Millisecond))
	s.advance(2 * time.Second) // the streams follow the view once it settles
	requireOverlayStreams(t, nodes, k)
	rate, perStream := messagesPerNodePerInterval(s, nodes)
	t.Logf("messages per interval: %.2f per node (%.3f per stream) at 100 nodes, %.2f (%.3f) at %d",
		smallRate, smallPerStream, rate, perStream, count)
	// A node sends a heartbeat an interval to each of its K observers (a stream carries them
	// one way unless its two ends observe each other), so the rate per node stays near K
	// whatever the size; per stream it falls a little as the rings repeat fewer neighbours.
	recordSimFigures(t, k, map[int][2]float64{100: {smallRate, smallPerStream}, count: {rate, perStream}})
	require.LessOrEqual(t, rate, 1.2*float64(k), "a node sends about one heartbeat per observer per interval, to at most K observers")
	require.InDelta(t, smallRate, rate, 0.1*smallRate, "messages per node per interval stay flat from 100 to %d nodes", count)
	bound := hopsBound(count, k)

	// A join through one seed reaches every node. News heard second hand is relayed over a
	// few rings (relayRings), not all K: a join or a leave costs each node about relayRings
	// messages (its wide hops never reach every node twice over, as a second wide hop did
	// just above K³ nodes), and a crash, which each of its K observers reports, a few per
	// observer.
	skip := eventCounts(nodes)
	sent := countNews(s)
	joiner := s.add(simID("joiner", 9000), func() *Config {
		cfg := simConfig("joiner", nodes[count/2].id.String())
		cfg.Monitors = k
		return cfg
	}())
	first, last := newsHops(t, s, nodes, joiner, StatusConnected, skip, "join")
	t.Logf("join: the seed knows it at hop %d (the handshake), every node %d hops later (bound %d)", first, last-first, bound)
	require.LessOrEqual(t, last-first, bound, "a join reaches every node within ⌈log_K N⌉+2 hops of its seed")
	requireNewsCost(t, "join", sent, count, relayRings+1)
	s.advance(5 * time.Second)

	// A graceful leave.
	leaver := nodes[count/3]
	skip = eventCounts(nodes)
	sent = countNews(s)
	leaver.stop()
	_, last = newsHops(t, s, nodes, leaver, StatusDisconnected, skip, "leave")
	t.Logf("leave known everywhere after %d hops (bound %d)", last, bound)
	require.LessOrEqual(t, last, bound, "a leave reaches every node within ⌈log_K N⌉+2 hops")
	requireNewsCost(t, "leave", sent, count, relayRings+1)
	s.advance(5 * time.Second)

	// A crash: its observers see the stream closed, alert, and the cluster decides.
	victim := nodes[count/4]
	skip = eventCounts(nodes)
	sent = countNews(s)
	victim.crash()
	first, last = newsHops(t, s, nodes, victim, StatusDisconnected, skip, "crash")
	// The victim's observers see its streams close (hop 1) and find it gone when they redial
	// it (the refusal, hop 2): the news spreads from there.
	t.Logf("crash: first decided at hop %d, known everywhere %d hops after its observers knew (bound %d)", first, last-2, bound)
	require.LessOrEqual(t, last-2, bound, "a crash reaches every node within ⌈log_K N⌉+2 hops of its observers")
	// Its K refusals travel only part of the way (refusalPlan): a decision carries the rest,
	// relayed onward only where many nodes decide on the refusals alone (decisionsGoOnward).
	perNode := 3 * k / 2
	if c := nodes[0].core; c.decisionsGoOnward() {
		perNode = k*c.refusalPlan().copies/count + relayRings // each refusal's copies, then the decision
	}
	requireNewsCost(t, "crash", sent, count, perNode)
	s.drop = nil
	s.advance(5 * time.Second)

	var live []*simNode
	for _, n := range append(nodes, joiner) {
		if n.up {
			live = append(live, n)
		}
	}
	byID := make(map[NodeID]*simNode, len(live))
	for _, n := range live {
		byID[n.id] = n
	}
	topo := topoOf(live, k)

	// One observer's link to its subject is cut: nobody reports the subject down.
	subject := live[len(live)/5]
	observers := topo.observers(subject.id)
	skip = eventCounts(live)
	s.partition([]*simNode{subject}, []*simNode{byID[observers[0]]}, true)
	s.advance(20 * time.Second)
	for _, n := range live {
		for _, e := range n.brief[skip[n]:] {
			require.NotEqual(t, EventNodeDown, e.typ, "%s: one observer's cut link takes nobody down (%s reported down)", n.id, e.id)
		}
	}
	s.partition([]*simNode{subject}, []*simNode{byID[observers[0]]}, false)
	s.advance(10 * time.Second)

	// Another subject is cut from H of its K observers: everybody reports it down.
	subject = live[len(live)/6]
	observers = topo.observers(subject.id)
	quorum := k - k/10
	require.GreaterOrEqual(t, len(observers), quorum)
	var cutFrom []*simNode
	for _, o := range observers[:quorum] {
		cutFrom = append(cutFrom, byID[o])
	}
	skip = eventCounts(live)
	sent = countNews(s)
	s.partition([]*simNode{subject}, cutFrom, true)
	for _, n := range live {
		if n == subject {
			continue
		}
		s.advanceUntil(20*time.Second, func() bool { return n.core.members.get(subject.id).isDown() },
			"%s should report %s down once H of its observers lost it", n.id, subject.id)
		var reasons []DownReason
		for _, e := range n.brief[skip[n]:] {
			if e.typ == EventNodeDown && e.id == subject.id {
				reasons = append(reasons, e.reason)
			}
		}
		require.Equal(t, []DownReason{ReasonHeartbeatTimeout}, reasons, "%s reports %s down once, with the observers' reason", n.id, subject.id)
	}
	// Its observers' alerts each go as far as leaves half the nodes a quorum of them, where
	// that is short of every node (quorumPlan): the decisions of those nodes carry the rest.
	perNode = (k + 1) * relayRings // every alert to every node, then the decision
	if _, _, copies, limited := live[0].core.quorumPlan(); limited {
		perNode = k*copies/count + relayRings
	}
	requireNewsCost(t, "silence of a node cut from H of its observers", sent, count, perNode)
	s.drop = nil

	// A third subject crashes, and half its observers get no answer when they redial it (a
	// machine that stops answering is not the same to all): too few refusals to decide on
	// them alone (decide). A refusal travels only part of the way (refusalPlan), so every
	// node must decide on H alerts, among them the refusals it heard, or hear the decision of
	// a node that did.
	stillCut := subject // cut from H observers above, and still: it hears nothing from them
	subject = live[len(live)/7]
	observers = topo.observers(subject.id)
	var unanswered []*simNode
	for _, o := range observers[:len(observers)/2] {
		unanswered = append(unanswered, byID[o])
	}
	s.hangDials(unanswered, []*simNode{subject}, true)
	subject.crash()
	for _, n := range live {
		if n == subject || n == stillCut {
			continue
		}
		s.advanceUntil(20*time.Second, func() bool { return n.core.members.get(subject.id).isDown() },
			"%s should report %s down: it crashed, half its observers found its port refusing", n.id, subject.id)
	}
	refusals := 0
	for _, o := range observers {
		if set := byID[o].core.alerts[subject.id]; set != nil && set.by[o].refused {
			refusals++
		}
	}
	require.Equal(t, len(observers)-len(unanswered), refusals, "the observers that got an answer found the port refusing, the others did not")
}

// TestOverlaySimulationCrashesWhereFewDecideAlone crashes eight nodes, one after another, of
// a cluster of 512 with K = 10, where about one node in eleven hears a majority of a crashed
// node's refusals and decides alone (fewDecideAlone): each crash is known by every node
// within ⌈log_K N⌉ + 2 hops of its observers, as the nodes that decide on refusals send their
// decision to every subject. A node that goes silent, which every node decides alone, costs
// no more than other news.
func TestOverlaySimulationCrashesWhereFewDecideAlone(t *testing.T) {
	const k, count = 10, 512
	s, nodes := scaleCluster(t, count, k)
	s.advance(2 * time.Second)
	require.True(t, nodes[0].core.fewDecideAlone(), "at %d nodes few should decide a crash alone", count)
	bound := hopsBound(count, k)
	for i := range 8 {
		victim := nodes[(i*7919+count/4)%count] // spread over the cluster; never the same twice
		skip := eventCounts(nodes)
		victim.crash()
		_, last := newsHops(t, s, nodes, victim, StatusDisconnected, skip, "crash")
		require.LessOrEqual(t, last-2, bound, "crash %d (%s): every node should know it within ⌈log_K N⌉+2 hops of its observers", i, victim.id)
		s.advance(5 * time.Second)
	}

	// A node that goes silent (its streams time out, dials to it hang) is alerted to every
	// node, and every node decides it alone: the decisions go onward, not to every subject,
	// and each of the K alerts and the decision cost each node about relayRings messages.
	victim := nodes[count/3]
	var others []*simNode
	for _, n := range nodes {
		if n != victim && n.up {
			others = append(others, n)
		}
	}
	skip := eventCounts(nodes)
	sent := countNews(s)
	s.partition([]*simNode{victim}, others, true)
	s.hangDials(others, []*simNode{victim}, true)
	newsHops(t, s, nodes, victim, StatusDisconnected, skip, "silence")
	requireNewsCost(t, "silent node", sent, count, (k+1)*relayRings)
	s.drop = nil
}

// TestOverlaySimulationLeaveJustBelowAPowerOfK has a node of a cluster of 900 leave, with
// K = 10. Just below K³ the bound of ⌈log_K N⌉ + 2 hops is a hop shorter than just above
// (5 rather than 6), and the leave must still reach every node within it: view news goes
// over more rings on the hop after its wide one there (viewOnwardRings). Over relayRings
// rings, a leave at 900 nodes reached its last node in 6 hops.
func TestOverlaySimulationLeaveJustBelowAPowerOfK(t *testing.T) {
	const k, count = 10, 900
	s, nodes := scaleCluster(t, count, k)
	s.advance(2 * time.Second)
	require.Greater(t, nodes[0].core.cachedRoutes().viewOnward, relayRings,
		"at %d nodes view news should go over more than %d rings on the hop after its wide one", count, relayRings)
	bound := hopsBound(count, k)
	leaver := nodes[count/3]
	skip := eventCounts(nodes)
	sent := countNews(s)
	leaver.stop()
	_, last := newsHops(t, s, nodes, leaver, StatusDisconnected, skip, "leave")
	require.LessOrEqual(t, last, bound, "a leave at %d nodes should reach every node within ⌈log_K N⌉+2 hops", count)
	requireNewsCost(t, "leave", sent, count, relayRings+1)
}
