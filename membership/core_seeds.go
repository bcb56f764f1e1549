package membership

import (
	"fmt"
	"log/slog"
	"time"
)

// seedWarnEvery is how often a seed that stays unreachable is warned about again: its first
// failed dial is logged at once, then at most one line per seed per seedWarnEvery, however
// often it is redialled, and one line when it is reached again.
const seedWarnEvery = time.Minute

// seed is a seed address. It is dialled as long as the node behind it is not in the table
// (never reached, or forgotten after a long partition), so even a cluster split for longer
// than the reconnect timeout heals.
type seed struct {
	text     string // as configured: host:port or name@host:port; for a DNS seed, its address
	via      string // the DNS seed that resolved to addr, "" for a seed configured as an address
	addr     string
	id       NodeID // the node at addr, once known (given as name@host:port, or learned)
	self     bool
	dial     connID
	attempts int
	nextDial time.Time

	// What the node knows of the seed's reachability, for warnings and health (core_seeds.go).
	reached      bool      // the last dial that tried it reached a node
	lastErr      string    // why the last dial failed ("" once it reached a node)
	failures     int       // dials failed since it was last reached (or since the start)
	failingSince time.Time // when the first of those failed
	warnedAt     time.Time // when it was last warned about (zero: not since it was last reached)
}

// SeedStatus is what a node knows of one of its seeds (Config.Seeds), for HealthReport.
type SeedStatus struct {
	// Seed is the seed as configured: host:port or name@host:port.
	Seed string
	// Reachable reports whether the seed answers: its last dial reached a node, or the node
	// behind it is connected.
	Reachable bool
	// LastError says why the seed is not reachable: the last dial's error, or that the node
	// behind it is down; empty when reachable, or before its first dial ended.
	LastError string
	// FailedDials counts the dials of the seed that failed since it was last reached (or
	// since the start).
	FailedDials int
}

// seedWithID returns the seed announced by id (name@host:port), nil if none.
func (c *core) seedWithID(id NodeID) *seed {
	for _, s := range c.seeds {
		if s.id == id {
			return s
		}
	}
	return nil
}

// seedFailed notes that a dial trying s ended before its handshake: the first failure since
// s was last reached is logged as a warning at once, later ones at most once per
// seedWarnEvery.
func (c *core) seedFailed(now time.Time, s *seed, pc *peerConn) {
	cause := pc.failure
	if cause == "" {
		cause = "the stream ended before the handshake"
	}
	s.reached, s.lastErr = false, cause
	s.failures++
	if s.failures == 1 {
		s.failingSince = now
	}
	if pc.foreign {
		return // a node of another cluster answered there: that refusal was logged (warnForeign)
	}
	switch {
	case s.warnedAt.IsZero():
		c.log(slog.LevelWarn, "seed unreachable; retrying with backoff", s.logAttrs("err", cause)...)
	case now.Sub(s.warnedAt) >= seedWarnEvery:
		c.log(slog.LevelWarn, "seed still unreachable; retrying with backoff", s.logAttrs("err", cause,
			"failed_dials", s.failures, "unreachable_for", now.Sub(s.failingSince).Round(time.Second).String())...)
	default:
		return
	}
	s.warnedAt = now
}

// logAttrs returns the attributes of a log line about s: the seed, the DNS seed it came
// from if any, then more.
func (s *seed) logAttrs(more ...any) []any {
	attrs := []any{"seed", s.text}
	if s.via != "" {
		attrs = append(attrs, "via", s.via)
	}
	return append(attrs, more...)
}

// seedReached notes that a dial trying s reached a node; a seed that was warned about is
// said to be reachable again, once.
func (c *core) seedReached(now time.Time, s *seed) {
	if !s.warnedAt.IsZero() {
		c.log(slog.LevelInfo, "seed reachable again", s.logAttrs("failed_dials", s.failures,
			"unreachable_for", now.Sub(s.failingSince).Round(time.Second).String())...)
	}
	s.reached, s.lastErr, s.failures = true, "", 0
	s.failingSince, s.warnedAt = time.Time{}, time.Time{}
}

// seedStatuses reports every seed but the node itself, in configuration order, then the
// addresses DNS seeds resolved to (each under its address and the DNS seed), and the DNS
// seeds that resolved to none.
func (c *core) seedStatuses() []SeedStatus {
	var out []SeedStatus
	for _, s := range c.seeds {
		if s.self {
			continue
		}
		out = append(out, c.seedStatus(s))
	}
	return append(out, c.dnsSeedStatuses()...)
}

// seedStatus reports what the node knows of s.
func (c *core) seedStatus(s *seed) SeedStatus {
	st := SeedStatus{Seed: s.text, Reachable: s.reached, LastError: s.lastErr, FailedDials: s.failures}
	if s.via != "" {
		st.Seed = s.addr + " (" + s.via + ")"
	}
	// Once reached, a seed's node is redialled as a member: its status says more than the
	// last seed dial.
	if m := c.members.get(s.id); !s.id.IsZero() && m != nil && m.incarnation != 0 {
		st.Reachable = m.status == StatusConnected
		if !st.Reachable && st.LastError == "" {
			st.LastError = fmt.Sprintf("node %s is %s", m.id, m.status)
		}
	}
	return st
}
