package membership

import (
	"log/slog"
	"maps"
	"time"

	"github.com/meshnode/meshnode/internal/patience"
)

// Heartbeats and failure detection. A tick visits the streams due (visitConns): each sends its
// heartbeat when due and checks its peer's silence. A heartbeat received is recorded, and
// answered when this node's own is due soon (onHeartbeat). A silence past the timeout is first
// suspected, then confirmed on time (confirmTimeout) and the peer lost (heartbeatTimeout). A
// node that stalled forgives the silence it caused (forgiveStall) and holds back node_up
// reports until it runs on time again (noteOverdue, releaseHold).

// minHeartbeatInterval guards the detector against a peer advertising a nonsense interval.
const minHeartbeatInterval = 10 * time.Millisecond

// visitConns looks at the streams that may need something before coalesce: a heartbeat to
// send, a silence to check, a handshake to time out. It visits only the streams whose entry
// in connDue (the earliest such deadline) has come: deadlines only move later between
// visits, except where recheck resets the entry.
func (c *core) visitConns(now, coalesce time.Time) {
	order, due := c.sortedConns(), c.connDue
	horizon := coalesce.Sub(c.startedAt)
	next := time.Duration(0) // the earliest entry, zero if none
	for i, pc := range order {
		if due[i] <= horizon {
			due[i] = 0 // closed (an entry rebuilt at the next tick)
			if deadline := c.visitConn(now, pc, coalesce); !deadline.IsZero() {
				due[i] = max(deadline.Sub(c.startedAt), 1)
			}
		}
		if due[i] != 0 && (next == 0 || due[i] < next) {
			next = due[i]
		}
	}
	if next != 0 {
		c.wantWake(c.startedAt.Add(next))
	}
}

// visitConn checks one stream's handshake or silence and sends its heartbeat when due by
// coalesce. It returns the stream's next deadline, zero once it closed the stream. (Any
// close rebuilds connDue at the next tick, so an entry for a closed stream is never read.)
func (c *core) visitConn(now time.Time, pc *peerConn, coalesce time.Time) time.Time {
	_, waiting := c.waiting[pc.id]
	if !pc.handshaken() {
		if waiting {
			return now.Add(c.confirmDelay()) // its hello came: look again once it is handled
		}
		return c.checkHandshake(now, pc)
	}
	if waiting && pc.lastRecv.Before(now) {
		pc.lastRecv = now // its peer's message came, and waits its turn in the inbox
	}
	watching := c.watches(now, pc)
	silentAt := pc.lastRecv.Add(pc.timeout + c.lateAllowance(pc))
	switch {
	case !watching:
		// This node does not check the peer (core_watch.go), which still sends a heartbeat
		// every quietBeatEvery intervals: a stream silent far longer than that is dead (a
		// half-open connection), and is closed without an alert.
		pc.suspectSince = time.Time{}
		silentAt = pc.lastRecv.Add(c.quietTimeout(pc))
		if !now.Before(silentAt) {
			c.heartbeatTimeout(now, pc)
			return time.Time{}
		}
	case pc.graceFor.Equal(pc.lastRecv) && now.Before(pc.graceUntil):
		silentAt = pc.graceUntil // a silence this node, being slow itself (slowLocally), gave more time
	case !now.Before(silentAt):
		if !c.confirmTimeout(now, pc) {
			silentAt = pc.suspectSince.Add(c.confirmDelay())
			break
		}
		if c.overlay() && c.slowLocally() && !pc.graceFor.Equal(pc.lastRecv) {
			pc.graceFor, pc.graceUntil = pc.lastRecv, now.Add(pc.timeout)
			pc.suspectSince = time.Time{}
			silentAt = pc.graceUntil
			break
		}
		c.heartbeatTimeout(now, pc)
		return time.Time{}
	default:
		pc.suspectSince = time.Time{}
	}
	if pc.state == streamHeld && !c.holding {
		c.confirmAccepted(now, pc) // the node runs on time again: report what it held back
	}
	roleChanged := pc.toldQuiet == watching
	beatDue := !pc.nextBeat.After(coalesce)
	if beatDue && !roleChanged {
		if resume, held := c.beatHeld(now, pc); held {
			return minTime(resume, silentAt) // failure news goes first (core_beathold.go)
		}
	}
	if beatDue || roleChanged {
		switch {
		case c.current(pc) && c.owesBeat(pc, watching):
			c.sendHeartbeat(now, pc)
		case beatDue:
			pc.skippedBeats++
		}
		if beatDue {
			pc.nextBeat = c.beatAfter(now, pc.nextBeat)
		}
	}
	if pc.nextBeat.Before(silentAt) {
		return pc.nextBeat
	}
	return silentAt
}

