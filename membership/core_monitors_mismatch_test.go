package membership

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// monitorsWarnings returns the warnings n logged about a peer whose K differs.
func (n *simNode) monitorsWarnings() []string {
	return n.warningsAmong("refused a node whose monitors (K) differs; every node of a cluster needs the same",
		"refused the node dialled: its monitors (K) differs; every node of a cluster needs the same",
		"a node refused the stream: its monitors (K) differs; every node of a cluster needs the same")
}

func monitorsConfig(k int, name string, seeds ...string) *Config {
	cfg := simConfig(name, seeds...)
	cfg.Monitors = k
	return cfg
}

// A node started with another K than the cluster's is refused at the handshake, with one
// warning a minute on each side however often it redials, and never joins: nodes that
// computed different rings would each wait, for a failure, on alerts from observers the
// other kind of node does not have. The cluster itself goes on deciding failures.
func TestCoreMonitorsMismatchIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name         string
		mine, theirs int
	}{
		{"overlay against another overlay", 4, 10},
		{"overlay against a full mesh at any size", 4, 0},
		{"full mesh at any size against an overlay", 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t)
			var nodes []*simNode
			for i := range 7 {
				var seeds []string
				if i > 0 {
					seeds = []string{"127.0.0.1:4000"}
				}
				nodes = append(nodes, s.add(simID(fmt.Sprintf("n%d", i), 4000+i), monitorsConfig(tc.mine, fmt.Sprintf("n%d", i), seeds...)))
			}
			s.advanceUntil(20*time.Second, func() bool { return s.fullMesh(nodes...) || everyNodeKnowsAll(nodes) },
				"nodes with the same K should form")

			x := s.add(simID("x", 4100), monitorsConfig(tc.theirs, "x", "127.0.0.1:4000"))
			s.advance(150 * time.Second)
			require.Empty(t, x.connectedIDs(), "x joins nothing")
			for _, n := range nodes {
				require.NotContains(t, n.knownIDs(), x.id.String(), "%s should not take in a node of another K", n.id)
			}
			require.Len(t, nodes[0].monitorsWarnings(), 3, "the seed says so once a minute, not once per dial")
			requireRefusedBySeed(t, x, x.monitorsWarnings(),
				"a node refused the stream: its monitors (K) differs; every node of a cluster needs the same", "monitors")

			// A crash in the cluster is decided by every node of it.
			victim := nodes[3]
			victim.crash()
			s.advanceUntil(30*time.Second, func() bool {
				for _, n := range nodes {
					if n != victim && len(n.eventsAbout(victim)) != 2 { // its up, then its down
						return false
					}
				}
				return true
			}, "every node of the cluster should report the crashed %s down", victim.id)
		})
	}
}

// everyNodeKnowsAll reports whether every node of nodes holds every other connected (the
// overlay's way of being formed: connected through the cluster, not by a stream each).
func everyNodeKnowsAll(nodes []*simNode) bool {
	for _, n := range nodes {
		if len(n.connectedIDs()) != len(nodes)-1 {
			return false
		}
	}
	return true
}

// A dialler checks the K in the accepting side's hello too (a node that does not check it,
// as an older one): it refuses the stream, says so once, and takes nothing into its table.
func TestCoreMonitorsCheckedByTheDiallerToo(t *testing.T) {
	x, rejected, warned := helloToDialler(t, monitorsConfig(4, "x", "127.0.0.1:4000"), monitorsConfig(10, "a"), func(*Hello) {})
	require.NotNil(t, rejected)
	require.Equal(t, RejectMonitors, rejected.Reason)
	require.Equal(t, "monitors 4 here, 10 in the hello", rejected.Detail)
	require.Equal(t, []string{"refused the node dialled: its monitors (K) differs; every node of a cluster needs the same"}, warned)
	require.Zero(t, x.connected)
	require.Zero(t, x.members.len(), "the refused node is not in the table")
}

// A hello that does not say its K (a node that predates the field) is not checked: the
// stream goes through.
func TestCoreMonitorsUnsaidIsNotChecked(t *testing.T) {
	x, rejected, warned := helloToDialler(t, monitorsConfig(4, "x", "127.0.0.1:4000"), monitorsConfig(10, "a"),
		func(h *Hello) { h.Monitors, h.MonitorsSaid = 0, false })
	require.Nil(t, rejected, "no refusal")
	require.Empty(t, warned)
	require.Equal(t, 1, x.members.len(), "the seed is in the table")
}
