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
		LastHeartbeat: m.lastHeartbeat,
		Metadata:      maps.Clone(m.attrs.Metadata),
		Direct:        m.status == StatusConnected && m.conn != 0,
	}
	if m.status == StatusConnected && !m.startedAt.IsZero() {
		info.Uptime = now.Sub(m.startedAt)
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
	out := make([]NodeInfo, 0, len(c.members))
	for _, m := range c.sortedMembers() {
		if connectedOnly && m.status != StatusConnected {
			continue
		}
		out = append(out, c.nodeInfo(now, m))
	}
	return out
}

// sortedMembers returns the members in id order, for deterministic iteration.
func (c *core) sortedMembers() []*member {
	if c.memberOrder == nil {
		c.memberOrder = slices.Collect(maps.Values(c.members))
		slices.SortFunc(c.memberOrder, func(a, b *member) int { return a.id.Compare(b.id) })
	}
	return c.memberOrder
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
