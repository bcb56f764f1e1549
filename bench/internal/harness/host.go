package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/membership"
)

// A system whose nodes need more sockets than one process may open (RLIMIT_NOFILE: ours opens
// a TCP connection per stream, one per pair in a full mesh, up to 2K per node above K+1) is
// spread over several host processes, each running a share of the nodes. The worker drives
// them over stdin/stdout (JSON lines); the hosts report up/down events with their wall-clock
// time, which the worker's tracker uses, so the measurements mean the same as in one process.

// eventFlushDelay is how long an event a host reports may wait in its buffer (events carry
// the time they happened).
const eventFlushDelay = 5 * time.Millisecond

// hostCmd is one command to a host.
type hostCmd struct {
	ID   int    `json:"id"`
	Op   string `json:"op"` // start, kill, freeze, leave, close, usage, traffic, fds, diag, trace-start, trace-stop
	Name string `json:"name,omitempty"`
	Seed string `json:"seed,omitempty"`
	GC   bool   `json:"gc,omitempty"`
}

// hostMsg is one line from a host: a reply to command ID, or an event (E set).
type hostMsg struct {
	ID      int      `json:"id,omitempty"`
	Err     string   `json:"err,omitempty"`
	Addr    string   `json:"addr,omitempty"`
	Usage   *Usage   `json:"usage,omitempty"`
	Traffic *Traffic `json:"traffic,omitempty"`
	FDs     int      `json:"fds,omitempty"`
	Text    string   `json:"text,omitempty"` // a diag's answer
	// Began is when the host began a kill, freeze, leave or close (Unix nanoseconds): the
	// fault's own time, which the command's trip over the pipe to a busy host may delay.
	Began int64 `json:"began,omitempty"`

	E string `json:"e,omitempty"` // "up" or "down"
	O string `json:"o,omitempty"`
	S string `json:"s,omitempty"`
	R string `json:"r,omitempty"`
	T int64  `json:"t,omitempty"`
	D int64  `json:"d,omitempty"` // when the observer's node decided (the event's time)
}

