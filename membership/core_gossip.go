package membership

import (
	"iter"
	"maps"
	"slices"
	"time"
)

// view returns every node the local node knows, down and left nodes included, itself
// excluded, sorted by id, each live one with its attributes: in the overlay a node streams to
// few of the nodes it learns of, and hears the attributes of the others only with them (a
// newcomer in its hello, any node in a sync). Left without them, a node that learned some
// nodes while the cluster was still a full mesh, or from a peer that had learned them so,
// listed their metadata empty for good, and a resolver that selects by metadata missed them.
//
// A seed builds one for each node that joins through it, hundreds a second in a formation,
// so the entries' attributes share the members' metadata maps rather than copy them (a
// member's map is replaced when its metadata changes, never written, and a message is never
// changed once built), and take their room from one array.
func (c *core) view() []MemberEntry {
	c.viewCacheUsed = true
	if c.viewCache != nil {
		return c.viewCache
	}
	out := make([]MemberEntry, 0, c.members.len()+len(c.tombs))
	var attrs []Attributes
	for e := range c.viewEntries() {
		if m := c.members.get(e.ID); m != nil && !e.Left && m.attrs.Version > 0 {
			if attrs == nil {
				attrs = make([]Attributes, 0, cap(out)-len(out))
			}
			attrs = append(attrs, m.attrs)
			e.Attrs = &attrs[len(attrs)-1]
		}
		out = append(out, e)
	}
	c.viewCache = slices.Clip(out) // shared read-only by messages; appends copy
	return c.viewCache
}

// holdAttributes gives m the attributes a (m's own word, or a peer's newer copy of it), which
// the cached view carries.
func (c *core) holdAttributes(m *member, a Attributes) {
	m.attrs = a
	c.viewCache, c.attrsDigestOK = nil, false
}

// attributesDigest hashes the attribute versions of the members, this node's own among them,
// in id order and whatever their status, as the view digest covers them
// (Heartbeat.AttributesDigest): two nodes that hold the same view and the same attributes
// for it agree. An attribute
// change is relayed once, as other news; a node that missed it (cut off as it went round)
// holds the old version, with nothing else to say so, while every view digest agrees. Its
// digest then differs from its peers', and the sync that follows (onHeartbeat) carries the
// newer attributes. Statuses are left out: a joiner holds the members it still dials
// connecting for a moment, and every view digest agreeing, its heartbeats started syncs for
// nothing. Cached: a change of a member's attributes, or of the view, computes it anew.
func (c *core) attributesDigest() uint64 {
	if c.attrsDigestOK {
		return c.attrsDigest
	}
	h, selfDone := uint64(fnvOffset64), false
	for _, m := range c.sortedMembers() {
		if m.incarnation == 0 || m.id == c.self {
			continue
		}
		if !selfDone && c.self.Compare(m.id) < 0 {
			h, selfDone = fnvEntry(h, c.self, c.attrs.Version), true
		}
		h = fnvEntry(h, m.id, m.attrs.Version)
	}
	if !selfDone {
		h = fnvEntry(h, c.self, c.attrs.Version)
	}
	c.attrsDigest, c.attrsDigestOK = max(h, 1), true // 0 says nothing
	return c.attrsDigest
}

// viewEntries yields the entries of core.view in order, from the cached view if there is one,
// else without building it: a node that only reads its view (a sync's answer) makes no copy.
func (c *core) viewEntries() iter.Seq[MemberEntry] {
	if c.viewCache != nil {
		return slices.Values(c.viewCache)
	}
	members := c.sortedMembers()
	var left []MemberEntry // the left nodes, merged in by id; few, if any
	for id, t := range c.tombs {
		if t.left {
			left = append(left, MemberEntry{ID: id, Incarnation: t.incarnation, Left: true})
		}
	}
	slices.SortFunc(left, compareEntries)
	return func(yield func(MemberEntry) bool) {
		rest := left // each walk merges from the start
		for _, m := range members {
			if m.incarnation == 0 {
				continue // a seed announced by id but never reached: not known to exist
			}
			for len(rest) > 0 && rest[0].ID.Compare(m.id) < 0 {
				if !yield(rest[0]) {
					return
				}
				rest = rest[1:]
			}
			if !yield(MemberEntry{ID: m.id, Incarnation: m.incarnation, Down: m.status == StatusDisconnected}) {
				return
			}
		}
		for _, e := range rest {
			if !yield(e) {
				return
			}
		}
	}
}

