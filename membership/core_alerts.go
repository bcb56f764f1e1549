package membership

import (
	"log/slog"
	"math"
	"slices"
	"time"
)

// Alerts: what an observer says about its subject (observe), how far a peer's alert travels
// on (limitedAlert, the plans), and what a node keeps of them (alertSet, recordAlert,
// expireAlerts). What a node concludes from them is in core_decide.go.

// observe raises this node's alert about m, if it is one of m's observers: m lost (up false,
// with the reason, and refused if a dial to its address was refused) or reached again (up
// true).
func (c *core) observe(now time.Time, m *member, reason DownReason, up, refused bool) {
	if !c.overlay() || !c.basis.isObserver(c.self, m.id) {
		return
	}
	if set := c.alerts[m.id]; set != nil && set.incarnation == m.incarnation {
		if mark, ok := set.by[c.self]; ok && mark.up == up && !(up && m.status == StatusDisconnected && mark.number <= m.downMark) {
			// Already reported: down, what it saw first is the reason (a stream that timed
			// out, then a redial that failed, is still a timeout); up, nothing new, unless m
			// went down here since (a decision heard late): the old up alert no longer counts
			// towards bringing it back (decide), a new one does.
			return
		}
	}
	a := &Alert{Subject: m.id, Incarnation: m.incarnation, Observer: c.self, Up: up, Seq: c.nextAlertSeq()}
	if !up {
		a.Reason, a.Refused = reason, refused
		c.holdBeats(now) // its alert goes first
	}
	if c.recordAlert(now, a) {
		c.log(slog.LevelDebug, "raising an alert", "subject", m.id.String(), "up", up, "reason", reason.String(), "refused", refused)
		c.relayAlert(nil, a)
		c.decideFrom(now, m.id)
	}
}

// onAlert handles an alert relayed by a peer: recorded once, relayed on, then decided.
func (c *core) onAlert(now time.Time, pc *peerConn, a *Alert) {
	if a.Observer == c.self {
		return // its own, back over another path
	}
	if !a.Up {
		c.holdBeats(now) // the news goes first
	}
	if a.Subject == c.self {
		if c.recordAlert(now, a) {
			c.relayAlert(pc, a) // the others still need it, once
		}
		return
	}
	m := c.members.get(a.Subject)
	if a.Decided && !a.Up && (m == nil || (a.Incarnation > m.incarnation && m.incarnation != 0)) {
		// Decided before this node knew of it: held down, so that a late claim that it is
		// alive, from a node that had not heard yet, never brings it up here.
		if c.holdDown(now, m, a.Subject, a.Incarnation, a.Reason) {
			c.members.get(a.Subject).downs = downRound{incarnation: a.Incarnation, count: a.Round}
			c.relayAlert(pc, a)
		}
		return
	}
	if m == nil || a.Incarnation != m.incarnation {
		return // about a node or an incarnation this node does not hold: nothing to decide
	}
	if a.Decided {
		switch {
		case a.Up || m.status == StatusDisconnected:
		case c.lateDecision(now, m, a):
			// A late copy of a decision taken before m came back, or a new failure that the
			// deciding node numbered as one, having counted fewer rounds: a dial tells.
			c.verifyDown(now, m)
		default:
			c.settleDown(now, m, a.Reason, a, pc)
		}
		return
	}
	decided := m.status == StatusDisconnected
	if !c.recordAlert(now, a) {
		return
	}
	if pc := c.conns[m.dial]; m.dial != 0 && pc != nil && !a.Up {
		if at, ok := c.hungProbe(pc); ok {
			c.recheck(pc) // the dial's deadline may now come sooner
			c.wantWake(maxTime(now, at))
		}
	}
	if decided && !a.Up {
		return // this node relayed its decision already: it covers this alert's news
	}
	if c.decideFrom(now, m.id) && m.status == StatusDisconnected && !a.Up {
		return // deciding it, this node relayed its decision, which covers this alert too
	}
	if a.Up {
		c.redecideSubjectsOf(now, []NodeID{m.id}) // it may be suspected no more
	}
	if c.alertGoesNoFarther(pc, a, m) {
		return
	}
	c.relayAlert(pc, a)
}

