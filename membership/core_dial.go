package membership

import (
	"log/slog"
	"time"
)

// Dials: when a member or a seed is dialled (schedules, the join grace, backoff, the cap on
// dials in flight), how a dial is opened, what a failed one means, and the members parked
// while another node holds their address.

// maxConcurrentDials caps the outbound streams a node sets up at once. A node that learns a
// whole cluster at once (a formation, a healed partition) dials it in waves, so neither it
// nor the nodes it dials are swamped with handshakes.
const maxConcurrentDials = 4

// wantStream schedules a dial to m unless it has a stream, a dial or a schedule already. A
// member parked while another node holds its address is not dialled: this node, if one of its
// observers, says it is gone from there instead (observeGoneFromAddress), also when it became
// one only after it parked it.
func (c *core) wantStream(now time.Time, m *member) {
	if m.parked {
		c.observeGoneFromAddress(now, m) // another node holds its address: nothing to dial
		return
	}
	if m.conn != 0 || m.dial != 0 {
		return
	}
	if m.nextDial != 0 {
		c.wantDialAt(c.at(m.nextDial)) // a schedule left from before its stream: due as it was
		return
	}
	due := now
	if c.self.Compare(m.id) > 0 {
		due = now.Add(c.dialGrace())
		m.graceFrom = c.instantOf(now)
	}
	m.nextDial = c.instantOf(due)
	c.wantDialAt(due)
}

// scheduleRedial plans the first redial of a node that just went down.
func (c *core) scheduleRedial(now time.Time, m *member) {
	m.attempts, m.refusals = 0, 0
	due := now.Add(c.backoff(0))
	m.nextDial = c.instantOf(due)
	c.wantDialAt(due)
}

// wantDialAt lowers the time the next dial is due.
func (c *core) wantDialAt(t time.Time) {
	if c.dialAt.IsZero() || t.Before(c.dialAt) {
		c.dialAt = t
	}
	c.wantWake(t)
}

// dialGrace is how long the larger id of a pair waits for the smaller one's dial: the smaller
// one may have the whole table to dial (its 2K neighbours in the overlay), so the grace allows
// one wave of half an interval (100 ms to 1 s) per dialGraceWave of them, at most
// maxDialGrace. It is sized by the table when the dial comes due (graceExtended), not when
// the member was learned.
func (c *core) dialGrace() time.Duration {
	wave := min(max(c.cfg.HeartbeatInterval/2, 100*time.Millisecond), time.Second)
	toDial := c.members.len()
	if c.overlay() {
		toDial = min(toDial, 2*c.cfg.Monitors)
	}
	return min(wave*time.Duration(1+toDial/dialGraceWave), maxDialGrace)
}

// dialGraceWave is how many dials dialGrace allows per wave: a wave of half an interval is
// far longer than the round trips of maxConcurrentDials dials.
const dialGraceWave = 16

// maxDialGrace caps dialGrace (reached from about 500 members at a heartbeat interval of 1 s).
const maxDialGrace = 30 * time.Second

// graceExtended moves m's first dial later when the table grew while it waited for the
// smaller id's dial, and reports whether it did.
func (c *core) graceExtended(now time.Time, m *member) bool {
	if m.graceFrom == 0 {
		return false
	}
	due := c.at(m.graceFrom).Add(c.dialGrace())
	if !now.Before(due) {
		return false
	}
	m.nextDial = c.instantOf(due)
	return true
}

// backoff returns the capped, jittered exponential delay before redial number attempt.
func (c *core) backoff(attempt int) time.Duration {
	d := c.cfg.ReconnectBaseDelay
	for i := 0; i < attempt && d < c.cfg.ReconnectMaxDelay; i++ {
		d = min(2*d, c.cfg.ReconnectMaxDelay) // d ≤ MaxTimeout: the doubling never overflows
	}
	return d/2 + time.Duration(c.rng.Int64N(int64(d/2)+1))
}

