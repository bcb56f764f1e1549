package membership

import (
	"log/slog"
	"math"
	"slices"
	"time"
)

// The overlay. While the live view has at most K+1 nodes (K = Config.Monitors) the cluster is
// a full mesh and every node decides alone about each peer, from its own stream. Above that,
// each node streams only to its neighbours in the topology of the live view (the K nodes that
// monitor it, its observers, and the K it monitors, its subjects); every node still knows
// every node. Joins and leaves travel over those streams (merge relays what is new), and a
// node that loses its stream to a subject it observes raises an alert, relayed to every node:
// a node reports the subject down once enough of the subject's observers agree (quorum). An
// observer that reaches the subject again says so (an up alert), which withdraws its alert;
// a subject reported down comes back once fewer than a quorum of its observers still report
// it down.

// overlay reports whether the cluster is above the full mesh's size: K > 0 and the live
// view, this node included, has more than K+1 nodes.
func (c *core) overlay() bool {
	return c.cfg.Monitors > 0 && c.topo.size() > c.cfg.Monitors+1
}

// syncView puts m on the rings while it is alive in the view (known incarnation, not down,
// in the table), and takes it off otherwise. Every change of a member's status, incarnation
// or presence goes through here.
func (c *core) syncView(now time.Time, m *member) {
	c.touch(m)
	alive := !m.removed && m.incarnation != 0 && m.status != StatusDisconnected
	if alive {
		c.setBasis(m, true)
	} else if m.removed {
		c.setBasis(m, false)
	} else if m.inBasis && !now.IsZero() {
		due := now.Add(c.alertLifetime()) // it leaves the basis then (expireBasis)
		c.basisExpiries.push(due, m.id)
		c.wantWake(due)
	}
	if alive == m.inView {
		return
	}
	m.inView = alive
	if alive {
		c.topo.add(m.id)
	} else {
		c.topo.remove(m.id)
	}
	c.needReconcile(now, true)
}

// needReconcile asks a later tick to bring the streams in line with the topology (reconcile);
// changed says the view itself changed (not only a stream). While the view keeps changing, as
// when hundreds of nodes join at once, the streams wait for it to settle (reconcileSettle) or
// for an interval at most, so a node dials its neighbours in the view as it ends up, not in
// every view on the way: each dial is a new connection, and a formation that redialled at
// every change would spend the machine on connections it unlinks a moment later.
func (c *core) needReconcile(now time.Time, changed bool) {
	if now.IsZero() {
		c.topoDirty = true
		return
	}
	if !c.topoDirty {
		c.topoDirtySince, c.topoChanges = now, 0
	}
	c.topoDirty = true
	if changed {
		c.topoChangedAt = now
		c.topoChanges++
	}
	c.wantWake(c.reconcileAt())
}

// reconcileSettle is how long the view must stay unchanged before the streams follow it.
func (c *core) reconcileSettle() time.Duration { return c.cfg.HeartbeatInterval / 4 }

// reconcileAt is when the pending reconcile is due: once the view has been still for
// reconcileSettle, and an interval after the first change at the latest; while the view
// grows fast (more than 2K changes since the first, as when hundreds join at once), up to
// maxReconcileWait intervals: each reconcile dials the neighbours of the view as it is, and
// while joins pour in most of them are no longer neighbours a moment later.
func (c *core) reconcileAt() time.Time {
	wait := c.cfg.HeartbeatInterval * time.Duration(min(1+c.topoChanges/max(1, 2*c.cfg.Monitors), maxReconcileWait))
	return minTime(c.topoChangedAt.Add(c.reconcileSettle()), c.topoDirtySince.Add(wait))
}

// maxReconcileWait caps, in intervals, how long the streams wait for a view that keeps
// changing (reconcileAt).
const maxReconcileWait = 4

// reconcileDue reports whether a pending reconcile is due at now (and asks to wake up when
// it is not yet).
func (c *core) reconcileDue(now time.Time) bool {
	at := c.reconcileAt()
	if now.Before(at) {
		c.wantWake(at)
		return false
	}
	return true
}

