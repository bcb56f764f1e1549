package membership

import (
	"cmp"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"time"
)

// core is the pure membership state machine: the node table, the failure detector, gossip
// merging and incarnations. It does no I/O and reads no clock: every input carries the time,
// and every effect (send, close, dial, event, log) is appended to out for the runtime to carry
// out. It is not safe for concurrent use; the runtime serialises calls.
type core struct {
	self        NodeID
	incarnation uint64
	cfg         *Config
	startedAt   time.Time
	rng         *rand.Rand
	attrs       Attributes

	members map[NodeID]*member
	tombs   map[NodeID]tombstone
	// holders maps an address to the connected member whose id has it: a node that answers
	// at a dead node's address (a reused pod IP and port) holds it, and the dead node is not
	// redialled there meanwhile. parked counts the members waiting for their address.
	holders map[string]NodeID
	parked  int
	// topo is the overlay's topology of the live view (this node and every member alive in
	// it); topoDirty asks the next tick to reconcile the streams with it. neighbourSet caches
	// this node's neighbours in it as of neighbourVersion. alerts holds the observers' alerts
	// by subject.
	topo             *topology
	basis            *topology // topo's rings seen with the nodes down for less than an alert's lifetime
	topoDirty        bool
	neighbourSet     map[NodeID]bool
	subjects         map[NodeID]bool // this node's subjects in topo, as of subjectVersion
	subjectVersion   uint64
	neighbourVersion uint64
	// relayDue lists the streams whose relays wait for the end of their relay window.
	relayDue  []*peerConn
	alerts    map[NodeID]*alertSet
	conns     map[connID]*peerConn
	dialing   int         // outbound streams in conns not established yet (dialsInFlight)
	connOrder []*peerConn // conns sorted by id; nil when it must be rebuilt
	// connDue[i] is when the tick must next look at connOrder[i], as an offset from
	// startedAt: no earlier deadline of the stream (heartbeat, timeout, handshake) can fall
	// before it. Zero: at the next tick. Rebuilt with connOrder.
	connDue   []time.Duration
	seeds     []*seed
	dnsSeeds  []*dnsSeedState // the DNS seeds of the configuration (core_dns.go)
	lastConn  connID
	connected int
	leaving   bool

	digest      uint64
	digestDirty bool
	viewCache   []MemberEntry // view(), nil when it must be rebuilt
	memberOrder []*member     // members sorted by id, nil when it must be rebuilt

	metrics MetricsSink

	dialAt time.Time // earliest member or seed dial due (zero: none)
	wakeAt time.Time // when the runtime should call tick next (zero: never)
	// holding holds back node_up reports: the local node stalled, so what it handles may be
	// stale (see holdUps). It ends after stalledUntil, once the node runs on time
	// (releaseHold, which checks again at holdCheck).
	holding      bool
	stalledUntil time.Time
	holdCheck    time.Time
	out          []output
	// foreignWarned holds, by address dialled or id dialling in, when a refusal between nodes
	// of different clusters was last logged (warnForeign).
	foreignWarned map[string]time.Time
	// beat is the heartbeat last sent without attributes; streams share it until the view
	// digest or the attributes change, so a tick builds one message, not one per stream.
	beat *Message
}

// member is one remote node in the table.
type member struct {
	id            NodeID
	incarnation   uint64
	status        NodeStatus
	conn          connID // established stream, 0 if none
	dial          connID // outbound stream being set up, 0 if none
	attempts      int
	nextDial      time.Time // zero: no dial scheduled
	graceFrom     time.Time // while the first dial waits for the smaller id's: when m was learned
	downSince     time.Time
	lastHeartbeat time.Time
	startedAt     time.Time
	attrs         Attributes
	removed       bool   // taken out of the table (deleteMember): no stream may use it any more
	heard         uint64 // the newest incarnation the node announced itself (gossip may claim newer)
	parked        bool   // not redialled: another node holds its address (see park)
	inView        bool   // on the overlay's rings: alive in the view (syncView)
	inBasis       bool   // on the basis's rings: in the view or down for a short while
}

// tombstone remembers a node that left (or was forgotten) so stale gossip cannot revive it.
type tombstone struct {
	incarnation uint64
	left        bool
	direct      bool // the node said it left on its own stream (not a claim relayed by gossip)
	until       time.Time
	probeAt     time.Time // forgotten nodes: gossip may not revive it before this
}

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
	established  bool
	rejected     RejectReason // the peer's Reject, if it sent one
	foreign      bool         // refused, by either side, for a cluster name that differs
	addr         string       // outbound: the address dialled
	peer         NodeID
	member       *member // c.members[peer] when last looked up (see memberOf)
	order        int     // the stream's index in c.connOrder and c.connDue, when they are built
	peerInc      uint64
	peerBeat     time.Duration // the heartbeat interval the peer advertised
	lastBeat     time.Time     // when the peer's last heartbeat (or hello) arrived
	lastRecv     time.Time
	suspectSince time.Time // when the silence was first found past the timeout (zero: not suspected)
	unconfirmed  bool      // not reported up yet: accepted and waiting for the dialler, or held
	held         bool      // ready to come up, held back because the local node was stalled
	created      bool      // the stream's hello added its peer to the table
	fresh        bool      // the stream's hello brought a node or incarnation not known before
	timeout      time.Duration
	nextBeat     time.Time
	sentAttrs    uint64
	mismatches   int
	syncHold     time.Time
	removed      bool // taken out of the stream table: what arrives on it is ignored
}

