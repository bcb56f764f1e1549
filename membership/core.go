package membership

import (
	"log/slog"
	"maps"
	"math/rand/v2"
	"time"

	"github.com/meshnode/meshnode/internal/patience"
)

// core is the pure membership state machine: the node table, the failure detector, gossip
// merging and incarnations. It does no I/O and reads no clock: every input carries the time,
// and every effect (send, close, dial, event, log) is appended to out for the runtime to carry
// out. It is not safe for concurrent use; the runtime serialises calls.
//
// Its boundary (docs/design.md, "The core's boundary"): the inputs below (start, accept,
// dialed, receive, ended, tick, tickWaiting, leave, setAttributes, and seedsResolved in
// core_dns.go), the outputs taken with takeOutputs, and the queries of core_query.go,
// core_seeds.go and core_dns.go. The runtime and the simulation use nothing else.
type core struct {
	// waiting holds, during a tick (tickWaiting), the streams whose peer's message was read
	// and waits in the node's inbox: such a stream is neither silent nor late with its
	// handshake, however long the inbox has kept its message.
	waiting map[connID]struct{}

	self        NodeID
	incarnation uint64
	cfg         *Config
	startedAt   time.Time
	rng         *rand.Rand
	attrs       Attributes

	members *keyedMap[NodeID, *member]
	tombs   map[NodeID]tombstone
	// tombsDueAt is when the earliest tombstone expires (zero: none held).
	tombsDueAt time.Time
	// holders maps an address to the connected member whose id has it: a node that answers
	// at a dead node's address (a reused pod IP and port) holds it, and the dead node is not
	// redialled there meanwhile. parked counts the members waiting for their address.
	holders *keyedMap[hostPort, *member]
	parked  int
	// topo is the overlay's topology of the live view (this node and every member alive in
	// it); topoDirty asks the next tick to reconcile the streams with it. neighbourSet caches
	// this node's neighbours in it as of neighbourVersion. alerts holds the observers' alerts
	// by subject.
	topo              *topology
	basis             *topology // topo's rings seen with the nodes down for less than an alert's lifetime
	topoDirty         bool
	topoDirtySince    time.Time                 // when topoDirty was set
	topoChangedAt     time.Time                 // the view's last change while topoDirty
	topoChanges       int                       // the view's changes since topoDirty was set
	syncHold          time.Time                 // in the overlay: no view sync over any stream before then
	beatsHeldStart    time.Time                 // when the last hold of the heartbeats for news began (core_beathold.go)
	beatsHeldUntil    time.Time                 // heartbeats due before then wait, each at most maxBeatHold
	overlayHeardAt    time.Time                 // outside the overlay: a peer's hello last said the cluster runs one (joiningOverlay)
	basisCache        map[NodeID]ringNeighbours // basisNeighbours, as of basisCacheVersion
	basisCacheVersion uint64
	basisCacheUsed    bool // basisNeighbours was asked since the last tick (releaseIdleBasisCache)
	neighbourSet      map[NodeID]bool
	subjects          map[relayWidth]map[NodeID]bool // relaySubjects by width, as of the last reconcile; nil: to compute
	ringSubjects      []NodeID                       // this node's subject on each ring of topo, as of the last reconcile
	neighbourVersion  uint64
	// ringsAround are this node's observers and subjects ring by ring as of the last
	// reconcile (nil: the cluster was a full mesh then), reconcileAllAt when the next
	// reconcile walks every member whatever changed, and downOnDialSeen whether
	// a member down on its first dial alone may be waiting for one; touched holds the members
	// whose status, incarnation or presence changed since (syncView), unless touchedMany says
	// there were too many to list (reconcile).
	ringsAround    []NodeID
	touched        []*member
	touchedMany    bool
	reconcileAllAt time.Time
	downOnDialSeen bool
	subjectSet     map[NodeID]bool // this node's subjects in topo and the basis (observes)
	subjectsOf     [2]uint64       // the versions of topo and the basis subjectSet is of, plus one
	alerts         map[NodeID]*alertSet
	routes         routes             // the relay plans for the view's size (see the routes type)
	alertExpiries  dueQueue[alertDue] // the marks in alerts by when they expire (expireAlerts)
	basisExpiries  dueQueue[NodeID]   // the nodes down on the basis by when they leave it (expireBasis)
	alertMarks     uint64             // the number of the last mark recorded (alertMark.number)
	alertSeq       uint64             // the Seq of this node's last alert (nextAlertSeq)
	reassertHold   time.Time          // no new Reassert to its observers before this (reassert)
	reassertDue    time.Time          // a Reassert asked for within reassertHold goes out then (zero: none)
	downsSyncAt    time.Time          // when a neighbour is next told the members held down (checkStatuses)
	conns          map[connID]*peerConn
	dialing        int         // outbound streams in conns not established yet (dialsInFlight)
	connOrder      []*peerConn // conns sorted by id; nil when it must be rebuilt
	// connDue[i] is when the tick must next look at connOrder[i], as an offset from
	// startedAt: no earlier deadline of the stream (heartbeat, timeout, handshake) can fall
	// before it. Zero: at the next tick. Rebuilt with connOrder.
	connDue   []time.Duration
	seeds     []*seed
	dnsSeeds  []*dnsSeedState // the DNS seeds of the configuration (core_dns.go)
	lastConn  connID
	connected int
	leaving   bool

	// beatLateness is a moving average of how late the heartbeats of the peers this node
	// watches arrive, as a fraction of their interval (noteLateness, slowLocally).
	beatLateness float64
	// lateWorst holds the latest a watched heartbeat came, beyond its interval, in the
	// current window of lateWindow (index 0, begun at lateSince) and the one before
	// (lateAllowance).
	lateWorst [2]time.Duration
	lateSince time.Time

	digest      uint64
	digestDirty bool
	// attrsDigest is attributesDigest's value, valid while attrsDigestOK.
	attrsDigest   uint64
	attrsDigestOK bool
	// digestNoticed is when a heartbeat first found the digest out of date (settledDigest),
	// zero while it is up to date; digestLastNoticed is when one last did.
	digestNoticed     time.Time
	digestLastNoticed time.Time
	viewCache         []MemberEntry // view(), nil when it must be rebuilt
	// viewCacheUsed says view() was asked for since the last tick (releaseIdleView).
	viewCacheUsed bool
	memberOrder   []*member // members sorted by id, nil when it must be rebuilt
	orderAdds     []*member // members added since memberOrder was built (sortedMembers)
	orderDrops    int       // members removed from the table since then, still in memberOrder

	metrics MetricsSink

	dialAt time.Time // earliest member or seed dial due (zero: none)
	// memberPassAt is when the tick next passes over every member (memberPassDue) even if
	// nothing asks for it (zero: at the next tick); forgetAt is when the first member down
	// comes due for forgetting (zero: none is down).
	memberPassAt time.Time
	forgetAt     time.Time
	wakeAt       time.Time // when the runtime should call tick next (zero: never)
	armedWake    time.Time // the wake-up nextWake last gave the runtime, until the tick runs
	// holding holds back node_up reports: the local node stalled, so what it handles may be
	// stale (see holdUps). It ends after stalledUntil, once the node runs on time
	// (releaseHold, which checks again at holdCheck).
	holding      bool
	stalledUntil time.Time
	holdCheck    time.Time
	out          []output
	// foreignWarned holds, by address dialled or id dialling in, when a refusal between nodes
	// of different clusters, or of different K, was last logged (warnForeign).
	foreignWarned map[string]time.Time
	// pushCursor spreads the news a seed pushes to streams that are not its neighbours
	// (push) over them in turn.
	pushCursor int
	// beat holds the heartbeats last sent without attributes, to peers this node checks and
	// (beat[1]) to peers it does not (Heartbeat.NotMonitoring), and (beat[2], beat[3]) the
	// same with the attributes digest; streams share them until the view digest or the
	// attributes change, so a tick builds one message, not one per stream.
	beat [4]*Message
	// inbound is the accepting side's patience: longer after inbound handshakes timed out
	// (handshakeDeadline).
	inbound patience.Adaptive
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
		members:     newKeyedMap(func(m *member) NodeID { return m.id }, hashID, 0),
		tombs:       map[NodeID]tombstone{},
		holders:     newKeyedMap(func(m *member) hostPort { return m.id.hostPort() }, hashHostPort, 0),
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
const maxRecycledOutputs = 128

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
		if c.members.get(id) == nil {
			c.putMember(&member{id: id, status: StatusConnecting, nextDial: c.instantOf(now)})
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
	pc.reached, pc.reachedAt = true, now
	c.sendHello(now, pc, nil)
}

// ended reports that stream id ended (or its dial failed) for a reason outside the core; err,
// when not nil, says why, and the warnings about an unreachable seed quote it.
func (c *core) ended(now time.Time, id connID, err error) {
	if pc := c.conns[id]; pc != nil && err != nil {
		if pc.failure == "" {
			pc.failure = err.Error()
		}
		pc.refused = !pc.handshaken() && refusedDial(err)
	}
	c.endConn(now, id)
	c.runDials(now) // a dial slot may have freed
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
	case !pc.handshaken():
		c.reject(now, pc, RejectBadMessage, "expected hello first")
	default:
		if pc.awaitingUp() {
			c.confirmAccepted(now, pc)
		}
		c.dispatch(now, pc, msg)
	}
	c.runDials(now)
}

