package harness

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Record is one measurement: one scenario of one trial of one system. It is one JSON line.
type Record struct {
	Run      string `json:"run,omitempty"`
	Label    string `json:"label,omitempty"`
	Time     string `json:"time"`
	System   string `json:"system"`
	Profile  string `json:"profile"`
	N        int    `json:"n"`
	Trial    int    `json:"trial"`
	Scenario string `json:"scenario"`
	// Seconds is the time until every observer saw the change (time scenarios).
	Seconds float64 `json:"seconds,omitempty"`
	// OK is false when the scenario did not complete within its cap.
	OK bool `json:"ok"`
	// Stalled: a formation that took longer than 30 s (or never completed).
	Stalled bool `json:"stalled,omitempty"`
	// Missing is how many (observer, subject) pairs were still missing at the cap.
	Missing     int            `json:"missing,omitempty"`
	MissingList []string       `json:"missing_sample,omitempty"`
	Observers   int            `json:"observers,omitempty"`
	FalseDowns  int            `json:"false_downs"`
	Reasons     map[string]int `json:"reasons,omitempty"`
	Metrics     map[string]any `json:"metrics,omitempty"`
	Error       string         `json:"error,omitempty"`
}

// Options drive one worker: one system, one profile, one N, one trial.
type Options struct {
	System, Profile string
	N, Trial        int
	// Scenarios is "all" (formation, steady, join, leave, crash, silent), "formation", or
	// "silent" (diagnostics: formation, steady and silent, so that the silent failure comes
	// after the steady window rather than 2 s after a crash's burst of news).
	Scenarios string
	// Steady is the steady-state window; 0 skips it.
	Steady time.Duration
	// StallAfter marks a formation stalled (30 s); FormationGrace waits this much longer to
	// tell a late formation from one that never completes.
	StallAfter, FormationGrace time.Duration
	// FailureCap bounds crash, silent and leave waits.
	FailureCap time.Duration
	// FormationAttempts is how many all-at-once formations a full trial tries (each one
	// recorded) before it grows a cluster in waves for the other scenarios; 0 counts as 1.
	FormationAttempts int
	// CPUProfile and MemProfile, when set, profile the steady-state window;
	// FormationCPUProfile the formation.
	CPUProfile, MemProfile, FormationCPUProfile string
	// FaultCPUProfile, when set, is the path prefix of a CPU profile of each fault scenario
	// (leave, crash, silent), from the fault until every observer saw it: <prefix>.<scenario>.pprof.
	FaultCPUProfile string
	// Processes forces the number of host processes (0: one, unless sockets do not fit).
	Processes int
	// Emit receives each record.
	Emit func(Record)
}

type worker struct {
	o      Options
	prefix string // of node names: "n", or "g" for a cluster grown in waves
	tr     *Tracker
	sys    System
	nodes  map[string]Node
	alive  []string
	// attempt numbers the all-at-once formations of the trial (Options.FormationAttempts).
	attempt int
	// quiet is how long the cluster took to calm down after it formed (quiesce).
	quiet time.Duration
}

func (w *worker) name(i int) string { return fmt.Sprintf("%s%d", w.prefix, i) }

// RunWorker runs the scenarios of o and emits one record per measurement.
func RunWorker(o Options) error {
	w := &worker{o: o, prefix: "n", attempt: 1, tr: NewTracker(), nodes: map[string]Node{}}
	sys, err := newSystemFor(o, w.tr)
	if err != nil {
		return err
	}
	w.sys = sys
	debug.FreeOSMemory()
	base := w.sys.Usage(true)
	defer w.teardown()

	started, converged := false, false
	if o.Scenarios != "grown" { // "grown" (diagnostics) skips the all-at-once formation
		started, converged = w.formation()
	}
	if o.Scenarios == "formation" {
		return nil
	}
	for attempt := 2; o.Scenarios != "grown" && !converged && attempt <= o.FormationAttempts; attempt++ {
		// A fresh cluster under new names: the old one's nodes, and what is said of them,
		// no longer count.
		w.discard()
		w.prefix, w.attempt = fmt.Sprintf("a%dn", attempt), attempt
		started, converged = w.formation()
	}
	if !started || !converged {
		// The other scenarios need a converged cluster: build one in waves.
		if !w.regrow() {
			return nil
		}
	}
	w.quiet = w.quiesce()
	finishSteady := func() {}
	if o.Steady > 0 {
		finishSteady = w.steady(base)
	} else {
		time.Sleep(scenarioGap) // as after every scenario: the join times its own news
	}
	if o.Scenarios != "silent" {
		// BENCH_EVENT_ROUNDS=r (diagnostics): r rounds of join, leave and crash in the one
		// formed cluster, each with nodes of its own, for comparisons that need many samples.
		rounds := 1
		if r, err := strconv.Atoi(os.Getenv("BENCH_EVENT_ROUNDS")); err == nil && r > 1 {
			rounds = min(r, (o.N-3)/3)
		}
		for i := range rounds {
			w.join(w.name(o.N + i))
			w.fault("leave", w.name(o.N-1-3*i), Node.Leave)
			w.fault("crash", w.name(o.N-2-3*i), Node.Kill)
		}
	}
	w.fault("silent", w.name(o.N-3), Node.Freeze)
	finishSteady()
	return nil
}

