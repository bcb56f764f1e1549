package membership

import (
	"math"
	"slices"
)

// Relaying news over the overlay. News (an alert, a decision, a join, a leave, new
// attributes) starts at its source and is flooded over the rings: a node passes on what is
// new to it, once. How widely depends on how far the news has come (its hop count, carried
// with it): the source sends it to every neighbour; a node at most wideHops streams from the
// source passes it to all K of its subjects; a node farther away only to its subjects on the
// first relayRings rings (view news drops a last wide hop that would reach every node more
// than once: viewWideHops). The wide hops reach a few hundred nodes at once, or a few
// thousand in a cluster of thousands; from there each ring alone is a cycle through every
// node, and a few of them reach the rest within a hop or so more, each node hearing the news
// about relayRings times rather than K times.

// relayRings is how many rings a node relays news over when it is farther than wideHops from
// the news's source: its subjects on rings 0 to relayRings-1. Each ring alone reaches every
// node; three keep a crash, a join and a leave within ⌈log_K N⌉ + 2 hops, at a third of the
// messages of relaying over all K rings.
const relayRings = 3

// relayWidth says to which neighbours a node passes news on: its subjects on the first
// relayWidth rings, or every neighbour (relayOrigin).
type relayWidth int

const (
	// relayOnward: to the subjects on the first relayRings rings.
	relayOnward relayWidth = relayRings
	// relayWide: to every subject.
	relayWide relayWidth = math.MaxInt32
	// relayOrigin: to every neighbour (the news's source, and a refusal's first relays where
	// the cluster is large).
	relayOrigin relayWidth = -1
)

// wideHops is how far from its source news is relayed to every subject: 1 (the nodes that
// heard it from its source) up to K³ nodes, then one more per factor of K, so that the
// wide hops alone reach about N/K nodes and the onward ones the rest.
func (c *core) wideHops() uint32 {
	k, n := c.cfg.Monitors, c.topo.size()
	hops, reach := uint32(1), k*k*k
	for reach < n && k > 1 {
		hops++
		reach *= k
	}
	return hops
}

// viewWideHops is how far from its source view news (a join, a leave, new attributes) is
// relayed to every subject: as far as wideHops says, less a last wide hop that would send
// more copies than the view has nodes. Just above K³ nodes that hop would reach every node
// twice over (about 2,000 copies of a join at 1,024 nodes with K = 10, two of the 4.3
// messages a node spent on it in the simulator); relayed onward instead, a join costs 3.1
// messages per node, within the same bound of hops. Alerts keep their second wide hop: a
// crash at 2,048 nodes needs it to be known everywhere within ⌈log_K N⌉ + 2 hops.
func (c *core) viewWideHops() uint32 {
	k, n, most := c.cfg.Monitors, c.topo.size(), c.wideHops()
	hops, copies := uint32(1), 2*k*k // the first wide hop's copies: 2K neighbours, K subjects each
	for hops < most && copies*k <= n {
		hops++
		copies *= k
	}
	return hops
}

// widthAt is how widely a node hop streams away from the news's source (0: unknown) relays
// it, when news is relayed to every subject up to wide hops from its source.
func widthAt(hop, wide uint32) relayWidth {
	if hop >= 1 && hop <= wide {
		return relayWide
	}
	return relayOnward
}

// nextHop is the hop count a relay of news heard hop streams from its source carries: one
// more, or 0 (unknown) if it was unknown.
func nextHop(hop uint32) uint32 {
	if hop == 0 {
		return 0
	}
	return hop + 1
}

// relayAlert passes an alert heard on stream from (nil: raised or decided here) on over the
// overlay. An observer's own alert goes to every neighbour. A node's own decision goes
// onward, as every node decides on the alerts that reach it and a decision is news only to
// the few that missed some; to every subject where few nodes decide a crash alone on its
// refusals (fewDecideAlone). An alert heard from a peer goes as widely as its hop count says
// (for a down alert that travels only part of the way, as its route says), and a decision
// heard from a peer onward where the hops left allow it (decisionsGoOnward).
func (c *core) relayAlert(from *peerConn, a *Alert) {
	relayed := *a
	relayed.Hop = 1
	width, except := relayOnward, connID(0)
	switch {
	case from == nil && !a.Decided:
		width = relayOrigin
	case from == nil && c.fewDecideAlone() && c.heardRefusals(a.Subject):
		width = relayWide // one of few sources of the news
	case from == nil:
		// its own decision: onward
	default:
		hop := a.Hop
		if from.peer == a.Observer {
			hop = 1 // whatever the peer says: it is the source
		}
		relayed.Hop, width, except = nextHop(hop), widthAt(hop, c.wideHops()), from.id
		if a.Decided && c.decisionsGoOnward() {
			width = relayOnward
		}
		if route, limited := c.limitedAlert(from, a, c.members.get(a.Subject)); limited {
			width = route.width(hop) // as refusalPlan or quorumPlan says
		}
	}
	c.relayOverlay(except, &Message{Alerts: []*Alert{&relayed}}, width)
}