// dispatch handles a message on a stream past its handshake.
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
	case msg.Reassert != nil:
		c.onReassert(now, pc)
	default:
		c.reject(now, pc, RejectBadMessage, "empty message")
	}
}

// tickWaiting is tick, told which streams have a message read and waiting in the node's
// inbox (waiting; not kept after the call).
func (c *core) tickWaiting(now time.Time, waiting map[connID]struct{}) {
	c.waiting = waiting
	c.tick(now)
	c.waiting = nil
}

// tick runs everything that is due at now: heartbeats, failure detection, handshake
// deadlines, redials, forgetting and tombstone expiry. It then computes the next wake-up.
func (c *core) tick(now time.Time) {
	if c.leaving {
		return
	}
	onTime := c.wakeAt.IsZero() || now.Sub(c.wakeAt) < c.stallTolerance()
	c.forgiveStall(now)
	c.wakeAt, c.armedWake = time.Time{}, time.Time{}
	wasHolding := c.holding
	c.releaseHold(now, onTime)
	if wasHolding && !c.holding {
		clear(c.connDue) // every held stream is reported now (visitConn)
	}
	// Heartbeats due soon are sent now, so one wake-up serves many streams.
	coalesce := now.Add(c.cfg.HeartbeatInterval / 10)
	if c.topoDirty && c.reconcileDue(now) {
		c.reconcile(now)
	}
	c.expireAlerts(now)
	c.expireBasis(now)
	c.checkStatuses(now)
	c.releaseIdleView()
	c.releaseIdleBasisCache()
	if c.lateWorstOf() > 0 {
		c.rollLateWindow(now)
	}
	c.visitConns(now, coalesce)
	// Whether the dial slots are full is only counted when a dial is due at all.
	full, counted := false, false
	slotsFull := func() bool {
		if !counted {
			full, counted = c.dialsInFlight() >= maxConcurrentDials, true
		}
		return full
	}
	// One pass over the members: forgetting, due dials, and members left connecting without
	// a stream (upWithoutStream). With every member connected in a full mesh (a steady
	// cluster) none can be due for forgetting or for a dial: the pass, which touches every
	// member, is skipped. Where an overlay may form, a member can be up without a stream and
	// due for a dial.
	if (c.connected < c.members.len() || c.cfg.Monitors > 0) && c.memberPassDue(now) {
		c.dialAt = time.Time{}
		for _, m := range c.sortedMembers() {
			if c.forgetIfDue(now, m) {
				continue
			}
			if m.status == StatusConnecting && m.dial == 0 && m.nextDial == 0 && !c.isNeighbour(m.id) {
				// Left connecting with no dial to come, by a path upWithoutStream missed.
				// (Neighbours wait for reconcile, which brings them up and dials them.)
				c.upWithoutStream(now, m)
			}
			if m.nextDial != 0 && m.conn == 0 && m.dial == 0 {
				c.dueDial(now, c.at(m.nextDial), slotsFull())
			}
		}
	} else {
		c.rearmSkippedPass(now)
	}
	c.expireTombstones(now)
	for _, s := range c.seeds {
		if c.seedWanted(s) {
			c.dueDial(now, s.nextDial, slotsFull())
		}
	}
	c.runDials(now)
}

