package membership

import (
	"fmt"
	"slices"
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
	s, nodes := quietOverlay(t, 40, withRole(4))
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
	s.advance(500 * time.Millisecond) // then it starts again, with other metadata
	nodes[7] = x.restart()
	s.advance(30 * time.Second)
	require.Equal(t, uint64(1), nodes[7].core.attrs.Version, "a new incarnation's attributes start at version 1")
	require.Empty(t, wrongAttributes(nodes), "every node should hold the new incarnation's attributes")
}

// A node cut off while another's attributes change missed the change's relay, and nothing
// else said so: every view digest agreed. The heartbeats' attribute digests differ until a
// sync brings the change.
func TestOverlayNodeCutOffDuringAnAttributeChangeLearnsItAfterTheHeal(t *testing.T) {
	s, nodes := quietOverlay(t, 40, withRole(4))
	s.advance(10 * time.Second)
	cut := nodes[5]
	topo := topoOf(nodes, 4)
	var changed *simNode
	for _, n := range nodes {
		if n != cut && !slices.Contains(topo.neighbours(cut.id), n.id) {
			changed = n // no stream to cut: it hears the change only as relayed news
			break
		}
	}
	require.NotNil(t, changed, "some node should be no neighbour of %s", cut.id)

	s.partition([]*simNode{cut}, allBut(nodes, cut), true)
	changed.core.setAttributes(s.now, 3, map[string]string{"role": "changed"})
	changed.flush()
	s.settle()
	s.advance(2 * time.Second)
	s.partition([]*simNode{cut}, allBut(nodes, cut), false)
	s.advanceUntil(time.Minute, func() bool { return wrongAttributes(nodes) == "" },
		"%s, cut off while %s's attributes changed, should learn them after the heal", cut.id, changed.id)
}
