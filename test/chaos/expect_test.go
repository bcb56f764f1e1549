//go:build chaos && linux

package chaos_test

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/meshnode/meshnode/membership"
)

// grace is how long past a bound the suite keeps waiting for a late event, so that a broken
// bound is reported with the figure it actually took rather than as "missing".
const grace = 5 * time.Second

// expectTransition waits, for every observer, for an event of type typ about subject at or
// after t0, records its delay from t0 in m (asserting m's bound) and, for a down, checks the
// reason (0: any). Observers are waited on together; it returns what each one reported.
func expectTransition(c *cluster, m *metric, typ membership.EventType, observers []*node, subject *node, t0 time.Time,
	reason membership.DownReason, note string) map[*node]seenEvent {
	c.t.Helper()
	wait := grace
	if m.bound != nil {
		wait += time.Duration(*m.bound * float64(time.Millisecond))
	} else {
		wait += 10 * time.Second
	}
	var mu sync.Mutex
	got := map[*node]seenEvent{}
	var wg sync.WaitGroup
	for _, o := range observers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if e, ok := waitEvent(o.current().events, typ, subject.id, t0, wait); ok {
				mu.Lock()
				got[o] = e
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, o := range observers {
		e, ok := got[o]
		if !ok {
			m.add(o.name, subject.name, float64(wait/time.Millisecond), "missing: no event within "+wait.String())
			c.t.Errorf("%s: %s never reported %s of %s within %s of the fault (bound %s)\n%s",
				m.s.id, o.name, typ, subject.name, wait, m.boundText, describe(o.current().events.of(subject.id)))
			continue
		}
		d := eventTime(e).Sub(t0)
		n := note
		if typ == membership.EventNodeDown {
			n = fmt.Sprintf("%sreason=%s", prefixNote(note), e.Reason)
		}
		m.checkDuration(o.name, subject.name, d, n)
		if typ == membership.EventNodeDown && reason != 0 && e.Reason != reason {
			c.t.Errorf("%s: %s reported %s down with reason %s, want %s\n%s", m.s.id, o.name, subject.name, e.Reason, reason,
				describe(o.current().events.of(subject.id)))
		}
	}
	return got
}

func prefixNote(n string) string {
	if n == "" {
		return ""
	}
	return n + "; "
}

// downsBetween returns, per observer, the node_down events it reported at or after since
// about subjects in among (nil: any).
func downsBetween(observers []*node, among []*node, since time.Time) map[*node][]seenEvent {
	out := map[*node][]seenEvent{}
	for _, o := range observers {
		for _, e := range o.current().events.downs(since) {
			if among == nil || slices.ContainsFunc(among, func(n *node) bool { return n.id == e.Node.ID }) {
				out[o] = append(out[o], e)
			}
		}
	}
	return out
}

// countDowns records and checks, per observer, the number of downs about among since since.
func countDowns(m *metric, observers, among []*node, since time.Time) {
	m.s.t.Helper()
	downs := downsBetween(observers, among, since)
	for _, o := range observers {
		d := downs[o]
		m.add(o.name, "", float64(len(d)), "")
		if m.bound != nil && float64(len(d)) > *m.bound {
			m.s.t.Errorf("%s: %s reported %d node_down (bound %s):\n%s", m.s.id, o.name, len(d), m.boundText, describe(d))
		}
	}
}

// checkMesh waits for the full mesh of group and records the time from t0 in m.
func checkMesh(c *cluster, m *metric, group []*node, t0 time.Time, what string) {
	c.t.Helper()
	wait := 30 * time.Second
	if m.bound != nil {
		wait = time.Duration(*m.bound*float64(time.Millisecond)) + grace - time.Since(t0)
	}
	_, ok, state := c.waitMesh(group, wait)
	took := time.Since(t0)
	if !ok {
		m.add("all", "", float64(took/time.Millisecond), "no full mesh")
		c.t.Errorf("%s: %s: no full mesh of %d nodes %s after the fault ended (bound %s):\n%s\n%s",
			m.s.id, what, len(group), took.Round(time.Millisecond), m.boundText, state, c.allEvents())
		return
	}
	m.checkDuration("all", "", took, what)
}
