package harness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeCPU is a cluster whose CPU use per quiesceSample follows rates (CPU-s/s), and whose
// open descriptors follow fds, each then staying at its last value, on a clock that moves
// only when slept on.
type fakeCPU struct {
	now   time.Time
	used  float64
	rates []float64
	fds   []int
}

func (f *fakeCPU) usage() (float64, int) {
	if len(f.fds) == 0 {
		return f.used, 21000
	}
	return f.used, f.fds[0]
}
func (f *fakeCPU) clock() time.Time { return f.now }
func (f *fakeCPU) sleep(d time.Duration) {
	rate := f.rates[0]
	if len(f.rates) > 1 {
		f.rates = f.rates[1:]
	}
	if len(f.fds) > 1 {
		f.fds = f.fds[1:]
	}
	f.used += rate * d.Seconds()
	f.now = f.now.Add(d)
}

func TestWaitQuietWaitsUntilTheCPUStopsFalling(t *testing.T) {
	f := &fakeCPU{now: time.Unix(0, 0), rates: []float64{1.8, 1.4, 0.9, 0.66, 0.65, 0.66}}
	waited := waitQuiet(f.usage, f.sleep, f.clock)
	require.Equal(t, 5*quiesceSample, waited,
		"a formation's tail falls 1.8, 1.4, 0.9, 0.66 CPU-s/s; the wait should end at the first sample no lower than 90 %% of the one before (0.65)")
}

func TestWaitQuietTakesTwoSamplesOfASteadyCluster(t *testing.T) {
	f := &fakeCPU{now: time.Unix(0, 0), rates: []float64{0.3}}
	require.Equal(t, 2*quiesceSample, waitQuiet(f.usage, f.sleep, f.clock),
		"a cluster already steady should be measured after two samples")
}

func TestWaitQuietGivesUpAfterItsCap(t *testing.T) {
	rates := []float64{}
	for r := 2.0; len(rates) < 100; r *= 0.8 {
		rates = append(rates, r) // falls by a fifth every sample, for ever
	}
	f := &fakeCPU{now: time.Unix(0, 0), rates: rates}
	require.Equal(t, quiesceMax, waitQuiet(f.usage, f.sleep, f.clock),
		"a cluster that keeps calming down should be measured after quiesceMax at the latest")
}

func TestWaitQuietWaitsUntilTheStreamsStopChanging(t *testing.T) {
	// The CPU is flat from the start, while the overlay still closes streams it no longer
	// needs: 21,520 descriptors, then 40 fewer every sample, then none.
	f := &fakeCPU{now: time.Unix(0, 0), rates: []float64{1.1}, fds: []int{21520, 21480, 21440, 21400, 21360, 21322, 21322}}
	require.Equal(t, 6*quiesceSample, waitQuiet(f.usage, f.sleep, f.clock),
		"the wait should end at the first sample whose descriptors changed by at most one in %d since the one before", quiesceFDShare)
}
