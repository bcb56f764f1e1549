package harness

import "time"

// After a formation, the cluster is still busy with it for a while: at 1,024 nodes on two
// cores, the last joiners' neighbours dial them, streams the settled overlay no longer needs
// are unlinked, and the late heartbeats of the formation are still being answered, for 5 to
// 15 s after every node listed every other. A steady window or a join that starts then
// measures that tail, not the steady state or its own news (the rule scenarioGap keeps
// between scenarios). quiesce waits for it to be over, for every system alike.

const (
	// quiesceSample is how long each sample of the cluster's CPU use lasts.
	quiesceSample = 2 * time.Second
	// quiesceFall is how much lower than the sample before a sample must be for the
	// cluster to count as still calming down.
	quiesceFall = 0.9
	// quiesceMax caps the wait.
	quiesceMax = time.Minute
)

// quiesce waits until the cluster's CPU use stops falling (waitQuiet) and returns how long
// it waited.
func (w *worker) quiesce() time.Duration {
	return waitQuiet(func() float64 { return w.sys.Usage(false).CPUSeconds }, time.Sleep, time.Now)
}

// waitQuiet samples cpu (CPU-seconds used so far) every quiesceSample until a sample's rate
// is at least quiesceFall of the one before, at most quiesceMax, and returns how long that
// took: two samples for a cluster that was already steady.
func waitQuiet(cpu func() float64, sleep func(time.Duration), now func() time.Time) time.Duration {
	start := now()
	c0, t0 := cpu(), now()
	prev := -1.0
	for now().Sub(start) < quiesceMax {
		sleep(quiesceSample)
		c1, t1 := cpu(), now()
		rate := (c1 - c0) / t1.Sub(t0).Seconds()
		if prev >= 0 && rate >= quiesceFall*prev {
			break
		}
		prev, c0, t0 = rate, c1, t1
	}
	return now().Sub(start)
}