// minTime returns the earlier of a and b.
func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// setBasis puts m on the basis's rings, or takes it off. The basis is the live view plus the
// nodes that went down within an alert's lifetime: decisions are counted over it, so every
// node counts the same observers for a subject whatever order it decided the others in, and
// an observer that failed with its subject counts as reporting it (decide).
func (c *core) setBasis(m *member, in bool) {
	if m.inBasis == in {
		return
	}
	m.inBasis = in
	if in {
		c.basis.add(m.id)
	} else {
		c.basis.remove(m.id)
	}
}

// expireBasis takes nodes down for longer than an alert's lifetime off the basis. It looks
// only at the nodes due (basisExpiries, in the order they went down), not at every member:
// while any node is down on the basis, a node would otherwise pass over its whole table at
// every tick.
func (c *core) expireBasis(now time.Time) {
	if c.basis.size() == c.topo.size() {
		c.basisExpiries.clear() // nobody down on the basis: every entry is stale
		return
	}
	for {
		id, ok := c.basisExpiries.pop(now)
		if !ok {
			break
		}
		m := c.members.get(id)
		if m == nil || !m.inBasis || m.status != StatusDisconnected {
			continue // back, or gone from the table
		}
		if until := c.at(m.statusSince).Add(c.alertLifetime()); now.Before(until) {
			c.basisExpiries.push(until, id) // down again since
			continue
		}
		c.setBasis(m, false)
	}
	if due, ok := c.basisExpiries.next(); ok {
		c.wantWake(due)
	}
}

// isNeighbour reports whether the local node streams to id: always in a full mesh, else when
// id is one of its observers or subjects (or would be, for a node off the view).
func (c *core) isNeighbour(id NodeID) bool {
	if !c.overlay() || c.neighbours()[id] {
		return true
	}
	return !c.members.get(id).inViewOrNil() && c.topo.isNeighbour(c.self, id)
}

// isNeighbourMember is isNeighbour for a member at hand, without looking it up (reconcile
// asks it of every member).
func (c *core) isNeighbourMember(m *member) bool {
	if !c.overlay() {
		return true
	}
	if c.neighbours(); m.neighbour { // the marks follow the set: no lookup by id
		return true
	}
	return !m.inView && c.topo.isNeighbour(c.self, m.id)
}

// neighbours returns the set of this node's neighbours in the live view, built anew only
// when the view changed. Each neighbour's member record is marked too (member.neighbour).
func (c *core) neighbours() map[NodeID]bool {
	if c.neighbourVersion != c.topo.version() || c.neighbourSet == nil {
		for id := range c.neighbourSet {
			if m := c.members.get(id); m != nil {
				m.neighbour = false
			}
		}
		c.neighbourSet = map[NodeID]bool{}
		for _, n := range c.topo.neighbours(c.self) {
			c.neighbourSet[n] = true
			if m := c.members.get(n); m != nil {
				m.neighbour = true
			}
		}
		c.neighbourVersion = c.topo.version()
	}
	return c.neighbourSet
}

// isDown reports whether m exists and is down.
func (m *member) isDown() bool { return m != nil && m.status == StatusDisconnected }

// inViewOrNil reports whether m exists and is on the rings.
func (m *member) inViewOrNil() bool { return m != nil && m.inView }

// downOnItsDialOnly reports whether m is down on this node's word alone: its first dial
// failed while the cluster was a full mesh (connection_refused), and no observer alerts about
// it nor did the cluster decide it. In the overlay the cluster holds it alive and its
// observers decide; without this, a node that joined a small cluster in a busy moment held
// such a member down for as long as it ran, where every other node listed it up.
func (c *core) downOnItsDialOnly(m *member) bool {
	if !m.downOnDial || m.status != StatusDisconnected || m.downs.of(m.incarnation) > 0 {
		return false
	}
	set := c.alerts[m.id]
	return set == nil || set.incarnation != m.incarnation || set.downs == 0
}

// unlink closes pc, this node's stream to m, because the overlay no longer needs it; the peer
// is told, so neither side takes it for a failure.
func (c *core) unlink(now time.Time, pc *peerConn, m *member) {
	c.send(pc, &Message{Unlink: &Unlink{}})
	m.conn = 0
	c.discardConn(pc, true)
	c.log(slog.LevelDebug, "unlinked a stream the overlay no longer needs", "peer", m.id.String())
}