// lateDecision reports whether decision a, about m, which this node holds up, may be a late
// copy of one it took already: m came back since, lately (within an alert's lifetime, as long
// as news takes to travel), and a numbers a round this node has counted. Its round alone does
// not tell: the two sides of a partition count different rounds (one side decided m down and
// back, the other never did), and a later crash decided on the side that counted fewer
// rounds numbers a round the other side has seen. Dropped as late, that decision left the
// crashed node up for good on the nodes it reached only that way; taken at once, a late copy
// would take a node that came back down again.
func (c *core) lateDecision(now time.Time, m *member, a *Alert) bool {
	return a.Round != 0 && a.Round <= m.downs.of(m.incarnation) &&
		now.Sub(c.at(m.statusSince)) < c.alertLifetime()
}

// alertGoesNoFarther reports whether a down alert heard on stream from has come as far as it
// needs to (limitedAlert), while its subject is still to be decided. Within that reach a part
// of the nodes hear enough of the subject's alerts (a majority of refusals, or a quorum of
// other alerts) and decide; their decision then reaches every node. Relaying each of K
// alerts to every node as well would cost each node several more messages for news the
// decision already carries.
func (c *core) alertGoesNoFarther(from *peerConn, a *Alert, m *member) bool {
	route, limited := c.limitedAlert(from, a, m)
	return limited && from.peer != a.Observer && a.Hop >= route.reach
}

// limitedAlert reports whether a down alert heard on stream from travels only part of the
// way, and how (its route, as refusalPlan or quorumPlan gives it): a down alert heard from a
// peer (its observer, or a node that relays it), about an incarnation of m not decided down
// yet, so that its alerts can still decide it; a refusal as refusalPlan says, another down
// alert (a stream that timed out, a probe that hung) as quorumPlan says, where that plan
// limits it. With K = 2 every alert goes everywhere: a node decides on both of a subject's
// two alerts, and the two limited floods, two hops each along two rings, could miss each
// other, leaving a crash undecided for good (a random run of crashes and partitions in a
// 40-node cluster did).
func (c *core) limitedAlert(from *peerConn, a *Alert, m *member) (route relayRoute, limited bool) {
	if a.Up || a.Decided || from == nil || a.Hop == 0 || m == nil ||
		a.Incarnation != m.incarnation || m.downs.of(m.incarnation) != 0 || c.cfg.Monitors < relayRings {
		return relayRoute{}, false
	}
	if a.Refused {
		return c.refusalPlan(), true
	}
	return c.quorumRoute()
}

// routes caches the routes of limited alerts (refusalPlan, quorumRoute), the share of nodes
// that decide a crash alone (selfDecidingShare) and how view news is relayed (viewWidthAt)
// for the view size they were worked out for: a burst of alerts asks for them several times
// per alert, and a formation's joins as often.
type routes struct {
	size            int // the view's size they are for; 0: none yet
	refusal, quorum relayRoute
	quorumIsLimited bool
	selfDeciding    float64 // selfDecidingShare
	viewWide        uint32  // viewWideHops
	viewOnward      int     // viewOnwardRings
}

// cachedRoutes returns the routes for the view's present size.
func (c *core) cachedRoutes() *routes {
	if n := c.topo.size(); c.routes.size != n {
		c.routes = routes{size: n, refusal: c.planRefusals()}
		c.routes.selfDeciding = c.planSelfDeciding(c.routes.refusal)
		c.routes.viewWide = c.viewWideHops()
		c.routes.viewOnward = c.viewOnwardRings(c.routes.viewWide)
		reach, wide, copies, limited := c.quorumPlan()
		c.routes.quorum.reach, c.routes.quorum.copies, c.routes.quorumIsLimited = reach, copies, limited
		for range max(wide, 1) { // the observer's neighbours pass it on to every subject
			c.routes.quorum.widths = append(c.routes.quorum.widths, relayWide)
		}
	}
	return &c.routes
}

