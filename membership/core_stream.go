package membership

import (
	"cmp"
	"log/slog"
	"maps"
	"slices"
	"time"
)

// The stream table: one peerConn per stream from dial or accept until close, how streams
// are opened, written to and torn down, and the order a tick visits them in.
//
// Tear-down, from the outside in: ended (an input: the runtime saw the stream end) and
// closeConn (the core closes it) both go through endConn, which settles what the end means
// for the stream's member and seed (endDial, endUnconfirmed or lost). discardConn and dropConn
// close a stream without any of that, because something else already accounts for it (a
// newer stream, the member leaving the table, an unlink, the node leaving). removeConn is the
// bookkeeping under all of them.

// peerConn is one stream, from dial or accept until close.
type peerConn struct {
	id           connID
	outbound     bool
	expect       NodeID // outbound: the member dialled (zero for plain seeds)
	anyID        bool   // outbound to a seed: whoever answers is welcome
	seed         *seed
	trying       *seed  // outbound: the seed this dial tries (plain, or announced by id and never reached)
	failure      string // outbound: why the stream ended before its handshake, when known
	opened       time.Time
	state        streamState
	rejected     RejectReason  // the peer's Reject, if it sent one
	refused      bool          // the dial failed because nothing listens there (ErrConnectionRefused)
	verifying    bool          // dialled to check a member a peer holds down (verifyDown)
	verifyingUp  bool          // dialled to check a member a peer holds up (verifyUp)
	reasserted   time.Time     // when the peer last asked this node to reassert (onReassert)
	reassertOK   bool          // the peer's hello says it handles Reassert (Hello.TakesReassert)
	reached      bool          // outbound: the transport connected (something answers there: dialed)
	reachedAt    time.Time     // outbound: when it did
	foreign      bool          // refused, by either side, for a cluster name or a K that differs
	addr         string        // outbound: the address dialled
	patience     time.Duration // dialPatience, or inbound core.inbound's, fixed when first asked (0: not yet)
	peer         NodeID
	member       *member // c.members.get(peer) when last looked up (see memberOf)
	order        int     // the stream's index in c.connOrder and c.connDue, when they are built
	peerInc      uint64
	peerBeat     time.Duration // the heartbeat interval the peer advertised
	lastBeat     time.Time     // when the peer's last heartbeat (or hello) arrived; zero once told to beat every interval
	lastRecv     time.Time
	suspectSince time.Time // when the silence was first found past the timeout (zero: not suspected)
	// graceUntil extends the silence that began at graceFor (the lastRecv it was granted
	// for) while this node found itself slow (slowLocally): one grace per silence.
	graceUntil, graceFor time.Time
	created              bool // the stream's hello added its peer to the table
	fresh                bool // the stream's hello brought a node or incarnation not known before
	timeout              time.Duration
	nextBeat             time.Time
	sentAttrs            uint64
	// Which way heartbeats flow (core_watch.go): watching says this node checks the peer's
	// heartbeats (as of the topology versions watchTopo, watchBasis); toldQuiet that its last
	// heartbeat told the peer it does not; peerQuiet that the peer's last one told this node
	// so; skippedBeats counts the heartbeats left out since the last one sent.
	watching     bool
	watchTopo    uint64
	watchBasis   uint64
	toldQuiet    bool
	peerQuiet    bool
	skippedBeats int
	mismatches   int
	syncHold     time.Time
	// beatsSent counts the heartbeats sent on the stream: one in attrsDigestEvery carries the
	// attributes digest. attrMismatches counts the peer's last digests in a row that differ
	// from this node's (attributesDifferAgain).
	beatsSent      int
	attrMismatches int
	removed        bool // taken out of the stream table: what arrives on it is ignored (see streamState)
}

// streamState is how far a stream has come, from its dial or accept to its peer being
// reported up on it. Taking a stream out of the table (peerConn.removed) keeps its state:
// code that still holds a removed stream (a tick's pass over the streams, a batch of alerts)
// sees it as it was, so removal is a flag of its own, not a state.
type streamState uint8

const (
	// streamHandshaking: dialled or accepted; the hellos are not exchanged yet.
	streamHandshaking streamState = iota
	// streamUnconfirmed: accepted and handshaken; the peer comes up on the dialler's first
	// message after its hello.
	streamUnconfirmed
	// streamHeld: works both ways, but the peer's node_up is held back because the local node
	// stalled (holdUps); it comes up once the node runs on time again.
	streamHeld
	// streamEstablished: works both ways and nothing is held back: its peer was reported up on
	// it, or it is no longer its peer's stream and has nothing to report.
	streamEstablished
)

// handshaken reports whether pc's hellos are exchanged: any state but streamHandshaking.
func (pc *peerConn) handshaken() bool { return pc.state != streamHandshaking }

// awaitingUp reports whether pc is handshaken but its peer not reported up on it yet.
func (pc *peerConn) awaitingUp() bool {
	return pc.state == streamUnconfirmed || pc.state == streamHeld
}

