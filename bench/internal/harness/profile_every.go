package harness

import (
	"fmt"
	"os"
	"runtime/pprof"
	"time"
)

// profileEvery (diagnostics, BENCH_HOST_PROFILE_EVERY=d with BENCH_HOST_PROFILE=prefix) cuts
// a host's life into windows of d: each window's CPU profile goes to prefix.<pid>.cpu<i>, and
// the heap profile at its end (live objects as of the last collection, and every allocation
// so far) to prefix.<pid>.heap<i>. A failure that comes late and in one try of several (a
// formation that storms) is then caught in whichever window it came, without knowing when.
// With BENCH_HOST_PROFILE_NOHEAP set, only the CPU profiles are written (a heap profile of a
// large host takes long enough to disturb windows of a few seconds).
func profileEvery(prefix string, d time.Duration, stop <-chan struct{}) {
	heap := os.Getenv("BENCH_HOST_PROFILE_NOHEAP") == ""
	for i := 1; ; i++ {
		f, err := os.Create(fmt.Sprintf("%s.%d.cpu%d", prefix, os.Getpid(), i))
		if err != nil {
			return
		}
		if pprof.StartCPUProfile(f) != nil {
			_ = f.Close()
			return
		}
		select {
		case <-stop:
		case <-time.After(d):
		}
		pprof.StopCPUProfile()
		_ = f.Close()
		if heap {
			writeHeapProfile(fmt.Sprintf("%s.%d.heap%d", prefix, os.Getpid(), i))
		}
		select {
		case <-stop:
			return
		default:
		}
	}
}

// writeHeapProfile writes the heap profile to path (diagnostics: errors are ignored).
func writeHeapProfile(path string) {
	if h, err := os.Create(path); err == nil {
		_ = pprof.Lookup("heap").WriteTo(h, 0)
		_ = h.Close()
	}
}
