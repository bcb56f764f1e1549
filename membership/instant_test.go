package membership

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestInstantKeepsEveryMomentAndTheZeroTime(t *testing.T) {
	start := time.Now() // with a monotonic reading, as a node's start has
	c := newCore(MustParseNodeID(simID("a", 4000)), 1, simConfig("a"), start, rand.New(rand.NewPCG(1, 2)), nil)
	require.Zero(t, c.instantOf(time.Time{}), "the zero time is the zero instant")
	require.True(t, c.at(0).IsZero(), "the zero instant is the zero time")
	for _, d := range []time.Duration{0, 1, time.Millisecond, 90 * time.Minute, -1, -time.Hour, -24 * 365 * time.Hour} {
		moment := start.Add(d)
		i := c.instantOf(moment)
		require.NotZero(t, i, "a moment %v from the start is an instant", d)
		require.True(t, c.at(i).Equal(moment), "a moment %v from the start comes back as it was", d)
		require.Equal(t, d, c.at(i).Sub(start), "the moment keeps its distance from the start on the monotonic clock")
	}
	require.Less(t, c.instantOf(start.Add(-time.Second)), c.instantOf(start), "instants order as their moments")
	require.Less(t, c.instantOf(start), c.instantOf(start.Add(time.Nanosecond)), "instants order as their moments")
}