// newCore returns a core for the local node self, started at now. It reports its
// measurements to metrics (none when nil).
func newCore(self NodeID, incarnation uint64, cfg *Config, now time.Time, rng *rand.Rand, metrics MetricsSink) *core {
	if metrics == nil {
		metrics = noMetrics{}
	}
	c := &core{
		self:        self,
		incarnation: incarnation,
		cfg:         cfg,
		startedAt:   now,
		rng:         rng,
		attrs:       Attributes{Version: 1, ProcessCount: cfg.ProcessCount, Metadata: maps.Clone(cfg.Metadata)},
		members:     map[NodeID]*member{},
		tombs:       map[NodeID]tombstone{},
		holders:     map[string]NodeID{},
		topo:        newTopology([]NodeID{self}, cfg.Monitors),
		alerts:      map[NodeID]*alertSet{},
		conns:       map[connID]*peerConn{},
		digestDirty: true,
		metrics:     metrics,
	}
	c.basis = c.topo.lens()
	return c
}

// takeOutputs returns the effects accumulated since the last call. Once they are carried
// out, recycleOutputs may hand the slice back for reuse.
func (c *core) takeOutputs() []output {
	out := c.out
	c.out = nil
	return out
}

// maxRecycledOutputs bounds the output slice kept for reuse: a step that produced more (a
// view pushed to every peer) does not pin its memory.
const maxRecycledOutputs = 1024

// recycleOutputs lets the core reuse the storage of outs, taken by takeOutputs and carried
// out: without it, every step (a tick emits a heartbeat per due stream) grows a new slice.
func (c *core) recycleOutputs(outs []output) {
	if c.out != nil || cap(outs) > maxRecycledOutputs {
		return
	}
	clear(outs)
	c.out = outs[:0]
}

// start dials the seeds.
func (c *core) start(now time.Time) {
	for _, s := range c.cfg.Seeds {
		if IsDNSSeed(s) {
			c.dnsSeeds = append(c.dnsSeeds, &dnsSeedState{text: s})
			continue
		}
		addr, id, err := ParseSeed(s)
		if err != nil || addr == c.self.Address() || id == c.self {
			continue
		}
		c.seeds = append(c.seeds, &seed{text: s, addr: addr, id: id, nextDial: now})
		c.wantDialAt(now)
		if id.IsZero() {
			continue
		}
		if _, known := c.members[id]; !known {
			c.members[id] = &member{id: id, status: StatusConnecting, nextDial: now}
			c.viewChanged()
			c.wantDialAt(now)
		}
	}
	c.runDials(now)
}

// accept registers an inbound stream and returns its id, by which the runtime names it in
// later inputs and the core in its outputs.
func (c *core) accept(now time.Time) connID {
	pc := c.newConn(now, false)
	c.wantWake(now.Add(c.cfg.HandshakeTimeout))
	if c.leaving {
		c.reject(now, pc, RejectShuttingDown, "node is stopping")
	}
	return pc.id
}

// dialed reports that the outbound stream id is open: the handshake starts.
func (c *core) dialed(now time.Time, id connID) {
	pc := c.conns[id]
	if pc == nil {
		return
	}
	c.sendHello(now, pc, nil)
}

// ended reports that stream id ended (or its dial failed) for a reason outside the core; err,
// when not nil, says why, and the warnings about an unreachable seed quote it.
func (c *core) ended(now time.Time, id connID, err error) {
	if pc := c.conns[id]; pc != nil && err != nil && pc.failure == "" {
		pc.failure = err.Error()
	}
	c.closed(now, id)
	c.runDials(now) // a dial slot may have freed
}

// closed handles the end of stream id.
func (c *core) closed(now time.Time, id connID) {
	pc := c.conns[id]
	if pc == nil {
		return
	}
	c.removeConn(pc)
	if !pc.established {
		if pc.outbound {
			c.dialFailed(now, pc)
		}
		return
	}
	if pc.unconfirmed {
		c.dropUnconfirmed(now, pc)
		return
	}
	m := c.memberOf(pc)
	if m == nil || m.conn != id {
		return
	}
	c.lost(now, m, ReasonConnectionClosed)
}

// receive handles one message that arrived on stream id, unless the stream is no longer in
// the table (the core closed it, and ignores what still arrives on it).
func (c *core) receive(now time.Time, id connID, msg *Message) {
	pc := c.conns[id]
	if pc == nil {
		return
	}
	c.noteOverdue(now)
	pc.lastRecv = now
	pc.suspectSince = time.Time{}
	switch {
	case msg.Hello != nil:
		c.onHello(now, pc, msg.Hello)
	case msg.Reject != nil:
		c.onReject(now, pc, msg.Reject)
	case !pc.established:
		c.reject(now, pc, RejectBadMessage, "expected hello first")
	default:
		if pc.unconfirmed {
			c.confirmAccepted(now, pc)
		}
		c.dispatch(now, pc, msg)
	}
	c.runDials(now)
}

