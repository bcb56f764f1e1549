package membership

import (
	"errors"
	"fmt"
	"maps"
	"time"
)

// LocalID returns the local node's id.
func (c *Cluster) LocalID() NodeID { return c.id }

// KnownNodeCount returns how many other nodes the local node knows (up, down or still being
// reached), as of its last step; it never waits for the node's lock, so admission control
// can read it on every connection.
func (c *Cluster) KnownNodeCount() int { return int(c.known.Load()) }

// Status returns the local node's lifecycle status.
func (c *Cluster) Status() ClusterStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// runningLocked returns ErrNotRunning unless the node is starting or running.
func (c *Cluster) runningLocked(op string) error {
	if c.core == nil || c.status == ClusterStopping {
		return fmt.Errorf("%s on %s: %w", op, c.id, ErrNotRunning)
	}
	return nil
}

// LocalNode returns the local node's own info.
func (c *Cluster) LocalNode() (NodeInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.runningLocked("local node"); err != nil {
		return NodeInfo{}, err
	}
	return c.core.localInfo(c.clock.Now()), nil
}

// Uptime returns how long the node has been running since its last start.
func (c *Cluster) Uptime() (time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.runningLocked("uptime"); err != nil {
		return 0, err
	}
	return c.clock.Now().Sub(c.startedAt), nil
}

// Nodes returns every known node, connected or not, sorted by id; never the local node.
func (c *Cluster) Nodes() ([]NodeInfo, error) { return c.nodes("nodes", false) }

// ConnectedNodes returns the connected nodes, sorted by id.
func (c *Cluster) ConnectedNodes() ([]NodeInfo, error) { return c.nodes("connected nodes", true) }

func (c *Cluster) nodes(op string, connectedOnly bool) ([]NodeInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.runningLocked(op); err != nil {
		return nil, err
	}
	return c.core.nodes(c.clock.Now(), connectedOnly), nil
}

// LeftNodes returns the nodes that left gracefully, sorted by id, with status StatusLeft: each
// while the local node remembers its leave (Config.TombstoneTimeout), so that stale gossip
// cannot bring it back. Nodes and ConnectedNodes never list them.
func (c *Cluster) LeftNodes() ([]NodeInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.runningLocked("left nodes"); err != nil {
		return nil, err
	}
	return c.core.left(), nil
}

// Node returns one known node; ErrNodeNotFound if the local node does not know it.
func (c *Cluster) Node(id NodeID) (NodeInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.runningLocked("node"); err != nil {
		return NodeInfo{}, err
	}
	info, ok := c.core.node(c.clock.Now(), id)
	if !ok {
		return NodeInfo{}, fmt.Errorf("node %s: %w", id, ErrNodeNotFound)
	}
	return info, nil
}

// IsConnected reports whether node id is connected.
func (c *Cluster) IsConnected(id NodeID) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.runningLocked("is connected"); err != nil {
		return false, err
	}
	return c.core.isConnectedTo(id), nil
}

// ConnectedCount returns how many nodes are connected.
func (c *Cluster) ConnectedCount() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.runningLocked("connected count"); err != nil {
		return 0, err
	}
	return c.core.connectedCount(), nil
}

// SetProcessCount sets the process count the local node advertises; every peer sees it within
// a round trip and fires node_updated. It is kept across restarts. A count outside
// 0–MaxProcessCount is refused with a *ConfigError.
func (c *Cluster) SetProcessCount(n int) error {
	if _, err := c.UpdateLocal(LocalUpdate{ProcessCount: &n}); err != nil {
		return fmt.Errorf("set process count: %w", err)
	}
	return nil
}

// SetMetadata replaces the metadata the local node advertises; every peer sees it within a
// round trip and fires node_updated. It is kept across restarts. Metadata that a Config
// would refuse is refused with a *ConfigError.
func (c *Cluster) SetMetadata(metadata map[string]string) error {
	if metadata == nil {
		metadata = map[string]string{}
	}
	if _, err := c.UpdateLocal(LocalUpdate{Metadata: metadata}); err != nil {
		return fmt.Errorf("set metadata: %w", err)
	}
	return nil
}

