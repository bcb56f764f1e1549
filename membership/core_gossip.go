package membership

import (
	"log/slog"
	"maps"
	"slices"
	"time"
)

// view returns every node the local node knows, left nodes included, itself excluded, sorted by id.
func (c *core) view() []MemberEntry {
	if c.viewCache != nil {
		return c.viewCache
	}
	out := make([]MemberEntry, 0, len(c.members)+len(c.tombs))
	for _, m := range c.members {
		if m.incarnation == 0 {
			continue // a seed announced by id but never reached: not known to exist
		}
		out = append(out, MemberEntry{ID: m.id, Incarnation: m.incarnation})
	}
	for id, t := range c.tombs {
		if t.left {
			out = append(out, MemberEntry{ID: id, Incarnation: t.incarnation, Left: true})
		}
	}
	slices.SortFunc(out, func(a, b MemberEntry) int { return a.ID.Compare(b.ID) })
	c.viewCache = slices.Clip(out) // shared read-only by messages; appends copy
	return c.viewCache
}

// viewDigest returns the digest of the local view, the local node included.
func (c *core) viewDigest() uint64 {
	if c.digestDirty {
		entries := append(c.view(), MemberEntry{ID: c.self, Incarnation: c.incarnation})
		c.digest = viewDigest(entries)
		c.digestDirty = false
	}
	return c.digest
}

// onUpdate merges a peer's entries and, if asked, answers with what the peer lacks.
func (c *core) onUpdate(now time.Time, pc *peerConn, u *Update) {
	c.merge(now, pc.id, u.Entries)
	if !u.ReplyRequested {
		return
	}
	if delta := c.deltaFor(u.Entries); len(delta) > 0 {
		c.send(pc, &Message{Update: &Update{Entries: delta}})
	}
}

// deltaFor returns the local entries (the local node included) that theirs lacks or has older.
func (c *core) deltaFor(theirs []MemberEntry) []MemberEntry {
	known := make(map[NodeID]MemberEntry, len(theirs))
	for _, e := range theirs {
		known[e.ID] = e
	}
	var delta []MemberEntry
	for _, e := range append(c.view(), MemberEntry{ID: c.self, Incarnation: c.incarnation}) {
		t, ok := known[e.ID]
		if !ok || t.Incarnation < e.Incarnation || (t.Incarnation == e.Incarnation && e.Left && !t.Left) {
			delta = append(delta, e)
		}
	}
	return delta
}

// merge applies gossiped entries that arrived on stream from: unknown nodes are added and
// dialled, newer incarnations replace older ones, left nodes are tombstoned. Stale entries
// change nothing. In the overlay what changed the table is relayed to the other neighbours.
func (c *core) merge(now time.Time, from connID, entries []MemberEntry) {
	var fresh []MemberEntry
	defer func() { c.relayFresh(from, fresh) }()
	for _, e := range entries {
		if e.ID.IsZero() || e.ID == c.self {
			continue
		}
		if t, ok := c.tombs[e.ID]; ok && e.Incarnation <= t.incarnation && !(e.Left && !t.left) {
			if !t.left && !e.Left {
				c.probeForgotten(now, e, t)
			}
			continue
		}
		changed := false
		if e.Left {
			changed = c.mergeLeft(now, e)
		} else {
			changed = c.mergeAlive(now, e)
		}
		if changed {
			fresh = append(fresh, e)
		}
	}
}

// mergeLeft applies a gossiped leave; it reports whether it changed the table.
func (c *core) mergeLeft(now time.Time, e MemberEntry) bool {
	m := c.members[e.ID]
	if m != nil {
		if m.incarnation > e.Incarnation {
			return false
		}
		if m.conn != 0 || (m.status == StatusConnected && !c.overlay()) {
			// Only a node can say it leaves: one this node streams to says so on its own
			// stream. A claim relayed by gossip never removes it (it would be removed
			// silently, and its stream refused), whatever incarnation the claim names. In the
			// overlay a node without a stream here is told of leaves by its neighbours.
			return false
		}
		if m.status != StatusDisconnected {
			c.markDown(now, m, ReasonGracefulShutdown)
		}
		c.removeMember(m)
	}
	c.tombs[e.ID] = tombstone{incarnation: e.Incarnation, left: true, until: now.Add(c.cfg.TombstoneTimeout)}
	c.wantWake(now.Add(c.cfg.TombstoneTimeout))
	c.viewChanged()
	return true
}