// RunHost serves one host process: it runs the nodes it is told to start on system/profile.
//
// BENCH_HOST_CPUPROFILE=prefix (diagnostics) profiles the host's whole life (or
// BENCH_HOST_CPUPROFILE_FOR of it, a duration, from its start or from its age
// BENCH_HOST_CPUPROFILE_FROM) into prefix.<pid>,
// writes its allocations (heap profile) into prefix.<pid>.heap when it ends, and its live heap
// into prefix.<pid>.inuse whenever usage is measured after a GC (the steady window).
// BENCH_HOST_STEADYPROFILE=prefix profiles only the steady window (from the first traffic
// sample to the second) into prefix.<pid>.steady, and writes the allocations so far at both
// ends into prefix.<pid>.allocs1 and .allocs2 (pprof -base tells the window's own, give or take
// one GC cycle: an allocation profile is as of the last completed collection).
// BENCH_HOST_PROFILE=prefix with BENCH_HOST_PROFILE_EVERY=d profiles the host's life in
// windows of d (profileEvery).
func RunHost(system, profile string, in io.Reader, out io.Writer) error {
	if prefix := os.Getenv("BENCH_HOST_CPUPROFILE"); prefix != "" {
		if f, err := os.Create(fmt.Sprintf("%s.%d", prefix, os.Getpid())); err == nil {
			var once sync.Once
			stop := func() { once.Do(func() { pprof.StopCPUProfile(); _ = f.Close() }) }
			defer stop()
			start := func() {
				_ = pprof.StartCPUProfile(f)
				if d, err := time.ParseDuration(os.Getenv("BENCH_HOST_CPUPROFILE_FOR")); err == nil {
					time.AfterFunc(d, stop) // only d of the host's life
				}
			}
			if at, err := time.ParseDuration(os.Getenv("BENCH_HOST_CPUPROFILE_FROM")); err == nil {
				time.AfterFunc(at, start) // from that age of the host on
			} else {
				start()
			}
		}
		defer func() {
			if f, err := os.Create(fmt.Sprintf("%s.%d.heap", prefix, os.Getpid())); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				_ = f.Close()
			}
		}()
	}
	if at, err := time.ParseDuration(os.Getenv("BENCH_HOST_GOROUTINES_AT")); err == nil && os.Getenv("BENCH_HOST_CPUPROFILE") != "" {
		// diagnostics: a dump of every goroutine, and the mutex contention so far, at that
		// age of the host
		runtime.SetMutexProfileFraction(10)
		time.AfterFunc(at, func() {
			if f, err := os.Create(fmt.Sprintf("%s.%d.mutex", os.Getenv("BENCH_HOST_CPUPROFILE"), os.Getpid())); err == nil {
				_ = pprof.Lookup("mutex").WriteTo(f, 0)
				_ = f.Close()
			}
			if f, err := os.Create(fmt.Sprintf("%s.%d.goroutines", os.Getenv("BENCH_HOST_CPUPROFILE"), os.Getpid())); err == nil {
				_ = pprof.Lookup("goroutine").WriteTo(f, 1)
				_ = f.Close()
			}
		})
	}
	if d, err := time.ParseDuration(os.Getenv("BENCH_HOST_PROFILE_EVERY")); err == nil && os.Getenv("BENCH_HOST_PROFILE") != "" {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() { defer close(done); profileEvery(os.Getenv("BENCH_HOST_PROFILE"), d, stop) }()
		defer func() { close(stop); <-done }()
	}
	if os.Getenv("BENCH_DIAG") == "1" {
		stop := make(chan struct{})
		defer close(stop)
		go reportSchedLatency(os.Stderr, 5*time.Second, stop)
	}
	var steadyProfile steadyProfiler
	defer steadyProfile.stop()
	w := bufio.NewWriterSize(out, 64<<10)
	var mu sync.Mutex
	flushPending := false
	flush := func() {
		mu.Lock()
		_ = w.Flush()
		flushPending = false
		mu.Unlock()
	}
	// A reply goes out at once; events, which carry their own time, within eventFlushDelay:
	// a formation of a thousand nodes reports a million events, and one write each cost
	// the host (and the nodes it runs) more CPU than the events themselves.
	send := func(m hostMsg) {
		b, _ := json.Marshal(m)
		mu.Lock()
		defer mu.Unlock()
		_, _ = w.Write(append(b, '\n'))
		switch {
		case m.E == "":
			_ = w.Flush()
		case !flushPending:
			flushPending = true
			time.AfterFunc(eventFlushDelay, flush)
		}
	}
	defer flush()
	sink := hostSink{send}
	sys := NewSystem(system, Profiles[profile], sink)
	var nmu sync.Mutex
	nodes := map[string]Node{}
	node := func(name string) Node {
		nmu.Lock()
		defer nmu.Unlock()
		return nodes[name]
	}
	var wg sync.WaitGroup
	var faultTrace processTrace
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var c hostCmd
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			continue
		}
		wg.Go(func() {
			r := hostMsg{ID: c.ID}
			switch c.Op {
			case "start":
				n, err := sys.Start(context.Background(), c.Name, c.Seed)
				if err != nil {
					r.Err = err.Error()
				} else {
					nmu.Lock()
					nodes[c.Name] = n
					nmu.Unlock()
					r.Addr = n.Addr()
				}
			case "kill", "freeze", "leave", "close":
				n := node(c.Name)
				if n == nil {
					r.Err = "no node " + c.Name
					break
				}
				r.Began = time.Now().UnixNano()
				map[string]func(){"kill": n.Kill, "freeze": n.Freeze, "leave": n.Leave, "close": n.Close}[c.Op]()
			case "usage":
				u := sys.Usage(c.GC)
				r.Usage = &u
				if prefix := os.Getenv("BENCH_HOST_CPUPROFILE"); prefix != "" && c.GC {
					// The live heap after the steady window, as the usage just measured it.
					if f, err := os.Create(fmt.Sprintf("%s.%d.inuse", prefix, os.Getpid())); err == nil {
						_ = pprof.Lookup("heap").WriteTo(f, 0)
						_ = f.Close()
					}
				}
			case "diag":
				if d, ok := node(c.Name).(Diagnoser); ok {
					r.Text = d.Diag()
				}
			case "fds":
				r.FDs = countFDs()
			case "trace-start":
				if err := faultTrace.start(c.Name); err != nil {
					r.Err = err.Error()
				}
			case "trace-stop":
				faultTrace.stop()
			case "traffic":
				t := sys.Traffic()
				r.Traffic = &t
				steadyProfile.toggle()
			}
			send(r)
		})
	}
	wg.Wait()
	return sc.Err()
}

type hostSink struct{ send func(hostMsg) }