// LocalUpdate changes what the local node advertises about itself; nil fields are kept.
type LocalUpdate struct {
	// ProcessCount, when not nil, replaces the process count.
	ProcessCount *int
	// Metadata, when not nil, replaces the metadata; an empty map clears it.
	Metadata map[string]string
}

// UpdateLocal applies u at once (both fields together, or neither): the change is pushed to
// every peer at once, and each fires node_updated for the local node. It is kept across
// restarts. A value that a Config would refuse is refused with a *ConfigError. It returns the
// local node's info after the change (zero when the node is not running: the change applies at
// its next start).
func (c *Cluster) UpdateLocal(u LocalUpdate) (NodeInfo, error) {
	var problems []FieldError
	if u.ProcessCount != nil {
		if rule := processCountRule(*u.ProcessCount); rule != "" {
			problems = append(problems, FieldError{Field: "ProcessCount", Message: rule})
		}
	}
	if u.Metadata != nil {
		probe := DefaultConfig()
		probe.Name, probe.Metadata = c.id.Name(), u.Metadata
		var ce *ConfigError
		if err := probe.Validate(); errors.As(err, &ce) {
			problems = append(problems, ce.Problems...)
		}
	}
	if len(problems) > 0 {
		return NodeInfo{}, fmt.Errorf("update %s: %w", c.id, &ConfigError{Problems: problems})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if u.ProcessCount != nil {
		c.cfg.ProcessCount = *u.ProcessCount
	}
	if u.Metadata != nil {
		c.cfg.Metadata = maps.Clone(u.Metadata)
	}
	if c.core == nil {
		return NodeInfo{}, nil
	}
	c.stepLocked(func(now time.Time) { c.core.setAttributes(now, c.cfg.ProcessCount, c.cfg.Metadata) })
	return c.core.localInfo(c.clock.Now()), nil
}

// RecentEvents returns the latest events (at most 64), oldest first.
func (c *Cluster) RecentEvents() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recent.list()
}

// Subscribe calls handler with every event, in order, from its own goroutine; a slow handler
// delays only its own later events. It returns a func that stops the calls.
func (c *Cluster) Subscribe(handler func(Event)) (unsubscribe func()) {
	return c.bus.subscribe(handler)
}

// Watch atomically takes a snapshot of the known nodes and subscribes handler to every later
// event: nothing is missed or doubled in between. lastSeq is the sequence number of the last
// event before the snapshot; the first event handler sees is lastSeq+1.
func (c *Cluster) Watch(handler func(Event)) (nodes []NodeInfo, status ClusterStatus, lastSeq uint64, unsubscribe func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.core != nil {
		nodes = c.core.nodes(c.clock.Now(), false)
	}
	return nodes, c.status, c.seq, c.bus.subscribe(handler)
}

// OnNodeUp calls handler for every node that becomes connected.
func (c *Cluster) OnNodeUp(handler func(NodeInfo)) (unsubscribe func()) {
	return c.Subscribe(func(e Event) {
		if e.Type == EventNodeUp {
			handler(e.Node)
		}
	})
}

// OnNodeDown calls handler for every node that goes down, with the reason.
func (c *Cluster) OnNodeDown(handler func(NodeInfo, DownReason)) (unsubscribe func()) {
	return c.Subscribe(func(e Event) {
		if e.Type == EventNodeDown {
			handler(e.Node, e.Reason)
		}
	})
}

// OnNodeUpdated calls handler for every connected node that changes its process count or
// metadata, with its new info.
func (c *Cluster) OnNodeUpdated(handler func(NodeInfo)) (unsubscribe func()) {
	return c.Subscribe(func(e Event) {
		if e.Type == EventNodeUpdated {
			handler(e.Node)
		}
	})
}

// OnStatusChange calls handler for every change of the local node's status.
func (c *Cluster) OnStatusChange(handler func(previous, current ClusterStatus)) (unsubscribe func()) {
	return c.Subscribe(func(e Event) {
		if e.Type == EventStatusChange {
			handler(e.Previous, e.Current)
		}
	})
}
