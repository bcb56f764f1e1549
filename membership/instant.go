package membership

import (
	"math"
	"time"
)

// instant is a moment kept in 8 bytes where a time.Time takes 24: its distance from the
// core's start (core.startedAt), so it keeps the monotonic reading of that start. A node
// holds a few moments for every member it knows, thousands of members in a large cluster,
// and those records are most of its memory. The zero instant is no moment, as the zero
// time.Time is: a distance d ≥ 0 is stored as d+1, a negative one (a peer that started
// before this node) as itself.
type instant int64

// instantOf returns t as an instant of c; the zero time is the zero instant.
func (c *core) instantOf(t time.Time) instant {
	if t.IsZero() {
		return 0
	}
	d := t.Sub(c.startedAt)
	if d >= 0 && d < math.MaxInt64 {
		return instant(d + 1)
	}
	return instant(d) // negative, never zero (or a distance Sub saturated)
}

// at returns the moment i of c; the zero instant is the zero time.
func (c *core) at(i instant) time.Time {
	switch {
	case i == 0:
		return time.Time{}
	case i > 0:
		return c.startedAt.Add(time.Duration(i - 1))
	default:
		return c.startedAt.Add(time.Duration(i))
	}
}