// quorumRoute is the route of a down alert that is not a refusal, as quorumPlan says, and
// whether that plan limits it.
func (c *core) quorumRoute() (relayRoute, bool) {
	r := c.cachedRoutes()
	return r.quorum, r.quorumIsLimited
}

// relayRoute is how a down alert that travels only part of the way goes (limitedAlert).
type relayRoute struct {
	// reach is how many streams from its observer it goes.
	reach uint32
	// widths[h-1] is how widely a node that heard it h streams from its observer relays it:
	// onward (relayOnward) past the end.
	widths []relayWidth
	// copies is about how many copies of it the overlay carries.
	copies int
}

// width is how widely a node that heard the alert hop streams from its observer relays it.
func (r relayRoute) width(hop uint32) relayWidth {
	if hop >= 1 && int(hop) <= len(r.widths) {
		return r.widths[hop-1]
	}
	return relayOnward
}

// quorumPlan says how far a down alert that is not a refusal travels (limitedAlert), and
// about how many copies of it the overlay then carries: a node
// goes silent, its K observers time it out one after another, and a node decides it once a
// quorum of them (H of K) has said so. Each alert goes as the overlay relays news (every
// neighbour, every subject for the wide hops, relayRings subjects after), until about half
// the nodes are expected to hear a quorum of the K alerts (shareHearing) and decide it on
// their own; their decisions, relayed on, reach the rest. Just above K³ nodes the second wide
// hop gets there (2,220 copies of each alert at 1,024 nodes with K = 10, where seven nodes in
// ten then hear nine alerts or more): the relays after it, which reach the last eighth of the
// nodes, cost more than a thousand messages per alert, and a silent node's ten alerts came
// to 38 messages per node, against 9.6 for a crash. Not limited (limited false) where half
// the nodes are not expected to hear a quorum within ⌈log_K N⌉ + 2 hops: the alert goes
// everywhere, as other news does.
func (c *core) quorumPlan() (reach, wide uint32, copies int, limited bool) {
	k, n := c.cfg.Monitors, c.topo.size()
	if k == 0 || n == 0 {
		return 0, 0, 0, false
	}
	need, wideHops, bound := c.quorum(k), c.wideHops(), c.crashHopsBound()
	hop, front, reached := uint32(1), 2*k, 2*k
	for hop <= bound {
		if shareHearing(k, need, reached, n) >= 1.0/2 {
			return max(hop, 2), wide, reached, true
		}
		if hop <= wideHops {
			wide = hop
		}
		front = nextFront(front, k, hop <= wideHops)
		reached += front
		hop++
	}
	return 0, 0, 0, false
}

// nextFront is how many copies of a piece of news the hop after one that sent front sends:
// front times K when that hop relays it to every subject (wide), times relayRings when it
// relays it onward.
func nextFront(front, k int, wide bool) int {
	if wide {
		return front * k
	}
	return front * relayRings
}

// refusalPlan says how a refused alert travels (its copies are what selfDecidingShare
// counts): it is relayed until about two in five nodes of the view have heard it
// (refusalShareNum / refusalShareDen), so that a tenth or more of the nodes hear a majority
// of a crashed node's K refusals, and each hop passes it to as many neighbours as reach that
// share, no more: every subject at least on the first relay (by the observer's neighbours),
// every neighbour at most, the subjects of the first few rings on a last hop that needs few.
// Two hops at least. At 1,024 nodes with K = 10 the observer's 20 neighbours pass it to
// every neighbour: 420 copies in two hops. Passed to every subject and then onward over three
// rings, as before, it took three hops and 820 copies (the last hop sent 600 where 200 more
// reached the share), a crash cost 9.6 messages per node in the simulator rather than 6.9,
// and its first decision came a hop later.
func (c *core) refusalPlan() relayRoute { return c.cachedRoutes().refusal }

