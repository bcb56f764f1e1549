package membership

import (
	"maps"
	"slices"
	"time"
)

// nodeInfo describes m as of now.
func (c *core) nodeInfo(now time.Time, m *member) NodeInfo {
	info := NodeInfo{
		ID:            m.id,
		Incarnation:   m.incarnation,
		Status:        m.status,
		ProcessCount:  m.attrs.ProcessCount,
		LastHeartbeat: c.at(m.lastHeartbeat),
		Metadata:      maps.Clone(m.attrs.Metadata),
		Direct:        m.status == StatusConnected && m.conn != 0,
	}
	if m.status == StatusConnected && m.startedAt != 0 {
		info.Uptime = now.Sub(c.at(m.startedAt))
	}
	return info
}

// localInfo describes the local node as of now.
func (c *core) localInfo(now time.Time) NodeInfo {
	return NodeInfo{
		ID:            c.self,
		Incarnation:   c.incarnation,
		Status:        StatusConnected,
		ProcessCount:  c.attrs.ProcessCount,
		LastHeartbeat: now,
		Uptime:        now.Sub(c.startedAt),
		Metadata:      maps.Clone(c.attrs.Metadata),
	}
}

// nodes lists the known nodes (never the local one) sorted by id; only connected ones if asked.
func (c *core) nodes(now time.Time, connectedOnly bool) []NodeInfo {
	out := make([]NodeInfo, 0, c.members.len())
	for _, m := range c.sortedMembers() {
		if connectedOnly && m.status != StatusConnected {
			continue
		}
		out = append(out, c.nodeInfo(now, m))
	}
	return out
}

// node describes the member id as of now; false if the local node does not know it.
func (c *core) node(now time.Time, id NodeID) (NodeInfo, bool) {
	m := c.members.get(id)
	if m == nil {
		return NodeInfo{}, false
	}
	return c.nodeInfo(now, m), true
}

// isConnectedTo reports whether c lists id as connected.
func (c *core) isConnectedTo(id NodeID) bool {
	m := c.members.get(id)
	return m != nil && m.status == StatusConnected
}

// connectedCount returns how many members are connected.
func (c *core) connectedCount() int { return c.connected }

// knownCount returns how many members the table holds, whatever their status.
func (c *core) knownCount() int { return c.members.len() }

// handshaking reports whether stream id is still dialling or in its handshake; false once it
// is established or gone.
func (c *core) handshaking(id connID) bool {
	pc := c.conns[id]
	return pc != nil && !pc.handshaken()
}

// nextWake returns when the runtime, arming its timer at now, should call tick next (zero:
// no wake-up is needed). A wake-up asked for a moment already past (a dial that has waited
// for a free slot since it came due) is due now: the tick is late only from now on, so
// waiting for a dial slot never passes for a stall of the local node (forgiveStall). But
// once the timer was armed for a moment a real stall ago (realStall) without a tick, the
// node did not run when it was due, and a step that runs before the late tick (a message
// handled first) must not hide it: the wake-up stays that moment, and the tick sees how
// late it is. (Shorter delays, the scheduling noise of a busy process, are let go as before.)
func (c *core) nextWake(now time.Time) time.Time {
	if !c.wakeAt.IsZero() && c.wakeAt.Before(now) {
		if !c.armedWake.IsZero() && now.Sub(c.armedWake) >= realStall {
			c.wakeAt = c.armedWake
		} else {
			c.wakeAt = now
		}
	}
	c.armedWake = c.wakeAt
	return c.wakeAt
}

// stats counts the members by status and the streams, established or not, into s.
func (c *core) stats(s *Stats) {
	for m := range c.members.all() {
		s.Nodes[m.status]++
	}
	for _, pc := range c.conns {
		if pc.handshaken() {
			s.Streams++
		} else {
			s.PendingStreams++
		}
	}
}

// left lists the nodes that left gracefully and are still tombstoned, sorted by id, with
// status StatusLeft. A node's tombstone outlives its leave by TombstoneTimeout.
func (c *core) left() []NodeInfo {
	var out []NodeInfo
	for id, t := range c.tombs {
		if t.left {
			out = append(out, NodeInfo{ID: id, Incarnation: t.incarnation, Status: StatusLeft})
		}
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return a.ID.Compare(b.ID) })
	return out
}
