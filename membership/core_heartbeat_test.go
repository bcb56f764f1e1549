package membership

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCoreHeartbeatsComeOncePerIntervalEachWay(t *testing.T) {
	// Each direction of every stream carries one heartbeat per interval on average, however
	// a wake-up groups them, and none comes later than maxBeatGap after the one before.
	s := newSim(t)
	nodes := newCluster(s, 8)
	s.advance(10 * time.Second)
	interval := nodes[0].cfg.HeartbeatInterval
	maxGap := nodes[0].core.maxBeatGap()
	from := s.now
	const window = 100 * time.Second
	s.advance(window)
	intervals := int(window / interval)
	for _, n := range nodes {
		for _, peer := range nodes {
			if peer == n {
				continue
			}
			var times []time.Time
			for _, m := range n.sent {
				if m.to == peer && m.msg.Heartbeat != nil && !m.at.Before(from) {
					times = append(times, m.at)
				}
			}
			require.LessOrEqual(t, len(times), intervals+intervals/50,
				"%s → %s: %d heartbeats in %v, want about one per interval (%v)", n.id, peer.id, len(times), window, interval)
			require.GreaterOrEqual(t, len(times), intervals-intervals/20,
				"%s → %s: %d heartbeats in %v, want about one per interval (%v)", n.id, peer.id, len(times), window, interval)
			for i := 1; i < len(times); i++ {
				require.LessOrEqual(t, times[i].Sub(times[i-1]), maxGap,
					"%s → %s: heartbeat %d came %v after the one before (at most %v)", n.id, peer.id, i, times[i].Sub(times[i-1]), maxGap)
			}
		}
	}
}