// planRefusals works refusalPlan out for the view's present size.
func (c *core) planRefusals() relayRoute {
	k, n := c.cfg.Monitors, c.topo.size()
	target := n * refusalShareNum // in refusalShareDen-ths of a node
	front := 2 * k                // the observer's own copies: one to every neighbour
	route := relayRoute{reach: 1, copies: front}
	for route.copies*refusalShareDen < target && front > 0 {
		// As many copies from each node of this hop as reach the share, every subject at
		// least on the first relay, every neighbour at most.
		per := (target - route.copies*refusalShareDen + front*refusalShareDen - 1) / (front * refusalShareDen)
		if route.reach == 1 {
			per = max(per, k)
		}
		width := relayWidth(per)
		switch {
		case per > k:
			width, per = relayOrigin, 2*k
		case per == k:
			width = relayWide
		}
		route.widths = append(route.widths, width)
		front *= per
		route.copies += front
		route.reach++
	}
	route.reach = max(route.reach, 2)
	return route
}

// selfDecidingShare is the share of the nodes expected to hear a majority of a crashed
// node's K refusals, and so to decide it on their own, when each refusal travels as
// refusalPlan says: its copies, spread at random, reach 1 - e^(-copies/N) of the nodes, and a
// node decides if more than K/2 of the K refusals reach it.
func (c *core) selfDecidingShare() float64 { return c.cachedRoutes().selfDeciding }

// planSelfDeciding works selfDecidingShare out for the view's present size and refusal.
func (c *core) planSelfDeciding(refusal relayRoute) float64 {
	k, n := c.cfg.Monitors, c.topo.size()
	if k == 0 || n == 0 {
		return 0
	}
	return shareHearing(k, k/2+1, refusal.copies, n)
}

// shareHearing is the share of n nodes expected to hear at least need of k alerts when each
// alert's copies, spread at random, reach 1 - e^(-copies/n) of them.
func shareHearing(k, need, copies, n int) float64 {
	p := 1 - math.Exp(-float64(copies)/float64(n))
	share, ways := 0.0, 1.0 // ways: k choose j
	for j := 0; j <= k; j++ {
		if j >= need {
			share += ways * math.Pow(p, float64(j)) * math.Pow(1-p, float64(k-j))
		}
		ways = ways * float64(k-j) / float64(j+1)
	}
	return share
}

// refusalShareNum/refusalShareDen is the share of the view a refused alert reaches
// (refusalPlan): with four in ten of the nodes hearing each refusal, one in ten or more
// hears a majority of ten.
const refusalShareNum, refusalShareDen = 2, 5

// alertSet holds the alerts about one incarnation of a subject, by observer.
type alertSet struct {
	incarnation uint64
	by          map[NodeID]alertMark
	downs       int // marks that report the subject down, whoever gave them
}

// put records o's mark.
func (s *alertSet) put(o NodeID, mark alertMark) {
	if prev, ok := s.by[o]; ok && !prev.up {
		s.downs--
	}
	if !mark.up {
		s.downs++
	}
	s.by[o] = mark
}

// drop forgets o's mark.
func (s *alertSet) drop(o NodeID) {
	if prev, ok := s.by[o]; ok && !prev.up {
		s.downs--
	}
	delete(s.by, o)
}

// alertMark is one observer's last word about the subject.
type alertMark struct {
	reason  DownReason
	up      bool
	refused bool   // down, and the observer's dial to the subject was refused (Alert.Refused)
	number  uint64 // this node's number for the mark, which its entry in alertExpiries names
	seq     uint64 // the alert's Seq (0: not numbered)
}

// alertDue names a mark of alerts in alertExpiries: the subject's set, the observer's mark in
// it, and the mark's number (a mark replaced or dropped since leaves its entry stale).
type alertDue struct {
	subject, observer NodeID
	number            uint64
}

