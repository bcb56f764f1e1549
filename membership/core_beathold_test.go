package membership

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestOverlayHeartbeatsWaitWhileACrashsNewsGoesRound: the nodes that hear of a crash hold the
// heartbeats that come due for a while, so that the news goes first (a quarter of the
// interval at a threshold of two, half at three; none at one, where a late heartbeat is a
// silence); none goes later than that, no live node is reported down, and the lateness the
// held heartbeats show widens no node's allowance for a silence.
func TestOverlayHeartbeatsWaitWhileACrashsNewsGoesRound(t *testing.T) {
	const k = 4
	for _, tc := range []struct {
		threshold int
		hold      time.Duration
	}{{1, 0}, {2, 250 * time.Millisecond}, {3, 500 * time.Millisecond}} {
		t.Run(fmt.Sprintf("threshold=%d", tc.threshold), func(t *testing.T) {
			s := newSim(t)
			nodes := newClusterWith(s, 40, func(cfg *Config) { cfg.Monitors, cfg.HeartbeatMissThreshold = k, tc.threshold })
			s.advanceUntil(60*time.Second, func() bool { return s.fullMesh(nodes...) }, "40 nodes with K=%d should converge", k)
			s.advance(5 * time.Second)
			require.Equal(t, tc.hold, nodes[0].core.maxBeatHold(), "the longest a heartbeat waits for news at 1 s × %d", tc.threshold)

			victim := nodes[17]
			survivors := slices.DeleteFunc(slices.Clone(nodes), func(n *simNode) bool { return n == victim })
			before, after := topoOf(nodes, k), topoOf(survivors, k)
			crashAt := s.now
			victim.crash()
			s.advance(5 * time.Second)

			// The heartbeats each node owed an observer it kept: how late each came, and how
			// many went while the news was going round, against the same part of the interval
			// before (heartbeats keep their phase from one interval to the next).
			window, interval := max(tc.hold, 250*time.Millisecond), nodes[0].cfg.HeartbeatInterval
			during, earlier := 0, 0
			for _, n := range survivors {
				most := n.core.maxBeatGap() + tc.hold + 10*time.Millisecond // a simulator step
				for _, o := range survivors {
					if o == n || !before.isObserver(o.id, n.id) || !after.isObserver(o.id, n.id) {
						continue
					}
					beats := heartbeatTimes(n, o, crashAt.Add(-2*time.Second), crashAt.Add(2*time.Second))
					for i := 1; i < len(beats); i++ {
						require.LessOrEqual(t, beats[i].Sub(beats[i-1]), most,
							"%s → %s, its observer: heartbeats at most %v apart around the crash", n.id, o.id, most)
					}
					for _, at := range beats {
						switch {
						case at.After(crashAt) && at.Before(crashAt.Add(window)):
							during++
						case at.After(crashAt.Add(-interval)) && at.Before(crashAt.Add(window-interval)):
							earlier++
						}
					}
				}
			}
			require.Greater(t, earlier, 10, "heartbeats to observers go out all the time at rest")
			if tc.hold == 0 {
				require.Greater(t, during*2, earlier, "at a threshold of one no heartbeat waits for news (%d in the %v after the crash, %d before)", during, window, earlier)
			} else {
				require.Less(t, during*4, earlier, "heartbeats wait while the crash's news goes round (%d in the %v after the crash, %d before)", during, window, earlier)
			}

			for _, n := range survivors {
				require.Equal(t, []string{"up " + victim.id.String(), "down " + victim.id.String() + " connection_closed"},
					n.eventsAbout(victim), "%s should report the crash once", n.id)
				for _, o := range survivors {
					if o != n {
						require.Equal(t, []string{"up " + o.id.String()}, n.eventsAbout(o), "%s: no down for %s, which never failed", n.id, o.id)
					}
				}
				require.Less(t, n.core.lateWorstOf(), 100*time.Millisecond,
					"%s: the held heartbeats' lateness is forgiven, so the silence it allows its peers stays as it was", n.id)
			}
		})
	}
}

// heartbeatTimes returns when n sent peer a heartbeat, from from until until.
func heartbeatTimes(n, peer *simNode, from, until time.Time) []time.Time {
	var at []time.Time
	for _, m := range n.sent {
		if m.to == peer && m.msg.Heartbeat != nil && !m.at.Before(from) && m.at.Before(until) {
			at = append(at, m.at)
		}
	}
	return at
}
