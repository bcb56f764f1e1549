package membership

import (
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/meshnode/meshnode/internal/quote"
)

// hello builds the local handshake message. The dialler sends only the digest of its view;
// the accepting side answers the dialler's hello, them, with the digest its view will have
// once the dialler is in it (digestWith), and with its whole view unless that digest equals
// the dialler's: the dialler then knows every node already. A node outside the overlay (at
// most K+1 nodes known) that dials a seed sends no digest, zero, and always gets the view: a
// joiner whose first handshake with a busy seed timed out on its side may be known to the
// seed already, and would otherwise get no view when it tries again (sendHello). What the
// dialler knows and the accepting side lacks follows the handshake as an update
// (sendViewIfTheyLack).
func (c *core) hello(now time.Time, them *Hello) *Hello {
	h := &Hello{
		ID:                c.self,
		Incarnation:       c.incarnation,
		ProtocolVersion:   ProtocolVersion,
		HeartbeatInterval: c.cfg.HeartbeatInterval,
		MissThreshold:     c.cfg.HeartbeatMissThreshold,
		Uptime:            now.Sub(c.startedAt),
		Attributes:        c.attrs.clone(),
		ViewDigest:        c.viewDigest(),
		ClusterName:       c.cfg.ClusterName,
		ViewSize:          uint32(c.topo.size()),
		Monitors:          c.cfg.Monitors,
		MonitorsSaid:      true,
		TakesReassert:     true,
	}
	if them != nil {
		h.ViewDigest = c.digestWith(MemberEntry{ID: them.ID, Incarnation: them.Incarnation})
		switch {
		case them.ViewDigest != 0 && them.ViewDigest == h.ViewDigest:
		case !c.overlay() || them.ViewDigest == 0 || !c.knows(them.ID, them.Incarnation):
			h.View = c.view()
		default:
			// A member that dials its overlay neighbour learned the view already: the two
			// heartbeats' digests settle what differs (onHeartbeat), so that a formation's
			// thousands of neighbour dials do not each carry the whole view.
		}
	}
	return h
}

// knows reports whether id's incarnation inc is in the local table.
func (c *core) knows(id NodeID, inc uint64) bool {
	m := c.members.get(id)
	return m != nil && m.incarnation == inc
}

// digestWith returns the digest the local view will have once e is in it: a node meeting a
// newcomer in its handshake knows then what the newcomer knows, and neither side needs the
// other's view.
func (c *core) digestWith(e MemberEntry) uint64 {
	if m := c.members.get(e.ID); m != nil && m.incarnation == e.Incarnation {
		return c.viewDigest()
	}
	extras := []MemberEntry{{ID: c.self, Incarnation: c.incarnation}, e}
	if e.ID.Compare(c.self) < 0 {
		extras[0], extras[1] = extras[1], extras[0]
	}
	return sortedViewDigest(c.viewEntries(), extras...) // e in place of its entry, if any
}

// sendHello sends the local handshake on pc; on the accepting side it answers the dialler's
// hello them. The attributes ride in it, so heartbeats on pc carry them again only once they
// change.
func (c *core) sendHello(now time.Time, pc *peerConn, them *Hello) {
	h := c.hello(now, them)
	if pc.outbound && pc.seed != nil && !c.overlay() {
		h.ViewDigest = 0 // joining: the seed's view, whatever the seed knows of this node
	}
	if pc.outbound && !pc.anyID {
		h.Expect = pc.expect // a node reused at the address refuses before touching anything
	}
	h.HoldsYouDown = c.holdsDown(pc, them)
	c.send(pc, &Message{Hello: h})
	pc.sentAttrs = c.attrs.Version
}

// sendViewIfTheyLack completes a handshake on the dialling side: when the accepting side's
// digest (in its hello) differs from the local one, even after merging the view it sent, the
// local node knows something the peer does not, and sends its whole view.
func (c *core) sendViewIfTheyLack(pc *peerConn, theirDigest uint64) {
	if theirDigest != 0 && theirDigest == c.viewDigest() {
		return
	}
	if c.overlay() && !pc.fresh {
		return // a neighbour known from the view: the heartbeats' digests settle the rest
	}
	c.send(pc, &Message{Update: &Update{Full: true, Entries: c.view()}})
}