// redialBackoff is backoff for a member's redial after a failed dial, capped at half an
// interval in the overlay: a node redials at most its 2K neighbours, so a healed node is
// met again quickly at a bounded cost. A dial refused (nothing listens at the address: the
// node's process is gone, or a firewall rejects the connection) backs off as in a full
// mesh, up to ReconnectMaxDelay. Capped too, a crashed node's 2K would-be neighbours dialled
// it twice a second each for as long as they remembered it (ReconnectTimeout): in the
// bench at 1,024 nodes, every crash added some 30 failed dials a second to the cluster. A
// crashed node that comes back restarts with a new incarnation and announces itself through
// its seeds; its neighbours dial it as soon as they hear of it (mergeAlive).
func (c *core) redialBackoff(attempt int, refused bool) time.Duration {
	d := c.backoff(attempt)
	if c.overlay() && !refused {
		d = min(d, c.cfg.HeartbeatInterval/2)
	}
	return d
}

// runDials starts the dials that are due, at most maxConcurrentDials at a time; dials over
// the cap wait for one in flight to finish (establish or fail), which runs runDials again.
func (c *core) runDials(now time.Time) {
	if c.leaving || c.dialAt.IsZero() || now.Before(c.dialAt) {
		return
	}
	slots := maxConcurrentDials - c.dialsInFlight()
	if slots <= 0 {
		return // still due: the end of a dial in flight runs runDials again
	}
	c.dialAt = time.Time{}
	capped := false
	for _, m := range c.sortedMembers() {
		if m.nextDial == 0 || m.conn != 0 || m.dial != 0 {
			continue
		}
		if now.Before(c.at(m.nextDial)) || c.graceExtended(now, m) {
			c.wantDialAt(c.at(m.nextDial))
			continue
		}
		if c.park(now, m, false) {
			c.observeGoneFromAddress(now, m)
			continue
		}
		if !c.isNeighbour(m.id) {
			m.nextDial, m.graceFrom = 0, 0 // the overlay does not need it
			c.upWithoutStream(now, m)
			continue
		}
		if slots <= 0 {
			capped = true
			continue
		}
		c.dial(now, m)
		slots--
	}
	for _, s := range c.seeds {
		if s.self || s.dial != 0 {
			continue
		}
		if !c.seedWanted(s) {
			s.attempts, s.nextDial = 0, now
			continue
		}
		if now.Before(s.nextDial) {
			c.wantDialAt(s.nextDial)
			continue
		}
		if slots <= 0 {
			capped = true
			continue
		}
		c.dialSeed(now, s)
		slots--
	}
	if capped {
		c.dialAt = now // due again as soon as a dial in flight finishes; no timer needed
	}
}

// dueDial notes a dial due at at. While every dial slot is taken, a dial already due needs
// no wake-up: the end of a dial in flight runs runDials.
func (c *core) dueDial(now, at time.Time, full bool) {
	if full && !now.Before(at) {
		if c.dialAt.IsZero() || at.Before(c.dialAt) {
			c.dialAt = at
		}
		return
	}
	c.wantDialAt(at)
}

// dialsInFlight counts outbound streams still dialling or in their handshake. It is kept
// as streams come and go (newConn, establish, removeConn): runDials asks after every message
// while a cluster forms, and counting would visit every stream each time.
func (c *core) dialsInFlight() int { return c.dialing }

// seedWanted reports whether seed s should be dialled: while the node at s is not in the
// table (never reached, or forgotten after a long partition). A known node is redialled as a
// member instead.
func (c *core) seedWanted(s *seed) bool {
	if s.self || s.dial != 0 {
		return false
	}
	return s.id.IsZero() || c.members.get(s.id) == nil
}

// startDial opens an outbound stream to addr: it registers the stream, asks the runtime to
// dial it and wakes up by the dial's deadline. Every dial starts here; the caller says what
// the stream is for.
func (c *core) startDial(now time.Time, addr string) *peerConn {
	pc := c.newConn(now, true)
	pc.addr = addr
	c.metrics.DialStarted()
	c.emit(output{kind: outDial, conn: pc.id, addr: addr})
	c.wantWake(now.Add(c.cfg.DialTimeout))
	return pc
}

