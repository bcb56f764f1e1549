package membership

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// addressReuse starts a three-node cluster (node00 the seed, node01, node02 at 4002), then
// runs before on it and starts "other", another node, at node02's address, seeded with node00.
func addressReuse(t *testing.T, before func(s *sim, old *simNode)) (s *sim, nodes []*simNode, old, other *simNode) {
	s = newSim(t)
	nodes = newCluster(s, 3)
	s.advance(3 * time.Second)
	old = nodes[2]
	before(s, old)
	other = s.add(simID("other", 4002), simConfig("other", "127.0.0.1:4000"))
	return s, nodes, old, other
}

// requireReuseSettled checks the steady state after another node took old's address: every
// survivor has other up once and never down, old went down once and stayed down, and the
// survivors stopped dialling old's address.
func requireReuseSettled(t *testing.T, s *sim, survivors []*simNode, old, other *simNode, oldDown string) {
	t.Helper()
	s.advanceUntil(10*time.Second, func() bool { return s.fullMesh(append(survivors, other)...) },
		"the node at the reused address should join every survivor")
	s.advance(time.Second) // a dial in flight when other came up ends
	since := s.now
	s.advance(2 * time.Minute) // many redial backoffs of old's id
	s.requireFullMesh(append(survivors, other)...)
	for _, n := range survivors {
		require.Equal(t, []string{"up " + other.id.String()}, n.eventsAbout(other),
			"%s: the node at the reused address comes up once and is never reported down", n.id)
		require.Equal(t, []string{"up " + old.id.String(), "down " + old.id.String() + " " + oldDown}, n.eventsAbout(old),
			"%s: the node that died there goes down once and is never reported up again", n.id)
		require.Empty(t, n.dialsToSince(old.id.Address(), since),
			"%s should not redial %s at an address %s holds", n.id, old.id, other.id)
	}
	for _, n := range survivors {
		require.Equal(t, []string{"up " + n.id.String()}, other.eventsAbout(n), "%s should see %s up once", other.id, n.id)
	}
	// old is in the view other learns, but other holds old's address: it is never dialled
	// there, and reported down (never reached) once.
	require.Equal(t, []string{"down " + old.id.String() + " connection_refused"}, other.eventsAbout(old))
	require.Empty(t, other.dialsTo(old.id.Address()), "%s should never dial its own address", other.id)
}

func TestCoreNodeAtADeadNodesAddressIsNeverDisturbed(t *testing.T) {
	s, nodes, old, other := addressReuse(t, func(s *sim, old *simNode) {
		old.crash()
		s.advance(time.Second)
	})
	requireReuseSettled(t, s, nodes[:2], old, other, "connection_closed")

	// Once the holder leaves, the address is free: the old id is redialled there (refused,
	// it is gone) and reports nothing more.
	other.stop()
	since := s.now
	s.advance(10 * time.Second)
	for _, n := range nodes[:2] {
		require.NotEmpty(t, n.dialsToSince(old.id.Address(), since), "%s should redial %s once its address is free", n.id, old.id)
		require.Len(t, n.eventsAbout(old), 2, "%s: no new event about %s", n.id, old.id)
	}
}

func TestCoreNodeRestartedUnderANewNameBeforeItsPeersNoticed(t *testing.T) {
	// The old node is frozen (its peers still hold live streams to it) when another node
	// starts at its address: they time the old one out, then find the new one there.
	s, nodes, old, other := addressReuse(t, func(_ *sim, old *simNode) { old.frozen = true })
	requireReuseSettled(t, s, nodes[:2], old, other, "heartbeat_timeout")
}

func TestCoreDialOfAMovedNodeNeverTouchesTheNodeAtItsAddress(t *testing.T) {
	s, nodes, old, other := addressReuse(t, func(s *sim, old *simNode) {
		old.crash()
		s.advance(time.Second)
	})
	s.advanceUntil(10*time.Second, func() bool { return s.fullMesh(nodes[0], nodes[1], other) }, "other joins")
	// A survivor that knows nothing of other yet dials old's id and reaches other: other
	// refuses before its hello touches anything, and keeps every stream it has.
	a := nodes[0]
	m := a.core.members.get(old.id)
	require.NotNil(t, m)
	a.core.dial(s.now, m)
	a.flush()
	s.settle()
	s.advance(10 * time.Second)
	require.Equal(t, []string{"up " + other.id.String()}, a.eventsAbout(other))
	require.Equal(t, []string{"up " + a.id.String()}, other.eventsAbout(a))
}
