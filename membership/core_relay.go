package membership

import (
	"slices"
	"time"
)

// Relay batching. In the overlay every join, leave and alert reaches most nodes through
// relays, and one failure makes each of the subject's K observers raise an alert at about the
// same moment: relayed one by one, every node would pass on up to K alerts to each of its
// subjects. Instead, a stream's relays travel together: the first relay after a quiet window
// goes at once, so a lone event is not delayed, and what follows within the window waits for
// its end and goes in one message per kind (the entries first, then the alerts, so an alert
// about a node's new incarnation never arrives before the incarnation). A decision is never
// held: it goes at once, after whatever waited on the stream.

// relayWindow is how long after a relay on a stream the next ones wait to travel together: a
// hundredth of the heartbeat interval (10 ms at the default 1 s), small beside the time a
// decision takes, large beside the time one message takes to handle.
func (c *core) relayWindow() time.Duration { return c.cfg.HeartbeatInterval / 100 }

// relayQueue is what waits on one stream for the end of its relay window.
type relayQueue struct {
	// sentAt is when the stream's last relay went out.
	sentAt  time.Time
	entries []MemberEntry
	alerts  []*Alert
	// due says the stream is listed in core.relayDue.
	due bool
}

// queueRelay relays entries and alert (either may be empty) on pc: at once when the stream's
// window is over and nothing waits, else with what waits, when the window ends. A decision
// (urgent) goes at once after what waits.
func (c *core) queueRelay(now time.Time, pc *peerConn, entries []MemberEntry, alert *Alert, urgent bool) {
	q := &pc.relays
	if urgent || (!q.due && !now.Before(q.sentAt.Add(c.relayWindow()))) {
		q.entries = append(q.entries, entries...)
		if alert != nil {
			q.alerts = append(q.alerts, alert)
		}
		c.sendRelays(now, pc)
		return
	}
	q.entries = append(q.entries, entries...)
	if alert != nil {
		q.alerts = append(q.alerts, alert)
	}
	if !q.due {
		q.due = true
		c.relayDue = append(c.relayDue, pc)
		c.wantWake(q.sentAt.Add(c.relayWindow()))
	}
}

// sendRelays sends what waits on pc, entries first.
func (c *core) sendRelays(now time.Time, pc *peerConn) {
	q := &pc.relays
	if len(q.entries) > 0 {
		c.send(pc, &Message{Update: &Update{Entries: slices.Clip(q.entries)}})
	}
	if len(q.alerts) > 0 {
		c.send(pc, &Message{Alerts: slices.Clip(q.alerts)})
	}
	q.entries, q.alerts = nil, nil
	q.sentAt = now
}

// flushRelays sends the relays whose window is over; the others wake the node when theirs is.
func (c *core) flushRelays(now time.Time) {
	keep := c.relayDue[:0]
	for _, pc := range c.relayDue {
		q := &pc.relays
		switch {
		case !q.due:
			// sent at once by a decision since it was listed
		case pc.removed || !c.current(pc):
			q.due, q.entries, q.alerts = false, nil, nil
		case now.Before(q.sentAt.Add(c.relayWindow())):
			c.wantWake(q.sentAt.Add(c.relayWindow()))
			keep = append(keep, pc)
		default:
			q.due = false
			c.sendRelays(now, pc)
		}
	}
	clear(c.relayDue[len(keep):])
	c.relayDue = keep
}