// onHello handles a peer's handshake: it validates it, resolves duplicate streams, and brings
// the peer up.
func (c *core) onHello(now time.Time, pc *peerConn, h *Hello) {
	switch {
	case pc.handshaken():
		c.violation(now, pc, "second hello on a stream")
		return
	case h.ProtocolVersion != ProtocolVersion:
		c.reject(now, pc, RejectProtocolVersion, fmt.Sprintf("protocol version %d, want %d", h.ProtocolVersion, ProtocolVersion))
		return
	case h.ClusterName != c.cfg.ClusterName:
		c.refuseForeign(now, pc, h)
		return
	case h.MonitorsSaid && h.Monitors != c.cfg.Monitors:
		c.refuseOtherMonitors(now, pc, h)
		return
	case h.ID == c.self:
		if pc.seed != nil {
			pc.seed.self = true
		}
		if pc.trying != nil {
			pc.trying.self = true // the seed is this node: not one to reach or to warn about
		}
		c.reject(now, pc, RejectSelf, "dialled itself")
		return
	case !pc.outbound && !h.Expect.IsZero() && h.Expect != c.self:
		// The dialler meant another node, which held this address before: refuse before the
		// hello touches the table, so the stream this node may have with the dialler is kept.
		c.reject(now, pc, RejectUnexpectedID, "this address is now "+c.self.String())
		return
	case pc.outbound && !pc.anyID && h.ID != pc.expect:
		c.log(slog.LevelWarn, "dialled node answered with another id", "dialled", pc.expect.String(), "answered", h.ID.String())
		c.reject(now, pc, RejectUnexpectedID, fmt.Sprintf("dialled %s", pc.expect))
		return
	case c.leaving:
		c.reject(now, pc, RejectShuttingDown, "node is stopping")
		return
	}
	if t, ok := c.tombs[h.ID]; ok && t.left && t.direct && h.Incarnation <= t.incarnation {
		c.reject(now, pc, RejectStaleIncarnation, "this incarnation left the cluster")
		return
	}
	m := c.members.get(h.ID)
	if m != nil && h.Incarnation < m.heard {
		c.reject(now, pc, RejectStaleIncarnation, fmt.Sprintf("incarnation %d is older than %d", h.Incarnation, m.heard))
		return
	}
	if m != nil && !c.resolveDuplicate(now, pc, m, h) {
		return
	}
	if pc.anyID && pc.expect != h.ID {
		c.dropPlaceholder(pc.expect)
	}
	if !pc.outbound {
		c.sendHello(now, pc, h)
		c.inbound.Finished(now.Sub(pc.opened), c.cfg.HandshakeTimeout)
	}
	c.establish(now, pc, m, h)
	if pc.outbound && pc.handshaken() {
		c.sendViewIfTheyLack(pc, h.ViewDigest)
	}
	if pc.handshaken() {
		if h.HoldsYouDown {
			c.reassert(now)
		}
		c.noteOverlay(now, h)
		c.askForViewFromOutside(pc, h.ViewDigest)
		c.sendDowns(pc)
	}
}

// noteOverlay notes, for a node outside the overlay, a peer's hello that says the peer's view
// holds more than K+1 nodes: the cluster runs the overlay, and this node, which has yet to
// learn the view, is joining it (joiningOverlay).
func (c *core) noteOverlay(now time.Time, h *Hello) {
	if c.cfg.Monitors > 0 && !c.overlay() && int(h.ViewSize) > c.cfg.Monitors+1 {
		c.overlayHeardAt = now
	}
}

// joiningOverlay reports whether this node is outside the overlay of a cluster that runs one:
// within joinOverlayWindow of a hello from a peer whose view holds more than K+1 nodes
// (noteOverlay). Such a node, a joiner whose seed has not answered yet, knows only the few
// nodes that dialled it, and their streams close as the overlay settles (a dialler that
// gave up, a stream it no longer needs): the full mesh's rules, where a closed or silent
// stream is a down, do not hold for it. It reports no node down on its own word, and redials
// instead: once its view arrives, the overlay's observers decide.
func (c *core) joiningOverlay(now time.Time) bool {
	return !c.overlay() && !c.overlayHeardAt.IsZero() && now.Sub(c.overlayHeardAt) < c.joinOverlayWindow()
}

// overlayRules reports whether the overlay's rules hold for this node: it is in the overlay,
// or joining it (joiningOverlay). A joiner that held a node up on its own stream and learns,
// with the view, that the cluster holds it down checks it (verifyDown) as a member does:
// once the view arrives, the decision may be long past, the node out of the overlay's
// rings, and nothing else would tell the joiner.
func (c *core) overlayRules(now time.Time) bool { return c.overlay() || c.joiningOverlay(now) }

