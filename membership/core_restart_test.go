package membership

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireRestartSeen asserts every watcher saw old go down with reason and the new incarnation
// come up, nothing more, and lists it connected with the new incarnation.
func requireRestartSeen(t *testing.T, watchers []*simNode, fresh *simNode, reason DownReason) {
	t.Helper()
	for _, n := range watchers {
		require.Equal(t, []string{"up " + fresh.id.String(), "down " + fresh.id.String() + " " + reason.String(), "up " + fresh.id.String()},
			n.eventsAbout(fresh), "%s should see the old incarnation down (%s), then the new one up", n.id, reason)
		info, ok := n.info(fresh)
		require.True(t, ok)
		require.Equal(t, fresh.core.incarnation, info.Incarnation, "%s should list the new incarnation", n.id)
		require.Equal(t, StatusConnected, info.Status)
	}
}

func TestCoreRestartAfterCrashIsDownThenUp(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 4)
	s.advance(2 * time.Second)
	old := nodes[3]
	old.crash()
	s.advance(time.Second)
	fresh := old.restart()
	s.advance(2 * time.Second)
	s.requireFullMesh(nodes[0], nodes[1], nodes[2], fresh)
	require.NotEqual(t, old.core.incarnation, fresh.core.incarnation)
	requireRestartSeen(t, nodes[:3], fresh, ReasonConnectionClosed)
	s.advance(30 * time.Second)
	requireRestartSeen(t, nodes[:3], fresh, ReasonConnectionClosed)
	requireOneUpEach(t, fresh, []*simNode{nodes[0], nodes[1], nodes[2], fresh})
}

func TestCoreRestartWithoutSeedsIsFoundByRedials(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 4)
	s.advance(2 * time.Second)
	old := nodes[2] // node02: seeded, but the restart below has no seeds
	old.crash()
	s.advance(3 * time.Second)
	old.cfg = old.cfg.Clone()
	old.cfg.Seeds = nil
	fresh := old.restart()
	s.advanceUntil(old.cfg.ReconnectMaxDelay+time.Second, func() bool { return s.fullMesh(nodes[0], nodes[1], fresh, nodes[3]) },
		"the peers' redials should reach the restarted node")
	s.advance(10 * time.Second)
	requireRestartSeen(t, []*simNode{nodes[0], nodes[1], nodes[3]}, fresh, ReasonConnectionClosed)
}

func TestCoreUnnoticedRestartReplacesOldIncarnationAtOnce(t *testing.T) {
	for _, name := range []string{"aaa", "zzz"} { // the restarted node dials first, or is dialled first
		t.Run(name, func(t *testing.T) {
			s := newSim(t)
			nodes := newCluster(s, 4)
			old := s.add(simID(name, 4100), simConfig(name, "127.0.0.1:4001"))
			s.advance(3 * time.Second)
			all := append(nodes, old)
			s.requireFullMesh(all...)

			old.frozen = true // the peers have not noticed anything yet
			fresh := old.restart()
			// No time passes: the new incarnation's handshake replaces the old one at once.
			s.requireFullMesh(append(nodes, fresh)...)
			requireRestartSeen(t, nodes, fresh, ReasonConnectionClosed)
			s.advance(30 * time.Second)
			s.requireFullMesh(append(nodes, fresh)...)
			requireRestartSeen(t, nodes, fresh, ReasonConnectionClosed)
			requireOneUpEach(t, fresh, append(nodes, fresh))
		})
	}
}

func TestCoreUnnoticedRestartWithoutSeedsTimesOutThenRejoins(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 3)
	s.advance(3 * time.Second)
	old := nodes[2]
	old.frozen = true
	old.cfg = old.cfg.Clone()
	old.cfg.Seeds = nil
	fresh := old.restart()
	s.advanceUntil(10*time.Second, func() bool { return s.fullMesh(nodes[0], nodes[1], fresh) },
		"the peers should time out the old incarnation and redial the new one")
	s.advance(10 * time.Second)
	requireRestartSeen(t, nodes[:2], fresh, ReasonHeartbeatTimeout)
}

func TestCoreRestartAfterGracefulStopRejoins(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 4)
	s.advance(2 * time.Second)
	old := nodes[3]
	old.stop()
	s.advance(5 * time.Second)
	fresh := old.restart()
	s.advance(2 * time.Second)
	s.requireFullMesh(nodes[0], nodes[1], nodes[2], fresh)
	requireRestartSeen(t, nodes[:3], fresh, ReasonGracefulShutdown)
	s.advance(30 * time.Second)
	requireRestartSeen(t, nodes[:3], fresh, ReasonGracefulShutdown)
}
