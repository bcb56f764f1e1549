package server

import (
	"time"

	"github.com/meshnode/meshnode/membership"
)

// What an application asks a Node: each method says what the node sees now. Queries about the
// cluster return an error matched by errors.Is(err, membership.ErrNotRunning) while the node
// is stopped.

// LocalID returns the node's own id, name@host:port (host: the advertised host).
func (n *Node) LocalID() membership.NodeID { return n.cluster.LocalID() }

// LocalNode returns the node's own info: its metadata, process count, incarnation and uptime.
func (n *Node) LocalNode() (membership.NodeInfo, error) { return n.cluster.LocalNode() }

// Status returns the node's lifecycle status: starting, running, stopping or stopped.
func (n *Node) Status() membership.ClusterStatus { return n.cluster.Status() }

// Health grades the cluster as the node sees it (healthy, degraded or critical), with the
// counts, the recent events and the reachability of the seeds behind the grade.
func (n *Node) Health() membership.HealthReport { return n.cluster.Health() }

// Uptime returns how long the node has been running since its last start.
func (n *Node) Uptime() (time.Duration, error) { return n.cluster.Uptime() }

// Nodes returns every node the node knows, connected or not, sorted by id; never itself.
func (n *Node) Nodes() ([]membership.NodeInfo, error) { return n.cluster.Nodes() }

// ConnectedNodes returns the connected nodes, sorted by id; never the node itself.
func (n *Node) ConnectedNodes() ([]membership.NodeInfo, error) { return n.cluster.ConnectedNodes() }

// LeftNodes returns the nodes that left gracefully, sorted by id, with status
// membership.StatusLeft, while the node remembers their leave (Config.TombstoneTimeout).
func (n *Node) LeftNodes() ([]membership.NodeInfo, error) { return n.cluster.LeftNodes() }

// Node returns one known node; an error matched by errors.Is(err, membership.ErrNodeNotFound)
// if the node does not know it.
func (n *Node) Node(id membership.NodeID) (membership.NodeInfo, error) { return n.cluster.Node(id) }

// IsConnected reports whether node id is connected.
func (n *Node) IsConnected(id membership.NodeID) (bool, error) { return n.cluster.IsConnected(id) }

// ConnectedCount returns how many nodes are connected, the node itself not counted.
func (n *Node) ConnectedCount() (int, error) { return n.cluster.ConnectedCount() }

// RecentEvents returns the node's latest events (at most 64), oldest first.
func (n *Node) RecentEvents() []membership.Event { return n.cluster.RecentEvents() }

// Subscribe calls handler with every later event, in order, from a goroutine of its own: a
// slow handler delays only its own later events. It returns a func that stops the calls. To
// see the events from the node's first peers on, pass the handler to Start instead
// (WithEventHandler, OnNodeUp, …).
func (n *Node) Subscribe(handler func(membership.Event)) (unsubscribe func()) {
	return n.cluster.Subscribe(handler)
}

// Watch atomically takes a snapshot of the known nodes and subscribes handler to every later
// event: nothing is missed or doubled in between. lastSeq is the sequence number of the last
// event before the snapshot; the first event handler sees is lastSeq+1.
func (n *Node) Watch(handler func(membership.Event)) (nodes []membership.NodeInfo, status membership.ClusterStatus, lastSeq uint64, unsubscribe func()) {
	return n.cluster.Watch(handler)
}

// OnNodeUp calls handler for every node that becomes connected from now on (see Subscribe).
func (n *Node) OnNodeUp(handler func(membership.NodeInfo)) (unsubscribe func()) {
	return n.cluster.OnNodeUp(handler)
}

// OnNodeDown calls handler for every node that goes down from now on, with the reason (see
// Subscribe).
func (n *Node) OnNodeDown(handler func(membership.NodeInfo, membership.DownReason)) (unsubscribe func()) {
	return n.cluster.OnNodeDown(handler)
}

// OnNodeUpdated calls handler, from now on, for every connected node that changes its
// metadata or process count, with its new info (see Subscribe).
func (n *Node) OnNodeUpdated(handler func(membership.NodeInfo)) (unsubscribe func()) {
	return n.cluster.OnNodeUpdated(handler)
}

// OnStatusChange calls handler for every later change of the node's own status (see
// Subscribe).
func (n *Node) OnStatusChange(handler func(previous, current membership.ClusterStatus)) (unsubscribe func()) {
	return n.cluster.OnStatusChange(handler)
}

// SetMetadata replaces the metadata the node advertises; every peer streaming to it sees it
// within a round trip and fires node_updated. It is kept across restarts. Metadata that a
// Config would refuse is refused with a *membership.ConfigError.
func (n *Node) SetMetadata(metadata map[string]string) error { return n.cluster.SetMetadata(metadata) }

// SetProcessCount sets the process count the node advertises, as SetMetadata does the
// metadata. A count outside 0–membership.MaxProcessCount is refused.
func (n *Node) SetProcessCount(count int) error { return n.cluster.SetProcessCount(count) }

// UpdateLocal changes the metadata and the process count together (nil fields are kept), as
// SetMetadata does, and returns the node's info after the change (zero while the node is
// stopped: the change applies at its next start).
func (n *Node) UpdateLocal(u membership.LocalUpdate) (membership.NodeInfo, error) {
	return n.cluster.UpdateLocal(u)
}