// joinOverlayWindow is how long after its last hello from a peer of the overlay a node
// outside it keeps to joiningOverlay: a minute at the default interval. A joiner of a busy
// formation can wait that long for its view: in a 1,024-node formation on two cores one met
// a neighbour, lost its stream as the overlay settled, and had its seed and its redials time
// out for 25 s more before the view came (with ten intervals, it reported that neighbour
// down on its own word 19 s after its hello). A cluster that shrank to a full mesh sends no
// such hello.
func (c *core) joinOverlayWindow() time.Duration {
	return joinOverlayIntervals * c.cfg.HeartbeatInterval
}

// joinOverlayIntervals is joinOverlayWindow in heartbeat intervals.
const joinOverlayIntervals = 60

// askForViewFromOutside completes a handshake for a node outside the overlay (it knows at
// most K others, Monitors > 0) whose view still differs from the peer's: it asks for what
// it lacks at once (its view, with a reply requested). A node the cluster already knows
// gets no view in the hellos of its neighbours' dials (they take it for a member that has
// the view), and would otherwise wait for the heartbeats' digests to start a sync; a busy
// formation can close its streams before they do, again and again, and leave it blind.
func (c *core) askForViewFromOutside(pc *peerConn, theirDigest uint64) {
	if c.cfg.Monitors == 0 || c.overlay() || theirDigest == 0 || theirDigest == c.viewDigest() {
		return
	}
	c.send(pc, &Message{Update: &Update{Full: true, ReplyRequested: true, Entries: c.view()}})
}

// resolveDuplicate settles an incoming handshake from a node that already has a stream.
// It reports whether pc goes on to be established.
func (c *core) resolveDuplicate(now time.Time, pc *peerConn, m *member, h *Hello) bool {
	if m.dial != 0 && m.dial != pc.id && !pc.outbound {
		// Simultaneous dial: both sides keep the stream opened by the smaller id. (When pc is
		// outbound too, both streams are this node's own: the peer picks, see below.)
		if c.self.Compare(h.ID) < 0 {
			c.reject(now, pc, RejectDuplicateStream, "the stream dialled by the smaller id wins")
			return false
		}
		c.dropConn(m.dial)
		m.dial = 0
	}
	if !pc.outbound && c.liveStream(now, m) != nil && m.conn != pc.id {
		// Whoever dials in as a node this one hears from on a live stream is not believed
		// over that stream: the live stream is the node. A newer incarnation is checked with
		// the node itself, by dialling its address (only the node can answer there); a
		// restarted node is reached that way, an impostor is refused.
		if h.Incarnation != m.incarnation {
			c.verifyIncarnation(now, m)
			c.reject(now, pc, RejectIDInUse, "a live stream with this node exists; its address is being checked")
			return false
		}
		c.reject(now, pc, RejectDuplicateStream, "a stream between the two nodes already exists")
		return false
	}
	if m.conn != 0 && m.conn != pc.id {
		if m.incarnation == h.Incarnation {
			// Two live streams of one incarnation: keep the one the smaller id opened, as
			// the peer does. A new stream from the smaller id means it saw the old one fail,
			// or reached this node twice at once (a seed and a member, two seed addresses).
			// So does a new stream from either, in the overlay, when this node does not check
			// the old one (it would not see it fail: an observer that lost its subject
			// across a partition redials it while the subject still holds the dead stream).
			if !c.openedBySmaller(pc, h.ID) && !c.unwatched(m.conn) {
				c.reject(now, pc, RejectDuplicateStream, "a stream between the two nodes already exists")
				return false
			}
			if pc.outbound {
				// The peer answered on the new stream, so it has moved to it: drop the old.
				c.dropConn(m.conn)
			}
			// The accepting side leaves the old stream open but unused: closing it could
			// reach the peer before the hello on the new stream and break its live stream.
			// The peer drops it on that hello; a dead one goes silent and times out.
			m.conn = 0
		} else {
			// A restarted node replaces its old incarnation at once: down, then up.
			old := m.conn
			c.markDown(now, m, ReasonConnectionClosed)
			c.dropConn(old)
		}
	}
	return true
}

// liveStream returns m's stream when it is confirmed up and not silent past its timeout at
// now; nil otherwise.
func (c *core) liveStream(now time.Time, m *member) *peerConn {
	if m.status != StatusConnected || m.conn == 0 {
		return nil
	}
	pc := c.conns[m.conn]
	if pc == nil || pc.state != streamEstablished || !pc.suspectSince.IsZero() || !now.Before(pc.lastRecv.Add(pc.timeout)) {
		return nil
	}
	return pc
}

