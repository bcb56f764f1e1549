package membership

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCoreStarvedNodeReportsNoStaleUps(t *testing.T) {
	// c runs for an instant every few seconds, often longer than the 3 s timeout: its peers
	// time it out and cut it off again and again, and c works through a stale backlog each
	// time it runs (hellos and heartbeats of streams its peers have already closed). c must not
	// blame healthy peers: each down it reports is the echo of a peer cutting it off
	// (connection_closed, after that peer reported c down since c last reported it up). Once c
	// runs normally again, the mesh comes back by itself.
	starveInTurns(t, (*sim).feed, 4*time.Second, 3200*time.Millisecond, 5*time.Second, 1100*time.Millisecond, 4400*time.Millisecond, 700*time.Millisecond)
}

func TestCoreStarvedNodeWithItsTimerOnTimeReportsNoStaleUps(t *testing.T) {
	// As above, but after each long stall c gets the CPU back exactly when its hold on ups is
	// due to end: that wake-up is on time, and the backlog comes right after it. One on-time
	// wake-up must not end the hold.
	s, nodes, c, start := starvedCluster(t)
	for s.now.Sub(start) < time.Minute {
		s.advance(4 * time.Second) // long enough for the peers to cut c off
		s.feed(c)
		for s.now.Before(c.core.stalledUntil) {
			s.step()
		}
		s.feedTimerFirst(c)
	}
	s.feed(c)
	c.starved = false
	requireOnlyEchoes(t, s, nodes, c, start)
}

// starvedCluster forms a 4-node cluster and starts starving its last node c; start is when
// the starvation began.
func starvedCluster(t *testing.T) (s *sim, nodes []*simNode, c *simNode, start time.Time) {
	s = newSim(t)
	nodes = newCluster(s, 4)
	c = nodes[3]
	s.advance(3 * time.Second)
	c.starved = true
	return s, nodes, c, s.now
}

// requireOnlyEchoes checks what the starved node c reported since start: each down is the echo
// of a peer cutting it off (connection_closed, after that peer reported c down since c last
// reported it up), and once c runs normally again the mesh comes back by itself.
func requireOnlyEchoes(t *testing.T, s *sim, nodes []*simNode, c *simNode, start time.Time) {
	t.Helper()
	s.advanceUntil(10*time.Second, func() bool { return s.fullMesh(nodes...) }, "the mesh should return once c runs on time")

	cuts := map[NodeID][]time.Duration{} // each peer's downs of c, since the starvation began
	for _, p := range nodes {
		if p == c {
			continue
		}
		for _, e := range p.eventsSince(0) {
			if e.Type == EventNodeDown && e.Node.ID == c.id {
				require.Equal(t, ReasonHeartbeatTimeout, e.Reason, "%s saw c go silent: %v", p.id, p.eventsAbout(c))
				cuts[p.id] = append(cuts[p.id], e.Time.Sub(start))
			}
		}
		require.NotEmpty(t, cuts[p.id], "%s should have timed the starved node out", p.id)
	}
	lastUp := map[NodeID]time.Time{}
	echoes := 0
	for _, e := range c.eventsSince(0) {
		switch {
		case e.Type == EventNodeUp:
			lastUp[e.Node.ID] = e.Time
		case e.Type == EventNodeDown && e.Time.After(start):
			cut := false
			for _, at := range cuts[e.Node.ID] {
				cut = cut || at > lastUp[e.Node.ID].Sub(start) && at <= e.Time.Sub(start)
			}
			require.True(t, e.Reason == ReasonConnectionClosed && cut,
				"c reported %s down (%s) at %v, last up at %v, but that peer had not cut c off since (its downs of c: %v); c's events: %v",
				e.Node.ID, e.Reason, e.Time.Sub(start), lastUp[e.Node.ID].Sub(start), cuts[e.Node.ID], c.eventsAboutID(e.Node.ID))
			echoes++
		}
	}
	require.NotZero(t, echoes, "c should have seen its peers cut it off")
	for _, n := range nodes {
		requireAlternating(t, n)
	}
}

func TestCoreStarvedNodeThatHandlesAMessageBeforeItsLateTimerBlamesNobody(t *testing.T) {
	// c runs about once a second, each time only long enough for one message of its backlog
	// and then its timer, which is late: it falls further behind its peers' heartbeats at
	// each run. The message handled first must not make the late timer look on time: a
	// silence suspected before the stall would then be confirmed while the silent peer's
	// heartbeats wait in the backlog, and c would blame a healthy peer (heartbeat_timeout), as
	// a node starved of CPU once did in the chaos suite.
	starveInTurns(t, (*sim).feedBriefly, 1000*time.Millisecond, 1100*time.Millisecond, 900*time.Millisecond, 4000*time.Millisecond, 1300*time.Millisecond, 1000*time.Millisecond)
}

// starveInTurns starves the last node c of a 4-node cluster for a minute, letting it run with
// feed after each of gaps in turn, then feeds it fully, lets it run normally and checks that
// it blamed nobody (requireOnlyEchoes).
func starveInTurns(t *testing.T, feed func(*sim, *simNode), gaps ...time.Duration) {
	s, nodes, c, start := starvedCluster(t)
	for i := 0; s.now.Sub(start) < time.Minute; i++ {
		s.advance(gaps[i%len(gaps)])
		feed(s, c)
	}
	s.feed(c)
	c.starved = false
	requireOnlyEchoes(t, s, nodes, c, start)
}