// relayFresh passes view entries that changed the local table, heard on stream from hop
// streams away from where their news started (0: unknown), on over the overlay, so that
// joins, leaves and new attributes reach every node; in a full mesh every node hears them
// first hand.
func (c *core) relayFresh(from connID, fresh []MemberEntry, hop uint32) {
	if len(fresh) == 0 || !c.overlay() {
		return
	}
	msg := &Message{Update: &Update{Entries: slices.Clip(fresh), Hop: nextHop(hop)}}
	c.relayOverlay(from, msg, c.viewWidthAt(hop))
}

// viewWidthAt is how widely a node hop streams from where view news started (0: unknown)
// relays it: to every subject up to viewWideHops, over viewOnwardRings rings on the hop
// after, onward from there.
func (c *core) viewWidthAt(hop uint32) relayWidth {
	r := c.cachedRoutes()
	if hop >= 1 && hop == r.viewWide+1 {
		return relayWidth(r.viewOnward)
	}
	return widthAt(hop, r.viewWide)
}

// viewOnwardRings is how many rings view news goes over on its first hop after the wide ones
// (viewWidthAt): relayRings, or more where viewNewsMissed expects a node in a hundred
// clusters or more to miss it within ⌈log_K N⌉ + 2 hops. Just below a power of K the bound
// is a hop shorter than just above: at 900 nodes with K = 10, where it is 5, a leave reached
// its last node in 6 hops in the simulator (the model expects 0.12 nodes missed there with
// three rings, 0.007 with four, and 0.33 and 0.002 with three and five at 1,000 nodes; at
// 1,024 nodes, where the bound is 6, none with three).
func (c *core) viewOnwardRings(wide uint32) int {
	k, n := c.cfg.Monitors, c.topo.size()
	rings := relayRings
	for rings < k && viewNewsMissed(k, n, int(wide), int(c.crashHopsBound()), rings) > 0.01 {
		rings++
	}
	return rings
}

// viewNewsMissed estimates how many of n nodes have not heard view news bound hops from
// its source, relayed to every neighbour by its source, to every subject up to wide hops
// from it, over first rings on the hop after and relayRings on the others: a wide hop's
// copies reach nodes at random; on a hop over rings, a node that has not heard it yet hears
// it if one of its predecessors on those rings heard it first on the hop before.
func viewNewsMissed(k, n, wide, bound, first int) float64 {
	heard := min(1, float64(2*k)/float64(n)) // after the source's hop
	fresh, before := heard, 0.0              // heard first on the last hop; heard before it
	for hop := 2; hop <= bound; hop++ {
		var next float64
		if hop-1 <= wide {
			next = 1 - (1-heard)*math.Exp(-fresh*float64(k))
		} else {
			rings := relayRings
			if hop-1 == wide+1 {
				rings = first
			}
			q := fresh / max(1e-12, 1-before) // a predecessor not told before heard it last hop
			next = heard + (1-heard)*(1-math.Pow(1-q, float64(rings)))
		}
		before, fresh, heard = heard, next-heard, next
	}
	return float64(n) * (1 - heard)
}

// relayOverlay sends msg to the neighbours width names, except on stream except. When
// streams to more than one of the subjects it names are missing (a node still dialling them,
// or one that lost them), it sends to every other neighbour too, so the news still spreads.
// With fewer rings than relayRings (K = 2) every piece of news goes to every neighbour, both
// ways round the rings: relayed only towards the subjects, the news that a node and its
// observer crashed together stopped where the two rings met the crashed nodes.
func (c *core) relayOverlay(except connID, msg *Message, width relayWidth) {
	if width == relayOrigin || c.cfg.Monitors < relayRings {
		for _, pc := range c.sortedConns() {
			if pc.handshaken() && pc.id != except && c.current(pc) {
				c.send(pc, msg)
			}
		}
		return
	}
	targets := c.relaySubjects(width)
	sent := 0
	for _, pc := range c.sortedConns() {
		if pc.handshaken() && pc.id != except && c.current(pc) && targets[pc.peer] {
			c.send(pc, msg)
			sent++
		}
	}
	if sent >= len(targets)-1 {
		return
	}
	for _, pc := range c.sortedConns() {
		if pc.handshaken() && pc.id != except && c.current(pc) && !targets[pc.peer] {
			c.send(pc, msg)
		}
	}
}

