package membership

import (
	"testing"
	"time"
)

func TestDbgTicks(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 3)
	s.advance(5 * time.Second)
	n := nodes[1]
	for i := 0; i < 5; i++ {
		t.Log(n.core.wakeAt.Sub(s.now), n.core.seeds[0].nextDial.Sub(s.now), n.core.seeds[0].dial, n.core.connected)
		s.advance(300 * time.Millisecond)
	}
}
