package harness

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"sync"
)

// Execution traces of a fault (diagnostics, BENCH_FAULT_TRACE=prefix): every process that
// runs nodes writes a runtime execution trace from just before a fault until every node has
// seen it, to <prefix>.<scenario>.<pid>.trace. `go tool trace -pprof=sched FILE` then says
// where goroutines waited to run while the news spread. With BENCH_FAULT_CPU=1 each writes a
// CPU profile of the same span beside it (<prefix>.<scenario>.<pid>.cpu, read with
// `go tool pprof`; the profiles of several faults add up when given together).

// traceFault starts an execution trace in every process of sys's nodes (the host processes,
// or this one), named after prefix, and returns what stops them.
func traceFault(sys System, prefix string) (stop func()) {
	rs, remote := sys.(*remoteSystem)
	if !remote {
		var t processTrace
		if err := t.start(prefix); err != nil {
			fmt.Fprintln(os.Stderr, "fault trace:", err)
		}
		return t.stop
	}
	each := func(op string) {
		var wg sync.WaitGroup
		for _, h := range rs.hosts {
			wg.Go(func() {
				if r := h.call(hostCmd{Op: op, Name: prefix}); r.Err != "" {
					fmt.Fprintln(os.Stderr, "fault trace:", r.Err)
				}
			})
		}
		wg.Wait()
	}
	each("trace-start")
	return func() { each("trace-stop") }
}

// processTrace is the execution trace of this process, if one runs.
type processTrace struct {
	mu  sync.Mutex
	f   *os.File
	cpu *os.File // the CPU profile of the same span, if one was asked for (BENCH_FAULT_CPU)
}

// start starts tracing to <prefix>.<pid>.trace, and a CPU profile to <prefix>.<pid>.cpu if
// one is asked for (BENCH_FAULT_CPU).
func (t *processTrace) start(prefix string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f != nil {
		return fmt.Errorf("a trace already runs")
	}
	f, err := startWriting(prefix, "trace", trace.Start)
	if err != nil {
		return err
	}
	t.f = f
	if os.Getenv("BENCH_FAULT_CPU") != "" {
		if t.cpu, err = startWriting(prefix, "cpu", pprof.StartCPUProfile); err != nil {
			fmt.Fprintln(os.Stderr, "fault CPU profile:", err) // the trace runs on without it
		}
	}
	return nil
}

// startWriting creates <prefix>.<pid>.<ext> and starts begin writing to it; the file is
// closed again if begin fails.
func startWriting(prefix, ext string, begin func(io.Writer) error) (*os.File, error) {
	f, err := os.Create(fmt.Sprintf("%s.%d.%s", prefix, os.Getpid(), ext))
	if err != nil {
		return nil, err
	}
	if err := begin(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// stop stops the trace, if one runs.
func (t *processTrace) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return
	}
	if t.cpu != nil {
		pprof.StopCPUProfile()
		_ = t.cpu.Close()
		t.cpu = nil
	}
	trace.Stop()
	_ = t.f.Close()
	t.f = nil
}