// sendHeartbeat sends one heartbeat on pc; attributes ride along only when they changed.
// Heartbeats without attributes are one shared message (sharedBeat): messages handed to the
// runtime are never changed afterwards.
func (c *core) sendHeartbeat(now time.Time, pc *peerConn) {
	quiet := !pc.watching
	if pc.toldQuiet && !quiet {
		// The peer learns from this beat that it owes one every interval: the gap since its
		// last quiet beat, up to quietBeatEvery intervals, is no lateness (onHeartbeat).
		pc.lastBeat = time.Time{}
	}
	pc.toldQuiet, pc.skippedBeats = quiet, 0
	digest, settled := c.settledDigest(now)
	attrsDigest := uint64(0)
	if settled && c.overlay() && pc.beatsSent%attrsDigestEvery == 0 {
		attrsDigest = c.attributesDigest()
	}
	pc.beatsSent++
	if pc.sentAttrs == c.attrs.Version {
		c.send(pc, c.sharedBeat(digest, attrsDigest, quiet))
		c.metrics.HeartbeatSent()
		return
	}
	attrs := c.attrs.clone()
	pc.sentAttrs = c.attrs.Version
	c.send(pc, &Message{Heartbeat: &Heartbeat{
		ViewDigest:        digest,
		ProcessCount:      c.attrs.ProcessCount,
		AttributesVersion: c.attrs.Version,
		Attributes:        &attrs,
		NotMonitoring:     quiet,
		AttributesDigest:  attrsDigest,
	}})
	c.metrics.HeartbeatSent()
}

// sharedBeat returns the heartbeat without attributes for the digests and the current
// attributes, built anew only when one of them changed.
func (c *core) sharedBeat(digest, attrsDigest uint64, quiet bool) *Message {
	i := 0
	if quiet {
		i++
	}
	if attrsDigest != 0 {
		i += 2
	}
	slot := &c.beat[i]
	if hb := *slot; hb != nil && hb.Heartbeat.ViewDigest == digest && hb.Heartbeat.AttributesDigest == attrsDigest &&
		hb.Heartbeat.AttributesVersion == c.attrs.Version && hb.Heartbeat.ProcessCount == c.attrs.ProcessCount {
		return hb
	}
	*slot = &Message{Heartbeat: &Heartbeat{
		ViewDigest:        digest,
		ProcessCount:      c.attrs.ProcessCount,
		AttributesVersion: c.attrs.Version,
		NotMonitoring:     quiet,
		AttributesDigest:  attrsDigest,
	}}
	return *slot
}

// beatAfter returns when the heartbeat after the one due at due, sent at now, is due: an
// interval after due (not after now, so that early sends do not add up), give or take a
// fortieth, and at most maxBeatGap after now; a schedule that fell behind starts over from now.
func (c *core) beatAfter(now, due time.Time) time.Time {
	i := c.cfg.HeartbeatInterval
	next := due.Add(i - i/40 + time.Duration(c.rng.Int64N(int64(i/20)+1)))
	if next.Sub(now) < i/2 {
		return now.Add(c.jitter(i))
	}
	if limit := now.Add(c.maxBeatGap()); next.After(limit) {
		return limit
	}
	return next
}

// maxBeatGap is the longest a stream goes without a heartbeat from this node, but for a
// hold for news (maxBeatHold): the interval and a twentieth, or half the confirmation delay
// if that is shorter, so that a peer's confirmDelay absorbs the lateness even at a threshold
// of one.
func (c *core) maxBeatGap() time.Duration {
	return c.cfg.HeartbeatInterval + min(c.cfg.HeartbeatInterval/20, c.confirmDelay()/2)
}

// jitter returns d shortened by up to 5%, so that streams opened together do not stay in
// lockstep.
func (c *core) jitter(d time.Duration) time.Duration {
	return d - time.Duration(c.rng.Int64N(int64(d/20)+1))
}