// newConn registers a stream.
func (c *core) newConn(now time.Time, outbound bool) *peerConn {
	c.lastConn++
	pc := &peerConn{id: c.lastConn, outbound: outbound, opened: now, lastRecv: now, watching: true}
	c.conns[pc.id] = pc
	c.connOrder = nil
	if outbound {
		c.dialing++
	}
	return pc
}

// send queues msg on pc.
func (c *core) send(pc *peerConn, msg *Message) {
	c.emit(output{kind: outSend, conn: pc.id, msg: msg})
}

// memberOf returns the table entry of pc's peer, nil if there is none. It is looked up once
// and kept on pc until it leaves the table: a lookup hashes the peer's id, and every message
// and tick needs it. (An entry only ever replaces one under the same id after deleteMember,
// and pc.peer is set once, by establish, before which no entry is found and none is kept.)
func (c *core) memberOf(pc *peerConn) *member {
	if m := pc.member; m != nil && !m.removed {
		return m
	}
	m := c.members.get(pc.peer)
	pc.member = m
	return m
}

// current reports whether pc is its peer's stream. A stream left open but unused after the
// peer moved to a newer one gets no heartbeats, so it goes silent and times out if the peer
// does not drop it first.
func (c *core) current(pc *peerConn) bool {
	m := c.memberOf(pc)
	return m != nil && m.conn == pc.id
}

// sortedConns returns the streams in id order, for deterministic iteration.
// The order is cached until a stream is added or removed: tick runs it many times a second.
// Callers may close streams while iterating; the slice they hold stays valid.
func (c *core) sortedConns() []*peerConn {
	if c.connOrder == nil {
		c.connOrder = slices.Collect(maps.Values(c.conns))
		slices.SortFunc(c.connOrder, func(a, b *peerConn) int { return cmp.Compare(a.id, b.id) })
		c.connDue = make([]time.Duration, len(c.connOrder))
		for i, pc := range c.connOrder {
			pc.order = i
		}
	}
	return c.connOrder
}

// recheck makes the next tick look at pc, whose deadlines may have moved earlier than its
// entry in connDue says.
func (c *core) recheck(pc *peerConn) {
	if c.connOrder != nil && pc.order < len(c.connOrder) && c.connOrder[pc.order] == pc {
		c.connDue[pc.order] = 0
	}
}

// closeConn closes pc from this side, after what was queued on it when flush is set, and
// settles its end as if it had ended by itself (endConn).
func (c *core) closeConn(now time.Time, pc *peerConn, flush bool) {
	c.emit(output{kind: outClose, conn: pc.id, flush: flush})
	c.endConn(now, pc.id)
}

// reject refuses pc with reason and closes it.
func (c *core) reject(now time.Time, pc *peerConn, reason RejectReason, detail string) {
	if pc.failure == "" {
		pc.failure = "refused the node there: " + detail
	}
	c.send(pc, &Message{Reject: &Reject{Reason: reason, Detail: detail}})
	c.closeConn(now, pc, true)
}

// violation logs a peer that broke the protocol, rejects and closes its stream.
func (c *core) violation(now time.Time, pc *peerConn, detail string) {
	c.log(slog.LevelWarn, "peer protocol violation, closing stream", "peer", pc.peer.String(), "problem", detail)
	c.reject(now, pc, RejectBadMessage, detail)
}

// endConn takes the ended stream id out of the table and settles what its end means, by the
// state it had: a dial that failed (endDial), a peer that was never reported up on it
// (endUnconfirmed), or the loss of its member's stream (lost). A stream no longer in the
// table was settled already.
func (c *core) endConn(now time.Time, id connID) {
	pc := c.conns[id]
	if pc == nil {
		return
	}
	c.removeConn(pc)
	if !pc.handshaken() {
		if pc.outbound {
			c.endDial(now, pc)
		}
		return
	}
	if pc.awaitingUp() {
		c.endUnconfirmed(now, pc)
		return
	}
	m := c.memberOf(pc)
	if m == nil || m.conn != id {
		return
	}
	c.lost(now, m, ReasonConnectionClosed)
}

// dropConn closes stream id, if it is still in the table, without settling its end: another
// stream replaces it, or its member left the table or was decided down.
func (c *core) dropConn(id connID) {
	pc, ok := c.conns[id]
	if !ok {
		return
	}
	c.discardConn(pc, false)
}

// discardConn closes pc and takes it out of the table without settling its end (see
// endConn): the caller has accounted for it. With flush, what was queued on it goes first.
func (c *core) discardConn(pc *peerConn, flush bool) {
	c.emit(output{kind: outClose, conn: pc.id, flush: flush})
	c.removeConn(pc)
}

// removeConn takes pc out of the stream table, and nothing more: no output, no accounting.
func (c *core) removeConn(pc *peerConn) {
	delete(c.conns, pc.id)
	pc.removed = true
	c.connOrder = nil
	if pc.outbound && !pc.handshaken() {
		c.dialing--
	}
}
