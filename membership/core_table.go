package membership

import (
	"log/slog"
	"slices"
	"time"
)

// The node table: the members, their status (markUp, markDown), their removal, and the
// tombstones that keep nodes that left or were forgotten from coming back on stale gossip.

// member is one remote node in the table.
type member struct {
	id          NodeID
	incarnation uint64
	status      NodeStatus
	conn        connID // established stream, 0 if none
	dial        connID // outbound stream being set up, 0 if none
	attempts    int
	// The member's moments are instants (instant.go), not time.Time: a third of the size, in
	// the record a node keeps for every member.
	nextDial      instant // zero: no dial scheduled
	graceFrom     instant // while the first dial waits for the smaller id's: when m was learned
	statusSince   instant // when it went down, or came back up
	lastHeartbeat instant
	startedAt     instant
	attrs         Attributes
	heard         uint64    // the newest incarnation the node announced itself (gossip may claim newer)
	downs         downRound // how often the overlay decided it down (Alert.Round)
	// downMark is core.alertMarks when it last went down: an up alert recorded since (a
	// mark numbered above it) says an observer reached it after that (decide).
	downMark uint64
	// The small fields come last, together, so the record fits a smaller allocation class.
	refusals   uint8 // dials refused in a row (nothing listens at its address), at most 2
	removed    bool  // taken out of the table (deleteMember): no stream may use it any more
	parked     bool  // not redialled: another node holds its address (see park)
	inView     bool  // on the overlay's rings: alive in the view (syncView)
	inBasis    bool  // on the basis's rings: in the view or down for a short while
	probing    bool  // its stream closed: an observer redials it before it alerts (lost)
	downOnDial bool  // down because its first dial failed, never reached (connection_refused)
	neighbour  bool  // in the neighbour set as core.neighbours last built it (the overlay)
}

// downRound counts the times one incarnation of a node has been decided down (Alert.Round).
type downRound struct {
	incarnation uint64
	count       uint32
}

// of returns the count for incarnation: 0 for one it does not hold.
func (d downRound) of(incarnation uint64) uint32 {
	if d.incarnation != incarnation {
		return 0
	}
	return d.count
}

// tombstone remembers a node that left (or was forgotten) so stale gossip cannot revive it.
type tombstone struct {
	incarnation uint64
	left        bool
	direct      bool // the node said it left on its own stream (not a claim relayed by gossip)
	until       time.Time
	probeAt     time.Time // forgotten nodes: gossip may not revive it before this
}

// viewChanged notes a change to the node table or the tombstones: the digest and the view
// are rebuilt when next needed.
func (c *core) viewChanged() {
	c.digestDirty = true
	c.viewCache, c.attrsDigestOK = nil, false
}

// putMember adds m to the table, or puts it in the place of the member with its id. Every
// addition goes through here (and every removal through deleteMember): the member order
// changes only then, not with a member's status or incarnation, which change far more often
// (a node that learns a thousand joins at once).
func (c *core) putMember(m *member) {
	c.members.put(m)
	if c.memberOrder != nil {
		c.orderAdds = append(c.orderAdds, m) // merged into the order when it is next asked for
	}
	c.viewChanged()
}

// sortedMembers returns the members in id order, for deterministic iteration. The order is
// kept between calls: members added since are sorted among themselves and merged in, and
// members removed since are left out, in one pass (a formation adds members by the hundred,
// and a node would otherwise sort its whole table again after each; a leave or a forgotten
// node, every node of the cluster at once). The slice returned is never changed afterwards,
// so a caller may add or remove members while it walks it.
func (c *core) sortedMembers() []*member {
	byID := func(a, b *member) int { return a.id.Compare(b.id) }
	switch {
	case c.memberOrder == nil:
		c.memberOrder = slices.Collect(c.members.all())
		slices.SortFunc(c.memberOrder, byID)
	case len(c.orderAdds) > 0 || c.orderDrops > 0:
		adds := slices.DeleteFunc(c.orderAdds, func(m *member) bool { return m.removed })
		slices.SortFunc(adds, byID)
		merged := make([]*member, 0, len(c.memberOrder)+len(adds))
		for _, m := range c.memberOrder {
			if m.removed {
				continue
			}
			for len(adds) > 0 && byID(adds[0], m) < 0 {
				merged, adds = append(merged, adds[0]), adds[1:]
			}
			merged = append(merged, m)
		}
		c.memberOrder = append(merged, adds...)
	}
	clear(c.orderAdds)
	c.orderAdds, c.orderDrops = c.orderAdds[:0], 0
	return c.memberOrder
}