// onUnlink handles the peer closing the stream because its overlay no longer needs it.
func (c *core) onUnlink(now time.Time, pc *peerConn) {
	if m := c.memberOf(pc); m != nil && m.conn == pc.id {
		m.conn = 0
		c.needReconcile(now, false) // if this node still wants the stream, reconcile redials it
	}
	c.discardConn(pc, false)
}

// lost handles the end of m's stream (its current one) for reason: in a full mesh m is down
// (but on a node joining an overlay it has yet to see, joiningOverlay, which only redials); in
// the overlay an observer raises an alert and the cluster decides, and a neighbour redials.
//
// A stream that closed is probed first: the observer redials at once and alerts only if that
// dial fails (endDial). A crashed node refuses the dial within a round trip; a live one, whose
// side closed the stream (its detector timed out this node, in a stalled moment), answers, and
// no alert goes round the cluster for nothing. A stream that went silent is alerted at once:
// a dial to a node that hangs would only wait out the dial timeout.
func (c *core) lost(now time.Time, m *member, reason DownReason) {
	if c.joiningOverlay(now) {
		// Outside the overlay of a cluster that runs one: not this node's word to give. It
		// redials; once its view arrives, the overlay's observers decide.
		m.conn = 0
		c.scheduleRedial(now, m)
		return
	}
	if !c.overlay() {
		c.markDown(now, m, reason)
		c.scheduleRedial(now, m)
		return
	}
	m.conn = 0
	if reason == ReasonConnectionClosed && m.status == StatusConnected && c.basis.isObserver(c.self, m.id) {
		m.probing = true
		m.attempts, m.refusals = 0, 0
		if m.dial == 0 && !c.leaving {
			// At once, whatever dials are in flight: a crashed node's port refuses the probe
			// within a round trip, and the crash's decision waits on it, not on dials to busy
			// neighbours that take their timeout to fail (at most K probes at a time).
			c.dial(now, m)
			return
		}
		m.nextDial = c.instantOf(now)
		c.wantDialAt(now)
		return
	}
	c.observe(now, m, reason, false, false)
	if c.isNeighbour(m.id) {
		c.scheduleRedial(now, m)
	}
}

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
	reach, _, limited := c.limitedAlert(from, a, m)
	return limited && a.Hop >= reach
}

