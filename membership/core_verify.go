package membership

import (
	"log/slog"
	"time"
)

// Checks of a member's status against its peers'. In the overlay a node's status changes on
// the alerts and decisions that go round the cluster; a node that had no stream while they
// went by (it joined in a busy formation, or was cut off at that moment) holds the member in
// the status from before, and no later alert comes to correct it. When a peer says otherwise
// (in the list of members it holds down that each new stream carries, and that every node
// holding some sends one peer every ten intervals; or in a view), this node checks with the
// member itself: it dials it. A dial refused shows a node that is down (verifyDown), and this
// node takes it down; it relays nothing, so one peer's stale word never takes a node down
// anywhere else. A node that answers a dial from a node that holds it down (verifyUp) asks its
// observers to say again that they reach it (reassert): they are the ones whose word counts,
// and their new up alerts bring it back wherever it is held down.

// verifyDown checks m, which a peer holds down while this node holds it up without a stream
// to it: the alerts and the decision about it went by before this node knew it, or while it
// had no stream to hear them on (a node that joins in a busy formation), and nothing else
// would ever take it down here (sendDowns). It dials it (or marks the dial in flight)
// to find out: refused (nothing listens at its address), it takes it down as the cluster did
// (takeVerifiedDown); answered, it is alive and stays up (the peer's view is the stale one);
// failed otherwise, the next peer that holds it down makes it try again. Only a dial made
// after the peer's word counts: an older refusal may predate the member's start.
func (c *core) verifyDown(now time.Time, m *member) {
	if !c.overlayRules(now) || c.leaving || m.status != StatusConnected || m.conn != 0 {
		return
	}
	if pc := c.checkingDial(now, m); pc != nil {
		pc.verifying = true
	}
	c.log(slog.LevelDebug, "a peer holds down a member this node holds up; checking it", "peer", m.id.String())
}

// checkingDial returns m's dial in flight, and starts one if there is none: a check rides on
// a dial already under way.
func (c *core) checkingDial(now time.Time, m *member) *peerConn {
	if m.dial == 0 {
		c.dial(now, m)
	}
	return c.conns[m.dial]
}

// takeVerifiedDown reports m down here, as the cluster decided it, once this node's own dial
// found nothing listening at its address. It is this node's catching up, not a decision: it
// relays nothing, so a peer's stale word and one refused dial never take a node down
// anywhere else. Its round is counted as a decision's (reconcile does not bring it back).
func (c *core) takeVerifiedDown(now time.Time, m *member) {
	m.downs = downRound{incarnation: m.incarnation, count: m.downs.of(m.incarnation) + 1}
	c.markDown(now, m, ReasonConnectionClosed)
	if c.isNeighbour(m.id) {
		c.scheduleRedial(now, m)
	}
}

// endVerify settles a dial verifyDown or verifyUp started, which ended before its handshake:
// refused, or answered by another node (one that took the address over, as when a container
// is rescheduled, this node included), a member held up goes down. It reports whether the
// dial is settled so; if not, a neighbour is redialled as any other.
func (c *core) endVerify(now time.Time, pc *peerConn, m *member) bool {
	gone := pc.refused || pc.rejected == RejectUnexpectedID || pc.rejected == RejectSelf
	if pc.verifying && gone && m.status == StatusConnected && m.conn == 0 && c.overlayRules(now) {
		c.takeVerifiedDown(now, m)
		return true
	}
	return !c.isNeighbour(m.id)
}

// verifyUp checks m, which this node holds down on the cluster's decision while a peer holds
// it up: the up alerts that brought it back may have gone by while this node had no stream
// (it was cut off, or on the other side of a split, as they went round), and the down alerts
// it heard before stand for as long as m is down here. It dials m (or marks the dial in
// flight); the hello says that this node holds m down (Hello.HoldsYouDown), and m, alive,
// asks its observers to say again that they reach it (reassert). Their new up alerts bring
// it back here as the old ones would have. Refused or timed out, it stays down.
func (c *core) verifyUp(now time.Time, m *member) {
	if !c.overlay() || c.leaving || m.status != StatusDisconnected || m.conn != 0 ||
		m.downs.of(m.incarnation) == 0 || m.parked {
		return
	}
	if pc := c.checkingDial(now, m); pc != nil {
		pc.verifyingUp = true
	}
	c.log(slog.LevelDebug, "a peer holds up a member this node holds down; checking it", "peer", m.id.String())
}

// holdsDown reports whether this node holds down, as the cluster decided it, the peer of
// pc, a stream whose hello goes out now (them: the peer's hello on an accepted stream, nil on
// a dialled one) (Hello.HoldsYouDown).
func (c *core) holdsDown(pc *peerConn, them *Hello) bool {
	if !c.overlay() {
		return false
	}
	id := pc.expect
	if them != nil {
		id = them.ID
	}
	m := c.members.get(id)
	return m.isDown() && m.downs.of(m.incarnation) > 0 && (them == nil || them.Incarnation == m.incarnation)
}

// reassert asks this node's observers to say again that they reach it (Reassert): a peer holds
// it down, on alerts from before it came back (or from before a heal) that it heard while the
// up alerts that followed passed it by, and holds them for as long as it holds the node
// down. Their new up alerts go round the cluster as any up alert and bring it back there.
// Once per alert lifetime at most, the last request of a lifetime answered at its end. Only
// observers whose hello says they take Reassert are asked (Hello.TakesReassert): a node from
// before it would close the stream on a message of no kind it knows.
func (c *core) reassert(now time.Time) {
	if !c.overlay() || c.leaving {
		return
	}
	if now.Before(c.reassertHold) {
		c.reassertDue = c.reassertHold // asked again: the nodes that ask now may have missed the last
		c.wantWake(c.reassertDue)
		return
	}
	c.reassertHold, c.reassertDue = now.Add(c.alertLifetime()), time.Time{}
	for _, o := range c.basisNeighbours(c.self).observers {
		m := c.members.get(o)
		if m == nil || m.conn == 0 {
			continue
		}
		if pc := c.conns[m.conn]; pc != nil && pc.handshaken() && pc.reassertOK {
			c.send(pc, &Message{Reassert: &Reassert{}})
		}
	}
	c.log(slog.LevelDebug, "a peer holds this node down; asking its observers to say again that they reach it")
}

