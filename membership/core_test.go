package membership

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSimThreeNodeExampleGossipOnlyDiscovery(t *testing.T) {
	s := newSim(t)
	seed1 := s.add("seed1@127.0.0.1:4001", nil)
	worker1 := s.add("worker1@127.0.0.1:4002", simConfig("worker1", "127.0.0.1:4001"))
	worker2 := s.add("worker2@127.0.0.1:4003", simConfig("worker2", "127.0.0.1:4002"))
	s.advance(2 * time.Second)
	s.requireFullMesh(seed1, worker1, worker2)
	require.Equal(t, []string{"up " + worker1.id.String()}, seed1.eventsAbout(worker1))
	require.Equal(t, []string{"up " + seed1.id.String()}, worker2.eventsAbout(seed1))
}
