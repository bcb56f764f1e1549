package membership

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sim is a deterministic in-memory network of cores driven by a fake clock: every message,
// dial and close is a queued delivery processed in order, so each test is exactly repeatable.
type sim struct {
	t     *testing.T
	now   time.Time
	nodes map[string]*simNode // by address
	queue []func()
	cut   map[[2]string]bool // directed links that drop everything (from addr, to addr)
}

// simNode is one node of the simulation.
type simNode struct {
	s      *sim
	cfg    *Config
	id     NodeID
	core   *core
	up     bool
	frozen bool
	ends   map[connID]*simEnd
	events []Event
	inc    uint64
}

// simEnd is one end of a simulated stream.
type simEnd struct {
	node   *simNode
	id     connID
	peer   *simEnd
	closed bool
}

func newSim(t *testing.T) *sim {
	return &sim{t: t, now: time.Unix(1_700_000_000, 0), nodes: map[string]*simNode{}, cut: map[[2]string]bool{}}
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

// add creates and starts a node at 127.0.0.1:port.
func (s *sim) add(id string, cfg *Config) *simNode {
	nid := MustParseNodeID(id)
	if cfg == nil {
		cfg = simConfig(nid.Name())
	}
	cfg.Name = nid.Name()
	require.NoError(s.t, cfg.Validate())
	n := &simNode{s: s, cfg: cfg, id: nid}
	s.nodes[nid.Address()] = n
	n.start()
	return n
}

func (n *simNode) start() {
	n.inc++
	rng := rand.New(rand.NewPCG(uint64(len(n.s.nodes)), n.inc))
	n.core = newCore(n.id, uint64(n.s.now.UnixNano())+n.inc, n.cfg, n.s.now, rng)
	n.ends = map[connID]*simEnd{}
	n.up = true
	n.core.start(n.s.now)
	n.flush()
	n.s.settle()
}

// crash kills the node: its streams break, no leave is sent.
func (n *simNode) crash() {
	n.up = false
	for _, e := range n.ends {
		n.s.closeEnd(e)
	}
	n.s.settle()
}

// stop leaves gracefully.
func (n *simNode) stop() {
	n.core.leave(n.s.now)
	n.flush()
	n.up = false
	n.s.settle()
}

// flush carries out the node's pending outputs.
func (n *simNode) flush() {
	for _, o := range n.core.takeOutputs() {
		n.s.apply(n, o)
	}
}

func (s *sim) apply(n *simNode, o output) {
	switch o.kind {
	case outEvent:
		n.events = append(n.events, o.event)
	case outDial:
		s.dial(n, o.conn, o.addr)
	case outSend:
		e := n.ends[o.conn]
		if e == nil || e.closed || e.peer == nil {
			return
		}
		peer, msg := e.peer, o.msg
		if s.cut[[2]string{n.id.Address(), peer.node.id.Address()}] || n.frozen || peer.node.frozen {
			return
		}
		s.queue = append(s.queue, func() {
			if !peer.closed && peer.node.up {
				peer.node.core.receive(s.now, peer.id, msg)
				peer.node.flush()
			}
		})
	case outClose:
		if e := n.ends[o.conn]; e != nil {
			s.closeEnd(e)
		}
	}
}

func (s *sim) dial(n *simNode, id connID, addr string) {
	end := &simEnd{node: n, id: id}
	n.ends[id] = end
	target := s.nodes[addr]
	if target == nil || !target.up || target.frozen || s.cut[[2]string{n.id.Address(), addr}] || s.cut[[2]string{addr, n.id.Address()}] {
		s.queue = append(s.queue, func() {
			end.closed = true
			n.core.closed(s.now, id)
			n.flush()
		})
		return
	}
	s.queue = append(s.queue, func() {
		if end.closed || !target.up {
			return
		}
		tid := target.core.accept(s.now)
		tend := &simEnd{node: target, id: tid, peer: end}
		end.peer = tend
		target.ends[tid] = tend
		target.flush()
		n.core.dialed(s.now, id)
		n.flush()
	})
}

// closeEnd closes e; the other end learns it after what was already queued.
func (s *sim) closeEnd(e *simEnd) {
	if e.closed {
		return
	}
	e.closed = true
	delete(e.node.ends, e.id)
	if p := e.peer; p != nil {
		s.queue = append(s.queue, func() {
			if p.closed {
				return
			}
			p.closed = true
			delete(p.node.ends, p.id)
			if p.node.up {
				p.node.core.closed(s.now, p.id)
				p.node.flush()
			}
		})
	}
}

// settle processes deliveries until none is left.
func (s *sim) settle() {
	for i := 0; len(s.queue) > 0; i++ {
		require.Less(s.t, i, 1_000_000, "simulation did not settle")
		f := s.queue[0]
		s.queue = s.queue[1:]
		f()
	}
}

// advance moves time forward in 10ms steps, ticking every node whose wake-up is due.
func (s *sim) advance(d time.Duration) {
	end := s.now.Add(d)
	for s.now.Before(end) {
		s.now = s.now.Add(10 * time.Millisecond)
		for _, n := range s.sortedNodes() {
			if n.up && !n.frozen && !n.core.wakeAt.IsZero() && !s.now.Before(n.core.wakeAt) {
				n.core.tick(s.now)
				n.flush()
			}
		}
		s.settle()
	}
}

func (s *sim) sortedNodes() []*simNode {
	out := make([]*simNode, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *simNode) int { return a.id.Compare(b.id) })
	return out
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

// connectedIDs lists the ids n sees connected.
func (n *simNode) connectedIDs() []string {
	var out []string
	for _, info := range n.core.nodes(n.s.now, true) {
		out = append(out, info.ID.String())
	}
	return out
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

// eventsAbout filters n's event log to one peer.
func (n *simNode) eventsAbout(peer *simNode) []string {
	var out []string
	for _, line := range n.eventLog() {
		if slices.Contains([]string{"up " + peer.id.String()}, line) || len(line) > 5 && line[:5] == "down " && line[5:5+len(peer.id.String())] == peer.id.String() {
			out = append(out, line)
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
		require.Equal(s.t, want, n.connectedIDs(), "%s should see every other node connected", n.id)
	}
}