func (w *worker) record(scenario string) Record {
	return Record{
		Time: time.Now().UTC().Format(time.RFC3339Nano), System: w.sys.Name(), Profile: w.o.Profile,
		N: w.o.N, Trial: w.o.Trial, Scenario: scenario,
	}
}

func (w *worker) startNode(ctx context.Context, nm, seed string) error {
	n, err := w.sys.Start(ctx, nm, seed)
	if err != nil {
		return fmt.Errorf("start %s: %w", nm, err)
	}
	w.nodes[nm] = n
	return nil
}

// formation starts N nodes at once, each joining through node 0, and waits until every node
// lists all N. It reports whether all N started and whether they converged.
func (w *worker) formation() (allStarted, converged bool) {
	N := w.o.N
	names := make([]string, N)
	for i := range names {
		names[i] = w.name(i)
	}
	wait := w.tr.ExpectUp(names, names)
	rec := w.record("formation")
	rec.Observers = N
	ctx := context.Background()
	u0 := w.sys.Usage(false)
	fd0 := w.tr.FalseDowns() // an earlier attempt's count no longer counts
	peak := startFDSampler(w.sys)
	defer func() { peak.stop() }()
	if w.o.FormationCPUProfile != "" {
		if f, err := os.Create(w.o.FormationCPUProfile); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
		}
	}
	t0 := time.Now()
	if err := w.startNode(ctx, names[0], ""); err != nil {
		rec.Error = err.Error()
		w.o.Emit(rec)
		return false, false
	}
	seed := w.nodes[names[0]].Addr()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []string
	started := make([]Node, N)
	first := 1
	// BENCH_FORMATION_SEEDS=s (diagnostics): the first s nodes start one after another, and
	// the others join through all of them, as when a deployment lists several seeds.
	if s, err := strconv.Atoi(os.Getenv("BENCH_FORMATION_SEEDS")); err == nil && s > 1 {
		seeds := []string{seed}
		for ; first < min(s, N); first++ {
			n, err := w.sys.Start(ctx, names[first], seed)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			started[first] = n
			seeds = append(seeds, n.Addr())
		}
		seed = strings.Join(seeds, ",")
	}
	for i := first; i < N; i++ {
		wg.Go(func() {
			n, err := w.sys.Start(ctx, names[i], seed)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			started[i] = n
		})
	}
	if os.Getenv("BENCH_DIAG") != "" {
		// progress every 5 s on stderr: pairs still missing, false downs so far
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tk := time.NewTicker(5 * time.Second)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
					fmt.Fprintf(os.Stderr, "formation %5.1fs: %d pairs missing, %d false downs; %s\n  %s\n",
						time.Since(t0).Seconds(), wait.Remaining(), w.tr.FalseDowns(), wait.Spreadout(), w.tr.DownSummary())
					if since := time.Since(t0); since > 40*time.Second && int(since.Seconds())%20 < 5 {
						// the nodes that still know fewer than half: what they know of their seeds
						for _, name := range wait.Blind(3) {
							i := slices.Index(names, name)
							if i < 0 {
								continue
							}
							mu.Lock()
							n := started[i]
							mu.Unlock()
							if d, ok := n.(Diagnoser); ok {
								fmt.Fprintf(os.Stderr, "  %s: %s\n", name, d.Diag())
							}
						}
					}
				}
			}
		}()
	}
	capCtx, cancel := context.WithDeadline(ctx, t0.Add(w.o.StallAfter))
	at, ok, missing := wait.Wait(capCtx)
	cancel()
	if !ok {
		rec.Stalled = true
		rec.MissingList = wait.Missing(5)
		if w.o.FormationGrace > 0 {
			graceCtx, cancel := context.WithTimeout(ctx, w.o.FormationGrace)
			at, ok, missing = wait.Wait(graceCtx)
			cancel()
		}
	}
	wg.Wait()
	for i := 1; i < N; i++ {
		if started[i] != nil {
			w.nodes[names[i]] = started[i]
		}
	}
	w.alive = names
	rec.OK = ok
	rec.Missing = missing
	if ok {
		rec.Seconds = at.Sub(t0).Seconds()
	}
	if len(errs) > 0 {
		rec.Error = fmt.Sprintf("%d start errors, first: %s", len(errs), errs[0])
	}
	rec.FalseDowns = w.tr.FalseDowns() - fd0
	u := w.sys.Usage(false)
	rec.Metrics = map[string]any{"peak_fds": peak.stop(), "fds_after": u.FDs, "fd_limit_per_process": fdLimit(),
		"processes": u.Processes, "cpu_s": u.CPUSeconds - u0.CPUSeconds, "attempt": w.attempt}
	if os.Getenv("BENCH_DIAG") != "" {
		rec.Metrics["dials"] = u.Dials - u0.Dials
		rec.Metrics["pairs"] = N * (N - 1) / 2
	}
	w.o.Emit(rec)
	return len(errs) == 0 && len(w.nodes) == N, ok
}