// onHeartbeat records a peer's heartbeat, its attributes, and compares views.
func (c *core) onHeartbeat(now time.Time, pc *peerConn, hb *Heartbeat) {
	if !hb.ID.IsZero() && hb.ID != pc.peer {
		c.violation(now, pc, "heartbeat speaks for another node "+hb.ID.String())
		return
	}
	m := c.memberOf(pc)
	if m == nil || m.conn != pc.id {
		return
	}
	m.lastHeartbeat = c.instantOf(now)
	// Only a heartbeat the peer owed every interval is timed: one while this node checks the
	// peer and has told it so, after another such (sendHeartbeat starts over when it tells).
	// A quiet peer's beats come quietBeatEvery intervals apart, on time.
	gap := time.Duration(0)
	if pc.watching && !pc.toldQuiet && !pc.lastBeat.IsZero() {
		gap = now.Sub(pc.lastBeat)
		c.noteBeatGap(now, c.forgiveHeldBeat(now, gap, pc.peerBeat), pc.peerBeat)
	}
	c.metrics.HeartbeatReceived(gap, pc.peerBeat)
	pc.lastBeat = now
	if hb.NotMonitoring != pc.peerQuiet {
		c.notePeerWatch(now, pc, hb)
	}
	c.answerHeartbeat(now, pc)
	c.updateAttributes(now, m, hb)
	digest, settled := c.settledDigest(now)
	if !settled {
		return // news still spreading: a later beat compares
	}
	if hb.ViewDigest == digest {
		pc.mismatches = 0
		if c.attributesDifferAgain(pc, hb) {
			c.syncOver(now, pc, "the attributes this node holds differ from a peer's twice in a row; sending it the whole view")
		}
		return
	}
	// A single mismatch is usually a join still spreading; two in a row start a sync.
	pc.mismatches++
	if pc.mismatches >= 2 {
		c.syncOver(now, pc, "view differs from a peer's twice in a row; sending it the whole view")
	}
}

// syncOver sends the peer of pc the whole view, asking for what it lacks in return, unless a
// sync went over pc lately (or, in the overlay, over any stream within the last interval).
func (c *core) syncOver(now time.Time, pc *peerConn, why string) {
	if now.Before(pc.syncHold) || (c.overlay() && now.Before(c.syncHold)) {
		return
	}
	pc.mismatches, pc.attrMismatches = 0, 0
	pc.syncHold = now.Add(4 * c.cfg.HeartbeatInterval)
	// In the overlay, where relays carry the news and a sync only repairs, a node syncs
	// over one stream per interval, not over each of its 2K streams at once.
	c.syncHold = now.Add(c.cfg.HeartbeatInterval)
	c.log(slog.LevelDebug, why)
	c.send(pc, &Message{Update: &Update{Full: true, ReplyRequested: true, Entries: c.view()}})
}

// attrsDigestEvery is how many heartbeats a stream carries per attributes digest: a node that
// missed an attribute change is not in a hurry, and the digest, 9 bytes, in every heartbeat
// grew a node's traffic at rest by about 100 bytes a second (a seventh of it).
const attrsDigestEvery = 10

// attributesDifferAgain reports whether hb, from a peer whose view matches this node's, says
// for the second time in a row that the peer holds other attributes for it
// (Heartbeat.AttributesDigest): a sync then carries them. A heartbeat without the digest
// changes nothing.
func (c *core) attributesDifferAgain(pc *peerConn, hb *Heartbeat) bool {
	if hb.AttributesDigest == 0 || !c.overlay() {
		return false
	}
	if hb.AttributesDigest == c.attributesDigest() {
		pc.attrMismatches = 0
		return false
	}
	pc.attrMismatches++
	return pc.attrMismatches >= 2
}

// answerHeartbeat sends pc's heartbeat at once when it is due within half of the shorter of
// the two nodes' intervals anyway (and not held for news), so that the two directions of a
// stream fall into step. The answering side's next heartbeat is then due at maxBeatGap,
// leaving the lead to the other.
func (c *core) answerHeartbeat(now time.Time, pc *peerConn) {
	window := min(c.cfg.HeartbeatInterval, pc.peerBeat) / 2
	if !c.current(pc) || pc.nextBeat.Sub(now) > window || !c.owesBeat(pc, pc.watching) {
		return
	}
	if _, held := c.beatHeld(now, pc); held {
		return // it goes when the hold for news ends
	}
	c.sendHeartbeat(now, pc)
	pc.nextBeat = now.Add(c.maxBeatGap())
}