// limitedAlert reports whether a down alert heard on stream from travels only part of the
// way, and how (reach and wide, as refusalPlan gives them): a down alert relayed by a peer,
// about an incarnation of m not decided down yet, so that its alerts can still decide it; a
// refusal as refusalPlan says, another down alert (a stream that timed out, a probe that hung)
// as quorumPlan says, where that plan limits it. With K = 2 every alert goes everywhere: a
// node decides on both of a subject's two alerts, and the two limited floods, two hops each
// along two rings, could miss each other, leaving a crash undecided for good (a random run
// of crashes and partitions in a 40-node cluster did).
func (c *core) limitedAlert(from *peerConn, a *Alert, m *member) (reach, wide uint32, limited bool) {
	if a.Up || a.Decided || from == nil || from.peer == a.Observer || a.Hop == 0 || m == nil ||
		a.Incarnation != m.incarnation || m.downs.of(m.incarnation) != 0 || c.cfg.Monitors < relayRings {
		return 0, 0, false
	}
	if a.Refused {
		reach, wide, _ = c.refusalPlan()
		return reach, wide, true
	}
	reach, wide, _, limited = c.quorumPlan()
	return reach, wide, limited
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

// refusalPlan says how a refused alert travels: reach is how many streams from its observer
// it goes, wide up to which hop it is relayed to every subject (onward from there), copies
// about how many copies of it the overlay carries (selfDecidingShare). It is
// the overlay's relays (every neighbour, then every subject for the wide hops, then
// relayRings subjects) until about two in five nodes of the view have heard it
// (refusalShareNum / refusalShareDen), so that a tenth or more of the nodes hear a majority
// of a crashed node's K refusals; two hops at least, as the observer's neighbours always
// pass it on to every subject. A later wide hop that would send more than twice the copies
// that share needs is relayed onward instead: just above K³ nodes, where news takes a second
// wide hop, that hop would reach every node twice over (about 2,000 copies of each refusal
// at 1,024 nodes with K = 10, where 600 relayed onward reach the share).
func (c *core) refusalPlan() (reach, wide uint32, copies int) {
	k, n := c.cfg.Monitors, c.topo.size()
	wideHops := c.wideHops()
	target := n * refusalShareNum // in refusalShareDen-ths of a node
	hop, front, reached := uint32(1), 2*k, 2*k
	for reached*refusalShareDen < target && front > 0 {
		wideHop := hop == 1 || (hop <= wideHops && (reached+front*k)*refusalShareDen <= 2*target)
		if wideHop {
			wide = hop
		}
		front = nextFront(front, k, wideHop)
		reached += front
		hop++
	}
	return max(hop, 2), wide, reached
}

// selfDecidingShare is the share of the nodes expected to hear a majority of a crashed
// node's K refusals, and so to decide it on their own, when each refusal travels as
// refusalPlan says: its copies, spread at random, reach 1 - e^(-copies/N) of the nodes, and a
// node decides if more than K/2 of the K refusals reach it.
func (c *core) selfDecidingShare() float64 {
	k, n := c.cfg.Monitors, c.topo.size()
	if k == 0 || n == 0 {
		return 0
	}
	_, _, copies := c.refusalPlan()
	return shareHearing(k, k/2+1, copies, n)
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

// decideFrom decides subject, whose alerts changed, and then the subjects whose count it may
// change: a node that is suspected or decided down counts as alerting for the nodes it
// observes (its subjects), so a decision or a new suspicion about one node is followed by its
// subjects' decisions, and theirs after them. Each node is decided at most twice per call.
func (c *core) decideFrom(now time.Time, subject NodeID) (decidedSubject bool) {
	work := []NodeID{subject}
	visits := map[NodeID]int{}
	for len(work) > 0 {
		id := work[0]
		work = work[1:]
		if visits[id] >= 2 {
			continue
		}
		visits[id]++
		m := c.members.get(id)
		if m == nil {
			continue
		}
		changed := c.decide(now, m)
		if changed && id == subject {
			decidedSubject = true
		}
		// Its subjects' counts change only if it changed, or if its new alert may have made
		// it suspected: an alert that leaves it unsuspected changes nobody else's count.
		if !changed && (id != subject || !c.suspected(id)) {
			continue
		}
		for _, s := range c.basisNeighbours(id).subjects {
			if c.alerts[s] != nil {
				work = append(work, s)
			}
		}
	}
	return decidedSubject
}

// decide reports m down once a quorum of its observers report it down, or the first time
// its incarnation goes down, once more than half of them found nothing listening at its
// address (refused redials), with the reason most of them give; and back up once so many of
// them report it up again (up alerts) that fewer than a quorum are left to report it down.
// It reports whether it changed m's status.
//
// An observer that is itself suspected (down alerts from at least L of its own observers,
// L = 3 of 10 as in Rapid) counts as reporting m down: when several nodes fail at once, some
// of a failed node's observers failed too and cannot say so.
func (c *core) decide(now time.Time, m *member) bool {
	set := c.alerts[m.id]
	if set == nil || set.incarnation != m.incarnation {
		return false
	}
	observers := c.basisNeighbours(m.id).observers
	quorum := c.quorum(len(observers))
	if m.status == StatusDisconnected {
		// Back once an observer says it reaches it again (an up alert heard since it went
		// down: an older one may predate what took it down) and either fewer than a quorum
		// of its observers can still report it down, or none does: no down alert stands, and
		// none of them failed or is suspected. One observer that reaches it again (the one
		// link a partial cut left) is not enough while the others' alerts stand. But a node
		// decided down across a partition, on the alert of its one observer on this side and
		// the suspicion of the others, comes back once that observer reaches it again and the
		// others, reached again too, are no longer suspected: they never alerted, so they
		// never say it is up, and it stayed down for good after the partition healed.
		ups, downs := 0, 0
		for _, o := range observers {
			mark, ok := set.by[o]
			switch {
			case ok && mark.up:
				if mark.number > m.downMark {
					ups++
				}
			case ok || c.members.get(o).isDown() || c.suspected(o):
				downs++
			}
		}
		if ups == 0 || (len(observers)-ups >= quorum && downs > 0) {
			return false
		}
		delete(c.alerts, m.id)
		c.markUp(now, m)
		return true
	}
	// The observers' own alerts first; those without one count only if they failed or are
	// suspected, which costs more to tell, and is told only while a quorum is within reach.
	downs := map[DownReason]int{}
	count, silent, refused := 0, 0, 0
	for _, o := range observers {
		mark, ok := set.by[o]
		switch {
		case ok && !mark.up:
			downs[mark.reason]++
			count++
			if mark.refused {
				refused++
			}
		case !ok:
			silent++
		}
	}
	if refused > len(observers)/2 && m.downs.of(m.incarnation) == 0 {
		// A majority found nothing listening at its address: no slow observer or bad link
		// refuses a dial, and the rest would only say the same later. Once per incarnation:
		// one that came back (its other observers reach it) is decided by H from then on, so
		// a port that refuses only some of its observers cannot take it down again and again.
		c.settleDown(now, m, majority(downs), nil, nil)
		return true
	}
	if count == 0 || count+silent < quorum {
		return false
	}
	// The silent observers, until a quorum is reached or out of reach: with one alert of ten
	// (the usual case in a busy cluster, where every node hears every alert) the second
	// silent observer that is up and unsuspected settles it.
	for _, o := range observers {
		if count >= quorum || count+silent < quorum {
			break
		}
		if _, ok := set.by[o]; ok {
			continue
		}
		silent--
		if c.members.get(o).isDown() || c.suspected(o) {
			count++ // failed with its subject, or suspected itself: it cannot say so
		}
	}
	if count < quorum {
		return false
	}
	c.settleDown(now, m, majority(downs), nil, nil)
	return true
}

// ringNeighbours are a node's observers and subjects in the basis.
type ringNeighbours struct {
	observers, subjects []NodeID
}

// basisNeighbours returns id's observers and subjects in the basis, cached until an id joins
// or leaves it, or a tick finds the cache unused since the last (releaseIdleBasisCache): a
// decision reads the observers of a subject and of each of those observers, and a burst of
// alerts decides many subjects, so the same lookups repeat.
func (c *core) basisNeighbours(id NodeID) ringNeighbours {
	c.basisCacheUsed = true
	if c.basisCache == nil || c.basisCacheVersion != c.basis.version() {
		c.basisCache = map[NodeID]ringNeighbours{}
		c.basisCacheVersion = c.basis.version()
	}
	nb, ok := c.basisCache[id]
	if !ok {
		nb = ringNeighbours{observers: c.basis.observers(id), subjects: c.basis.subjects(id)}
		c.basisCache[id] = nb
	}
	return nb
}

// releaseIdleBasisCache drops the cache of basisNeighbours if nothing asked for it since the
// last call (a tick). A steady basis never invalidates it, and after a formation's alerts it
// held the neighbours of a hundred subjects or more, some 100 KB a node at 1,024 nodes, for
// decisions that were over.
func (c *core) releaseIdleBasisCache() {
	if !c.basisCacheUsed {
		c.basisCache = nil
	}
	c.basisCacheUsed = false
}

// suspected reports whether at least L of id's observers report it down.
func (c *core) suspected(id NodeID) bool {
	set := c.alerts[id]
	if set == nil {
		return false
	}
	m := c.members.get(id)
	if m == nil || set.incarnation != m.incarnation || m.status == StatusDisconnected {
		return false
	}
	observers := c.basisNeighbours(id).observers
	k := c.cfg.Monitors
	low := max(1, k*3/10)
	need := max(1, (low*len(observers)+k-1)/k)
	if set.downs < need {
		return false // too few down marks, whoever gave them: the usual case, told at once
	}
	count := 0
	for _, o := range observers {
		if mark, ok := set.by[o]; ok && !mark.up {
			count++
		}
	}
	return count >= need
}

// quorum is how many of a subject's observers must report it down: H of K (K - K/10, 9 of
// 10 as in Rapid), scaled to the observers the subject has (fewer than K when rings repeat).
func (c *core) quorum(observers int) int {
	k := c.cfg.Monitors
	h := k - k/10
	return max(1, (h*observers+k-1)/k)
}

// majority returns the reason given most, the most specific on a tie.
func majority(counts map[DownReason]int) DownReason {
	best, bestCount := ReasonConnectionClosed, 0
	for _, r := range []DownReason{ReasonHeartbeatTimeout, ReasonConnectionClosed, ReasonConnectionRefused, ReasonGracefulShutdown} {
		if counts[r] > bestCount {
			best, bestCount = r, counts[r]
		}
	}
	return best
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

// redecideSubjectsOf decides again the nodes down on the basis that the given live nodes
// observe, once those lost a down alert (expireAlerts) or an up alert replaced one
// (onAlert): an observer no longer suspected counts no more as reporting its subjects down,
// which may bring one back (decide). Nothing else would: the alerts about a node decided
// down across a partition may all be in, the last of them while its observers on the far
// side were still suspected.
func (c *core) redecideSubjectsOf(now time.Time, observers []NodeID) {
	if len(observers) == 0 || c.basis.size() == c.topo.size() {
		return // nobody down on the basis
	}
	for _, o := range observers {
		for _, s := range c.basisNeighbours(o).subjects {
			if m := c.members.get(s); m.isDown() && c.alerts[s] != nil {
				c.decideFrom(now, s)
			}
		}
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

// settleDown reports m down for reason, decided here (heard nil) or by the decision heard
// on stream from, and relays the decision once: the nodes that have not decided yet do so on
// it, and no longer need each observer's alert. The alerts stay (expireAlerts holds them
// while m is down): an up alert that came before the decision still counts towards bringing
// m back when the next one comes.
func (c *core) settleDown(now time.Time, m *member, reason DownReason, heard *Alert, from *peerConn) {
	round := m.downs.of(m.incarnation) + 1
	decision := &Alert{Subject: m.id, Incarnation: m.incarnation, Observer: c.self, Reason: reason, Decided: true, Round: round}
	if heard != nil {
		decision = heard
		round = max(round, heard.Round)
	}
	m.downs = downRound{incarnation: m.incarnation, count: round}
	direct := m.conn
	// Asked while m is still on the rings, the neighbour set at hand answers; asked after,
	// the set would be built anew for a view without m, in every node at the same moment, a
	// tenth of the CPU a crash cost a cluster of 1,024 nodes. Reconcile builds it later.
	neighbour := c.isNeighbour(m.id)
	c.markDown(now, m, reason) // clears m.conn
	if direct != 0 {
		c.dropConn(direct) // the cluster has decided: this node's stream does not overrule it
	}
	c.relayAlert(from, decision)
	if neighbour {
		c.scheduleRedial(now, m)
	}
}

// holdDown takes a node this node learns of only as down (a decision, or a view entry its
// sender holds down, about a node or an incarnation newer than m, which may be nil) into the
// table as down. It is never reported up here: a node added this way emits nothing, and the
// old incarnation of a known node is reported down for reason. It stays on the basis for an
// alert's lifetime, as on the nodes that decided it, and its neighbours redial it, so a node
// that comes back is reached. It reports whether it changed the table.
func (c *core) holdDown(now time.Time, m *member, id NodeID, incarnation uint64, reason DownReason) bool {
	if !c.overlay() || id == c.self || id.IsZero() {
		return false
	}
	if t, ok := c.tombs[id]; ok && incarnation <= t.incarnation {
		return false // already forgotten or left
	}
	if m == nil {
		delete(c.tombs, id)
		m = &member{id: id, incarnation: incarnation, status: StatusDisconnected, statusSince: c.instantOf(now)}
		c.putMember(m)
		c.forgetCheckAt(now.Add(c.cfg.ReconnectTimeout))
	} else {
		if m.conn != 0 {
			return false // a stream to the old incarnation: its own hello settles which is current
		}
		if m.status != StatusDisconnected {
			c.markDown(now, m, reason) // the old incarnation is gone
		}
		m.incarnation = incarnation
		m.statusSince = c.instantOf(now)
	}
	delete(c.alerts, id)
	c.viewChanged()
	c.setBasis(m, true) // expireBasis takes it off after an alert's lifetime
	c.syncView(now, m)
	if c.isNeighbour(id) {
		c.scheduleRedial(now, m)
	}
	return true
}
