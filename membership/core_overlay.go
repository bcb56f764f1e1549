package membership

import (
	"log/slog"
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
// when the view changed in a way that may change them (not when the one change was a node
// that was no neighbour going: removedSince). Each neighbour's member record is marked too
// (member.neighbour).
func (c *core) neighbours() map[NodeID]bool {
	if gone, ok := c.topo.removedSince(c.neighbourVersion); ok && c.neighbourSet != nil && !c.neighbourSet[gone] {
		c.neighbourVersion = c.topo.version()
	}
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
		m.attrs = Attributes{} // the old incarnation's: a view or a relay brings the new one's
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