// updateAttributes takes the process count and attributes of a heartbeat; a change of a
// connected node's is reported as node_updated.
func (c *core) updateAttributes(now time.Time, m *member, hb *Heartbeat) {
	changed := m.attrs.ProcessCount != hb.ProcessCount
	if changed {
		attrs := m.attrs
		attrs.ProcessCount = hb.ProcessCount
		c.holdAttributes(m, attrs)
	}
	if hb.Attributes != nil && hb.Attributes.Version >= m.attrs.Version {
		changed = changed || hb.Attributes.ProcessCount != m.attrs.ProcessCount || !maps.Equal(hb.Attributes.Metadata, m.attrs.Metadata)
		c.holdAttributes(m, hb.Attributes.clone())
	}
	if changed && m.status == StatusConnected {
		c.emit(output{kind: outEvent, event: &Event{Type: EventNodeUpdated, Time: now, Node: c.nodeInfo(now, m)}})
		c.relayAttributes(m.conn, m)
	}
}

// relayAttributes passes m's attributes, heard first hand, on to the other neighbours: in the
// overlay the nodes without a stream to m learn them only this way.
func (c *core) relayAttributes(from connID, m *member) {
	attrs := m.attrs.clone()
	c.relayFresh(from, []MemberEntry{{ID: m.id, Incarnation: m.incarnation, Attrs: &attrs}}, 1)
}

// confirmTimeout reports whether pc's silence, past its timeout, is confirmed: a stream found
// silent is only suspected, and confirmed by a re-check confirmDelay later that comes on time
// (a late one counts as a stall, and forgiveStall starts the suspicion over).
func (c *core) confirmTimeout(now time.Time, pc *peerConn) bool {
	if pc.suspectSince.IsZero() {
		pc.suspectSince = now
	}
	return !now.Before(pc.suspectSince.Add(c.confirmDelay()))
}

// Local health. A node whose own machine is overloaded receives every peer's heartbeats
// late, not one peer's: the peers are fine, the node's reading of them is slow. Such a node
// alerting about each silence it sees would set off alerts that every node relays, load the
// machines further, and report live nodes down. (Lifeguard makes the same observation for
// SWIM.) A node therefore keeps a moving average of how late the heartbeats it watches
// arrive (and its dials time out); while they arrive late on the whole (slowLocally), a
// silence past the timeout gets one more timeout before the node alerts, and a dial that
// timed out raises no alert (endDial). A single silent peer among punctual ones, the
// failure the detector is for, is reported as fast as ever.

// beatLatenessWeight is the weight of one heartbeat in the moving average of lateness.
const beatLatenessWeight = 1.0 / 32

// slowLateness is the average lateness, as a fraction of the interval, from which a node
// counts itself slow: its peers' heartbeats arrive a third of an interval late on average.
const slowLateness = 1.0 / 3

// noteBeatGap adds a heartbeat that came gap after the one before, from a peer that sends
// one every interval, to the moving average of lateness and to the latest of the window.
func (c *core) noteBeatGap(now time.Time, gap, interval time.Duration) {
	c.noteLateness(float64(gap-interval) / float64(interval))
	c.rollLateWindow(now)
	c.lateWorst[0] = max(c.lateWorst[0], gap-interval)
}

// The lateness allowance. On a busy machine most heartbeats come on time, but a few wait
// seconds for the CPU: the average (slowLocally) stays low while the worst delays exceed
// the timeout, and each such delay would be an alert relayed to every node, loading the
// machine further (a formation of a thousand nodes on two cores never settled for that). A
// lossy network does the same to a full mesh: a heartbeat whose segment is lost three times
// in a row waits for TCP's doubling retransmission timeout (about 0.3, 0.6 and 1.2 s on a
// 100 ms link) and arrives more than 3 s after the one before, while the losses that come
// one at a time make heartbeats a few hundred milliseconds late every few seconds. A
// silence is therefore declared only after the timeout plus the latest a watched heartbeat
// came, beyond its interval, within the last one to two lateWindows, at most
// maxLateAllowance timeouts: a node that saw a heartbeat come 2 s late allows a silence 2 s
// more. On a machine and a network that keep up the allowance is a few milliseconds, and a
// silent node is reported as fast as ever. (Akka's phi accrual detector widens its
// threshold with the spread of the heartbeats it measured for the same reason.)

