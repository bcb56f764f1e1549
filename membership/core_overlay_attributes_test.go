package membership

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// wrongAttributes returns the first live node that holds a live peer's attributes other than
// the peer's own (an older version, or none), or "" if every node holds every peer's.
func wrongAttributes(nodes []*simNode) string {
	for _, n := range nodes {
		if !n.up {
			continue
		}
		for _, peer := range nodes {
			if peer == n || !peer.up {
				continue
			}
			m := n.core.members.get(peer.id)
			if m == nil || m.incarnation != peer.core.incarnation {
				continue // wrongStatus tells
			}
			if m.attrs.Version != peer.core.attrs.Version || m.attrs.Metadata["role"] != peer.core.attrs.Metadata["role"] {
				return fmt.Sprintf("%s holds %s's attributes at version %d (role %q), where %s has version %d (role %q)",
					n.id.Name(), peer.id.Name(), m.attrs.Version, m.attrs.Metadata["role"],
					peer.id.Name(), peer.core.attrs.Version, peer.core.attrs.Metadata["role"])
			}
		}
	}
	return ""
}

// withRole gives every node of a cluster the metadata role=<its name>.
func withRole(k int) func(cfg *Config) {
	return func(cfg *Config) {
		cfg.Monitors = k
		cfg.Metadata = map[string]string{"role": cfg.Name}
	}
}

// Nodes that joined while the cluster was still a full mesh learned from their seed's view the
// nodes they were about to stream to, without their attributes; the cluster then grew into an
// overlay, they never streamed to some of them, and listed their metadata empty for good (a
// resolver that selects by metadata skipped those nodes through them). A view carries every
// live node's attributes now.
func TestOverlayEveryNodeHoldsEveryNodesAttributesOnceTheMeshGrowsIntoAnOverlay(t *testing.T) {
	s := newSim(t)
	s.quiet = true
	nodes := newClusterWith(s, 40, withRole(4))
	s.advanceUntil(60*time.Second, func() bool { return everyNodeConnected(nodes, len(nodes)-1) }, "40 nodes with K=4 should converge")
	s.advance(30 * time.Second)
	require.Empty(t, wrongAttributes(nodes), "every node should hold every node's attributes")
}

// A node that restarts starts its attributes' versions over: the nodes with no stream to it
// took the new incarnation from a relay and kept the old incarnation's attributes, whose
// higher version then kept every newer relay of the new one's out.
func TestOverlayNodesWithoutAStreamTakeARestartedNodesNewAttributes(t *testing.T) {
	s, nodes := overlayCluster(t, 20, 4)
	x := nodes[7]
	for i := range 3 {
		x.core.setAttributes(s.now, 0, map[string]string{"role": fmt.Sprintf("before-%d", i)})
		x.flush()
		s.settle()
	}
	s.advance(5 * time.Second)
	require.Empty(t, wrongAttributes(nodes), "the changes should reach every node")

	x.crash()
	x.cfg.Metadata = map[string]string{"role": "after"}
	s.advance(500 * time.Millisecond) // back before its observers decide it down
	nodes[7] = x.restart()
	s.advance(30 * time.Second)
	require.Equal(t, uint64(1), nodes[7].core.attrs.Version, "a new incarnation's attributes start at version 1")
	require.Empty(t, wrongAttributes(nodes), "every node should hold the new incarnation's attributes")
}

// A node that takes a crashed node's address as it starts (a container rescheduled under a
// new name) learns the crashed node from the view as alive, before the cluster decides it:
// the decision passes it by, and its check of the crashed node, a dial, reaches itself. A dial
// answered by a node other than the one dialled shows the one dialled is gone from there: it
// is held down everywhere, the newcomer included.
func TestOverlayNodeAtACrashedNodesAddressHoldsTheCrashedNodeDown(t *testing.T) {
	s := newSim(t)
	s.quiet = true
	nodes := newClusterWith(s, 40, func(cfg *Config) { cfg.Monitors = 4 })
	s.advanceUntil(60*time.Second, func() bool { return everyNodeConnected(nodes, len(nodes)-1) }, "40 nodes with K=4 should converge")
	old := nodes[1]
	old.crash()
	cfg := simConfig("other", nodes[0].id.Address())
	cfg.Monitors = 4
	other := s.add(simID("other", old.id.Port()), cfg)
	live := append(allBut(nodes, old), other)
	s.advanceUntil(3*time.Minute, func() bool { return wrongStatus(append(live, old)) == "" },
		"every live node should hold %s up and %s, crashed, down", other.id, old.id)
}
