package membership

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// randomFaults runs a 40-node overlay with K = k through eight steps drawn from seed, each
// followed by up to 5 s of calm, of the first kinds of these (at most 11): crashes of one to
// three nodes, a node cut off from every other for 1 to 8 s, up to five links cut for 1 to
// 8 s, the cluster split in two for 1 to 10 s, a crashed node restarted (a new incarnation),
// a node that leaves, a new node that joins through a live one, a node frozen for 1 to 8 s (a
// paused process: it neither sends nor reads), up to five links cut one way for 1 to 8 s, a
// node's attributes changed, a node crashed and its address taken at once by a new node
// joining through a live one. It returns the simulation, every node (the joiners too, the
// restarted ones in their new incarnation) and what it did.
func randomFaults(t *testing.T, seed uint64, k, kinds int) (s *sim, nodes []*simNode, steps []string) {
	t.Helper()
	s, nodes = quietOverlay(t, 40, withRole(k))
	rng := rand.New(rand.NewPCG(seed, uint64(k)))
	left := map[*simNode]bool{}
	among := func(keep func(n *simNode) bool) []int {
		var out []int
		for i, n := range nodes {
			if keep(n) {
				out = append(out, i)
			}
		}
		return out
	}
	live := func(n *simNode) bool { return n.up }
	crashed := func(n *simNode) bool { return !n.up && !left[n] }
	anyLive := func() *simNode { up := among(live); return nodes[up[rng.IntN(len(up))]] }
	seconds := func(most int) time.Duration { return time.Duration(1+rng.IntN(most)) * time.Second }
	// cutLinks cuts up to five links between live nodes with cut for 1 to 8 s, then heals them.
	cutLinks := func(how string, cut func(a, b *simNode, cut bool)) {
		var pairs [][2]*simNode
		for range 1 + rng.IntN(5) {
			a, b := anyLive(), anyLive()
			if a != b {
				pairs = append(pairs, [2]*simNode{a, b})
				cut(a, b, true)
			}
		}
		d := seconds(8)
		steps = append(steps, fmt.Sprintf("cut %d links%s for %v", len(pairs), how, d))
		s.advance(d)
		for _, p := range pairs {
			cut(p[0], p[1], false)
		}
	}
	for range 8 {
		switch rng.IntN(kinds) {
		case 0:
			for range 1 + rng.IntN(3) {
				n := anyLive()
				steps = append(steps, "crash "+n.id.Name())
				n.crash()
			}
		case 1:
			n, d := anyLive(), seconds(8)
			steps = append(steps, fmt.Sprintf("cut %s off for %v", n.id.Name(), d))
			s.partition([]*simNode{n}, allBut(nodes, n), true)
			s.advance(d)
			s.partition([]*simNode{n}, allBut(nodes, n), false)
		case 2:
			cutLinks("", func(a, b *simNode, cut bool) { s.partition([]*simNode{a}, []*simNode{b}, cut) })
		case 3:
			order, size := rng.Perm(len(nodes)), 1+rng.IntN(len(nodes)-1)
			var a, b []*simNode
			for i, j := range order {
				if i < size {
					a = append(a, nodes[j])
				} else {
					b = append(b, nodes[j])
				}
			}
			d := seconds(10)
			steps = append(steps, fmt.Sprintf("split %d/%d for %v", len(a), len(b), d))
			s.partition(a, b, true)
			s.advance(d)
			s.partition(a, b, false)
		case 4:
			if down := among(crashed); len(down) > 0 {
				i := down[rng.IntN(len(down))]
				steps = append(steps, "restart "+nodes[i].id.Name())
				nodes[i] = nodes[i].restart()
			}
		case 5:
			n := anyLive()
			steps = append(steps, "leave "+n.id.Name())
			n.stop()
			left[n] = true
		case 6:
			name := fmt.Sprintf("node%02d", len(nodes))
			cfg := simConfig(name, anyLive().id.Address())
			withRole(k)(cfg)
			steps = append(steps, "join "+name)
			nodes = append(nodes, s.add(simID(name, 4000+len(nodes)), cfg))
		case 7:
			n, d := anyLive(), seconds(8)
			steps = append(steps, fmt.Sprintf("freeze %s for %v", n.id.Name(), d))
			n.frozen = true
			s.advance(d)
			n.frozen = false
		case 8:
			cutLinks(" one way", s.cutOneWay)
		case 9:
			n := anyLive()
			steps = append(steps, "update "+n.id.Name())
			n.core.setAttributes(s.now, rng.IntN(9), map[string]string{"role": fmt.Sprintf("role%d", rng.IntN(100))})
			n.flush()
			s.settle()
		case 10:
			n := anyLive()
			steps = append(steps, "crash "+n.id.Name()+" and take its address")
			n.crash()
			left[n] = true // never restarted: its address is taken
			name := fmt.Sprintf("node%02d", len(nodes))
			cfg := simConfig(name, anyLive().id.Address())
			withRole(k)(cfg)
			nodes = append(nodes, s.add(simID(name, n.id.Port()), cfg))
		}
		s.advance(time.Duration(rng.IntN(5000)) * time.Millisecond)
	}
	return s, nodes, steps
}

