package membership

import "time"

// MetricsSink receives the engine's measurements as they happen. Calls are made while the
// engine holds its lock, so they must be quick and must not call back into the Cluster
// (Prometheus counters and histograms qualify). The server package adapts it to Prometheus.
type MetricsSink interface {
	// HeartbeatSent counts one heartbeat sent to a peer.
	HeartbeatSent()
	// HeartbeatReceived reports one heartbeat from a peer, gap after the previous one on
	// the same stream, where interval is what the peer advertised. The gap is 0 for a
	// heartbeat that is not timed: in the overlay, one from a peer this node does not check
	// (it beats every tenth interval), or the first after this node asked it to beat every
	// interval.
	HeartbeatReceived(gap, interval time.Duration)
	// DialStarted counts one outbound dial (first dials and reconnects alike).
	DialStarted()
}

// noMetrics discards every measurement.
type noMetrics struct{}

func (noMetrics) HeartbeatSent()                                {}
func (noMetrics) HeartbeatReceived(gap, interval time.Duration) {}
func (noMetrics) DialStarted()                                  {}

// WithMetrics sends the engine's measurements to sink.
func WithMetrics(sink MetricsSink) Option { return func(c *Cluster) { c.metrics = sink } }

// Stats is a point-in-time summary of the engine, for metrics scrapes.
type Stats struct {
	// Nodes counts the known nodes by status.
	Nodes map[NodeStatus]int
	// Streams is the number of established peer streams.
	Streams int
	// PendingStreams is the number of streams still dialling or in their handshake.
	PendingStreams int
}

// Stats returns the current summary (zero when not running).
func (c *Cluster) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Nodes: map[NodeStatus]int{StatusConnecting: 0, StatusConnected: 0, StatusDisconnected: 0}}
	if c.core != nil {
		c.core.stats(&s)
	}
	return s
}
