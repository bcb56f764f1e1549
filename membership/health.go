package membership

import (
	"fmt"
	"strings"
	"time"
)

// HealthStatus grades the cluster as seen by one node.
type HealthStatus int

const (
	// HealthHealthy: every known node is connected and none went down within the window.
	HealthHealthy HealthStatus = iota + 1
	// HealthDegraded: some known nodes are down, or nodes went down within the window.
	HealthDegraded
	// HealthCritical: fewer than half of the known nodes are connected, no node is connected
	// and none of the seeds is reachable, or the local node is not running.
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
	// AvailabilityPercent is Connected over Known in percent; 100 when no node is known,
	// unless the node has seeds and none is reachable: 0 then.
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
	// Seeds reports the node's seeds (Config.Seeds), the node itself excluded: whether each
	// is reachable and, if not, why.
	Seeds []SeedStatus
}

// maxSeedsInMessage bounds how many unreachable seeds the health message names.
const maxSeedsInMessage = 3

// Health grades the cluster:
//   - critical when the node is not running, or fewer than 50% of the known nodes are
//     connected, or no node is connected and the node has seeds but none is reachable (a node
//     cut off from the cluster it was told to join: availability 0%);
//   - degraded when some known node is not connected, or a node went down in the last 5 minutes;
//   - healthy otherwise (a node alone, knowing no other and given no seed, is healthy).
func (c *Cluster) Health() HealthReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	report := HealthReport{Window: HealthWindow, AvailabilityPercent: 100}
	report.RecentEvents = c.recent.list()
	for _, e := range report.RecentEvents {
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
	report.Known = c.core.knownCount()
	report.Connected = c.core.connectedCount()
	report.Seeds = c.core.seedStatuses()
	if report.Known > 0 {
		report.AvailabilityPercent = 100 * float64(report.Connected) / float64(report.Known)
	}
	cutOff := report.Connected == 0 && len(report.Seeds) > 0 && !anyReachable(report.Seeds)
	if cutOff {
		report.AvailabilityPercent = 0
	}
	switch {
	case cutOff:
		report.Status = HealthCritical
		report.Message = noSeedMessage(report.Seeds, report.Known)
	case report.AvailabilityPercent < criticalAvailability:
		report.Status = HealthCritical
		report.Message = someConnected(report.Connected, report.Known)
	case report.Connected < report.Known:
		report.Status = HealthDegraded
		down := report.Known - report.Connected
		report.Message = fmt.Sprintf("%d of %d known nodes %s down", down, report.Known, isAre(down))
	case report.RecentDowns > 0:
		report.Status = HealthDegraded
		report.Message = fmt.Sprintf("%s, but %s in the last %s", allConnected(report.Known), count(report.RecentDowns, "node_down event", "node_down events"), HealthWindow)
	default:
		report.Status = HealthHealthy
		report.Message = allConnected(report.Known)
	}
	return report
}

// allConnected says that every one of known nodes is connected, in good English whatever
// their number.
func allConnected(known int) string {
	switch known {
	case 0:
		return "no other node is known"
	case 1:
		return "the 1 known node is connected"
	case 2:
		return "both known nodes are connected"
	default:
		return fmt.Sprintf("all %d known nodes are connected", known)
	}
}

// someConnected says that only connected of known nodes are connected.
func someConnected(connected, known int) string {
	switch {
	case known == 1:
		return "the 1 known node is not connected"
	case connected == 0:
		return fmt.Sprintf("none of the %d known nodes is connected", known)
	default:
		return fmt.Sprintf("only %d of %d known nodes %s connected", connected, known, isAre(connected))
	}
}

// isAre is the verb of n things.
func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// count counts n things: "1 node_down event", "2 node_down events".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// anyReachable reports whether some seed is reachable.
func anyReachable(seeds []SeedStatus) bool {
	for _, s := range seeds {
		if s.Reachable {
			return true
		}
	}
	return false
}

// noSeedMessage explains a node cut off from its seeds, naming the first few and why.
func noSeedMessage(seeds []SeedStatus, known int) string {
	var b strings.Builder
	if len(seeds) == 1 {
		b.WriteString("no seed is reachable")
	} else {
		fmt.Fprintf(&b, "none of the %d seeds is reachable", len(seeds))
	}
	for i, s := range seeds {
		if i == maxSeedsInMessage {
			fmt.Fprintf(&b, "; and %d more", len(seeds)-i)
			break
		}
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		why := s.LastError
		if why == "" {
			why = "not reached yet"
		}
		fmt.Fprintf(&b, "%s%s (%s)", sep, s.Seed, why)
	}
	if known > 0 {
		b.WriteString("; " + someConnected(0, known))
	} else {
		b.WriteString("; no other node is known")
	}
	return b.String()
}