// releaseIdleView drops the cached view if nothing asked for it since the last call (a tick):
// it is as large as the view, and a steady cluster rarely sends it.
func (c *core) releaseIdleView() {
	if !c.viewCacheUsed {
		c.viewCache = nil
	}
	c.viewCacheUsed = false
}

// viewDigest returns the digest of the local view, the local node included.
func (c *core) viewDigest() uint64 {
	if c.digestDirty {
		c.digest = c.tableDigest()
		c.digestDirty, c.digestNoticed = false, time.Time{}
	}
	return c.digest
}

// settledDigest returns the digest a heartbeat at now carries, and whether it is the
// digest of the current view. In the overlay, for digestSettle after a heartbeat first
// finds the view changed, heartbeats carry the digest from before the change and compare
// none: that is when news (a join, a leave, a decision) spreads, every node's view changes
// at about the same moment, and a digest computed then, a walk of the whole table for each
// node, would only say that the news is still spreading (a sync needs two mismatches in a
// row). Computed after the news has spread, off the busy moment, each node walks its
// table once as before. A peer that compares the older digest counts one mismatch at
// most: the next beat on a stream, an interval later, carries the new one.
//
// Only news that comes alone is held back: a change found within two intervals of the one
// before (a formation, joins one after another) is compared at once, as it is. Held back
// there, heartbeats carried digests of views long gone and compared few, and the syncs that
// repair views in a formation came late: two of four formations of 1,024 nodes in the bench
// took 97 and 113 s, where they take 30 to 60.
func (c *core) settledDigest(now time.Time) (digest uint64, settled bool) {
	if !c.digestDirty || c.digest == 0 || !c.overlay() {
		return c.viewDigest(), true // a full mesh, or no digest computed yet
	}
	if c.digestNoticed.IsZero() {
		alone := now.Sub(c.digestLastNoticed) >= 2*c.cfg.HeartbeatInterval
		c.digestLastNoticed = now
		if !alone {
			return c.viewDigest(), true
		}
		c.digestNoticed = now
	}
	if now.Sub(c.digestNoticed) < c.digestSettle() {
		return c.digest, false
	}
	return c.viewDigest(), true
}

// digestSettle is how long heartbeats carry a digest from before a change of the view
// (settledDigest): a quarter of an interval, the time news takes to reach a thousand nodes
// on two cores, at most 250 ms.
func (c *core) digestSettle() time.Duration {
	return min(c.cfg.HeartbeatInterval/4, 250*time.Millisecond)
}

// tableDigest computes the view's digest (the function viewDigest) from the node table, in id
// order, with the local node in its place: the left nodes, which viewEntries merges in, do
// not count, and no entry is built.
func (c *core) tableDigest() uint64 {
	h, selfDone := uint64(fnvOffset64), false
	for _, m := range c.sortedMembers() {
		if m.incarnation == 0 || m.id == c.self {
			continue // a seed announced by id but never reached (viewEntries skips it too)
		}
		if !selfDone && c.self.Compare(m.id) < 0 {
			h, selfDone = fnvEntry(h, c.self, c.incarnation), true
		}
		h = fnvEntry(h, m.id, m.incarnation)
	}
	if !selfDone {
		h = fnvEntry(h, c.self, c.incarnation)
	}
	return h
}

// onUpdate merges a peer's entries and, if asked, answers with what the peer lacks.
func (c *core) onUpdate(now time.Time, pc *peerConn, u *Update) {
	c.merge(now, pc.id, u.Entries, u.Hop)
	if !u.ReplyRequested {
		return
	}
	if delta := c.deltaFor(u.Entries); len(delta) > 0 {
		c.send(pc, &Message{Update: &Update{Entries: delta, answer: true}})
	}
}