// leave tells every peer the node leaves and closes every stream. No event is emitted for
// the peers: the local status change says it all.
func (c *core) leave(now time.Time) {
	c.leaving = true
	for _, pc := range c.sortedConns() {
		if pc.handshaken() {
			c.send(pc, &Message{Leave: &Leave{ID: c.self, Incarnation: c.incarnation}})
		}
		c.discardConn(pc, true)
	}
	for m := range c.members.all() {
		m.conn, m.dial, m.nextDial, m.graceFrom = 0, 0, 0, 0
	}
	c.dialAt, c.wakeAt = time.Time{}, time.Time{}
}

// setAttributes changes the local attributes and pushes them at once on every stream, in a
// heartbeat that carries them: each peer sees the change within one trip, not an interval
// later, and reports it as node_updated. The heartbeat schedules stay as they were.
func (c *core) setAttributes(now time.Time, processCount int, metadata map[string]string) {
	c.attrs = Attributes{Version: c.attrs.Version + 1, ProcessCount: processCount, Metadata: maps.Clone(metadata)}
	c.attrsDigestOK = false
	if c.leaving {
		return
	}
	for _, pc := range c.sortedConns() {
		if pc.handshaken() && c.current(pc) {
			c.sendHeartbeat(now, pc)
		}
	}
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