// regrow replaces a cluster whose all-at-once formation did not converge with one grown in
// waves of 16 nodes, each wave converged before the next starts, so that the other
// scenarios can still be measured. It emits a "setup" record saying how that went.
func (w *worker) regrow() bool {
	rec := w.record("setup")
	if len(w.nodes) == 0 {
		rec.Scenario = "grown"
	}
	w.discard()
	w.prefix = "g"
	N := w.o.N
	const wave = 16
	ctx := context.Background()
	t0 := time.Now()
	fd0 := w.tr.FalseDowns()
	var all []string
	for from := 0; from < N; from += wave {
		to := min(from+wave, N)
		var names []string
		for i := from; i < to; i++ {
			names = append(names, w.name(i))
		}
		all = append(all, names...)
		wait := w.tr.ExpectUp(all, all)
		var mu sync.Mutex
		var wg sync.WaitGroup
		var errs []string
		for _, nm := range names {
			seed := ""
			if nm != w.name(0) {
				seed = w.nodes[w.name(0)].Addr()
			}
			start := func() {
				n, err := w.sys.Start(ctx, nm, seed)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err.Error())
					return
				}
				w.nodes[nm] = n
			}
			if seed == "" {
				start() // node 0 first: the others need its address
				continue
			}
			wg.Go(start)
		}
		wg.Wait()
		waveCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, ok, missing := wait.Wait(waveCtx)
		cancel()
		if !ok || len(errs) > 0 {
			rec.Error = fmt.Sprintf("wave %d–%d did not converge: %d pairs missing %v, %d start errors %v",
				from, to-1, missing, wait.Missing(5), len(errs), errs)
			rec.Seconds = time.Since(t0).Seconds()
			rec.FalseDowns = w.tr.FalseDowns() - fd0
			w.o.Emit(rec)
			return false
		}
	}
	w.alive = all
	rec.OK = true
	rec.Seconds = time.Since(t0).Seconds()
	rec.FalseDowns = w.tr.FalseDowns() - fd0
	rec.Metrics = map[string]any{"wave": wave}
	w.o.Emit(rec)
	return true
}

// discard closes every node of the cluster; what they say, and what is said of them, no
// longer counts.
func (w *worker) discard() {
	for nm := range w.nodes {
		w.tr.MarkVictim(nm)
	}
	w.closeNodes()
	w.nodes = map[string]Node{}
	w.alive = nil
	time.Sleep(2 * time.Second) // let the old sockets go
}