// confirmAccepted brings up the peer of an accepted stream on the dialler's first message
// after its hello.
func (c *core) confirmAccepted(now time.Time, pc *peerConn) {
	if m := c.memberOf(pc); m != nil && m.conn == pc.id {
		c.confirm(now, pc, m)
		return
	}
	pc.unconfirmed = false
}

// dispatch handles a message on an established stream.
func (c *core) dispatch(now time.Time, pc *peerConn, msg *Message) {
	switch {
	case msg.Heartbeat != nil:
		c.onHeartbeat(now, pc, msg.Heartbeat)
	case msg.Update != nil:
		c.onUpdate(now, pc, msg.Update)
	case msg.Leave != nil:
		c.onLeave(now, pc, msg.Leave)
	case len(msg.Alerts) > 0:
		for _, a := range msg.Alerts {
			if pc.removed {
				break // a decision in the batch dropped this very stream
			}
			c.onAlert(now, pc, a)
		}
	case msg.Unlink != nil:
		c.onUnlink(now, pc)
	default:
		c.reject(now, pc, RejectBadMessage, "empty message")
	}
}

// leave tells every peer the node leaves and closes every stream. No event is emitted for
// the peers: the local status change says it all.
func (c *core) leave(now time.Time) {
	c.leaving = true
	for _, pc := range c.sortedConns() {
		if pc.established {
			c.send(pc, &Message{Leave: &Leave{ID: c.self, Incarnation: c.incarnation}})
		}
		c.emit(output{kind: outClose, conn: pc.id, flush: true})
		c.removeConn(pc)
	}
	for _, m := range c.members {
		m.conn, m.dial, m.nextDial, m.graceFrom = 0, 0, time.Time{}, time.Time{}
	}
	c.dialAt, c.wakeAt = time.Time{}, time.Time{}
}

// setAttributes changes the local attributes and pushes them at once on every stream, in a
// heartbeat that carries them: each peer sees the change within one trip, not an interval
// later, and reports it as node_updated. The heartbeat schedules stay as they were.
func (c *core) setAttributes(processCount int, metadata map[string]string) {
	c.attrs = Attributes{Version: c.attrs.Version + 1, ProcessCount: processCount, Metadata: maps.Clone(metadata)}
	if c.leaving {
		return
	}
	for _, pc := range c.sortedConns() {
		if pc.established && c.current(pc) {
			c.sendHeartbeat(pc)
		}
	}
}

// newConn registers a stream.
func (c *core) newConn(now time.Time, outbound bool) *peerConn {
	c.lastConn++
	pc := &peerConn{id: c.lastConn, outbound: outbound, opened: now, lastRecv: now}
	c.conns[pc.id] = pc
	c.connOrder = nil
	if outbound {
		c.dialing++
	}
	return pc
}

// removeConn takes pc out of the stream table.
func (c *core) removeConn(pc *peerConn) {
	delete(c.conns, pc.id)
	pc.removed = true
	c.connOrder = nil
	if pc.outbound && !pc.established {
		c.dialing--
	}
}

// send queues msg on pc.
func (c *core) send(pc *peerConn, msg *Message) {
	c.emit(output{kind: outSend, conn: pc.id, msg: msg})
}

// closeConn closes pc from this side, after what was queued on it when flush is set.
func (c *core) closeConn(now time.Time, pc *peerConn, flush bool) {
	c.emit(output{kind: outClose, conn: pc.id, flush: flush})
	c.closed(now, pc.id)
}

// dropConn closes pc without any accounting: another stream replaces it.
func (c *core) dropConn(id connID) {
	pc, ok := c.conns[id]
	if !ok {
		return
	}
	c.removeConn(pc)
	c.emit(output{kind: outClose, conn: pc.id})
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

// emit appends one effect.
func (c *core) emit(o output) { c.out = append(c.out, o) }

// log asks the runtime to log a line.
func (c *core) log(level slog.Level, text string, attrs ...any) {
	c.emit(output{kind: outLog, level: level, text: text, attrs: attrs})
}

// wantWake lowers the time the runtime should call tick.
func (c *core) wantWake(t time.Time) {
	if c.wakeAt.IsZero() || t.Before(c.wakeAt) {
		c.wakeAt = t
	}
}

// wantDialAt lowers the time the next dial is due.
func (c *core) wantDialAt(t time.Time) {
	if c.dialAt.IsZero() || t.Before(c.dialAt) {
		c.dialAt = t
	}
	c.wantWake(t)
}

// viewChanged notes a change to the node table or the tombstones: the digest, the view and
// the member order are rebuilt when next needed.
func (c *core) viewChanged() {
	c.digestDirty = true
	c.viewCache = nil
	c.memberOrder = nil
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
