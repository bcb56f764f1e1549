package patience

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAfterDoublesUpToMax(t *testing.T) {
	for failed, want := range map[int]time.Duration{-1: 1, 0: 1, 1: 2, 2: 4, 3: Max, 64: Max} {
		require.Equal(t, want, After(failed), "patience after %d failed handshakes", failed)
	}
}

func TestAdaptiveWaitsLongerAfterTimeoutsUntilAHandshakeIsPrompt(t *testing.T) {
	const base = 5 * time.Second
	var a Adaptive
	require.Equal(t, base, a.Timeout(base), "no handshake timed out yet: the usual timeout")
	a.TimedOut()
	require.Equal(t, 2*base, a.Timeout(base), "one timed out: twice as long")
	a.TimedOut()
	a.TimedOut()
	require.Equal(t, Max*base, a.Timeout(base), "at most Max times as long")
	a.Finished(3*time.Second, base)
	require.Equal(t, Max*base, a.Timeout(base), "a handshake that took more than half the usual timeout shows the machine is still slow")
	a.Finished(time.Second, base)
	require.Equal(t, base, a.Timeout(base), "a prompt handshake brings the usual timeout back")
}

func TestAdaptiveIsSafeForConcurrentUse(t *testing.T) {
	var a Adaptive
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				a.TimedOut()
				_ = a.Timeout(time.Second)
			}
		})
	}
	wg.Wait()
	require.Equal(t, Max*time.Second, a.Timeout(time.Second))
	require.EqualValues(t, 30, a.timedOut.Load(), "the count stops at 30")
}