// mergeAlive applies a gossiped live node; it reports whether it changed the table.
func (c *core) mergeAlive(now time.Time, e MemberEntry) bool {
	m := c.members[e.ID]
	switch {
	case m == nil:
		delete(c.tombs, e.ID)
		m = &member{id: e.ID, incarnation: e.Incarnation, status: StatusConnecting}
		if e.Attrs != nil {
			m.attrs = e.Attrs.clone()
		}
		c.members[e.ID] = m
		c.viewChanged()
		c.syncView(now, m)
		if c.overlay() {
			// The cluster holds it alive: it is up here, and its neighbours stream to it (the
			// next tick reconciles the streams with the new view: syncView asked for it).
			m.lastHeartbeat = now
			c.markUp(now, m)
			return true
		}
		// Both ends learn of each other; the smaller id dials at once, the larger one only if
		// no stream shows up within a grace period.
		c.wantStream(now, m)
	case m.incarnation == 0:
		// A seed announced by id: now its incarnation is known; the dial rules are unchanged.
		m.incarnation = e.Incarnation
		c.viewChanged()
		c.syncView(now, m)
	case e.Incarnation > m.incarnation:
		// A restarted node: reach the new incarnation now, even over a stream to the old one.
		// Over a stream the claim is checked by the dial, and only a hello changes the table
		// (and is relayed), so a claim is never relayed round and round.
		if m.dial == 0 && c.isNeighbour(m.id) {
			m.attempts = 0
			c.dial(now, m)
		}
		if m.conn != 0 {
			return false
		}
		{
			if c.overlay() && m.status == StatusConnected {
				c.markDown(now, m, ReasonConnectionClosed) // the old incarnation is gone
			}
			m.incarnation = e.Incarnation
			c.viewChanged()
			if c.overlay() {
				m.lastHeartbeat = now
				c.markUp(now, m)
			}
		}
	case e.Attrs != nil && e.Incarnation == m.incarnation && m.conn == 0 && e.Attrs.Version > m.attrs.Version:
		// Relayed attributes of a node this node has no stream to (the overlay): newer ones
		// replace the old, and a connected node's change is reported.
		changed := e.Attrs.ProcessCount != m.attrs.ProcessCount || !maps.Equal(e.Attrs.Metadata, m.attrs.Metadata)
		m.attrs = e.Attrs.clone()
		if changed && m.status == StatusConnected {
			c.emit(output{kind: outEvent, event: Event{Type: EventNodeUpdated, Time: now, Node: c.nodeInfo(now, m)}})
		}
	default:
		return false
	}
	return true
}

// removeMember drops m from the table, closing any stream it has.
func (c *core) removeMember(m *member) {
	if m.status == StatusConnected {
		c.connected--
	}
	if c.holders[m.id.Address()] == m.id {
		delete(c.holders, m.id.Address())
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
	delete(c.members, m.id)
	m.removed = true
	c.viewChanged()
	c.syncView(time.Time{}, m)
	delete(c.alerts, m.id)
}

// memberOf returns the table entry of pc's peer, nil if there is none. It is looked up once
// and kept on pc until it leaves the table: a lookup hashes the peer's id, and every message
// and tick needs it. (An entry only ever replaces one under the same id after deleteMember,
// and pc.peer is set once, by establish, before which no entry is found and none is kept.)
func (c *core) memberOf(pc *peerConn) *member {
	if m := pc.member; m != nil && !m.removed {
		return m
	}
	m := c.members[pc.peer]
	pc.member = m
	return m
}

// dialGrace is how long the larger id of a pair waits for the smaller one's dial. The smaller
// one may have the whole table to dial, maxConcurrentDials at a time, so the grace allows one
// wave of dials per maxConcurrentDials members, each wave half an interval (at least 100 ms,
// at most a second). Dialling sooner would not bring the pair up sooner while the smaller
// one is busy with its earlier waves: both would dial, and one of the two streams would be
// set up only to be dropped as a duplicate (a third of all dials in a formation of 128 nodes
// on two cores, with a flat half interval).
//
// The grace runs from when m was learned, but is sized by the table when the dial comes due
// (graceExtended): in a formation a node learns its first members while its table is still
// small, and the smaller ids it waits for learn the rest of the cluster meanwhile.
//
// It is capped at maxDialGrace, for the pair whose smaller id can never dial the larger one
// (a one-way firewall) in a very large cluster.
func (c *core) dialGrace() time.Duration {
	wave := min(max(c.cfg.HeartbeatInterval/2, 100*time.Millisecond), time.Second)
	return min(wave*time.Duration(1+len(c.members)/maxConcurrentDials), maxDialGrace)
}

// maxDialGrace caps dialGrace (reached from about 500 members at a heartbeat interval of 1 s).
const maxDialGrace = 30 * time.Second

// graceExtended moves m's first dial later when the table grew while it waited for the
// smaller id's dial, and reports whether it did.
func (c *core) graceExtended(now time.Time, m *member) bool {
	if m.graceFrom.IsZero() {
		return false
	}
	due := m.graceFrom.Add(c.dialGrace())
	if !now.Before(due) {
		return false
	}
	m.nextDial = due
	return true
}

// probeForgotten handles gossip about a node this one forgot (down longer than the reconnect
// timeout) that a peer still counts as a member: after a long partition the other side may be
// alive. The node is dialled quietly, without coming back into the table: if it answers, it is
// a member again and reported up; if not, nothing is reported. Probes of one node are spaced
// by ReconnectMaxDelay, and a node gone for good stops being gossiped once all forget it.
func (c *core) probeForgotten(now time.Time, e MemberEntry, t tombstone) {
	if now.Before(t.probeAt) || c.leaving {
		return
	}
	for _, pc := range c.conns {
		if pc.outbound && pc.expect == e.ID {
			return // already dialling it
		}
	}
	t.probeAt = now.Add(c.cfg.ReconnectMaxDelay)
	c.tombs[e.ID] = t
	pc := c.newConn(now, true)
	pc.expect = e.ID
	c.metrics.DialStarted()
	pc.addr = e.ID.Address()
	c.emit(output{kind: outDial, conn: pc.id, addr: pc.addr})
	c.wantWake(now.Add(c.cfg.DialTimeout))
	c.log(slog.LevelDebug, "a peer still knows a forgotten node; probing it", "peer", e.ID.String())
}