// deltaFor returns the local entries (the local node included) that theirs lacks or has
// older, and those it holds up where this node holds them down: a node that held a member up
// on its own stream while the cluster decided it down (a joiner that waited long for its
// view) learns it so, and checks it (verifyDown); the view's digest leaves the status out.
func (c *core) deltaFor(theirs []MemberEntry) []MemberEntry {
	var delta []MemberEntry
	add := func(e, t MemberEntry, ok bool) {
		attrs, known := c.entryAttributes(e)
		if !ok || t.Incarnation < e.Incarnation ||
			(t.Incarnation == e.Incarnation && (e.Left && !t.Left || e.Down && !t.Down && !t.Left)) ||
			(t.Incarnation == e.Incarnation && !t.Left && attrs.Version > versionOf(t.Attrs)) {
			if known {
				kept := attrs // a copy: a message is never changed once built, and members' are replaced
				e.Attrs = &kept
			}
			delta = append(delta, e)
		}
	}
	selfAttrs := c.attrs.clone()
	self := MemberEntry{ID: c.self, Incarnation: c.incarnation, Attrs: &selfAttrs}
	if !slices.IsSortedFunc(theirs, compareEntries) {
		known := make(map[NodeID]MemberEntry, len(theirs))
		for _, e := range theirs {
			known[e.ID] = e
		}
		for e := range c.viewEntries() {
			t, ok := known[e.ID]
			add(e, t, ok)
		}
		t, ok := known[self.ID]
		add(self, t, ok)
		return delta
	}
	// A peer's whole view comes sorted by id, as the local one is: one walk over both.
	j := 0
	for e := range c.viewEntries() {
		for j < len(theirs) && theirs[j].ID.Compare(e.ID) < 0 {
			j++
		}
		ok := j < len(theirs) && theirs[j].ID == e.ID
		var t MemberEntry
		if ok {
			t = theirs[j]
		}
		add(e, t, ok)
	}
	i, ok := slices.BinarySearchFunc(theirs, self.ID, func(e MemberEntry, id NodeID) int { return e.ID.Compare(id) })
	var t MemberEntry
	if ok {
		t = theirs[i]
	}
	add(self, t, ok)
	return delta
}

// entryAttributes returns the attributes entry e of the local view carries, or those of its
// member when e comes without them (a view walked without building it); false for a node
// that left, or whose attributes this node does not know.
func (c *core) entryAttributes(e MemberEntry) (Attributes, bool) {
	switch {
	case e.Attrs != nil:
		return *e.Attrs, true
	case e.Left || e.ID == c.self:
		return Attributes{}, false
	}
	m := c.members.get(e.ID)
	if m == nil || m.attrs.Version == 0 {
		return Attributes{}, false
	}
	return m.attrs, true
}

// versionOf is the version of attributes a, 0 if there are none.
func versionOf(a *Attributes) uint64 {
	if a == nil {
		return 0
	}
	return a.Version
}

// compareEntries orders entries by id, as views are sent.
func compareEntries(a, b MemberEntry) int { return a.ID.Compare(b.ID) }