// relaySubjects returns the subjects width relays to: every subject, or those on the first
// width rings. They are the subjects the streams were last set up for (reconcile clears
// them): news goes over the streams that exist, and while hundreds of nodes join, each join
// does not cost a lookup on every ring at every relay.
func (c *core) relaySubjects(width relayWidth) map[NodeID]bool {
	if c.subjects == nil {
		c.subjects = map[relayWidth]map[NodeID]bool{}
		c.ringSubjects = c.topo.onRings(c.self, +1)
	}
	rings := min(int(width), len(c.ringSubjects))
	if set, ok := c.subjects[relayWidth(rings)]; ok {
		return set
	}
	set := make(map[NodeID]bool, rings)
	for _, s := range c.ringSubjects[:rings] {
		set[s] = true
	}
	c.subjects[relayWidth(rings)] = set
	return set
}

// manyDecideAlone reports whether a third or more of the nodes are expected to decide a
// crashed node on its refusals alone (selfDecidingShare). A decision is then news to the
// rest only, and relayed onward from that many places it reaches them within a few hops
// (decisionsGoOnward), with no need of the wide hops: in the simulator at 1,024 nodes (half
// of them decide alone) those cost 4 of the 13.6 messages each node spent on a crash.
func (c *core) manyDecideAlone() bool {
	return c.selfDecidingShare() >= 1.0/3
}

// decisionsGoOnward reports whether a decision heard from a peer is relayed onward only,
// rather than to every subject for the wide hops: where the hops a crash is known everywhere
// within (⌈log_K N⌉ + 2 after its observers) leave at least 4 after its refusals'
// (refusalPlan), or at least 3 where many nodes decide alone (manyDecideAlone). Relayed
// onward from a third of the nodes or more, a decision takes up to 3 hops to reach the rest:
// at 1,000 nodes, where the bound is 5 and the refusals took 3, a crash relayed so took 6.
// From the twelfth of the nodes that decide alone at 1,024 nodes it takes 4, the deciding
// nodes sending theirs to every subject (fewDecideAlone): there the refusals take 2 hops of
// 6, a crash is known everywhere within the bound, and the wide hops that would send each
// node's copy to ten subjects are not needed.
func (c *core) decisionsGoOnward() bool {
	left := int(c.crashHopsBound()) - int(c.refusalPlan().reach)
	return left >= 4 || (left >= 3 && c.manyDecideAlone())
}

// crashHopsBound is ⌈log_K N⌉ + 2: how many hops after its observers a crash is known
// everywhere within.
func (c *core) crashHopsBound() uint32 {
	k, n := c.cfg.Monitors, c.topo.size()
	hops, reach := uint32(0), 1
	for reach < n && k > 1 {
		hops++
		reach *= k
	}
	return hops + 2
}

// fewDecideAlone reports whether fewer than one node in six is expected to decide a crashed
// node on its refusals alone (selfDecidingShare). A node that decides on refusals
// (heardRefusals) is then one of few sources of the news, and sends its decision to every
// subject, not onward only: at 512 nodes (one in eleven decides alone) a decision sent
// onward took a hop more than ⌈log_K N⌉ + 2 to reach every node, for three crashes of eight
// in the simulator.
func (c *core) fewDecideAlone() bool {
	return c.selfDecidingShare() < 1.0/6
}

// heardRefusals reports whether this node holds a refused down alert about subject: it
// decided a crash its observers found refusing, whose refusals travel only part of the way
// (refusalPlan), so that few nodes may decide it alone (fewDecideAlone). Other down alerts (a
// stream that timed out, a dial that hung) reach every node, or at least enough of the nodes
// that half of them hear a quorum (quorumPlan); most nodes decide on them, and a decision is
// news to the rest: it goes onward, as other news does.
func (c *core) heardRefusals(subject NodeID) bool {
	set := c.alerts[subject]
	if set == nil {
		return false
	}
	for _, mark := range set.by {
		if mark.refused {
			return true
		}
	}
	return false
}