// wrongStatus returns the first status a live node holds wrongly (a live node, in its current
// incarnation, not connected; a crashed or departed one connected), or "" if every live node
// holds the truth (wrongAttributes tells of their attributes).
func wrongStatus(nodes []*simNode) string {
	for _, n := range nodes {
		if !n.up {
			continue
		}
		for _, peer := range nodes {
			if peer == n {
				continue
			}
			m := n.core.members.get(peer.id)
			switch {
			case peer.up && (m == nil || m.status != StatusConnected || m.incarnation != peer.core.incarnation):
				status := "absent"
				if m != nil {
					status = m.status.String()
				}
				return fmt.Sprintf("%s holds live %s as %s", n.id.Name(), peer.id.Name(), status)
			case !peer.up && m != nil && m.status == StatusConnected && m.incarnation == peer.core.incarnation:
				return fmt.Sprintf("%s holds %s, crashed or gone, connected", n.id.Name(), peer.id.Name())
			}
		}
	}
	return ""
}

// Random faults, one after another, then calm: within three minutes every live node holds
// every other up, with its current attributes, and every crashed or departed one down. Such
// runs went wrong before, in
// about one in four at K of 5 or less: a node cut off while the up alerts of a heal went round
// held the healed node down for good (it now checks it, verifyUp, and the node asks its
// observers again, reassert); a crash decided on the side of an earlier split that had
// counted fewer rounds was dropped as a late copy on the other side (lateDecision); a node
// whose streams came back before the news was over never heard it (checkStatuses); and with
// K = 2 the two observers' limited refusals could miss each other, leaving a crash undecided.
// With attribute changes and addresses taken over, nearly every run went wrong: views carried
// no attributes, a node cut off during a change never learned it, and the node that took a
// crashed node's address held the crashed node up for good; and an observer that met a
// crashed node only after its address changed hands said nothing (observeGoneFromAddress).
func TestOverlayRandomFaultsEndWithEveryNodeHoldingTheTruth(t *testing.T) {
	runs := []struct {
		k, kinds int
		seeds    []uint64
	}{
		{k: 2, kinds: 9, seeds: seedRange(0, 20)},
		{k: 4, kinds: 9, seeds: seedRange(0, 24)},
		{k: 5, kinds: 9, seeds: seedRange(0, 12)},
		{k: 10, kinds: 9, seeds: seedRange(0, 10)},
		// Without freezes and one-way cuts: the run that left a crash undecided at K = 2.
		{k: 2, kinds: 7, seeds: []uint64{24}},
		// Attribute changes and addresses taken over as well.
		{k: 3, kinds: 11, seeds: seedRange(0, 10)},
		{k: 4, kinds: 11, seeds: seedRange(0, 12)},
		{k: 10, kinds: 11, seeds: seedRange(0, 8)},
		// A crashed node whose address a new node took, while the overlay changed: the
		// observers it then had met it only parked (another node held its address), never
		// alerted, and with K = 2 both alerts are needed: it stayed up everywhere.
		{k: 2, kinds: 11, seeds: []uint64{150}},
	}
	for _, run := range runs {
		for _, seed := range run.seeds {
			t.Run(fmt.Sprintf("K=%d/kinds=%d/seed=%d", run.k, run.kinds, seed), func(t *testing.T) {
				s, nodes, steps := randomFaults(t, seed, run.k, run.kinds)
				deadline := s.now.Add(3 * time.Minute)
				wrong := func() string { return wrongStatus(nodes) + wrongAttributes(nodes) }
				for wrong() != "" && s.now.Before(deadline) {
					s.advance(time.Second)
				}
				require.Empty(t, wrong(), "after %s, every live node should hold the truth within 3 min",
					strings.Join(steps, ", "))
			})
		}
	}
}

// seedRange returns the seeds from first to end, end excluded.
func seedRange(first, end uint64) []uint64 {
	var out []uint64
	for seed := first; seed < end; seed++ {
		out = append(out, seed)
	}
	return out
}

// A node asks again only those of its observers whose hello says they take Reassert: a node
// from before it would close the stream on a message of no kind it knows.
func TestOverlayReassertGoesOnlyToObserversThatTakeIt(t *testing.T) {
	const k = 4
	s, nodes := overlayCluster(t, 20, k)
	subject := nodes[5]
	observers := topoOf(nodes, k).observers(subject.id)
	require.GreaterOrEqual(t, len(observers), 2, "%s should have observers to ask", subject.id)
	before := s.byID(observers[0])
	conn := subject.core.members.get(before.id).conn
	require.NotZero(t, conn, "%s should stream to its observer %s", subject.id, before.id)
	subject.core.conns[conn].reassertOK = false // as the hello of a node from before says
	from := s.now
	subject.core.reassert(s.now)
	subject.flush()
	s.settle()
	asked := map[NodeID]int{}
	for _, sent := range subject.sent {
		if !sent.at.Before(from) && sent.msg.Reassert != nil && sent.to != nil {
			asked[sent.to.id]++
		}
	}
	require.Zero(t, asked[before.id], "%s, whose hello does not take Reassert, should not be sent one", before.id)
	for _, o := range observers[1:] {
		require.Equal(t, 1, asked[o], "observer %s should be asked once", o)
	}
}