// onReassert raises a new up alert about the peer of pc, which asks for it, if this node is
// one of its observers and pc is its stream: the request came over it, so the stream works
// from the subject to this node, as its heartbeats do. Once per alert lifetime per stream:
// an up alert goes round the whole cluster.
func (c *core) onReassert(now time.Time, pc *peerConn) {
	m := c.memberOf(pc)
	if m == nil || m.conn != pc.id || !c.overlay() ||
		!c.basis.isObserver(c.self, m.id) || (!pc.reasserted.IsZero() && now.Before(pc.reasserted.Add(c.alertLifetime()))) {
		return
	}
	pc.reasserted = now
	a := &Alert{Subject: m.id, Incarnation: m.incarnation, Observer: c.self, Up: true, Seq: c.nextAlertSeq()}
	if c.recordAlert(now, a) {
		c.relayAlert(nil, a)
		c.decideFrom(now, m.id)
	}
}

// sendDowns tells the peer of pc (a new stream, or the peer checkStatuses picked) which
// members the cluster decided down, as view entries held down. A node that missed their alerts and decisions (one that joined in
// a busy formation, or had no stream while they went by) holds them up and checks them
// (verifyDown); one that does not know them holds them down (holdDown); one that holds them
// up on better news answers so (answerDisputes), and this node checks them (verifyUp). A
// view's digest leaves the status out, so nothing else would tell either of them.
func (c *core) sendDowns(pc *peerConn) {
	if !c.overlay() || !c.anyOffTheView() {
		return // nobody down
	}
	var downs []MemberEntry
	for _, m := range c.sortedMembers() {
		if m.status == StatusDisconnected && m.incarnation != 0 && m.downs.of(m.incarnation) > 0 {
			downs = append(downs, MemberEntry{ID: m.id, Incarnation: m.incarnation, Down: true})
		}
	}
	if len(downs) > 0 {
		c.send(pc, &Message{Update: &Update{Entries: downs}})
	}
}

// anyOffTheView reports whether some member is off the live view (down, or a seed not reached
// yet): the view holds this node and every other member otherwise. It tells in constant time
// whether sendDowns has anything to look for, where counting connected members would not
// while members are still connecting (a formation's thousands of new streams).
func (c *core) anyOffTheView() bool { return c.topo.size() != c.members.len()+1 }

// answerDisputes answers a peer's entries that hold down members this node holds up, the same
// incarnation, with this node's entries for them (up), on the stream they came on: the peer
// checks them (verifyUp). Entries that answer are not answered in turn (they hold nothing
// down), so no two nodes go back and forth.
func (c *core) answerDisputes(from connID, entries []MemberEntry) {
	pc := c.conns[from]
	if pc == nil || !pc.handshaken() || !c.overlay() {
		return
	}
	var up []MemberEntry
	for _, e := range entries {
		if !e.Down || e.Left {
			continue
		}
		if m := c.members.get(e.ID); m != nil && m.status == StatusConnected && m.incarnation == e.Incarnation {
			up = append(up, MemberEntry{ID: m.id, Incarnation: m.incarnation})
		}
	}
	if len(up) > 0 {
		c.send(pc, &Message{Update: &Update{Entries: up, answer: true}})
	}
}

// statusCheckEvery is how often, in heartbeat intervals, a node that holds members down as
// the cluster decided tells one of its peers which (checkStatuses).
const statusCheckEvery = 10

// checkStatuses runs at every tick: a Reassert held back (reassert) goes out once due, and
// every statusCheckEvery intervals (with jitter) a node that holds members down, as the
// cluster decided, sends the list to one peer of its streams, picked at random
// (sendDowns). Where the two disagree, one checks the member (verifyDown, verifyUp).
// New streams carry the list too, but a node that missed an alert or a decision while it
// was cut off, and whose streams came back before the news was over, gets no new stream to
// hear it on: in random runs of crashes and partitions at small K, such nodes held a live
// node down, or a crashed one up, for good. About one message per node every ten intervals,
// while a member is held down, against the heartbeats' one per interval per observer.
func (c *core) checkStatuses(now time.Time) {
	if !c.reassertDue.IsZero() {
		if now.Before(c.reassertDue) {
			c.wantWake(c.reassertDue)
		} else {
			c.reassert(now)
		}
	}
	if !c.overlay() {
		c.downsSyncAt = time.Time{}
		return
	}
	if !c.downsSyncAt.IsZero() && now.Before(c.downsSyncAt) {
		c.wantWake(c.downsSyncAt)
		return
	}
	first := c.downsSyncAt.IsZero()
	c.downsSyncAt = now.Add(c.jitter(statusCheckEvery * c.cfg.HeartbeatInterval))
	c.wantWake(c.downsSyncAt)
	if first || !c.anyOffTheView() {
		return
	}
	conns := c.sortedConns()
	if len(conns) == 0 {
		return
	}
	start := c.rng.IntN(len(conns))
	for i := range conns {
		if pc := conns[(start+i)%len(conns)]; pc.handshaken() && !pc.removed {
			c.sendDowns(pc)
			return
		}
	}
}