// verifyIncarnation dials m's address to learn which incarnation of m answers there, unless
// a dial to it is under way: a claim that m restarted is believed only from m itself.
func (c *core) verifyIncarnation(now time.Time, m *member) {
	if m.dial == 0 && !c.leaving {
		c.dial(now, m)
	}
}

// openedBySmaller reports whether pc was opened by the smaller id of the pair (self, peer).
func (c *core) openedBySmaller(pc *peerConn, peer NodeID) bool {
	selfSmaller := c.self.Compare(peer) < 0
	return pc.outbound == selfSmaller
}

// establish makes pc the stream of the node that sent h, and brings the node up.
func (c *core) establish(now time.Time, pc *peerConn, m *member, h *Hello) {
	fresh := m == nil || m.incarnation != h.Incarnation
	if m == nil {
		m = &member{id: h.ID, status: StatusConnecting}
		c.putMember(m)
		pc.created = true
	}
	if m.dial == pc.id {
		m.dial = 0
	}
	if sd := pc.seed; sd != nil && sd.dial == pc.id {
		sd.dial, sd.attempts = 0, 0 // reached: dialled again only if cut off, or if sd.id is forgotten
		sd.id = h.ID
	}
	if sd := pc.trying; sd != nil {
		c.seedReached(now, sd)
	}
	if fresh {
		m.incarnation = h.Incarnation
		c.viewChanged()
	}
	m.heard = max(m.heard, h.Incarnation)
	c.unpark(m)
	c.syncView(now, m)
	if _, ok := c.tombs[h.ID]; ok {
		delete(c.tombs, h.ID)
		c.viewChanged()
	}

	pc.state = streamEstablished // then confirm (dialler) or streamUnconfirmed (accepting side)
	if pc.outbound {
		c.dialing--
	}
	pc.peer, pc.peerInc = h.ID, h.Incarnation
	pc.reassertOK = h.TakesReassert
	// The peer's interval is its word, not validated configuration: kept within the range a
	// Config allows, so that the silence limit below (threshold × interval) cannot overflow.
	pc.peerBeat = min(max(h.HeartbeatInterval, minHeartbeatInterval), MaxHeartbeatInterval)
	pc.lastBeat = now
	pc.timeout = time.Duration(c.cfg.HeartbeatMissThreshold) * pc.peerBeat
	pc.nextBeat = now.Add(c.jitter(c.cfg.HeartbeatInterval))
	c.wantWake(pc.nextBeat)
	c.recheck(pc) // its entry was the handshake's deadline

	m.conn = pc.id
	c.holdAttributes(m, h.Attributes.clone())
	m.startedAt = c.instantOf(now.Add(-h.Uptime))
	m.lastHeartbeat = c.instantOf(now)
	m.attempts, m.refusals, m.nextDial, m.graceFrom = 0, 0, 0, 0
	pc.fresh = fresh
	if pc.outbound {
		// The dialling side has both hellos: the stream works both ways. Its first heartbeat
		// goes out at once and confirms the stream to the accepting side.
		c.sendHeartbeat(now, pc)
		c.confirm(now, pc, m)
	} else {
		// The accepting side waits for the dialler's first message after its hello: a hello
		// handled late (a slow node, a dialler that already gave up) must not report a node
		// up on a stream that is already dead.
		pc.state = streamUnconfirmed
	}
	c.merge(now, pc.id, h.View, 0)
}

// confirmAccepted brings up the peer of an accepted stream on the dialler's first message
// after its hello.
func (c *core) confirmAccepted(now time.Time, pc *peerConn) {
	if m := c.memberOf(pc); m != nil && m.conn == pc.id {
		c.confirm(now, pc, m)
		return
	}
	pc.state = streamEstablished // not its peer's stream (any more): nothing to report
}

