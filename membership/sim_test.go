package membership

import (
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sim is a deterministic in-memory network of cores driven by a fake clock: every message,
// dial and close is a queued delivery processed in order, so each test is exactly repeatable.
type sim struct {
	t     *testing.T
	now   time.Time
	nodes map[string]*simNode // by address: the current incarnation living there
	queue []simTask
	cut   map[[2]string]bool // directed links that drop everything (from addr, to addr)
	// hang holds directed links (dialler addr, target addr) whose dials never get an answer,
	// as to a machine that stopped answering: they fail only at the dialler's timeout.
	hang map[[2]string]bool
	// drop, when set, silently discards the messages it returns true for (a lossy link).
	drop func(from, to *simNode, msg *Message) bool
	// delay, when set, holds each message back for as long as it returns (a sender that
	// runs late): messages held back alike keep their order; one held back counts one hop
	// more than it would otherwise (tests of hop counts leave delay unset).
	delay func(from, to *simNode, msg *Message) time.Duration
	// aliases maps extra dial addresses (e.g. "localhost:4001") to a node's address.
	aliases map[string]string
	// dialLatency, when set, delays the outcome of every dial by that much.
	dialLatency time.Duration
	later       []simLater // deliveries waiting for their time
	// hop is the hop count of the delivery being handled: a message, a close or a dial
	// outcome is one hop more than what caused it; a node's timer runs at the hop count of the
	// last delivery it handled. Events record it, so tests can count how many hops news took.
	hop int
	// quiet, for simulations of thousands of nodes, keeps events briefly (simNode.brief) and no
	// copy of sent messages (only
	// their count) and checks the cores' bookkeeping only when a test asks (checkAll).
	quiet bool
	order []*simNode // the nodes sorted by id, nil when it must be rebuilt
}

// simTask is one queued delivery and its hop count.
type simTask struct {
	f   func()
	hop int
}

// simLater is a delivery due at a later time.
type simLater struct {
	at  time.Time
	f   func()
	hop int
}

// simNode is one incarnation of a node of the simulation. A restart creates a new simNode at
// the same address, so streams of the old incarnation can never reach the new one.
type simNode struct {
	s      *sim
	cfg    *Config
	id     NodeID
	core   *core
	up     bool
	frozen bool
	// starved: the node gets no CPU. What reaches it waits in backlog, and its timers wait,
	// until feed lets it run (a process starved by its CPU quota).
	starved bool
	backlog []func()
	ends    map[connID]*simEnd
	events  []Event
	brief   []simEvent // the events, briefly, when the simulation is quiet (events stays empty)
	inc     uint64
	dials   []simDial // every dial the node started, in order
	sent    []simSent // every message the node handed to the network, in order (not kept when quiet)
	msgs    int       // how many messages the node handed to the network
	hop     int       // the hop count of the last delivery the node handled
	hops    []int     // the hop count at which each event was emitted, as events
	logs    []simLog  // every line the node logged, in order
}

// simEvent is an event as a quiet simulation keeps it: a few bytes, not a whole Event, for
// the million events of a simulation of thousands of nodes.
type simEvent struct {
	typ    EventType
	reason DownReason
	id     NodeID
	hop    int // the hop count at which it was emitted
}

// simLog is one line a node logged.
type simLog struct {
	at    time.Time
	level slog.Level
	text  string
	attrs []any
}

// simDial is one dial a node started.
type simDial struct {
	at   time.Time
	addr string
}

// simSent is one message a node sent, with the node at the other end of the stream (nil if
// the stream was not connected yet or already closed).
type simSent struct {
	at  time.Time
	to  *simNode
	msg *Message
}

// simEnd is one end of a simulated stream.
type simEnd struct {
	node   *simNode
	id     connID
	peer   *simEnd
	closed bool
}

func newSim(t *testing.T) *sim {
	return &sim{
		t: t, now: time.Unix(1_700_000_000, 0), nodes: map[string]*simNode{},
		cut: map[[2]string]bool{}, hang: map[[2]string]bool{}, aliases: map[string]string{},
	}
}

// simConfig is the configuration the simulated nodes use unless a test changes it.
func simConfig(name string, seeds ...string) *Config {
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.HeartbeatInterval = time.Second
	cfg.HeartbeatMissThreshold = 3
	cfg.Seeds = seeds
	return cfg
}

// add creates and starts a node at the address of id, then settles the network.
func (s *sim) add(id string, cfg *Config) *simNode {
	n := s.create(id, cfg)
	n.start()
	return n
}

// create registers a node at the address of id without starting it; boot or start it later.
func (s *sim) create(id string, cfg *Config) *simNode {
	nid := MustParseNodeID(id)
	if cfg == nil {
		cfg = simConfig(nid.Name())
	}
	cfg.Name = nid.Name()
	require.NoError(s.t, cfg.Validate())
	n := &simNode{s: s, cfg: cfg, id: nid}
	s.nodes[nid.Address()] = n
	s.order = nil
	return n
}

// start boots the node and settles the network.
func (n *simNode) start() {
	n.boot()
	n.s.settle()
}

// boot starts the node's core and carries out its first outputs without settling, so several
// nodes can be booted at the same instant.
func (n *simNode) boot() {
	n.s.hop = 0
	n.inc++
	rng := rand.New(rand.NewPCG(uint64(len(n.s.nodes)), n.inc))
	n.core = newCore(n.id, uint64(n.s.now.UnixNano())+n.inc, n.cfg, n.s.now, rng, nil)
	n.ends = map[connID]*simEnd{}
	n.up = true
	n.core.start(n.s.now)
	n.flush()
}

// restart starts a new incarnation of n with the same id and configuration at the same
// address and settles. The old incarnation must be dead (crash) or frozen (a restart its
// peers have not noticed yet); it is never ticked again.
func (n *simNode) restart() *simNode {
	s := n.s
	require.True(s.t, !n.up || n.frozen, "restart %s: crash or freeze the old incarnation first", n.id)
	fresh := &simNode{s: s, cfg: n.cfg, id: n.id, inc: n.inc}
	s.nodes[n.id.Address()] = fresh
	s.order = nil
	fresh.start()
	return fresh
}

// crash kills the node: its streams break, no leave is sent.
func (n *simNode) crash() {
	n.s.hop = 0
	n.up = false
	ids := slices.Sorted(maps.Keys(n.ends)) // in a fixed order, so runs repeat exactly
	for _, id := range ids {
		n.s.closeEnd(n.ends[id])
	}
	n.s.settle()
}

// stop leaves gracefully.
func (n *simNode) stop() {
	n.s.hop = 0
	n.core.leave(n.s.now)
	n.flush()
	n.up = false
	n.s.settle()
}

// flush carries out the node's pending outputs, after checking the core's bookkeeping, and
// hands their storage back to the core, as the runtime does.
func (n *simNode) flush() {
	if !n.s.quiet {
		n.checkBookkeeping()
	}
	outs := n.core.takeOutputs()
	for _, o := range outs {
		n.s.apply(n, o)
	}
	n.core.recycleOutputs(outs)
	n.core.nextWake(n.s.now) // the runtime arms its timer after every step
}

// checkBookkeeping checks the core's counters and deadlines against its tables.
func (n *simNode) checkBookkeeping() {
	inFlight := 0
	for _, pc := range n.core.conns {
		if pc.outbound && !pc.handshaken() {
			inFlight++
		}
	}
	require.Equal(n.s.t, inFlight, n.core.dialsInFlight(), "%s: dials in flight, as kept, match the stream table", n.id)
	n.requireTickSeesEveryDeadline()
	connected := 0
	for m := range n.core.members.all() {
		if m.status == StatusConnected {
			connected++
			// (A leaving node runs no tick and reports nothing more: it is exempt.)
			// In the overlay a node is up while the cluster holds it alive; in a full mesh it has
			// a stream, or is being dialled (the overlay just shrank to a full mesh).
			if !(m.conn != 0 || n.core.leaving || n.core.overlay() || n.core.topoDirty || m.dial != 0 || m.nextDial != 0) {
				require.Fail(n.s.t, "bookkeeping", "%s: %s is connected in a full mesh, so it has a stream", n.id, m.id)
			}
		}
	}
	require.Equal(n.s.t, connected, n.core.connected, "%s: connected members, as counted, match the table", n.id)
	if n.core.memberOrder != nil && n.core.members.len() <= 64 { // (larger: too slow for every flush)
		order := n.core.sortedMembers() // the cached order, with the members added since merged in
		require.Len(n.s.t, order, n.core.members.len(), "%s: the cached member order holds every member", n.id)
		for i, m := range order {
			require.Same(n.s.t, n.core.members.get(m.id), m, "%s: the cached member order holds the members of the table", n.id)
			if i > 0 {
				require.Negative(n.s.t, order[i-1].id.Compare(m.id), "%s: the cached member order is by id", n.id)
			}
		}
	}
}

// beatAt is the latest pc's next heartbeat may go: when it is due, or, if that is before the
// end of the node's last hold of its heartbeats for news, when the hold let it go
// (core_beathold.go).
func (n *simNode) beatAt(pc *peerConn) time.Time {
	c := n.core
	if pc.nextBeat.Before(c.beatsHeldUntil) {
		return minTime(c.beatsHeldUntil, pc.nextBeat.Add(c.maxBeatHold()))
	}
	return pc.nextBeat
}

// requireTickSeesEveryDeadline checks that no stream has a deadline before its entry in
// connDue: a tick skips a stream until that entry, so it would miss the deadline.
func (n *simNode) requireTickSeesEveryDeadline() {
	c := n.core
	for i, pc := range c.connOrder {
		if c.connDue[i] == 0 {
			continue
		}
		var deadline time.Time
		if !pc.handshaken() {
			deadline = c.handshakeDeadline(pc)
			if hung, ok := c.hungProbe(pc); ok {
				deadline = minTime(deadline, hung) // a dial others' alerts give up on
			}
		} else if beatAt := n.beatAt(pc); !pc.watching {
			deadline = minTime(beatAt, pc.lastRecv.Add(c.quietTimeout(pc))) // core_watch.go
		} else {
			silentAt := pc.lastRecv.Add(pc.timeout + c.lateAllowance(pc))
			if pc.graceFor.Equal(pc.lastRecv) {
				silentAt = maxTime(silentAt, pc.graceUntil) // a silence given more time (slowLocally)
			}
			if !pc.suspectSince.IsZero() {
				silentAt = maxTime(silentAt, pc.suspectSince.Add(c.confirmDelay()))
			}
			deadline = minTime(beatAt, silentAt)
		}
		entry := c.startedAt.Add(c.connDue[i])
		require.False(n.s.t, deadline.Before(entry), "%s: stream %d is due at %v, before the tick looks at it (%v)",
			n.id, pc.id, deadline, entry)
	}
}

func (s *sim) apply(n *simNode, o output) {
	switch o.kind {
	case outEvent:
		if s.quiet {
			n.brief = append(n.brief, simEvent{typ: o.event.Type, reason: o.event.Reason, id: o.event.Node.ID, hop: s.hop})
			return
		}
		n.events = append(n.events, *o.event)
		n.hops = append(n.hops, s.hop)
	case outLog:
		n.logs = append(n.logs, simLog{at: s.now, level: o.level, text: o.text, attrs: o.attrs})
	case outDial:
		n.dials = append(n.dials, simDial{at: s.now, addr: o.addr})
		s.dial(n, o.conn, o.addr)
	case outSend:
		e := n.ends[o.conn]
		var to *simNode
		if e != nil && e.peer != nil {
			to = e.peer.node
		}
		n.msgs++
		if !s.quiet {
			n.sent = append(n.sent, simSent{at: s.now, to: to, msg: o.msg})
		}
		if e == nil || e.closed || e.peer == nil {
			return
		}
		s.deliver(e, o.msg)
	case outClose:
		if e := n.ends[o.conn]; e != nil {
			s.closeEnd(e)
		}
	}
}

// deliver queues msg from end e to its peer end, unless the link or a frozen node drops it
// (after the delay, if one is set).
func (s *sim) deliver(e *simEnd, msg *Message) {
	n, peer := e.node, e.peer
	if s.linkCut(n, peer.node) || n.frozen || peer.node.frozen {
		return
	}
	if s.drop != nil && s.drop(n, peer.node, msg) {
		return
	}
	handle := func() {
		peer.node.hop = s.hop
		if !peer.closed && peer.node.up {
			peer.node.core.receive(s.now, peer.id, msg)
			peer.node.flush()
		}
	}
	if s.delay != nil {
		if d := s.delay(n, peer.node, msg); d > 0 {
			s.after(d, func() { s.queueFor(peer.node, handle) })
			return
		}
	}
	s.queueFor(peer.node, handle)
}

// queueFor queues f, which n must handle; a starved node keeps it in its backlog.
func (s *sim) queueFor(n *simNode, f func()) {
	if n.starved {
		n.backlog = append(n.backlog, f)
		return
	}
	s.queue = append(s.queue, simTask{f: f, hop: s.hop + 1})
}

// feed lets a starved node run once: it handles its backlog, late, and then its timer, which
// is late too; it is starved again afterwards.
func (s *sim) feed(n *simNode) { s.feedOrdered(n, -1, true) }

// feedTimerFirst is feed with the timer handled before the backlog, as when a starved process
// gets the CPU back at the moment its timer is due.
func (s *sim) feedTimerFirst(n *simNode) { s.feedOrdered(n, 0, true) }

// feedBriefly lets a starved node run only long enough for one delivery of its backlog and
// then its timer, as a process starved so hard it falls further behind at each run: the rest
// of the backlog waits for the next run.
func (s *sim) feedBriefly(n *simNode) { s.feedOrdered(n, 1, false) }

// feedOrdered lets n run once: first deliveries of its backlog (all of them if first < 0),
// then its timer if due, then, with rest, the rest of the backlog and the timer again.
func (s *sim) feedOrdered(n *simNode, first int, rest bool) {
	n.starved = false
	tick := func() {
		if n.up && !n.frozen && !n.core.wakeAt.IsZero() && !s.now.Before(n.core.wakeAt) {
			s.hop = n.hop
			n.core.tick(s.now)
			n.flush()
		}
	}
	handle := func(count int) {
		for ; len(n.backlog) > 0 && count != 0; count-- {
			f := n.backlog[0]
			n.backlog = n.backlog[1:]
			f()
		}
	}
	handle(first)
	tick()
	if rest {
		handle(-1)
		tick()
	}
	n.starved = true
	s.settle()
}

// linkCut reports whether the directed link from a to b drops everything.
func (s *sim) linkCut(a, b *simNode) bool {
	return s.cut[[2]string{a.id.Address(), b.id.Address()}]
}

// dial opens a stream from n to addr. Whether the target answers is decided when the dial is
// delivered, so nodes booted at the same instant can dial each other.
func (s *sim) dial(n *simNode, id connID, addr string) {
	end := &simEnd{node: n, id: id}
	n.ends[id] = end
	if real, ok := s.aliases[addr]; ok {
		addr = real
	}
	var outcome func()
	outcome = func() {
		if end.closed || !n.up {
			return
		}
		target := s.nodes[addr]
		if n.starved || target != nil && target.starved {
			// The handshake needs both processes to run.
			starved := n
			if !n.starved {
				starved = target
			}
			starved.backlog = append(starved.backlog, outcome)
			return
		}
		if s.hang[[2]string{n.id.Address(), addr}] {
			return // no answer: the dial ends at its timeout
		}
		if target == nil || !target.up || target.frozen || s.linkCut(n, target) || s.linkCut(target, n) {
			end.closed = true
			delete(n.ends, id)
			n.core.ended(s.now, id, errSimRefused)
			n.flush()
			return
		}
		n.hop, target.hop = s.hop, s.hop
		tid := target.core.accept(s.now)
		tend := &simEnd{node: target, id: tid, peer: end}
		end.peer = tend
		target.ends[tid] = tend
		target.flush()
		n.core.dialed(s.now, id)
		n.flush()
	}
	s.after(s.dialLatency, outcome)
}

// errSimRefused is the error of a dial that reaches no node.
var errSimRefused = ErrConnectionRefused // what a dial where nothing listens gives

// after queues f now, or at now+d when d is positive.
func (s *sim) after(d time.Duration, f func()) {
	if d <= 0 {
		s.queue = append(s.queue, simTask{f: f, hop: s.hop + 1})
		return
	}
	s.later = append(s.later, simLater{at: s.now.Add(d), f: f, hop: s.hop + 1})
}

// closeEnd closes e; the other end learns it after what was already queued, unless the link
// is cut (then only its failure detector can tell).
func (s *sim) closeEnd(e *simEnd) {
	if e.closed {
		return
	}
	e.closed = true
	delete(e.node.ends, e.id)
	p := e.peer
	if p == nil || s.linkCut(e.node, p.node) {
		return
	}
	s.queueFor(p.node, func() {
		if p.closed {
			return
		}
		p.closed = true
		delete(p.node.ends, p.id)
		p.node.hop = s.hop
		if p.node.up {
			p.node.core.ended(s.now, p.id, nil)
			p.node.flush()
		}
	})
}

// settle processes deliveries until none is left.
func (s *sim) settle() {
	for i := 0; len(s.queue) > 0; i++ {
		if i >= 100_000_000 {
			require.FailNow(s.t, "simulation did not settle", "more than %d deliveries in a row", i)
		}
		s.runNext()
	}
}

// runNext handles the next queued delivery, and only that one.
func (s *sim) runNext() {
	task := s.queue[0]
	s.queue[0] = simTask{}
	s.queue = s.queue[1:]
	s.hop = task.hop
	task.f()
}

// advance moves time forward in 10ms steps, ticking every node whose wake-up is due.
func (s *sim) advance(d time.Duration) {
	end := s.now.Add(d)
	for s.now.Before(end) {
		s.step()
	}
}

// step moves time forward by one 10ms step.
func (s *sim) step() {
	s.now = s.now.Add(10 * time.Millisecond)
	var keep []simLater
	for _, l := range s.later {
		if s.now.Before(l.at) {
			keep = append(keep, l)
		} else {
			s.queue = append(s.queue, simTask{f: l.f, hop: l.hop})
		}
	}
	s.later = keep
	s.settle()
	for _, n := range s.sortedNodes() {
		if n.up && !n.frozen && !n.starved && !n.core.wakeAt.IsZero() && !s.now.Before(n.core.wakeAt) {
			s.hop = n.hop
			n.core.tick(s.now)
			n.flush()
		}
	}
	s.settle()
}

// advanceUntil steps time until cond holds and returns how long it took; it fails the test
// with msg if cond does not hold within limit.
func (s *sim) advanceUntil(limit time.Duration, cond func() bool, msg string, args ...any) time.Duration {
	s.t.Helper()
	start := s.now
	for !cond() {
		if s.now.Sub(start) >= limit {
			require.FailNowf(s.t, "condition not reached in time", "after %v: "+msg, append([]any{limit}, args...)...)
		}
		s.step()
	}
	return s.now.Sub(start)
}

func (s *sim) sortedNodes() []*simNode {
	if s.order == nil {
		s.order = slices.SortedFunc(maps.Values(s.nodes), func(a, b *simNode) int { return a.id.Compare(b.id) })
	}
	return s.order
}

// partition cuts every link between the two groups, both ways.
func (s *sim) partition(a, b []*simNode, cut bool) {
	for _, x := range a {
		for _, y := range b {
			s.cut[[2]string{x.id.Address(), y.id.Address()}] = cut
			s.cut[[2]string{y.id.Address(), x.id.Address()}] = cut
		}
	}
}

// cutOneWay cuts (or restores) only the direction from → to: from's messages are lost, to's
// still arrive, and dials between them fail.
func (s *sim) cutOneWay(from, to *simNode, cut bool) {
	s.cut[[2]string{from.id.Address(), to.id.Address()}] = cut
}

// hangDials makes every dial from each node of from to each node of to go unanswered (or
// answered again, hang false).
func (s *sim) hangDials(from, to []*simNode, hang bool) {
	for _, x := range from {
		for _, y := range to {
			s.hang[[2]string{x.id.Address(), y.id.Address()}] = hang
		}
	}
}

// byID returns the node running as id.
func (s *sim) byID(id NodeID) *simNode {
	n := s.nodes[id.Address()]
	require.NotNil(s.t, n, "no node runs at %s", id.Address())
	require.Equal(s.t, id, n.id, "another node runs at %s", id.Address())
	return n
}

// streamEnd returns n's end of its established stream to peer (nil if none).
func (n *simNode) streamEnd(peer *simNode) *simEnd {
	m := n.core.members.get(peer.id)
	if m == nil || m.conn == 0 {
		return nil
	}
	e := n.ends[m.conn]
	if e == nil || e.closed || e.peer == nil || e.peer.node != peer {
		return nil
	}
	return e
}

// breakHalf makes n see its stream to peer fail while peer notices nothing (a half-open
// stream): peer only learns from silence, or from n's next handshake.
func (s *sim) breakHalf(n, peer *simNode) {
	s.t.Helper()
	e := n.streamEnd(peer)
	require.NotNil(s.t, e, "breakHalf: %s has no stream to %s", n.id, peer.id)
	e.closed = true
	delete(n.ends, e.id)
	n.core.ended(s.now, e.id, nil)
	n.flush()
	s.settle()
}

// breakStream makes the stream between n and peer fail on both sides: n sees it at once, and
// peer once what was queued before it is delivered (a reset connection).
func (s *sim) breakStream(n, peer *simNode) {
	s.t.Helper()
	e := n.streamEnd(peer)
	require.NotNil(s.t, e, "breakStream: %s has no stream to %s", n.id, peer.id)
	s.closeEnd(e)
	n.core.ended(s.now, e.id, nil)
	n.flush()
	s.settle()
}

// inject delivers msg to to as if from had sent it on their established (authenticated)
// stream, and settles.
func (s *sim) inject(from, to *simNode, msg *Message) {
	s.t.Helper()
	e := from.streamEnd(to)
	require.NotNil(s.t, e, "inject: %s has no stream to %s", from.id, to.id)
	peer := e.peer
	to.core.receive(s.now, peer.id, msg)
	to.flush()
	s.settle()
}

// connectedIDs lists the ids n sees connected.
func (n *simNode) connectedIDs() []string {
	var out []string
	for _, info := range n.core.nodes(n.s.now, true) {
		out = append(out, info.ID.String())
	}
	return out
}

// knownIDs lists every id n knows, connected or not.
func (n *simNode) knownIDs() []string {
	var out []string
	for _, info := range n.core.nodes(n.s.now, false) {
		out = append(out, info.ID.String())
	}
	return out
}

// info returns n's view of peer, and whether n knows it.
func (n *simNode) info(peer *simNode) (NodeInfo, bool) {
	for _, info := range n.core.nodes(n.s.now, false) {
		if info.ID == peer.id {
			return info, true
		}
	}
	return NodeInfo{}, false
}

// eventLog renders n's events as "up a@h:1", "down a@h:1 heartbeat_timeout".
func (n *simNode) eventLog() []string {
	var out []string
	for _, e := range n.events {
		switch e.Type {
		case EventNodeUp:
			out = append(out, "up "+e.Node.ID.String())
		case EventNodeDown:
			out = append(out, fmt.Sprintf("down %s %s", e.Node.ID, e.Reason))
		}
	}
	return out
}

// eventsAbout filters n's event log to one peer (any incarnation).
func (n *simNode) eventsAbout(peer *simNode) []string {
	var out []string
	for _, line := range n.eventLog() {
		if line == "up "+peer.id.String() || strings.HasPrefix(line, "down "+peer.id.String()+" ") {
			out = append(out, line)
		}
	}
	return out
}

// eventsSince returns n's events after the first skip ones.
func (n *simNode) eventsSince(skip int) []Event {
	return slices.Clone(n.events[skip:])
}

// downs lists n's node_down events.
func (n *simNode) downs() []string {
	var out []string
	for _, line := range n.eventLog() {
		if strings.HasPrefix(line, "down ") {
			out = append(out, line)
		}
	}
	return out
}

// dialsTo lists the times n dialled addr.
func (n *simNode) dialsTo(addr string) []time.Time {
	return n.dialsToSince(addr, time.Time{})
}

// dialsToSince lists the times, from since on, n dialled addr.
func (n *simNode) dialsToSince(addr string, since time.Time) []time.Time {
	var out []time.Time
	for _, d := range n.dials {
		if d.addr == addr && !d.at.Before(since) {
			out = append(out, d.at)
		}
	}
	return out
}

// requireFullMesh asserts every live node sees every other live node connected.
func (s *sim) requireFullMesh(nodes ...*simNode) {
	s.t.Helper()
	for _, n := range nodes {
		var want []string
		for _, o := range nodes {
			if o != n {
				want = append(want, o.id.String())
			}
		}
		slices.Sort(want)
		got := slices.Sorted(slices.Values(n.connectedIDs()))
		require.Equal(s.t, want, got, "%s should see every other node connected", n.id)
	}
}

// fullMesh reports whether every node sees every other node connected.
func (s *sim) fullMesh(nodes ...*simNode) bool {
	for _, n := range nodes {
		if len(n.connectedIDs()) != len(nodes)-1 {
			return false
		}
		for _, o := range nodes {
			if o != n && !n.core.isConnectedTo(o.id) {
				return false
			}
		}
	}
	return true
}

// requireAlternating asserts that, for every peer, n's events about it alternate up/down and
// start with up; only a node that was never up (connecting) may open its log with a down, and
// then only for connection_refused or graceful_shutdown.
func requireAlternating(t *testing.T, n *simNode) {
	t.Helper()
	last := map[NodeID]EventType{}
	for i, e := range n.events {
		if e.Type != EventNodeUp && e.Type != EventNodeDown {
			continue
		}
		prev, seen := last[e.Node.ID]
		switch {
		case !seen && e.Type == EventNodeDown:
			require.Contains(t, []DownReason{ReasonConnectionRefused, ReasonGracefulShutdown}, e.Reason,
				"%s: first event about %s (#%d) is a down of a node that was never up: %v", n.id, e.Node.ID, i, n.eventsAboutID(e.Node.ID))
		case seen:
			require.NotEqual(t, prev, e.Type,
				"%s: two %s in a row about %s (event #%d); log: %v", n.id, e.Type, e.Node.ID, i, n.eventsAboutID(e.Node.ID))
		}
		last[e.Node.ID] = e.Type
	}
}

// eventsAboutID is eventsAbout by id.
func (n *simNode) eventsAboutID(id NodeID) []string {
	var out []string
	for _, line := range n.eventLog() {
		if line == "up "+id.String() || strings.HasPrefix(line, "down "+id.String()+" ") {
			out = append(out, line)
		}
	}
	return out
}
