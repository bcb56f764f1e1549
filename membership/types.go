package membership

import (
	"time"
)

// NodeStatus is the connection state of a remote node as seen by the local node.
type NodeStatus int

const (
	// StatusConnecting: the node is known (from seeds or gossip) and being dialled for the first time.
	StatusConnecting NodeStatus = iota + 1
	// StatusConnected: a live stream to the node exists and its heartbeats arrive.
	StatusConnected
	// StatusDisconnected: the node is known but down; it is redialled with backoff.
	StatusDisconnected
	// StatusLeft: the node left gracefully and is not redialled. Only LeftNodes lists such
	// nodes, while the local node remembers the leave (Config.TombstoneTimeout).
	StatusLeft
)

// String returns the status in lower case, e.g. "connected".
func (s NodeStatus) String() string {
	switch s {
	case StatusConnecting:
		return "connecting"
	case StatusConnected:
		return "connected"
	case StatusDisconnected:
		return "disconnected"
	case StatusLeft:
		return "left"
	default:
		return "unknown"
	}
}

// DownReason says why a node went down.
type DownReason int

const (
	// ReasonHeartbeatTimeout: no heartbeat for interval × threshold while the stream looked open.
	ReasonHeartbeatTimeout DownReason = iota + 1
	// ReasonConnectionClosed: the stream broke without a leave notice.
	ReasonConnectionClosed
	// ReasonConnectionRefused: a node learned from seeds or gossip, not yet up, whose first
	// dial was refused or timed out.
	ReasonConnectionRefused
	// ReasonGracefulShutdown: the node said it is leaving.
	ReasonGracefulShutdown
)

// String returns the reason in snake case, e.g. "heartbeat_timeout".
func (r DownReason) String() string {
	switch r {
	case ReasonHeartbeatTimeout:
		return "heartbeat_timeout"
	case ReasonConnectionClosed:
		return "connection_closed"
	case ReasonConnectionRefused:
		return "connection_refused"
	case ReasonGracefulShutdown:
		return "graceful_shutdown"
	default:
		return "unknown"
	}
}

// ClusterStatus is the lifecycle state of the local node.
type ClusterStatus int

const (
	// ClusterStopped: not a member; Start may be called (the zero value).
	ClusterStopped ClusterStatus = iota
	// ClusterStarting: dialling seeds.
	ClusterStarting
	// ClusterRunning: a member of the cluster.
	ClusterRunning
	// ClusterStopping: telling peers it leaves and closing streams.
	ClusterStopping
)

// String returns the status in lower case, e.g. "running".
func (s ClusterStatus) String() string {
	switch s {
	case ClusterStopped:
		return "stopped"
	case ClusterStarting:
		return "starting"
	case ClusterRunning:
		return "running"
	case ClusterStopping:
		return "stopping"
	default:
		return "unknown"
	}
}

// NodeInfo describes a node as the local node sees it. It is a copy: changing it changes nothing.
type NodeInfo struct {
	// ID is the node's id.
	ID NodeID
	// Incarnation distinguishes restarts of a node with the same id; higher is newer.
	Incarnation uint64
	// Status is the node's connection state.
	Status NodeStatus
	// ProcessCount is the number of processes the node's application reports.
	ProcessCount int
	// LastHeartbeat is when the local node last heard from the node (zero if never).
	LastHeartbeat time.Time
	// Uptime is how long the node's current incarnation has run (zero if unknown or down).
	Uptime time.Duration
	// Metadata is the node's free-form application metadata.
	Metadata map[string]string
	// Direct reports whether the local node holds a stream of its own with the node. In a
	// full mesh every connected node is direct; in the overlay a node without a direct
	// stream is connected while the cluster holds it alive, and LastHeartbeat is when the
	// local node last heard of it (its join, or the news that brought it back).
	Direct bool
}

// EventType tells which kind of Event it is.
type EventType int

const (
	// EventNodeUp: a node became connected.
	EventNodeUp EventType = iota + 1
	// EventNodeDown: a node went from connected (or connecting) to disconnected.
	EventNodeDown
	// EventStatusChange: the local node's cluster status changed.
	EventStatusChange
	// EventNodeUpdated: a connected node changed its process count or metadata.
	EventNodeUpdated
)

// String returns the type in snake case, e.g. "node_up".
func (t EventType) String() string {
	switch t {
	case EventNodeUp:
		return "node_up"
	case EventNodeDown:
		return "node_down"
	case EventStatusChange:
		return "status_change"
	case EventNodeUpdated:
		return "node_updated"
	default:
		return "unknown"
	}
}

// Event is one membership event of the local node.
type Event struct {
	// Type is the kind of event.
	Type EventType
	// Sequence numbers the local node's events from 1, one by one, over the node's lifetime.
	Sequence uint64
	// Time is when the event happened.
	Time time.Time
	// Node is the node that came up (EventNodeUp), its last known info (EventNodeDown), or its
	// info with the new process count and metadata (EventNodeUpdated).
	Node NodeInfo
	// Reason is why the node went down (EventNodeDown only).
	Reason DownReason
	// Previous and Current are the statuses of an EventStatusChange.
	Previous, Current ClusterStatus
}