func (s hostSink) Up(obs, subj string, decided time.Time) {
	s.send(hostMsg{E: "up", O: obs, S: subj, T: time.Now().UnixNano(), D: unixNano(decided)})
}
func (s hostSink) Down(obs, subj, reason string, decided time.Time) {
	s.send(hostMsg{E: "down", O: obs, S: subj, R: reason, T: time.Now().UnixNano(), D: unixNano(decided)})
}

// unixNano is t in nanoseconds since the epoch, zero for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// timeOfUnixNano is the inverse of unixNano.
func timeOfUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// host is the worker's end of one host process.
type host struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	nextID  int
	pending map[int]chan hostMsg
}

// remoteSystem spreads the nodes of a system over host processes, round robin.
type remoteSystem struct {
	name  string
	local System // for Describe only
	hosts []*host
	mu    sync.Mutex
	where map[string]*host
	count int
}

// newRemoteSystem starts procs host processes (this executable with -host).
func newRemoteSystem(o Options, tr *Tracker, procs int) (*remoteSystem, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	rs := &remoteSystem{name: o.System, local: NewSystem(o.System, Profiles[o.Profile], tr), where: map[string]*host{}}
	// Each host keeps Go's own GOMAXPROCS (one per core), as a node's process would and as
	// the one process of memberlist's nodes does. Given a share of the cores each (one of
	// two), a host that had work waited while the other's core idled, and its runtime
	// polled the network only between the timers and channel hand-offs of its 512 nodes:
	// 1,024 nodes never finished forming (scheduling waits of seconds at the 90th
	// percentile); with both cores each, they formed in 78 s.
	for range procs {
		cmd := exec.Command(exe, "-host", "-system", o.System, "-profile", o.Profile)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		h := &host{cmd: cmd, stdin: stdin, pending: map[int]chan hostMsg{}}
		go h.read(stdout, tr)
		rs.hosts = append(rs.hosts, h)
	}
	return rs, nil
}

func (h *host) read(r io.Reader, tr *Tracker) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m hostMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		switch m.E {
		case "up":
			tr.UpAt(m.O, m.S, time.Unix(0, m.T), timeOfUnixNano(m.D))
			continue
		case "down":
			tr.DownAt(m.O, m.S, m.R, time.Unix(0, m.T), timeOfUnixNano(m.D))
			continue
		}
		h.mu.Lock()
		ch := h.pending[m.ID]
		delete(h.pending, m.ID)
		h.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	h.mu.Lock()
	for id, ch := range h.pending {
		ch <- hostMsg{ID: id, Err: "host exited"}
		delete(h.pending, id)
	}
	h.mu.Unlock()
}

func (h *host) call(c hostCmd) hostMsg {
	ch := make(chan hostMsg, 1)
	h.mu.Lock()
	h.nextID++
	c.ID = h.nextID
	h.pending[c.ID] = ch
	b, _ := json.Marshal(c)
	_, err := h.stdin.Write(append(b, '\n'))
	h.mu.Unlock()
	if err != nil {
		return hostMsg{Err: err.Error()}
	}
	return <-ch
}

func (rs *remoteSystem) Name() string             { return rs.name }
func (rs *remoteSystem) Describe() map[string]any { return rs.local.Describe() }

func (rs *remoteSystem) Start(_ context.Context, name, seed string) (Node, error) {
	rs.mu.Lock()
	h := rs.hosts[rs.count%len(rs.hosts)]
	rs.count++
	rs.where[name] = h
	rs.mu.Unlock()
	r := h.call(hostCmd{Op: "start", Name: name, Seed: seed})
	if r.Err != "" {
		return nil, fmt.Errorf("%s", r.Err)
	}
	return &remoteNode{name: name, addr: r.Addr, h: h}, nil
}

func (rs *remoteSystem) Traffic() Traffic {
	var t Traffic
	for _, h := range rs.hosts {
		if r := h.call(hostCmd{Op: "traffic"}); r.Traffic != nil {
			t.Payload += r.Traffic.Payload
			t.Wire += r.Traffic.Wire
			t.Sockets += r.Traffic.Sockets
		}
	}
	return t
}

// FDs returns the most file descriptors any host process holds.
func (rs *remoteSystem) FDs() int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	most := 0
	for _, h := range rs.hosts {
		wg.Go(func() {
			n := h.call(hostCmd{Op: "fds"}).FDs
			mu.Lock()
			most = max(most, n)
			mu.Unlock()
		})
	}
	wg.Wait()
	return most
}