// olderThan reports whether a is news to a node that holds mark from the same observer: a
// later alert when both are numbered; else one that says something else. Two numbered alerts
// of one observer that reach a node in the wrong order (over two paths of the overlay) leave
// it with the later one: without the numbers the earlier, arriving last, would count as news
// and be relayed on, and the two would chase each other round the overlay for as long as
// the cluster runs.
func (mark alertMark) olderThan(a *Alert) bool {
	if mark.seq != 0 && a.Seq != 0 {
		return a.Seq > mark.seq
	}
	return mark.up != a.Up || mark.reason != a.Reason
}

// nextAlertSeq returns the Seq of a new alert of this node: larger than any it gave before,
// in this incarnation or an earlier one (an incarnation is taken from the clock, and a node
// raises far fewer alerts than nanoseconds pass between two starts).
func (c *core) nextAlertSeq() uint64 {
	c.alertSeq = max(c.alertSeq+1, c.incarnation)
	return c.alertSeq
}

// recordAlert stores a and reports whether it says something new.
func (c *core) recordAlert(now time.Time, a *Alert) bool {
	set := c.alerts[a.Subject]
	if set == nil || set.incarnation != a.Incarnation {
		set = &alertSet{incarnation: a.Incarnation, by: map[NodeID]alertMark{}}
		c.alerts[a.Subject] = set
	}
	if prev, known := set.by[a.Observer]; known && !prev.olderThan(a) {
		return false
	}
	c.alertMarks++
	set.put(a.Observer, alertMark{reason: a.Reason, up: a.Up, refused: a.Refused && !a.Up, number: c.alertMarks, seq: a.Seq})
	due := now.Add(c.alertLifetime())
	c.alertExpiries.push(due, alertDue{subject: a.Subject, observer: a.Observer, number: c.alertMarks})
	c.wantWake(due)
	return true
}

// alertLifetime is how long an alert counts: long enough for every observer of a failed node
// to time it out, short enough that old, isolated alerts never add up to a quorum.
func (c *core) alertLifetime() time.Duration {
	return 3*time.Duration(c.cfg.HeartbeatMissThreshold)*c.cfg.HeartbeatInterval + c.cfg.DialTimeout
}

// expireAlerts drops alerts older than their lifetime, except those about a node decided
// down: they hold until it comes back (decide) or is forgotten, so that the observers that
// still cannot reach it keep it down however long it takes the others to reach it again.
//
// It looks only at the marks due (alertExpiries, in the order they were recorded, each due a
// lifetime later), not at every alert: a node of a busy cluster holds thousands, and marks
// come due every few milliseconds. Each tick runs it, so the wake-up for the next mark due is
// asked for again after every tick.
func (c *core) expireAlerts(now time.Time) {
	var unmarked []NodeID // live nodes that lost a down mark: perhaps no longer suspected
	anyDown := c.basis.size() != c.topo.size()
	for {
		e, ok := c.alertExpiries.pop(now)
		if !ok {
			break
		}
		set := c.alerts[e.subject]
		if set == nil {
			continue
		}
		mark, ok := set.by[e.observer]
		if !ok || mark.number != e.number {
			continue // replaced or dropped since
		}
		if m := c.members.get(e.subject); m.isDown() && m.incarnation == set.incarnation {
			c.alertExpiries.push(now.Add(c.alertLifetime()), e) // again then: its node may have come back
			continue
		}
		set.drop(e.observer)
		if len(set.by) == 0 {
			delete(c.alerts, e.subject)
		}
		if anyDown && !mark.up && !slices.Contains(unmarked, e.subject) {
			unmarked = append(unmarked, e.subject)
		}
	}
	c.redecideSubjectsOf(now, unmarked)
	if due, ok := c.alertExpiries.next(); ok {
		c.wantWake(due)
	}
}

// alerted reports whether this node has a down alert of its own standing about id.
func (c *core) alerted(id NodeID) bool {
	set := c.alerts[id]
	if set == nil {
		return false
	}
	mark, ok := set.by[c.self]
	return ok && !mark.up
}