// lateWindow is how long a heartbeat's lateness counts toward the allowance: one to two
// windows.
func (c *core) lateWindow() time.Duration { return 10 * c.cfg.HeartbeatInterval }

// maxLateAllowance caps the allowance, in timeouts (interval × threshold).
const maxLateAllowance = 2

// lateWorstOf returns the latest a heartbeat came in the two windows.
func (c *core) lateWorstOf() time.Duration { return max(c.lateWorst[0], c.lateWorst[1]) }

// rollLateWindow starts a new window once the current one is lateWindow old. When that
// lowers the allowance, every stream is looked at again at the next tick: their deadlines
// may come sooner than the tick would otherwise look (visitConns). While there is an
// allowance, the tick wakes up when the window rolls.
func (c *core) rollLateWindow(now time.Time) {
	if age := now.Sub(c.lateSince); age >= c.lateWindow() {
		before := c.lateWorstOf()
		if age < 2*c.lateWindow() {
			c.lateWorst = [2]time.Duration{0, c.lateWorst[0]}
			c.lateSince = c.lateSince.Add(c.lateWindow())
		} else {
			c.lateWorst = [2]time.Duration{}
			c.lateSince = now
		}
		if c.lateWorstOf() < before {
			clear(c.connDue)
			c.wantWake(now)
		}
	}
	if c.lateWorstOf() > 0 {
		c.wantWake(c.lateSince.Add(c.lateWindow()))
	}
}

// lateAllowance is how much longer than its timeout a silence on pc may last before it
// counts: the latest a watched heartbeat came within the current and the previous window,
// at most maxLateAllowance timeouts.
func (c *core) lateAllowance(pc *peerConn) time.Duration {
	return min(c.lateWorstOf(), maxLateAllowance*pc.timeout)
}

// noteLateness adds one sample, a lateness in intervals, to the moving average. A dial whose
// handshake timed out counts as a heartbeat as late as can be: a node whose dials time out
// one after another, before it has streams whose heartbeats would tell, is most likely slow
// itself.
func (c *core) noteLateness(late float64) {
	late = min(max(late, 0), float64(c.cfg.HeartbeatMissThreshold))
	c.beatLateness += beatLatenessWeight * (late - c.beatLateness)
}

// slowLocally reports whether the heartbeats this node watches arrive late on the whole.
func (c *core) slowLocally() bool { return c.beatLateness >= slowLateness }

// confirmDelay is how long a silent stream stays suspected before it is declared timed out.
func (c *core) confirmDelay() time.Duration {
	return min(max(c.cfg.HeartbeatInterval/10, 20*time.Millisecond), 200*time.Millisecond)
}

// heartbeatTimeout declares the peer of pc down after too long a silence and closes the
// stream, so a restarted peer is never blocked by a stale one.
func (c *core) heartbeatTimeout(now time.Time, pc *peerConn) {
	c.log(slog.LevelDebug, "peer silent past the timeout; closing the stream", "peer", pc.peer.String(),
		"silent_for", now.Sub(pc.lastRecv).String(), "checked", pc.watching)
	m := c.memberOf(pc)
	if m != nil && m.conn == pc.id && !pc.awaitingUp() {
		c.lost(now, m, ReasonHeartbeatTimeout)
	}
	c.closeConn(now, pc, false) // an unconfirmed stream goes through endUnconfirmed
}

// checkHandshake closes a stream whose handshake did not finish in time; it returns the
// handshake's deadline while it has not passed, zero once the stream is closed.
func (c *core) checkHandshake(now time.Time, pc *peerConn) time.Time {
	deadline := c.handshakeDeadline(pc)
	if hung, hangs := c.hungProbe(pc); hangs && hung.Before(deadline) {
		if now.Before(hung) {
			return hung
		}
		c.log(slog.LevelDebug, "dial to a subject others report down reached nothing; giving up on it", "subject", pc.expect.String())
		if pc.failure == "" {
			pc.failure = "nothing answered within " + hung.Sub(pc.opened).String()
		}
		c.closeConn(now, pc, false)
		return time.Time{}
	}
	if now.Before(deadline) {
		return deadline
	}
	c.log(slog.LevelDebug, "handshake timed out", "outbound", pc.outbound, "expected", pc.expect.String())
	if pc.outbound {
		c.noteLateness(float64(c.cfg.HeartbeatMissThreshold)) // as late as a stream can be
	} else {
		c.inbound.TimedOut()
	}
	if pc.failure == "" {
		pc.failure = "no handshake within " + deadline.Sub(pc.opened).String()
	}
	c.closeConn(now, pc, false)
	return time.Time{}
}