// confirm brings the peer of a stream that works both ways up, and tells the other peers
// about a node (or incarnation) met for the first time. A node that was just stalled holds
// the report back until it runs on time again (holdUps).
func (c *core) confirm(now time.Time, pc *peerConn, m *member) {
	if c.holdUps() {
		pc.state = streamHeld
		return
	}
	pc.state = streamEstablished
	m.probing = false // reached again: a stream that closed was no failure
	if m.status == StatusDisconnected && c.overlay() && !pc.fresh {
		// Decided down by the cluster, and so it stays until enough of its observers reach it
		// again (decide): this node, if it is one of them, says so. The stream stays. A new
		// incarnation (pc.fresh: a node restarted under its name, the old one held down here)
		// was decided nothing: it comes up, as it does where it is first heard of in a view
		// (mergeAlive). Kept down, it waited for up alerts that observers which had taken it
		// up from a relay never raised, and stayed down here for good.
		c.observe(now, m, 0, true, false)
	} else {
		wasDown := m.status == StatusDisconnected
		c.markUp(now, m)
		if wasDown || c.alerted(m.id) {
			c.observe(now, m, 0, true, false) // an observer reaches its subject again: it says so
		}
	}
	if pc.fresh {
		attrs := m.attrs.clone() // nodes without a stream to it learn its attributes with it
		c.push(pc.id, MemberEntry{ID: m.id, Incarnation: m.incarnation, Attrs: &attrs})
	}
	if pc.outbound && !c.isNeighbour(m.id) {
		c.needReconcile(now, false) // dialled while it was a neighbour: reconcile unlinks it
	}
}

// endUnconfirmed settles a stream that ended before its peer was reported up on it (accepted
// and waiting for the dialler, or held): nothing was reported for it. A node known only
// through it is dropped; a node that was up on an older stream, which this one replaced, has
// no stream left and goes down; any other node is dialled again.
func (c *core) endUnconfirmed(now time.Time, pc *peerConn) {
	m := c.memberOf(pc)
	if m == nil || m.conn != pc.id {
		return
	}
	m.conn = 0
	switch {
	case pc.created && m.status == StatusConnecting:
		c.deleteMember(m)
	case m.status == StatusConnected && c.overlay():
		// Up by the cluster's view, not by this stream, which never worked both ways: no
		// alert (the dialler gave up or moved on), only a stream to restore if needed.
		if c.isNeighbour(m.id) {
			c.wantStream(now, m)
		}
	case m.status == StatusConnected:
		c.lost(now, m, ReasonConnectionClosed)
	case m.dial == 0 && m.nextDial == 0:
		c.scheduleRedial(now, m)
	}
}

// onReject handles the peer refusing the stream.
func (c *core) onReject(now time.Time, pc *peerConn, r *Reject) {
	pc.rejected = r.Reason
	if pc.failure == "" {
		pc.failure = "the node there rejected the stream: " + r.Reason.String() + " " + quote.Input(r.Detail)
	}
	if r.Reason == RejectSelf && pc.seed != nil {
		pc.seed.self = true // the seed's address leads back here: never dial it again
	}
	if r.Reason == RejectClusterName || r.Reason == RejectMonitors {
		pc.foreign = true
		text, setting, value := "a node of another cluster refused the stream: the cluster names differ", "cluster_name", any(displayClusterName(c.cfg.ClusterName))
		if r.Reason == RejectMonitors {
			text, setting, value = "a node refused the stream: its monitors (K) differs; every node of a cluster needs the same", "monitors", c.cfg.Monitors
		}
		c.warnForeign(now, "addr:"+pc.addr, text, "addr", pc.addr, setting, value, "detail", quote.Input(r.Detail))
		c.closeConn(now, pc, false)
		return
	}
	level := slog.LevelDebug
	if r.Reason != RejectDuplicateStream && r.Reason != RejectSelf && r.Reason != RejectShuttingDown {
		level = slog.LevelWarn
	}
	c.log(level, "peer rejected the stream", "peer", pc.peer.String(), "expected", pc.expect.String(), "reason", r.Reason.String(), "detail", quote.Input(r.Detail))
	c.closeConn(now, pc, false)
}

// foreignWarnEvery is how often the refusal of one node of another cluster (one address
// dialled, one id dialling in) is logged again: the first refusal at once, then at most one
// line per foreignWarnEvery, however often the node is redialled or dials in.
const foreignWarnEvery = time.Minute

// maxForeignWarned bounds the refusals remembered for rate limiting.
const maxForeignWarned = 1024

// refuseForeign refuses the stream pc, whose hello h carries another cluster name than the
// local one (a name and none differ too), and logs it, rate-limited.
func (c *core) refuseForeign(now time.Time, pc *peerConn, h *Hello) {
	c.refuseMismatch(now, pc, h, RejectClusterName,
		"refused a node of another cluster: the cluster names differ",
		"refused the node dialled: it belongs to another cluster (the cluster names differ)",
		fmt.Sprintf("cluster name %s here, %s in the hello", displayClusterName(c.cfg.ClusterName), displayClusterName(h.ClusterName)),
		"peer_cluster_name", displayClusterName(h.ClusterName), "cluster_name", displayClusterName(c.cfg.ClusterName))
}