// markUp brings m up, emitting node_up if it was not.
func (c *core) markUp(now time.Time, m *member) {
	if m.status == StatusConnected {
		return
	}
	m.status, m.downOnDial = StatusConnected, false
	m.statusSince = c.instantOf(now)
	c.viewCache = nil // the view says which nodes are down
	c.connected++
	c.holders.put(m)
	c.syncView(now, m)
	c.emit(output{kind: outEvent, event: &Event{Type: EventNodeUp, Time: now, Node: c.nodeInfo(now, m)}})
}

// markDown takes m down, emitting node_down once if it was connected or connecting.
func (c *core) markDown(now time.Time, m *member, reason DownReason) {
	if m.status == StatusConnected {
		c.connected--
	}
	if m.status == StatusConnected || m.status == StatusConnecting {
		info := c.nodeInfo(now, m)
		info.Status = StatusDisconnected
		c.emit(output{kind: outEvent, event: &Event{Type: EventNodeDown, Time: now, Node: info, Reason: reason}})
	}
	c.releaseAddress(now, m)
	m.probing = false
	m.downMark = c.alertMarks
	m.status = StatusDisconnected
	c.viewCache = nil // the view says which nodes are down
	m.conn = 0
	m.statusSince = c.instantOf(now)
	c.syncView(now, m)
	c.forgetCheckAt(now.Add(c.cfg.ReconnectTimeout))
	if c.connected == 0 && len(c.seeds) > 0 {
		c.wantDialAt(now) // cut off from everyone: the seeds are the way back
	}
}

// onLeave handles a peer leaving gracefully.
func (c *core) onLeave(now time.Time, pc *peerConn, l *Leave) {
	if l.ID != pc.peer {
		c.violation(now, pc, "leave speaks for another node "+l.ID.String())
		return
	}
	m := c.memberOf(pc)
	if m != nil && m.incarnation > pc.peerInc {
		// A stream of an older incarnation: that one is gone, the newer one stays.
		c.closeConn(now, pc, false)
		return
	}
	if m != nil {
		// On any stream authenticated as the node, not only its current one: a node that
		// dialled a second stream and left before its handshake ended says so on the first,
		// which this node may already hold as the spare. Its tombstone (below) would then
		// keep out every relayed word of the leave, and the node would stay listed.
		c.markDown(now, m, ReasonGracefulShutdown)
		c.removeMember(m)
		c.relayFresh(pc.id, []MemberEntry{{ID: l.ID, Incarnation: pc.peerInc, Left: true}}, 1)
	}
	c.putTomb(pc.peer, tombstone{incarnation: pc.peerInc, left: true, direct: true, until: now.Add(c.cfg.TombstoneTimeout)})
	c.viewChanged()
	c.closeConn(now, pc, false)
}

// removeMember drops m from the table, closing any stream it has.
func (c *core) removeMember(m *member) {
	if m.status == StatusConnected {
		c.connected--
	}
	if c.holders.get(m.id.hostPort()) == m {
		c.holders.del(m.id.hostPort())
	}
	c.unpark(m)
	if m.dial != 0 {
		c.dropConn(m.dial)
	}
	if m.conn != 0 {
		c.dropConn(m.conn)
	}
	c.deleteMember(m)
}

// deleteMember takes m out of the table. Every removal goes through here, so a stream's cached
// member (memberOf) is never one that left the table.
func (c *core) deleteMember(m *member) {
	c.members.del(m.id)
	m.removed = true
	if c.memberOrder != nil {
		c.orderDrops++ // left out of the order when it is next asked for
	}
	c.viewChanged()
	c.syncView(time.Time{}, m)
	delete(c.alerts, m.id)
}

