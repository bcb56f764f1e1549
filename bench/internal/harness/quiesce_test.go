package harness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeCPU is a cluster whose CPU use per quiesceSample follows rates (CPU-s/s), then stays
// at the last one, on a clock that moves only when slept on.
type fakeCPU struct {
	now   time.Time
	used  float64
	rates []float64
}

func (f *fakeCPU) cpu() float64     { return f.used }
func (f *fakeCPU) clock() time.Time { return f.now }
func (f *fakeCPU) sleep(d time.Duration) {
	rate := f.rates[0]
	if len(f.rates) > 1 {
		f.rates = f.rates[1:]
	}
	f.used += rate * d.Seconds()
	f.now = f.now.Add(d)
}

func TestWaitQuietWaitsUntilTheCPUStopsFalling(t *testing.T) {
	f := &fakeCPU{now: time.Unix(0, 0), rates: []float64{1.8, 1.4, 0.9, 0.66, 0.65, 0.66}}
	waited := waitQuiet(f.cpu, f.sleep, f.clock)
	require.Equal(t, 5*quiesceSample, waited,
		"a formation's tail falls 1.8, 1.4, 0.9, 0.66 CPU-s/s; the wait should end at the first sample no lower than 90 %% of the one before (0.65)")
}

func TestWaitQuietTakesTwoSamplesOfASteadyCluster(t *testing.T) {
	f := &fakeCPU{now: time.Unix(0, 0), rates: []float64{0.3}}
	require.Equal(t, 2*quiesceSample, waitQuiet(f.cpu, f.sleep, f.clock),
		"a cluster already steady should be measured after two samples")
}

func TestWaitQuietGivesUpAfterItsCap(t *testing.T) {
	rates := []float64{}
	for r := 2.0; len(rates) < 100; r *= 0.8 {
		rates = append(rates, r) // falls by a fifth every sample, for ever
	}
	f := &fakeCPU{now: time.Unix(0, 0), rates: rates}
	require.Equal(t, quiesceMax, waitQuiet(f.cpu, f.sleep, f.clock),
		"a cluster that keeps calming down should be measured after quiesceMax at the latest")
}