// refuseOtherMonitors refuses the stream pc, whose hello h carries another K
// (Config.Monitors) than the local one, and logs it, rate-limited: the two nodes would
// compute different rings, and a failure would go undecided on the nodes whose rings name
// as its observers nodes that do not watch it.
func (c *core) refuseOtherMonitors(now time.Time, pc *peerConn, h *Hello) {
	c.refuseMismatch(now, pc, h, RejectMonitors,
		"refused a node whose monitors (K) differs; every node of a cluster needs the same",
		"refused the node dialled: its monitors (K) differs; every node of a cluster needs the same",
		fmt.Sprintf("monitors %d here, %d in the hello", c.cfg.Monitors, h.Monitors),
		"peer_monitors", h.Monitors, "monitors", c.cfg.Monitors)
}

// refuseMismatch refuses the stream pc, whose hello h carries a setting every node of a
// cluster shares with another value than the local one (reason), and logs it (inbound: the
// line for a node dialling in, outbound: for the node dialled), at most once per
// foreignWarnEvery for the node or address.
func (c *core) refuseMismatch(now time.Time, pc *peerConn, h *Hello, reason RejectReason, inbound, outbound, detail string, attrs ...any) {
	pc.foreign = true
	key, text := "id:"+h.ID.String(), inbound
	if pc.outbound {
		key, text = "addr:"+pc.addr, outbound
	}
	c.warnForeign(now, key, text, append([]any{"peer", h.ID.String()}, attrs...)...)
	c.reject(now, pc, reason, detail)
}

// warnForeign logs a refusal between nodes of different clusters at most once per
// foreignWarnEvery for each key.
func (c *core) warnForeign(now time.Time, key, text string, attrs ...any) {
	if at, ok := c.foreignWarned[key]; ok && now.Sub(at) < foreignWarnEvery {
		return
	}
	if c.foreignWarned == nil || len(c.foreignWarned) >= maxForeignWarned {
		for k, at := range c.foreignWarned {
			if now.Sub(at) >= foreignWarnEvery {
				delete(c.foreignWarned, k)
			}
		}
		if c.foreignWarned == nil || len(c.foreignWarned) >= maxForeignWarned {
			c.foreignWarned = map[string]time.Time{}
		}
	}
	c.foreignWarned[key] = now
	c.log(slog.LevelWarn, text, attrs...)
}

// displayClusterName quotes a cluster name for a log line or a reject detail; "none" when
// empty.
func displayClusterName(name string) string {
	if name == "" {
		return "none"
	}
	return quote.Input(name)
}

// push sends entry, news of a node met for the first time, to every established stream but
// except; in the overlay to the streams of neighbours, and to others only while fewer than
// max(4K, minPushStreams) neighbours have a stream, up to that many in all. A seed holds a
// stream to each node that joins through it until that node has its own neighbours: while
// hundreds join at once, telling each of them of every other join would cost the seed N²
// messages and each joiner K relays per join. Early on, though, the seed's neighbours change
// with every join and few of them have a stream yet: the news then goes to some of the
// joiners (different ones each time), which relay it over theirs.
func (c *core) push(except connID, entry MemberEntry) {
	msg := &Message{Update: &Update{Entries: []MemberEntry{entry}, Hop: 1}}
	limit := max(4*c.cfg.Monitors, minPushStreams)
	sent := 0
	var others []*peerConn
	for _, pc := range c.sortedConns() {
		switch {
		case !pc.handshaken() || pc.id == except:
		case !c.overlay() || c.isNeighbour(pc.peer):
			c.send(pc, msg)
			sent++
		default:
			others = append(others, pc)
		}
	}
	if len(others) == 0 || sent >= limit {
		return
	}
	take := min(limit-sent, len(others))
	for i := range take {
		c.send(others[(c.pushCursor+i)%len(others)], msg)
	}
	c.pushCursor = (c.pushCursor + take) % len(others)
}

// minPushStreams is how many streams a seed tells of a join at least (push): in a cluster
// of a few hundred, telling every joiner still costs the seed little, and spreads the joins
// fastest; past it the cost per join stays bounded.
const minPushStreams = 128

// clone returns a deep copy.
func (a Attributes) clone() Attributes {
	a.Metadata = maps.Clone(a.Metadata)
	return a
}
