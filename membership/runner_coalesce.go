package membership

import "slices"

// maxCoalescedAlerts bounds the alerts one coalesced message carries, so it stays far below
// the transport's message size limit.
const maxCoalescedAlerts = 256

// maxCoalescedEntries bounds the entries one coalesced update carries.
const maxCoalescedEntries = 256

// coalesce returns the next message to send from a stream's queue (not empty) and how many
// queued messages it stands for. Relays waiting behind one another travel together: a run of
// alert messages becomes one message with all their alerts, in order, and a run of plain
// updates (deltas that ask for no reply, as far from their source) one update with all their
// entries. A stream that keeps up sends one message at a time as before; one that falls
// behind, when a burst of relays meets a busy machine, sends fewer, larger messages, so the
// burst costs fewer writes, frames and authentications on both sides.
func coalesce(queue []*Message) (*Message, int) {
	first := queue[0]
	switch {
	case len(first.Alerts) > 0:
		n, total := 1, len(first.Alerts)
		for n < len(queue) && len(queue[n].Alerts) > 0 && total+len(queue[n].Alerts) <= maxCoalescedAlerts {
			total += len(queue[n].Alerts)
			n++
		}
		if n == 1 {
			return first, 1
		}
		alerts := make([]*Alert, 0, total)
		for _, m := range queue[:n] {
			alerts = append(alerts, m.Alerts...)
		}
		return &Message{Alerts: alerts}, n
	case plainUpdate(first):
		n, total := 1, len(first.Update.Entries)
		for n < len(queue) && plainUpdate(queue[n]) && queue[n].Update.Hop == first.Update.Hop &&
			total+len(queue[n].Update.Entries) <= maxCoalescedEntries {
			total += len(queue[n].Update.Entries)
			n++
		}
		if n == 1 {
			return first, 1
		}
		entries := make([]MemberEntry, 0, total)
		for _, m := range queue[:n] {
			entries = append(entries, m.Update.Entries...)
		}
		return &Message{Update: &Update{Entries: slices.Clip(entries), Hop: first.Update.Hop}}, n
	}
	return first, 1
}

// plainUpdate reports whether m is an update that carries a delta, asks for nothing and
// answers nothing.
func plainUpdate(m *Message) bool {
	return m.Update != nil && !m.Update.Full && !m.Update.ReplyRequested && !m.Update.answer
}