// dialTimeout is how long the runtime gives the transport to open outbound stream id (the
// connection and its authentication): DialTimeout, longer for a seed or a member whose dials
// failed before (dialPatience). The core's own deadline for the handshake (handshakeDeadline) is
// never earlier.
func (c *core) dialTimeout(id connID) time.Duration {
	if pc := c.conns[id]; pc != nil {
		return c.cfg.DialTimeout * c.dialPatience(pc)
	}
	return c.cfg.DialTimeout
}

// dial opens an outbound stream to m.
func (c *core) dial(now time.Time, m *member) {
	pc := c.startDial(now, m.id.Address())
	pc.expect = m.id
	pc.anyID = m.incarnation == 0 // a seed announced by id: whoever answers there is welcome
	if m.incarnation == 0 {
		pc.trying = c.seedWithID(m.id)
	}
	m.dial = pc.id
	m.nextDial, m.graceFrom = 0, 0
}

// dialSeed opens an outbound stream to a plain seed address.
func (c *core) dialSeed(now time.Time, s *seed) {
	pc := c.startDial(now, s.addr)
	pc.anyID = true
	pc.seed, pc.trying = s, s
	s.dial = pc.id
}

// probeForgotten handles gossip about a node this one forgot (down longer than the reconnect
// timeout) that a peer still counts as a member: after a long partition the other side may be
// alive. The node is dialled quietly, without coming back into the table: if it answers, it is
// a member again and reported up; if not, nothing is reported. Probes of one node are spaced
// by ReconnectMaxDelay, and a node gone for good stops being gossiped once all forget it.
func (c *core) probeForgotten(now time.Time, e MemberEntry, t tombstone) {
	if now.Before(t.probeAt) || c.leaving {
		return
	}
	for _, pc := range c.conns {
		if pc.outbound && pc.expect == e.ID {
			return // already dialling it
		}
	}
	t.probeAt = now.Add(c.cfg.ReconnectMaxDelay)
	c.tombs[e.ID] = t
	c.startDial(now, e.ID.Address()).expect = e.ID
	c.log(slog.LevelDebug, "a peer still knows a forgotten node; probing it", "peer", e.ID.String())
}

// endDial settles an outbound stream that ended before its handshake finished: the seed it
// tried is told, and its member is redialled (with backoff, or after the grace when the peer
// dials instead) or, if never reached, reported down.
func (c *core) endDial(now time.Time, pc *peerConn) {
	if s := pc.trying; s != nil && !s.self {
		if pc.rejected == RejectDuplicateStream {
			c.seedReached(now, s) // a node answered there: already connected on another stream
		} else {
			c.seedFailed(now, s, pc)
		}
	}
	if s := pc.seed; s != nil && s.dial == pc.id {
		s.dial = 0
		s.attempts++
		s.nextDial = now.Add(c.backoff(s.attempts))
		c.wantDialAt(s.nextDial)
	}
	m := c.members.get(pc.expect)
	if m == nil || m.dial != pc.id {
		return
	}
	m.dial = 0
	probing := m.probing
	m.probing = false
	if m.conn != 0 {
		return // another stream to the node is up: nothing to redial
	}
	if (pc.verifying || pc.verifyingUp) && c.endVerify(now, pc, m) {
		return // down now, or a check of a node the overlay needs no stream to
	}
	if pc.rejected == RejectUnexpectedID && c.park(now, m, true) {
		if probing {
			c.observe(now, m, ReasonConnectionClosed, false, false) // another node answers there now
		} else {
			c.observeGoneFromAddress(now, m)
		}
		return
	}
	if pc.rejected == RejectDuplicateStream || pc.rejected == RejectIDInUse {
		// The peer's own stream wins the tie, or the peer checks this node's new incarnation
		// by dialling it: redial only if that stream never shows up.
		due := now.Add(c.dialGrace())
		m.nextDial = c.instantOf(due)
		c.wantDialAt(due)
		return
	}
	m.attempts++
	if pc.refused {
		m.refusals = min(m.refusals+1, 2)
	} else {
		m.refusals = 0
	}
	due := now.Add(c.redialBackoff(m.attempts, pc.refused))
	m.nextDial = c.instantOf(due)
	c.wantDialAt(due)
	switch {
	case c.joiningOverlay(now):
		// Outside the overlay of a cluster that runs one: a dial that failed is no down on
		// this node's word (lost); the redial above tries again.
	case m.status == StatusConnecting:
		c.markDown(now, m, ReasonConnectionRefused)
		m.downOnDial, c.downOnDialSeen = true, true
	case m.status == StatusConnected && c.overlay():
		// A neighbour the cluster holds alive, dialled and not reached: an observer says so
		// when others already do, or when its dials were refused twice in a row (nobody
		// listens there: it crashed before any observer had a stream to it). A dial that
		// timed out or was cut before its handshake, in a busy formation, is no failure of
		// its own. The probe of a stream that closed (lost) is the exception: the stream's
		// end and a dial that reached nothing there together are the failure. A dial that
		// was not refused but timed out, from a node that is slow itself (slowLocally), says
		// nothing about the peer: it neither raises nor joins an alert.
		switch {
		case !pc.refused && c.slowLocally() && (probing || c.alerts[m.id] != nil):
			m.probing = probing
		case probing && !pc.reached:
			c.observe(now, m, ReasonConnectionClosed, false, pc.refused) // its stream closed, and nothing answers there
		case m.refusals >= 2:
			c.observe(now, m, ReasonConnectionRefused, false, true)
		case c.alerts[m.id] != nil:
			c.observe(now, m, ReasonConnectionClosed, false, pc.refused)
		case probing:
			m.probing = true // it answers, but too slowly to finish a hello: the next dial probes again
		}
	case m.status == StatusConnected:
		// Up without a stream (the overlay shrank to a full mesh) and not reached.
		c.markDown(now, m, ReasonConnectionClosed)
	}
}

