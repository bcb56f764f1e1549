package membership

import (
	"slices"
	"time"
)

// view returns every node the local node knows, left nodes included, itself excluded, sorted by id.
func (c *core) view() []MemberEntry {
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
	return out
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
	c.merge(now, u.Entries)
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

// merge applies gossiped entries: unknown nodes are added and dialled, newer incarnations
// replace older ones, left nodes are tombstoned. Stale entries change nothing.
func (c *core) merge(now time.Time, entries []MemberEntry) {
	for _, e := range entries {
		if e.ID.IsZero() || e.ID == c.self {
			continue
		}
		if t, ok := c.tombs[e.ID]; ok && e.Incarnation <= t.incarnation && !(e.Left && !t.left) {
			continue
		}
		if e.Left {
			c.mergeLeft(now, e)
		} else {
			c.mergeAlive(now, e)
		}
	}
}

// mergeLeft applies a gossiped leave.
func (c *core) mergeLeft(now time.Time, e MemberEntry) {
	m := c.members[e.ID]
	if m != nil {
		if m.incarnation > e.Incarnation {
			return
		}
		if m.conn != 0 && m.incarnation == e.Incarnation {
			return // the live stream is the authority; its own Leave will come on it
		}
		if m.status == StatusConnecting {
			c.markDown(now, m, ReasonGracefulShutdown)
		}
		c.removeMember(m)
	}
	c.tombs[e.ID] = tombstone{incarnation: e.Incarnation, left: true, until: now.Add(c.cfg.TombstoneTimeout)}
	c.wantWake(now.Add(c.cfg.TombstoneTimeout))
	c.digestDirty = true
}

// mergeAlive applies a gossiped live node.
func (c *core) mergeAlive(now time.Time, e MemberEntry) {
	m := c.members[e.ID]
	switch {
	case m == nil:
		delete(c.tombs, e.ID)
		m = &member{id: e.ID, incarnation: e.Incarnation, status: StatusConnecting}
		c.members[e.ID] = m
		c.digestDirty = true
		// Both ends learn of each other; the smaller id dials at once, the larger one only if
		// no stream shows up within a grace period.
		due := now
		if c.self.Compare(e.ID) > 0 {
			due = now.Add(c.dialGrace())
		}
		m.nextDial = due
		c.wantDialAt(due)
	case m.incarnation == 0:
		// A seed announced by id: now its incarnation is known; the dial rules are unchanged.
		m.incarnation = e.Incarnation
		c.digestDirty = true
	case e.Incarnation > m.incarnation:
		// A restarted node: reach the new incarnation now, even over a stream to the old one.
		if m.conn == 0 {
			m.incarnation = e.Incarnation
			c.digestDirty = true
		}
		if m.dial == 0 {
			m.attempts = 0
			c.dial(now, m)
		}
	}
}

// removeMember drops m from the table, closing any stream it has.
func (c *core) removeMember(m *member) {
	if m.status == StatusConnected {
		c.connected--
	}
	if m.dial != 0 {
		c.dropConn(m.dial)
	}
	if m.conn != 0 {
		c.dropConn(m.conn)
	}
	delete(c.members, m.id)
	c.digestDirty = true
}

// dialGrace is how long the larger id of a pair waits for the smaller one's dial.
func (c *core) dialGrace() time.Duration {
	return min(max(c.cfg.HeartbeatInterval/2, 100*time.Millisecond), time.Second)
}
