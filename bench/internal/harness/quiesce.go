package harness

import "time"

// After a formation, the cluster is still busy with it for a while: at 1,024 nodes on two
// cores, the last joiners' neighbours dial them, streams the settled overlay no longer needs
// are unlinked, and the late heartbeats of the formation are still being answered, for 5 to
// 15 s after every node listed every other. A steady window or a join that starts then
// measures that tail, not the steady state or its own news (the rule scenarioGap keeps
// between scenarios). quiesce waits for it to be over, for every system alike: for the CPU
// use to stop falling, and for the open sockets to stop changing. A tail can keep the CPU
// flat while the overlay still rearranges its streams: one steady window at 1,024 nodes saw
// 200 of 21,500 sockets close within it, and measured 3.7 KB/s a node where settled windows
// measure 1.6.

const (
	// quiesceSample is how long each sample of the cluster's CPU use lasts.
	quiesceSample = 2 * time.Second
	// quiesceFall is how much lower than the sample before a sample must be for the
	// cluster to count as still calming down.
	quiesceFall = 0.9
	// quiesceFDShare is the change of the open descriptors between two samples, as a
	// share of them, within which the cluster counts as no longer opening or closing
	// streams (1 in quiesceFDShare).
	quiesceFDShare = 1000
	// quiesceMax caps the wait.
	quiesceMax = time.Minute
)

// quiesce waits until the cluster's CPU use stops falling and its open descriptors stop
// changing (waitQuiet), and returns how long it waited.
func (w *worker) quiesce() time.Duration {
	return waitQuiet(func() (float64, int) {
		u := w.sys.Usage(false)
		return u.CPUSeconds, u.FDs
	}, time.Sleep, time.Now)
}

// waitQuiet samples usage (CPU-seconds used so far, descriptors open) every quiesceSample
// until a sample's CPU rate is at least quiesceFall of the one before and the descriptors
// changed by at most one in quiesceFDShare since the sample before, at most quiesceMax, and
// returns how long that took: two samples for a cluster that was already steady.
func waitQuiet(usage func() (cpu float64, fds int), sleep func(time.Duration), now func() time.Time) time.Duration {
	start := now()
	c0, fd0 := usage()
	t0 := now()
	prev := -1.0
	for now().Sub(start) < quiesceMax {
		sleep(quiesceSample)
		c1, fd1 := usage()
		t1 := now()
		rate := (c1 - c0) / t1.Sub(t0).Seconds()
		settled := abs(fd1-fd0)*quiesceFDShare <= fd1
		if prev >= 0 && rate >= quiesceFall*prev && settled {
			break
		}
		prev, c0, fd0, t0 = rate, c1, fd1, t1
	}
	return now().Sub(start)
}

// abs returns |x|.
func abs(x int) int { return max(x, -x) }