// steady measures a converged, idle cluster for the window, and returns what completes the
// window's record: the memory in use after a forced garbage collection, taken once the
// trial's scenarios are over. A collection of a host's whole heap keeps its nodes' heartbeats
// waiting for up to a second, and a failure detector that widens its timeout after late
// heartbeats (meshnode's lateness allowance) remembers that for 10 to 20 s: taken right after
// the window, it made the silent failure that follows 0.4 to 0.5 s slower at 1,024 nodes.
func (w *worker) steady(base Usage) (finish func()) {
	time.Sleep(time.Second) // let the formation's gossip and grace dials settle
	N := float64(len(w.alive))
	rec := w.record("steady")
	rec.Observers = len(w.alive)
	fd0 := w.tr.FalseDowns()
	if w.o.MemProfile != "" {
		// A base for the heap profile below: what the window allocates is the difference
		// (pprof -base); a profile is as of the last collection, hence the collection here.
		runtime.GC()
		if f, err := os.Create(w.o.MemProfile + ".base"); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			_ = f.Close()
		}
	}
	if w.o.CPUProfile != "" {
		if f, err := os.Create(w.o.CPUProfile); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer f.Close()
		}
	}
	// The CPU window lies inside the traffic window: reading the counters of thousands of
	// sockets is the harness's work, not the system's.
	tr0, lo0, tt0 := w.sys.Traffic(), LoopbackTxBytes(), time.Now()
	u0, t0 := w.sys.Usage(false), time.Now()
	perSecond := w.sleepCountingFalseDowns(w.o.Steady)
	u1, t1 := w.sys.Usage(false), time.Now()
	tr1, lo1, tt1 := w.sys.Traffic(), LoopbackTxBytes(), time.Now()
	fd1 := w.tr.FalseDowns() // the window's own
	if w.o.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	secs, trafficSecs := t1.Sub(t0).Seconds(), tt1.Sub(tt0).Seconds()
	d := tr1.Sub(tr0)
	rec.OK = true
	rec.Seconds = secs
	rec.FalseDowns = fd1 - fd0
	rec.Metrics = map[string]any{
		"payload_bytes_per_node_s":    float64(d.Payload) / N / trafficSecs,
		"wire_bytes_per_node_s":       float64(d.Wire) / N / trafficSecs,
		"lo_bytes_per_node_s":         float64(lo1-lo0) / N / trafficSecs,
		"cpu_s_per_node_s":            (u1.CPUSeconds - u0.CPUSeconds) / N / secs,
		"rss_bytes_per_node":          float64(u1.RSS-base.RSS) / N,
		"rss_bytes_process":           u1.RSS,
		"sockets_start":               tr0.Sockets,
		"sockets_end":                 tr1.Sockets,
		"process_cpu_s_per_s":         (u1.CPUSeconds - u0.CPUSeconds) / secs,
		"process_payload_bytes_per_s": float64(d.Payload) / trafficSecs,
		"quiesce_s":                   w.quiet.Seconds(),
	}
	if os.Getenv("BENCH_DIAG") != "" {
		// Heartbeats sent per node per second.
		rec.Metrics["heartbeats_per_node_s"] = float64(u1.Heartbeats-u0.Heartbeats) / N / secs
		rec.Metrics["false_downs_per_second"] = perSecond
	}
	return func() {
		fdGC := w.tr.FalseDowns()
		mem := w.sys.Usage(true)
		if w.o.MemProfile != "" {
			if f, err := os.Create(w.o.MemProfile); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				_ = f.Close()
			}
			if f, err := os.Create(w.o.MemProfile + ".goroutines"); err == nil {
				_ = pprof.Lookup("goroutine").WriteTo(f, 1)
				_ = f.Close()
			}
		}
		settle := w.settle()
		rec.Metrics["rss_after_gc_bytes_per_node"] = float64(mem.RSS-base.RSS) / N
		rec.Metrics["heap_inuse_bytes_per_node"] = float64(mem.HeapInuse-base.HeapInuse) / N
		rec.Metrics["stack_inuse_bytes_per_node"] = float64(mem.StackInuse-base.StackInuse) / N
		rec.Metrics["goroutines_per_node"] = float64(mem.Goroutines-base.Goroutines) / N
		rec.Metrics["processes"] = mem.Processes
		rec.Metrics["fds"] = mem.FDs
		// With 64 nodes to a process the forced collection can stall them all at once: what it
		// causes is counted here.
		rec.Metrics["false_downs_after_window"] = w.tr.FalseDowns() - fdGC
		rec.Metrics["settle_s"] = settle.Seconds()
		w.o.Emit(rec)
	}
}

// sleepCountingFalseDowns sleeps for d and returns the false downs of each second of it.
func (w *worker) sleepCountingFalseDowns(d time.Duration) []int {
	var counts []int
	end := time.Now().Add(d)
	last := w.tr.FalseDowns()
	for left := time.Until(end); left > 0; left = time.Until(end) {
		time.Sleep(min(left, time.Second))
		now := w.tr.FalseDowns()
		counts = append(counts, now-last)
		last = now
	}
	return counts
}

// scenarioGap is how long a scenario waits after the one before it is seen by all: long
// enough for what follows that news (the streams rewired around a node that joined or left,
// the old streams' ends) to be over for both systems, so that each scenario times its own
// news and not the tail of the one before.
const scenarioGap = 2 * time.Second

// settle waits (at most a minute) until every live node lists every other one, and returns
// how long that took.
func (w *worker) settle() time.Duration {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w.tr.ExpectUp(w.alive, w.alive).Wait(ctx)
	return time.Since(start)
}

