package harness

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime/metrics"
	"slices"
	"time"
)

// reportSchedLatency (diagnostics, BENCH_DIAG=1) writes to w, every period until stop is
// closed, how long the host's goroutines waited runnable before they ran in that period
// (the runtime's /sched/latencies histogram): on a machine the formation saturates, this is
// the delay every step of a handshake pays.
func reportSchedLatency(w io.Writer, period time.Duration, stop <-chan struct{}) {
	samples := []metrics.Sample{{Name: "/sched/latencies:seconds"}, {Name: "/sched/goroutines:goroutines"}}
	metrics.Read(samples)
	// Read reuses a histogram's memory: keep a copy of the previous counts.
	prev := slices.Clone(samples[0].Value.Float64Histogram().Counts)
	start := time.Now()
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
		metrics.Read(samples)
		cur := samples[0].Value.Float64Histogram()
		counts := make([]uint64, len(cur.Counts))
		var total uint64
		for i := range cur.Counts {
			counts[i] = cur.Counts[i] - prev[i]
			total += counts[i]
		}
		prev = slices.Clone(cur.Counts)
		q := func(p float64) string {
			if total == 0 {
				return "-"
			}
			want := uint64(math.Ceil(p * float64(total)))
			var seen uint64
			for i, n := range counts {
				seen += n
				if seen >= want {
					if math.IsInf(cur.Buckets[i+1], 1) {
						return fmt.Sprintf("> %s", time.Duration(cur.Buckets[i]*float64(time.Second)))
					}
					return fmt.Sprint(time.Duration(cur.Buckets[i+1] * float64(time.Second)).Round(10 * time.Microsecond))
				}
			}
			return "-"
		}
		fmt.Fprintf(w, "host %d %5.1fs: %d goroutines, %d runs; waited runnable p50 %s p90 %s p99 %s p99.9 %s\n",
			os.Getpid(), time.Since(start).Seconds(), samples[1].Value.Uint64(), total, q(0.5), q(0.9), q(0.99), q(0.999))
		if os.Getenv("BENCH_COUNT_LOGS") != "" {
			fmt.Fprintf(w, "host %d logs: %s\n", os.Getpid(), logCounts.since())
		}
	}
}