func (rs *remoteSystem) Usage(gc bool) Usage {
	var u Usage
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range rs.hosts {
		wg.Go(func() {
			if r := h.call(hostCmd{Op: "usage", GC: gc}); r.Usage != nil {
				mu.Lock()
				u = u.Add(*r.Usage)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return u
}

// Close ends every host process.
func (rs *remoteSystem) Close() {
	for _, h := range rs.hosts {
		_ = h.stdin.Close()
	}
	for _, h := range rs.hosts {
		done := make(chan struct{})
		go func() { _ = h.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = h.cmd.Process.Kill()
			<-done
		}
	}
}

type remoteNode struct {
	name, addr string
	h          *host
	began      atomic.Int64 // when the host began the node's last fault (hostMsg.Began)
}

func (n *remoteNode) Name() string { return n.name }
func (n *remoteNode) Addr() string { return n.addr }
func (n *remoteNode) Kill()        { n.act("kill") }
func (n *remoteNode) Freeze()      { n.act("freeze") }
func (n *remoteNode) Leave()       { n.act("leave") }
func (n *remoteNode) Close()       { n.act("close") }

// act has the host carry out fault op on the node, and keeps when the host began it.
func (n *remoteNode) act(op string) {
	if r := n.h.call(hostCmd{Op: op, Name: n.name}); r.Began != 0 {
		n.began.Store(r.Began)
	}
}

// FaultBegan returns when the host began the node's last fault (zero if none).
func (n *remoteNode) FaultBegan() time.Time {
	if b := n.began.Load(); b != 0 {
		return time.Unix(0, b)
	}
	return time.Time{}
}
func (n *remoteNode) Diag() string { return n.h.call(hostCmd{Op: "diag", Name: n.name}).Text }

// socketsPerProcessBudget is how many peer sockets one process is given: three quarters of
// this machine's RLIMIT_NOFILE (20000), the rest for the dials of a formation in flight and
// for the process's own files. Every extra process costs CPU (hosting 256 nodes over 2
// processes cost 0.0019 CPU-s/s per node, in one 0.0014: more runtimes' schedulers and
// timers on the same 2 cores), so the nodes are spread over as few as the sockets allow.
const socketsPerProcessBudget = 15000

// hostProcesses returns how many processes the nodes of o need: 1 unless the system opens a
// socket per stream end (ours) and its sockets exceed the budget. In a full mesh (up to K+1
// nodes) a node counts N−1 sockets (two per pair); above, it has at most 2K streams, two
// sockets each shared by two nodes, and is counted 2K and a quarter more for a formation's
// dials (the peak measured at 512 nodes was 23 sockets per node, K = 10).
func hostProcesses(o Options) int {
	if o.Processes > 0 {
		return o.Processes
	}
	if o.System != "meshnode" {
		return 1
	}
	n := o.N + 1 // the joiner
	perNode := n - 1
	if k := membership.DefaultConfig().Monitors; k > 0 && n > k+1 {
		perNode = min(perNode, 2*k+2*k/4)
	}
	socks := n * perNode
	return (socks + socketsPerProcessBudget - 1) / socketsPerProcessBudget
}

// newSystemFor returns the system of o: in this process, or over host processes.
func newSystemFor(o Options, tr *Tracker) (System, error) {
	if p := hostProcesses(o); p > 1 {
		return newRemoteSystem(o, tr, p)
	}
	return NewSystem(o.System, Profiles[o.Profile], tr), nil
}

// steadyProfiler profiles the steady window of a host when BENCH_HOST_STEADYPROFILE is set:
// the first traffic sample starts the CPU profile, the second stops it.
type steadyProfiler struct {
	mu      sync.Mutex
	samples int
	f       *os.File
}

func (p *steadyProfiler) toggle() {
	prefix := os.Getenv("BENCH_HOST_STEADYPROFILE")
	if prefix == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.samples++
	if f, err := os.Create(fmt.Sprintf("%s.%d.allocs%d", prefix, os.Getpid(), p.samples)); err == nil {
		_ = pprof.Lookup("allocs").WriteTo(f, 0)
		_ = f.Close()
	}
	switch p.samples {
	case 1:
		if f, err := os.Create(fmt.Sprintf("%s.%d.steady", prefix, os.Getpid())); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				p.f = f
			} else {
				_ = f.Close()
			}
		}
	case 2:
		p.stopLocked()
	}
}

func (p *steadyProfiler) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
}

func (p *steadyProfiler) stopLocked() {
	if p.f != nil {
		pprof.StopCPUProfile()
		_ = p.f.Close()
		p.f = nil
	}
}