// join starts joiner through a member and waits until every member lists it.
func (w *worker) join(joiner string) {
	seedNode := w.nodes[w.name(1%w.o.N)]
	members := append([]string(nil), w.alive...)
	seen := w.tr.ExpectUp(members, []string{joiner})
	sees := w.tr.ExpectUp([]string{joiner}, members)
	rec := w.record("join")
	rec.Observers = len(members)
	fd0 := w.tr.FalseDowns()
	ctx := context.Background()
	t0 := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- w.startNode(ctx, joiner, seedNode.Addr()) }()
	capCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	at, ok, missing := seen.Wait(capCtx)
	at2, ok2, _ := sees.Wait(capCtx)
	if err := <-errc; err != nil {
		rec.Error = err.Error()
	}
	rec.OK, rec.Missing = ok, missing
	if ok {
		rec.Seconds = at.Sub(t0).Seconds()
	}
	rec.Metrics = map[string]any{"quiesce_s": w.quiet.Seconds()}
	if ok {
		rec.Metrics["observer_median_s"], rec.Metrics["observer_p90_s"], rec.Metrics["last_pair"] = seen.Spread(t0)
		rec.Metrics["last_decided_s"] = seen.Decided(t0)
	}
	if ok2 {
		rec.Metrics["joiner_sees_all_s"] = at2.Sub(t0).Seconds()
	}
	rec.FalseDowns = w.tr.FalseDowns() - fd0
	w.o.Emit(rec)
	w.alive = append(w.alive, joiner)
	time.Sleep(scenarioGap)
}

// fault applies act to victim and waits until every other live node reports it down.
func (w *worker) fault(scenario, victim string, act func(Node)) {
	n := w.nodes[victim]
	var others []string
	for _, a := range w.alive {
		if a != victim {
			others = append(others, a)
		}
	}
	w.tr.MarkVictim(victim)
	wait := w.tr.ExpectDown(others, []string{victim})
	rec := w.record(scenario)
	rec.Observers = len(others)
	fd0 := w.tr.FalseDowns()
	done := make(chan struct{})
	profiling := false
	if w.o.FaultCPUProfile != "" {
		if f, err := os.Create(w.o.FaultCPUProfile + "." + scenario + ".pprof"); err == nil {
			profiling = pprof.StartCPUProfile(f) == nil
			defer f.Close()
		}
	}
	stopTrace := func() {}
	if prefix := os.Getenv("BENCH_FAULT_TRACE"); prefix != "" {
		stopTrace = traceFault(w.sys, fmt.Sprintf("%s.%s.%d", prefix, scenario, time.Now().UnixMilli()))
	}
	t0 := time.Now()
	go func() { act(n); close(done) }()
	capCtx, cancel := context.WithTimeout(context.Background(), w.o.FailureCap)
	defer cancel()
	at, ok, missing := wait.Wait(capCtx)
	stopTrace()
	if profiling {
		pprof.StopCPUProfile()
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	// A node in a host process faults when its host gets to the command, not when the
	// worker sent it: the time is counted from then, as for memberlist's nodes, which run in
	// the worker and fault at once.
	asked := t0
	if ft, isRemote := n.(faultTimer); isRemote {
		if began := ft.FaultBegan(); began.After(t0) {
			t0 = began
		}
	}
	rec.OK, rec.Missing = ok, missing
	if ok {
		rec.Seconds = at.Sub(t0).Seconds()
		med, p90, last := wait.Spread(t0)
		rec.Metrics = map[string]any{"observer_median_s": med, "observer_p90_s": p90, "last_pair": last,
			"last_decided_s": wait.Decided(t0), "fault_delay_s": t0.Sub(asked).Seconds()}
		rec.Metrics["observer_first_s"], rec.Metrics["observer_p10_s"] = wait.Head(t0)
	} else {
		rec.MissingList = wait.Missing(5)
	}
	rec.Reasons = w.tr.Reasons(victim)
	rec.FalseDowns = w.tr.FalseDowns() - fd0
	w.o.Emit(rec)
	w.alive = others
	time.Sleep(scenarioGap)
}

func (w *worker) teardown() {
	w.tr.Close()
	if rs, ok := w.sys.(*remoteSystem); ok {
		// Host processes end with their nodes: closing 1,024 nodes one by one first took
		// minutes after the trial's last record, and the next trial starts with new hosts.
		rs.Close()
		return
	}
	w.closeNodes()
}

func (w *worker) closeNodes() {
	// Every node is frozen first, then closed: closed one after another, the ones still up
	// would see each crash and report it over the overlay, a storm of alerts that at 1,024
	// nodes kept two cores busy for minutes of teardown.
	for _, op := range []func(Node){Node.Freeze, Node.Close} {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for _, n := range w.nodes {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				op(n)
			})
		}
		wg.Wait()
	}
}
