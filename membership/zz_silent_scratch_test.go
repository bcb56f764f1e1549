package membership

import (
	"testing"
	"time"
)

func TestScratchSilentDecision(t *testing.T) {
	for _, k := range []int{10} {
		s, nodes := overlayCluster(t, 32, k)
		victim := nodes[29]
		var rest []*simNode
		for _, n := range nodes {
			if n != victim {
				rest = append(rest, n)
			}
		}
		t0 := s.now
		s.partition([]*simNode{victim}, rest, true)
		took := s.advanceUntil(20*time.Second, func() bool {
			for _, n := range rest {
				if !n.core.members[victim.id].isDown() {
					return false
				}
			}
			return true
		}, "down everywhere")
		_ = t0
		t.Logf("K=%d observers=%d: down everywhere after %s", k, len(topoOf(nodes, k).observers(victim.id)), took)
	}
}