// hungProbe returns, for an observer's dial to its subject that has reached nothing, when
// the observer gives up on it because other observers alert about the subject: an interval
// after it began. Otherwise the dial would wait out DialTimeout (5 s) before it could say so:
// a subject frozen while one of its observers had no stream to it (a new observer, or one
// whose stream had just closed) hangs the dial, and the cluster, which needs that observer's
// word, would decide the silent node seconds late. A node that is slow itself waits out its
// dial (local health).
func (c *core) hungProbe(pc *peerConn) (time.Time, bool) {
	if !pc.outbound || pc.reached || !c.overlay() || c.slowLocally() {
		return time.Time{}, false
	}
	m := c.members.get(pc.expect)
	if m == nil || m.dial != pc.id || m.status != StatusConnected || !c.basis.isObserver(c.self, m.id) {
		return time.Time{}, false
	}
	if set := c.alerts[m.id]; set == nil || set.incarnation != m.incarnation || set.downs == 0 {
		return time.Time{}, false
	}
	return pc.opened.Add(c.cfg.HeartbeatInterval), true
}

// handshakeDeadline is when the handshake of pc must be done: HandshakeTimeout after an
// inbound stream was accepted, longer after inbound handshakes timed out (core.inbound);
// DialTimeout after an outbound dial began, and once its stream is open (connected and
// authenticated), at least HandshakeTimeout after that for the hellos, as the accepting
// side gives them. On a machine so loaded that the connection and its authentication take
// most of DialTimeout, a dial that got that far would otherwise time out in its last step,
// after the peer did its share, and start over from the first. A dial to a seed or a member
// waits longer after dials of it failed (dialPatience), and one that reached a seed waits
// for its hello the longest (seedPatience).
func (c *core) handshakeDeadline(pc *peerConn) time.Time {
	if !pc.outbound {
		if pc.patience == 0 {
			pc.patience = c.inbound.Patience()
		}
		return pc.opened.Add(c.cfg.HandshakeTimeout * pc.patience)
	}
	times := c.dialPatience(pc)
	deadline := pc.opened.Add(c.cfg.DialTimeout * times)
	if pc.reached {
		if pc.trying != nil {
			times = patience.Max // a seed that answered: its hello is on its way (seedPatience)
		}
		deadline = maxTime(deadline, pc.reachedAt.Add(c.cfg.HandshakeTimeout*times))
	}
	return deadline
}

// seedPatience is how many times its usual timeouts a dial that tries seed s (nil: not a
// seed) waits for its handshake: twice as long after each dial of it that failed since it was
// last reached, up to patience.Max times. A seed that hundreds of nodes join through at once
// answers each of them late; a joiner that gave up at the usual timeout and dialled again
// would throw away the seed's answer, which was on its way, and add one more handshake to its
// queue: every joiner doing so keeps the seed's queue longer than the timeout for as long as
// they keep trying. A seed that is down refuses the dial at once, whatever the patience.
//
// Once the dial reached the seed (the connection open and authenticated: a node of this
// cluster answers there, busy), its hello is waited for patience.Max times HandshakeTimeout
// from the first dial on (handshakeDeadline). The seed reads every joiner's hello within
// seconds but answers them one after another: in formations of 1,024 nodes through one seed,
// up to 700 dials of the seed gave up on the answer after 5 s, some again after 10 s, and
// each dial again queued one more handshake at the seed, whose last answers then came 20 to
// 50 s after the start.
func seedPatience(s *seed) time.Duration {
	if s == nil {
		return 1
	}
	return patience.After(s.failures)
}