// dropPlaceholder forgets a seed's announced id that turned out to be another node's address.
func (c *core) dropPlaceholder(id NodeID) {
	if p := c.members.get(id); p != nil && p.conn == 0 && p.incarnation == 0 {
		c.deleteMember(p)
	}
}

// forgetIfDue forgets m once it has been down for longer than the reconnect timeout, leaving
// a tombstone; it reports whether m was forgotten.
func (c *core) forgetIfDue(now time.Time, m *member) bool {
	if m.status != StatusDisconnected {
		return false
	}
	forgetAt := c.at(m.statusSince).Add(c.cfg.ReconnectTimeout)
	if now.Before(forgetAt) {
		c.forgetCheckAt(forgetAt)
		return false
	}
	c.log(slog.LevelInfo, "forgetting node down for longer than the reconnect timeout", "peer", m.id.String())
	c.removeMember(m)
	c.putTomb(m.id, tombstone{incarnation: m.incarnation, until: now.Add(c.cfg.TombstoneTimeout), probeAt: now.Add(c.cfg.ReconnectMaxDelay)})
	return true
}

// memberPassDue reports whether the tick passes over every member at now, to forget those
// down for long and to note the dials due: when a member comes due for forgetting
// (forgetCheckAt), and every memberPassEvery intervals in any case. In between, a dial comes
// due through wantDialAt and runDials without the pass, which at hundreds of members would
// cost more than the rest of a tick.
func (c *core) memberPassDue(now time.Time) bool {
	forgetDue := !c.forgetAt.IsZero() && !now.Before(c.forgetAt)
	if !forgetDue && !c.memberPassAt.IsZero() && now.Before(c.memberPassAt) {
		return false
	}
	c.memberPassAt = now.Add(memberPassEvery * c.cfg.HeartbeatInterval)
	c.forgetAt = time.Time{} // the pass notes the next one (forgetIfDue)
	return true
}

// memberPassEvery is how many intervals apart the tick passes over every member when nothing
// asks for it sooner. Forgetting comes due through forgetCheckAt and dials through
// wantDialAt, so the pass only backs them up; run every interval, it made each node of a
// steady overlay touch the record of every member each second, a cost per node that grew
// with the cluster.
const memberPassEvery = 10

// rearmSkippedPass asks again for the wake-ups the member pass would have asked for, when
// the tick skips it: the next forgetting, and the earliest dial due later (one due now is
// the tick's own runDials, or the end of a dial in flight when every slot is taken).
func (c *core) rearmSkippedPass(now time.Time) {
	if !c.forgetAt.IsZero() {
		c.wantWake(c.forgetAt)
	}
	if c.dialAt.After(now) {
		c.wantWake(c.dialAt)
	}
}

// forgetCheckAt notes that a member down comes due for forgetting at t.
func (c *core) forgetCheckAt(t time.Time) {
	if c.forgetAt.IsZero() || t.Before(c.forgetAt) {
		c.forgetAt = t
	}
	c.wantWake(t)
}

// putTomb records id's tombstone, and when it comes due for expireTombstones.
func (c *core) putTomb(id NodeID, t tombstone) {
	c.tombs[id] = t
	if c.tombsDueAt.IsZero() || t.until.Before(c.tombsDueAt) {
		c.tombsDueAt = t.until
	}
	c.wantWake(t.until)
}

// expireTombstones drops tombstones whose time is up. It looks at them only once the earliest
// is due: a cluster whose nodes come and go (new names at each deploy) holds a tombstone for
// each for an hour, and a tick comes every few hundred milliseconds.
func (c *core) expireTombstones(now time.Time) {
	if c.tombsDueAt.IsZero() || now.Before(c.tombsDueAt) {
		return
	}
	c.tombsDueAt = time.Time{}
	for id, t := range c.tombs {
		if now.Before(t.until) {
			if c.tombsDueAt.IsZero() || t.until.Before(c.tombsDueAt) {
				c.tombsDueAt = t.until
			}
			continue
		}
		delete(c.tombs, id)
		c.viewChanged()
	}
	if !c.tombsDueAt.IsZero() {
		c.wantWake(c.tombsDueAt)
	}
}
