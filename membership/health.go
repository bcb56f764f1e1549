package membership

import (
	"fmt"
	"time"
)

// HealthStatus grades the cluster as seen by one node.
type HealthStatus int

const (
	// HealthHealthy: every known node is connected and none went down within the window.
	HealthHealthy HealthStatus = iota + 1
	// HealthDegraded: some known nodes are down, or nodes went down within the window.
	HealthDegraded
	// HealthCritical: fewer than half of the known nodes are connected, or the local node is
	// not running.
	HealthCritical
)

// String returns the grade in lower case.
func (h HealthStatus) String() string {
	switch h {
	case HealthHealthy:
		return "healthy"
	case HealthDegraded:
		return "degraded"
	case HealthCritical:
		return "critical"
	default:
		return "unknown"
	}
}

// HealthWindow is how far back Health counts node_down events.
const HealthWindow = 5 * time.Minute

// criticalAvailability is the availability below which the cluster is critical.
const criticalAvailability = 50.0

// HealthReport is the cluster health as seen by one node.
type HealthReport struct {
	// Status is the overall grade.
	Status HealthStatus
	// Connected and Known count the connected and the known nodes (the local one excluded).
	Connected, Known int
	// AvailabilityPercent is Connected over Known in percent; 100 when no node is known.
	AvailabilityPercent float64
	// RecentDowns counts node_down events within Window.
	RecentDowns int
	// Window is the span RecentDowns counts over.
	Window time.Duration
	// RecentEvents are the latest events, oldest first.
	RecentEvents []Event
	// Uptime is how long the local node has been running.
	Uptime time.Duration
	// Message explains the grade in one sentence.
	Message string
}

// Health grades the cluster:
//   - critical when the node is not running, or fewer than 50% of the known nodes are connected;
//   - degraded when some known node is not connected, or a node went down in the last 5 minutes;
//   - healthy otherwise (a node alone, knowing no other, is healthy).
func (c *Cluster) Health() HealthReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	report := HealthReport{Window: HealthWindow, AvailabilityPercent: 100}
	report.RecentEvents = append(report.RecentEvents, c.recent...)
	for _, e := range c.recent {
		if e.Type == EventNodeDown && now.Sub(e.Time) <= HealthWindow {
			report.RecentDowns++
		}
	}
	if c.core == nil || c.status == ClusterStopping {
		report.Status = HealthCritical
		report.Message = fmt.Sprintf("node is %s", c.status)
		return report
	}
	report.Uptime = now.Sub(c.startedAt)
	report.Known = len(c.core.members)
	report.Connected = c.core.connected
	if report.Known > 0 {
		report.AvailabilityPercent = 100 * float64(report.Connected) / float64(report.Known)
	}
	switch {
	case report.AvailabilityPercent < criticalAvailability:
		report.Status = HealthCritical
		report.Message = fmt.Sprintf("only %d of %d known nodes are connected", report.Connected, report.Known)
	case report.Connected < report.Known:
		report.Status = HealthDegraded
		report.Message = fmt.Sprintf("%d of %d known nodes are down", report.Known-report.Connected, report.Known)
	case report.RecentDowns > 0:
		report.Status = HealthDegraded
		report.Message = fmt.Sprintf("all %d known nodes are connected, but %d node_down events in the last %s", report.Known, report.RecentDowns, HealthWindow)
	default:
		report.Status = HealthHealthy
		report.Message = fmt.Sprintf("all %d known nodes are connected", report.Known)
	}
	return report
}