// observeGoneFromAddress raises this node's down alert about m, which the cluster holds alive,
// once another node (or this one) answers at its address: it is gone from there. An observer
// that met it only after the address changed hands (it learned m from a view, as alive, and
// found the address taken before any stream to it) never lost a stream to it, and so said
// nothing; with K below 10, where every observer's alert is needed, the crashed node stayed
// up everywhere for good.
func (c *core) observeGoneFromAddress(now time.Time, m *member) {
	if m.status == StatusConnected && m.conn == 0 {
		c.observe(now, m, ReasonConnectionClosed, false, false)
	}
}

// park stops redialling m while another node holds m's address (a connected member, or this
// node itself, that replaced m there: the same host and port, another name), and reports
// whether it did. m stays down (a node never reached is reported down, connection_refused),
// and is redialled once the holder goes down (releaseAddress).
//
// Without answered (a dial that reached another node there), a node never reached is still
// dialled: the holder may be a node that died there unnoticed, and m the one that replaced it.
func (c *core) park(now time.Time, m *member, answered bool) bool {
	holder, held := NodeID{}, false
	if h := c.holders.get(m.id.hostPort()); h != nil {
		holder, held = h.id, true
	}
	switch {
	case m.id.hostPort() == c.self.hostPort():
		holder, held = c.self, true
	case !answered && m.status == StatusConnecting:
		return false
	}
	if !held || holder == m.id {
		return false
	}
	if m.status == StatusConnecting {
		c.markDown(now, m, ReasonConnectionRefused) // learned, never reached: it is not there
	}
	m.nextDial, m.graceFrom, m.attempts = 0, 0, 0
	if !m.parked {
		m.parked = true
		c.parked++
		c.log(slog.LevelInfo, "another node holds the address of a node that is down; not redialling it there meanwhile",
			"peer", m.id.String(), "holder", holder.String())
	}
	return true
}

// releaseAddress notes that m, going down or leaving the table, no longer holds its address:
// members parked on it are redialled.
func (c *core) releaseAddress(now time.Time, m *member) {
	addr := m.id.hostPort()
	if c.holders.get(addr) != m {
		return
	}
	c.holders.del(addr)
	if c.parked == 0 {
		return
	}
	for _, p := range c.sortedMembers() {
		if p.parked && p.id.hostPort() == addr {
			c.unpark(p)
			c.scheduleRedial(now, p)
		}
	}
}

// unpark takes m off the parked list.
func (c *core) unpark(m *member) {
	if m.parked {
		m.parked = false
		c.parked--
	}
}
