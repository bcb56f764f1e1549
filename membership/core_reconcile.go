package membership

import (
	"slices"
	"time"
)

// reconcile brings the streams in line with the topology after the live view changed: in the
// overlay, members learned from the view are live (up) without a stream of their own, streams
// this node opened to nodes that are no longer its neighbours are unlinked, and neighbours
// without a stream are dialled (the smaller id at once, the larger after a grace, as in a
// join). A node decided down is redialled only by the nodes it would stream to.
//
// Every node reconciles after every join, leave and crash, so a pass over every member here
// makes the cluster's cost of one event grow with N², and in a process that hosts hundreds of
// nodes each member's record is a cache miss. What a member needs from reconcile depends on
// whether it is a neighbour (or would be, for a member off the view), and that changes for no
// member unless this node's own predecessor or successor on some ring changed: a node joining
// or going down between this node and another changes this node's neighbour on that ring. So
// while those stay as they were (ringsAround), only the members whose status, incarnation or
// presence changed since the last reconcile, the members with a stream or a dial of this node,
// and its neighbours, are looked at. The whole table is walked when they changed, when more
// than one member in maxTouched changed, when the cluster turned into an overlay or back,
// while a member is down on its first dial alone (downOnItsDialOnly depends on alerts, not on
// the rings), and at least every memberPassEvery intervals when reconciling at all.
func (c *core) reconcile(now time.Time) {
	c.topoDirty = false
	c.subjects = nil // relays follow the streams' topology (relaySubjects)
	overlay := c.overlay()
	touched, many := c.touched, c.touchedMany
	c.touched, c.touchedMany = nil, false
	if c.reconcileAll(now, overlay) || many {
		c.downOnDialSeen = false // set again by the walk for any member still down so
		for _, m := range c.sortedMembers() {
			c.reconcileMember(now, m, overlay)
		}
		return
	}
	var seen []*member
	visit := func(m *member) {
		if m != nil && !slices.Contains(seen, m) {
			seen = append(seen, m)
			c.reconcileMember(now, m, overlay)
		}
	}
	for _, m := range touched {
		visit(m)
	}
	for _, id := range c.topo.neighbours(c.self) {
		visit(c.members.get(id))
	}
	for _, pc := range c.sortedConns() {
		if !pc.peer.IsZero() {
			visit(c.members.get(pc.peer))
		}
	}
}

// maxTouched bounds the share of the members that reconcile looks at one by one: when more
// than one in maxTouched changed since the last reconcile (a formation), it walks them all.
const maxTouched = 16

// touch notes that m's status, incarnation or presence changed, for the next reconcile to
// look at it. Past one member in maxTouched the list is dropped: reconcile walks every member
// then, and a list that no reconcile empties (a full mesh whose view stays the same) stays
// small.
func (c *core) touch(m *member) {
	switch {
	case c.touchedMany:
	case (len(c.touched)+1)*maxTouched > c.members.len():
		c.touched, c.touchedMany = nil, true
	default:
		c.touched = append(c.touched, m)
	}
}

// reconcileAll reports whether reconcile must walk every member (see reconcile), and notes
// this node's neighbours on the rings for the next reconcile.
func (c *core) reconcileAll(now time.Time, overlay bool) bool {
	if !overlay {
		// A full mesh: every member is a neighbour, and every walk is whole. The next
		// reconcile in an overlay finds its ring neighbours changed, and walks everything.
		c.ringsAround = nil
		return true
	}
	around := append(c.topo.onRings(c.self, -1), c.topo.onRings(c.self, +1)...)
	all := c.downOnDialSeen || !slices.Equal(around, c.ringsAround) || !now.Before(c.reconcileAllAt)
	c.ringsAround = around
	if all {
		c.reconcileAllAt = now.Add(memberPassEvery * c.cfg.HeartbeatInterval)
	}
	return all
}

// reconcileMember brings m's stream in line with the topology (reconcile).
func (c *core) reconcileMember(now time.Time, m *member, overlay bool) {
	if m.incarnation == 0 || m.removed {
		return // a seed announced by id: dialled as a seed
	}
	wanted := c.isNeighbourMember(m)
	if !wanted {
		m.probing = false // no longer its observer: it has nothing to say about it
	}
	if overlay && m.conn == 0 && c.downOnItsDialOnly(m) {
		c.markUp(now, m) // the cluster holds it alive; its observers decide about it
	}
	if m.downOnDial {
		c.downOnDialSeen = true
	}
	if m.status == StatusDisconnected {
		if !wanted && m.dial == 0 && m.nextDial != 0 {
			m.nextDial, m.graceFrom = 0, 0
		}
		return
	}
	c.upWithoutStream(now, m)
	if wanted {
		c.wantStream(now, m)
		return
	}
	if m.conn == 0 && m.dial == 0 {
		m.nextDial, m.graceFrom = 0, 0
	}
	if pc := c.conns[m.conn]; m.conn != 0 && pc != nil && pc.outbound && pc.state == streamEstablished {
		c.unlink(now, pc, m)
	}
}

// upWithoutStream brings m up if it waits as connecting for a stream of this node that the
// overlay does not have: the cluster holds it alive, and its neighbours check it. A member
// learned while this node was still a full mesh (its first view, merged entry by entry)
// waits so for its first dial; the overlay may no longer need that dial once it comes due
// (runDials), or the stream the member opened may end before its first message. Then
// nothing else would look at the member in a quiet cluster: in a formation of 1,024 nodes
// on two cores, one node listed another as connecting, never up, for good. The tick's pass
// over every member backs this up (memberPassEvery).
func (c *core) upWithoutStream(now time.Time, m *member) {
	if c.overlay() && m.status == StatusConnecting && m.conn == 0 && m.incarnation != 0 && !m.removed {
		c.markUp(now, m)
	}
}
