package membership

import (
	"fmt"
	"time"
)

// Kill stops the node the way a crash would: every stream is cut, no peer is told. Peers
// report connection_closed. It exists for fault-injection tests and benchmarks; use Stop to
// leave a cluster.
func (c *Cluster) Kill() error {
	c.mu.Lock()
	if c.core == nil || c.status == ClusterStopping {
		c.mu.Unlock()
		return fmt.Errorf("kill %s: %w", c.id, ErrNotRunning)
	}
	core := c.core
	c.core = nil // every runner now sees a stale core and aborts
	c.stopTimerLocked()
	c.stopDNSLocked()
	c.cancelRun()
	c.abortAllLocked()
	_ = core
	c.mu.Unlock()
	c.live.Wait()
	c.dnsRounds.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setStatusLocked(ClusterStopped)
	return nil
}

// Freeze makes the node go silent while its streams stay open, like a paused process: it
// sends nothing, handles nothing it receives, and runs no timer. Peers report
// heartbeat_timeout. Thaw resumes it. For fault-injection tests and benchmarks.
func (c *Cluster) Freeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = true
}

// Thaw resumes a frozen node. The time it was frozen counts as a local stall, so it does not
// blame its peers for the silence.
func (c *Cluster) Thaw() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen {
		return
	}
	c.frozen = false
	if c.core != nil {
		c.stepLocked(func(now time.Time) { c.core.tick(now) })
	}
}