// merge applies gossiped entries that arrived on stream from, hop streams away from where
// their news started (0: unknown; relayFresh): unknown nodes are added and
// dialled, newer incarnations replace older ones, left nodes are tombstoned. Stale entries
// change nothing. In the overlay what changed the table is relayed to the other neighbours.
func (c *core) merge(now time.Time, from connID, entries []MemberEntry, hop uint32) {
	var fresh []MemberEntry
	defer func() { c.relayFresh(from, fresh, hop) }()
	c.answerDisputes(from, entries)
	for _, e := range entries {
		if e.ID == c.self && e.Down && e.Incarnation == c.incarnation {
			c.reassert(now) // the sender holds this node down: its observers say again that it is up
		}
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
	m := c.members.get(e.ID)
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
	c.putTomb(e.ID, tombstone{incarnation: e.Incarnation, left: true, until: now.Add(c.cfg.TombstoneTimeout)})
	c.viewChanged()
	return true
}

// mergeAlive applies a gossiped live node; it reports whether it changed the table.
func (c *core) mergeAlive(now time.Time, e MemberEntry) bool {
	m := c.members.get(e.ID)
	if e.Down && c.overlay() && (m == nil || (m.incarnation != 0 && e.Incarnation > m.incarnation)) {
		// Its sender holds it down, and this node does not know this incarnation: the alerts
		// that decided it went by before this node knew it. A known incarnation keeps its
		// status here: the alerts decide it (an up alert may have brought it back). Held down
		// as the cluster decided it, as a decision heard late is: if it comes back while its
		// up alerts pass this node by (a node that joins just then), a peer that holds it up
		// makes this node check it (verifyUp). Without the round, nothing did, and the node
		// held it down for good.
		if !c.holdDown(now, m, e.ID, e.Incarnation, ReasonConnectionClosed) {
			return false
		}
		held := c.members.get(e.ID)
		held.downs = downRound{incarnation: e.Incarnation, count: 1}
		if e.Attrs != nil {
			c.holdAttributes(held, e.Attrs.clone())
		}
		return true
	}
	if e.Down && m != nil && e.Incarnation == m.incarnation {
		c.verifyDown(now, m) // held up here: the alerts may have passed this node by
	}
	if !e.Down && m != nil && e.Incarnation == m.incarnation && m.status == StatusDisconnected {
		c.verifyUp(now, m) // held down here: the alerts that brought it back may have passed this node by
	}
	switch {
	case m == nil:
		delete(c.tombs, e.ID)
		m = &member{id: e.ID, incarnation: e.Incarnation, status: StatusConnecting}
		if e.Attrs != nil {
			m.attrs = e.Attrs.clone()
		}
		c.putMember(m)
		c.syncView(now, m)
		if c.overlay() {
			// The cluster holds it alive: it is up here, and its neighbours stream to it (the
			// next tick reconciles the streams with the new view: syncView asked for it).
			m.lastHeartbeat = c.instantOf(now)
			c.markUp(now, m)
			return true
		}
		// Both ends learn of each other; the smaller id dials at once, the larger one only if
		// no stream shows up within a grace period.
		c.wantStream(now, m)
	case m.incarnation == 0:
		// A seed announced by id: now its incarnation is known; the dial rules are unchanged.
		m.incarnation = e.Incarnation
		if e.Attrs != nil {
			m.attrs = e.Attrs.clone()
		}
		c.viewChanged()
		c.syncView(now, m)
	case e.Incarnation > m.incarnation:
		// A restarted node: reach the new incarnation now, even over a stream to the old one.
		// Over a stream the claim is checked by the dial, and only a hello changes the table
		// (and is relayed), so a claim is never relayed round and round.
		if m.dial == 0 && c.isNeighbour(m.id) {
			m.attempts, m.refusals = 0, 0
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
			m.attrs = Attributes{} // the old incarnation's: the new one's come with it, or later
			if e.Attrs != nil {
				m.attrs = e.Attrs.clone()
			}
			c.viewChanged()
			if c.overlay() {
				m.lastHeartbeat = c.instantOf(now)
				c.markUp(now, m)
			}
		}
	case e.Attrs != nil && e.Incarnation == m.incarnation && m.conn == 0 && e.Attrs.Version > m.attrs.Version:
		// Relayed attributes of a node this node has no stream to (the overlay): newer ones
		// replace the old, and a connected node's change is reported.
		changed := e.Attrs.ProcessCount != m.attrs.ProcessCount || !maps.Equal(e.Attrs.Metadata, m.attrs.Metadata)
		c.holdAttributes(m, e.Attrs.clone())
		if changed && m.status == StatusConnected {
			c.emit(output{kind: outEvent, event: &Event{Type: EventNodeUpdated, Time: now, Node: c.nodeInfo(now, m)}})
		}
	default:
		return false
	}
	return true
}
