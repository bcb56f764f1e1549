package harness

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTrackerWaitsOnlyForPairsNotListedYet(t *testing.T) {
	tr := NewTracker()
	names := make([]string, 130) // past two words of bits per observer
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	for _, s := range names {
		tr.Up(names[0], s, time.Time{})
	}
	tr.Down(names[0], names[129], "connection_closed", time.Time{})

	w := tr.ExpectUp(names[:1], names)
	require.Equal(t, 1, w.Remaining(), "only the pair reported down since is still wanted")
	tr.Up(names[0], names[129], time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, ok, missing := w.Wait(ctx)
	require.True(t, ok, "the wait completes once the last pair is listed (%d missing)", missing)
	require.Equal(t, 0, w.Remaining())

	other := tr.ExpectUp(names[1:2], names[:2])
	require.Equal(t, 1, other.Remaining(), "another observer's pairs are its own")
}