// dialPatience is how many times its usual timeouts the outbound dial pc waits for its
// handshake: a seed's patience (seedPatience), or, for a member, twice as long after each
// dial of it that failed since it was last reached. A node that joins a large cluster on a
// loaded machine dials its neighbours all at once, and each of them, busy, may answer later
// than the usual timeout: a dial given up at the timeout throws the answer away, and the
// next one, no more patient, would too, for as long as the machine stays that busy. A refused
// dial fails at once, whatever the patience; the probe of a stream that closed (lost) starts
// with the usual timeouts.
//
// A dial's patience is fixed when it is first asked for (as the runtime starts the dial, with
// the failures counted until then): the runtime's own timeout for the dial and the core's
// deadline for its handshake (handshakeDeadline) must agree, whatever later resets the count.
func (c *core) dialPatience(pc *peerConn) time.Duration {
	if pc.patience == 0 {
		pc.patience = 1
		if pc.trying != nil {
			pc.patience = seedPatience(pc.trying)
		} else if m := c.members.get(pc.expect); m != nil && m.dial == pc.id {
			pc.patience = patience.After(m.attempts)
		}
	}
	return pc.patience
}

// maxTime returns the later of a and b.
func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// forgiveStall handles a wake-up that came notably later than asked: the silence measured
// meanwhile is partly the local node's own fault, so every stream's silence clock is pushed
// forward by the delay, and a long stall is logged.
func (c *core) forgiveStall(now time.Time) {
	if c.wakeAt.IsZero() {
		return
	}
	// Ordinary scheduling jitter is not a stall: summed over many wake-ups it would only
	// slow detection down in a busy process.
	late := now.Sub(c.wakeAt)
	if late < c.stallTolerance() {
		return
	}
	if late >= max(c.cfg.HeartbeatInterval/4, 200*time.Millisecond) {
		c.log(slog.LevelWarn, "local node was stalled; extending peer deadlines", "stall", late.String())
	}
	// A suspicion is confirmed only by a re-check that came on time (confirmTimeout).
	// Only a real stall starts suspicions over: a busy process that is a bit late on every
	// wake-up must still be able to confirm a silence.
	unsure := late >= realStall
	c.noteOverdue(now)
	for _, pc := range c.conns {
		if pc.lastRecv = pc.lastRecv.Add(late); pc.lastRecv.After(now) {
			pc.lastRecv = now
		}
		if unsure {
			pc.suspectSince = time.Time{}
		}
	}
}

// stallTolerance is how late a wake-up may be and still count as on time: ordinary
// scheduling jitter, not a stall.
func (c *core) stallTolerance() time.Duration {
	return max(c.cfg.HeartbeatInterval/20, 10*time.Millisecond)
}

// realStall is how late a wake-up must be to count as the local node having stalled (CPU
// starvation, a pause), not as scheduling noise in a busy process.
const realStall = 500 * time.Millisecond

// noteOverdue holds node_up reports back (holdUps) for an interval when the wake-up asked
// for is overdue at now by half of interval × threshold, and at least realStall: a backlog
// that late may hold a hello or first heartbeat on a stream its peer has cut off since.
func (c *core) noteOverdue(now time.Time) {
	bar := max(realStall, time.Duration(c.cfg.HeartbeatMissThreshold)*c.cfg.HeartbeatInterval/2)
	if c.wakeAt.IsZero() || now.Sub(c.wakeAt) < bar {
		return
	}
	c.holding = true
	c.holdCheck = time.Time{}
	if until := now.Add(c.cfg.HeartbeatInterval); until.After(c.stalledUntil) {
		c.stalledUntil = until
	}
}

// holdUps reports whether node_up reports are held back after a stall (noteOverdue). Held
// streams still alive are reported up once the node runs on time again (releaseHold); one
// that ends meanwhile reports nothing (endUnconfirmed).
func (c *core) holdUps() bool { return c.holding }

// releaseHold ends a hold on ups once the node has run on time for a while: after
// stalledUntil, two wake-ups in a row on time, confirmDelay apart (a starved process may run
// one wake-up on time and a stale backlog right after it).
func (c *core) releaseHold(now time.Time, onTime bool) {
	switch {
	case !c.holding:
	case !onTime:
		c.holdCheck = time.Time{} // start over
	case now.Before(c.stalledUntil):
		c.wantWake(c.stalledUntil)
	case c.holdCheck.IsZero():
		c.holdCheck = now.Add(c.confirmDelay())
		c.wantWake(c.holdCheck)
	case now.Before(c.holdCheck):
		c.wantWake(c.holdCheck)
	default:
		c.holding, c.holdCheck = false, time.Time{}
	}
}
