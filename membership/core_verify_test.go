package membership

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A node that takes a crashed node's address as it starts (a container rescheduled under a
// new name) learns the crashed node from the view as alive, before the cluster decides it:
// the decision passes it by, and its check of the crashed node, a dial, reaches itself. A dial
// answered by a node other than the one dialled shows the one dialled is gone from there: it
// is held down everywhere, the newcomer included.
func TestOverlayNodeAtACrashedNodesAddressHoldsTheCrashedNodeDown(t *testing.T) {
	s, nodes := quietOverlay(t, 40, func(cfg *Config) { cfg.Monitors = 4 })
	old := nodes[1]
	old.crash()
	cfg := simConfig("other", nodes[0].id.Address())
	cfg.Monitors = 4
	other := s.add(simID("other", old.id.Port()), cfg)
	live := append(allBut(nodes, old), other)
	s.advanceUntil(3*time.Minute, func() bool { return wrongStatus(append(live, old)) == "" },
		"every live node should hold %s up and %s, crashed, down", other.id, old.id)
}

// A node that joins through a seed that missed a member's return (the seed was cut off while
// the member's up alerts went round) learns the member as down from the seed's view, and
// holds it down as the cluster decided it. Its peers, who hold the member up, made it check
// the member only if it had counted a decision about it; held down from a view, it had not,
// and it held the live member down for good once its seed was gone.
func TestOverlayNodeThatLearnedALiveMemberAsDownFromItsSeedChecksIt(t *testing.T) {
	s, nodes := quietOverlay(t, 40, func(cfg *Config) { cfg.Monitors = 4 })
	cut, seed := nodes[30], nodes[12]
	holds := func(nodes []*simNode, status NodeStatus) bool {
		for _, n := range nodes {
			if m := n.core.members.get(cut.id); m.status != status {
				return false
			}
		}
		return true
	}
	s.partition([]*simNode{cut}, allBut(nodes, cut), true)
	s.advanceUntil(time.Minute, func() bool { return holds(allBut(nodes, cut), StatusDisconnected) }, "cut decided down")
	s.partition([]*simNode{seed}, allBut(nodes, seed), true)
	s.partition([]*simNode{cut}, allBut(allBut(nodes, cut), seed), false)
	s.advanceUntil(time.Minute, func() bool { return holds(allBut(allBut(nodes, cut), seed), StatusConnected) }, "cut back up")
	s.advance(30 * time.Second)
	name := ""
	for i := 0; name == ""; i++ {
		id := MustParseNodeID(simID(fmt.Sprintf("late%d", i), 4600))
		ids := []NodeID{id}
		for _, n := range nodes {
			ids = append(ids, n.id)
		}
		if !slices.Contains(newTopology(ids, 4).neighbours(cut.id), id) {
			name = id.Name()
		}
	}
	cfg := simConfig(name, seed.id.Address())
	cfg.Monitors = 4
	late := s.add(simID(name, 4600), cfg)
	s.advance(time.Second)
	require.Equal(t, StatusDisconnected, late.core.members.get(cut.id).status, "%s should learn %s as down from its seed", late.id, cut.id)
	seed.crash()
	live := append(slices.Clone(nodes), late)
	s.advanceUntil(3*time.Minute, func() bool { return wrongStatus(live) == "" },
		"%s, which learned %s only as down from its seed's view, should hold it up again", late.id, cut.id)
}
