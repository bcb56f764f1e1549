package resolverbench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshnode/meshnode/client"
	"github.com/meshnode/meshnode/examples/resolver/echo"
)

// Options configure one run.
type Options struct {
	// Exe is the benchmark binary, run with -backend for every backend process.
	Exe string
	// Interval and Threshold are the nodes' heartbeat settings.
	Interval  time.Duration
	Threshold int
	// Every is the period of each client's calls; Deadline each call's deadline.
	Every, Deadline time.Duration
	// DrainDelay is the pause a leaving backend makes between leaving the membership and
	// draining its application server.
	DrainDelay time.Duration
	// Settle is how long each phase lasts after its change (the freeze's lasts
	// Interval × Threshold + Interval longer).
	Settle time.Duration
	// Trial numbers the run.
	Trial int
	// Log receives progress lines.
	Log io.Writer
}

// Modes are the three resolvers compared, in report order.
var Modes = []string{"meshnode", "static", "dns"}

// Changes are the changes of a run, in order, with the backend each affects.
var Changes = []struct{ Kind, Backend string }{
	{"kill", "b1"}, {"freeze", "b2"}, {"leave", "b3"}, {"join", "b6"},
}

// Trial is the outcome of one run.
type Trial struct {
	// Trial numbers the run.
	Trial int `json:"trial"`
	// Targets are the three channels' targets, by mode.
	Targets map[string]string `json:"targets"`
	// Changes are when each change happened, seconds since the calls started.
	Changes []ChangeAt `json:"changes"`
	// Modes are the measurements of each channel.
	Modes []ModeResult `json:"modes"`
	// DNSQueries counts the A queries the dns:/// channel made.
	DNSQueries int `json:"dns_queries"`
	// BinSeconds is the width of the timeline bins.
	BinSeconds float64 `json:"bin_s"`
	// EndSeconds is when the calls stopped.
	EndSeconds float64 `json:"end_s"`
}

// ChangeAt is one change of the backends.
type ChangeAt struct {
	// Kind is kill, freeze, leave or join.
	Kind string `json:"kind"`
	// Backend is the backend changed.
	Backend string `json:"backend"`
	// At is when, in seconds since the calls started.
	At float64 `json:"at_s"`
}

// ModeResult is what one channel saw.
type ModeResult struct {
	// Mode is meshnode, static or dns.
	Mode string `json:"mode"`
	// Calls and Failed count the channel's calls and its failed ones.
	Calls  int `json:"calls"`
	Failed int `json:"failed"`
	// Outcomes are per change, in the order of Changes.
	Outcomes []Outcome `json:"outcomes"`
	// Served counts calls per backend and 100 ms bin (by start time); Failures counts
	// failed calls per bin.
	Served   map[string][]int `json:"served"`
	Failures []int            `json:"failures"`
}

// Outcome is how a channel's traffic followed one change.
type Outcome struct {
	// Kind and Backend name the change.
	Kind    string `json:"kind"`
	Backend string `json:"backend"`
	// Failed counts the failed calls due to the change: those sent to the backend after it,
	// and those in its phase that reached no backend at all.
	Failed int `json:"failed"`
	// Follow is, for a backend going away, the time from the change to the last call sent
	// to it; for a joining one, to the first call it served. Seconds.
	Follow float64 `json:"follow_s"`
	// Followed is false when the traffic had not followed by the end of the phase: calls
	// were still sent to the backend gone (within the last 0.5 s), or the new one had
	// served none.
	Followed bool `json:"followed"`
	// Phase is how long the phase lasted, seconds.
	Phase float64 `json:"phase_s"`
}

// backendProc is one backend process.
type backendProc struct {
	name   string
	ip     string
	cmd    *exec.Cmd
	ready  Ready
	exited chan struct{}
}

// call is one call of a channel.
type call struct {
	start   time.Duration // since the calls started
	backend string        // who served it, or, for a failed call, whose connection it took ("" none)
	failed  bool
}

// channel is one client's channel and its calls.
type channel struct {
	mode   string
	target string
	cc     *grpc.ClientConn
	mu     sync.Mutex
	calls  []call
}

// Run runs one trial: a seed node and five backends (b1–b5), three channels calling them
// every Every, then b1 SIGKILLed, b2 SIGSTOPped, b3 leaving gracefully (SIGTERM) and b6
// joining, one after the other.
func Run(o Options) (*Trial, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(o.Log, "resolverbench: "+format+"\n", args...) }
	appPort, err := freePort()
	if err != nil {
		return nil, err
	}
	var procs []*backendProc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	start := func(name, ip string, app bool, seed string) (*backendProc, error) {
		port := 0
		if app {
			port = appPort
		}
		p, err := startBackend(o, name, ip, port, seed)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		return p, nil
	}
	seed, err := start("seed", "127.0.0.10", false, "")
	if err != nil {
		return nil, err
	}
	backends := map[string]*backendProc{}
	for i := 1; i <= 5; i++ {
		name := "b" + strconv.Itoa(i)
		p, err := start(name, "127.0.0."+strconv.Itoa(10+i), true, seed.ready.Membership)
		if err != nil {
			return nil, err
		}
		backends[name] = p
	}
	if err := waitConnected(seed.ready.Membership, 5, 20*time.Second); err != nil {
		return nil, err
	}
	ipOf := map[string]string{}
	for name, p := range backends {
		ipOf[p.ip] = name
	}
	ipOf["127.0.0.16"] = "b6"
	liveIPs := func() []string {
		var ips []string
		for _, p := range backends {
			ips = append(ips, p.ip)
		}
		slices.Sort(ips)
		return ips
	}

	dnsSrv, err := startDNS("backends.meshbench.test")
	if err != nil {
		return nil, err
	}
	defer dnsSrv.close()
	dnsSrv.set(liveIPs())

	static := manual.NewBuilderWithScheme("static")
	var staticAddrs []resolver.Address
	for _, ip := range liveIPs() {
		staticAddrs = append(staticAddrs, resolver.Address{Addr: net.JoinHostPort(ip, strconv.Itoa(appPort))})
	}
	static.InitialState(resolver.State{Addresses: staticAddrs})
	port := strconv.Itoa(appPort)
	targets := map[string]string{
		"meshnode": "meshnode:///" + seed.ready.Membership + "," + backends["b4"].ready.Membership + "?metadata.role=api&port=" + port,
		"static":   "static:///backends",
		"dns":      "dns://" + dnsSrv.addr() + "/backends.meshbench.test:" + port,
	}
	var chans []*channel
	for _, mode := range Modes {
		opts := []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(client.RoundRobinServiceConfig),
		}
		if mode == "static" {
			opts = append(opts, grpc.WithResolvers(static))
		}
		cc, err := grpc.NewClient(targets[mode], opts...)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", targets[mode], err)
		}
		defer cc.Close()
		chans = append(chans, &channel{mode: mode, target: targets[mode], cc: cc})
	}

	// The calls: every Every, one call on each channel, each with its own goroutine.
	t0 := time.Now()
	stop := make(chan struct{})
	var calls sync.WaitGroup
	var loop sync.WaitGroup
	loop.Add(1)
	go func() {
		defer loop.Done()
		tick := time.NewTicker(o.Every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, ch := range chans {
				calls.Add(1)
				go func() { defer calls.Done(); ch.call(t0, o.Deadline, ipOf) }()
			}
		}
	}()
	stopCalls := func() {
		close(stop)
		loop.Wait()
		calls.Wait()
	}

	// Warm up: every channel has reached the five backends, then a steady second.
	warm := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, ch := range chans {
			if len(ch.servedSince(time.Since(t0)-500*time.Millisecond)) < 5 {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(warm) {
			stopCalls()
			return nil, errors.New("the channels did not reach the five backends within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	logf("trial %d: warm, %d backends served on every channel", o.Trial, 5)

	var changes []ChangeAt
	remove := func(name string) {
		delete(backends, name)
		dnsSrv.set(liveIPs())
	}
	for _, c := range Changes {
		var at time.Time
		settle := o.Settle
		switch c.Kind {
		case "kill":
			at = time.Now()
			backends[c.Backend].signal(syscall.SIGKILL)
			remove(c.Backend)
		case "freeze":
			at = time.Now()
			backends[c.Backend].signal(syscall.SIGSTOP)
			remove(c.Backend)
			settle += time.Duration(o.Threshold)*o.Interval + o.Interval
		case "leave":
			at = time.Now()
			backends[c.Backend].signal(syscall.SIGTERM)
			remove(c.Backend)
		case "join":
			p, err := start(c.Backend, "127.0.0.16", true, seed.ready.Membership)
			if err != nil {
				stopCalls()
				return nil, err
			}
			at = time.Unix(0, p.ready.JoinedUnixNano)
			backends[c.Backend] = p
			dnsSrv.set(liveIPs())
		}
		changes = append(changes, ChangeAt{Kind: c.Kind, Backend: c.Backend, At: at.Sub(t0).Seconds()})
		logf("trial %d: %s %s at %.2f s", o.Trial, c.Kind, c.Backend, at.Sub(t0).Seconds())
		time.Sleep(time.Until(at.Add(settle)))
	}
	stopCalls()
	end := time.Since(t0)
	for _, p := range procs {
		p.signal(syscall.SIGCONT)
	}

	t := &Trial{Trial: o.Trial, Targets: targets, Changes: changes, DNSQueries: dnsSrv.queryCount(), BinSeconds: 0.1, EndSeconds: end.Seconds()}
	for _, ch := range chans {
		t.Modes = append(t.Modes, ch.analyse(changes, end))
	}
	return t, nil
}

// call makes one call and records who took it.
func (ch *channel) call(t0 time.Time, deadline time.Duration, ipOf map[string]string) {
	var p peer.Peer
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	out := new(wrapperspb.StringValue)
	err := ch.cc.Invoke(ctx, echo.Method, wrapperspb.String("x"), out, grpc.Peer(&p))
	c := call{start: start.Sub(t0), failed: err != nil}
	switch {
	case err == nil:
		c.backend = out.GetValue()
	case p.Addr != nil:
		if host, _, splitErr := net.SplitHostPort(p.Addr.String()); splitErr == nil {
			c.backend = ipOf[host]
		}
	}
	ch.mu.Lock()
	ch.calls = append(ch.calls, c)
	ch.mu.Unlock()
}

// servedSince returns the backends that served calls started after since.
func (ch *channel) servedSince(since time.Duration) map[string]bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	out := map[string]bool{}
	for _, c := range ch.calls {
		if c.start >= since && !c.failed {
			out[c.backend] = true
		}
	}
	return out
}

// analyse turns the channel's calls into outcomes and a timeline.
func (ch *channel) analyse(changes []ChangeAt, end time.Duration) ModeResult {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	calls := slices.Clone(ch.calls)
	slices.SortFunc(calls, func(a, b call) int { return int(a.start - b.start) })
	r := ModeResult{Mode: ch.mode, Calls: len(calls), Served: map[string][]int{}}
	bins := int(end/(100*time.Millisecond)) + 1
	r.Failures = make([]int, bins)
	for _, c := range calls {
		bin := min(int(c.start/(100*time.Millisecond)), bins-1)
		if c.failed {
			r.Failed++
			r.Failures[bin]++
			continue
		}
		if r.Served[c.backend] == nil {
			r.Served[c.backend] = make([]int, bins)
		}
		r.Served[c.backend][bin]++
	}
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	for i, c := range changes {
		from := sec(c.At)
		to := end
		if i+1 < len(changes) {
			to = sec(changes[i+1].At)
		}
		out := Outcome{Kind: c.Kind, Backend: c.Backend, Phase: (to - from).Seconds()}
		var last, first time.Duration = -1, -1
		for _, k := range calls {
			if k.start < from {
				continue
			}
			if k.failed && (k.backend == c.Backend || (k.backend == "" && k.start < to)) {
				out.Failed++
			}
			if k.backend != c.Backend {
				continue
			}
			last = k.start
			if first < 0 && !k.failed {
				first = k.start
			}
		}
		if c.Kind == "join" {
			out.Followed = first >= 0
			if first >= 0 {
				out.Follow = (first - from).Seconds()
			}
		} else {
			out.Followed = true
			if last >= 0 {
				out.Follow = (last - from).Seconds()
				out.Followed = to-last >= 500*time.Millisecond
			}
		}
		r.Outcomes = append(r.Outcomes, out)
	}
	return r
}

// startBackend starts a backend process and waits for its Ready line.
func startBackend(o Options, name, ip string, appPort int, seed string) (*backendProc, error) {
	cmd := exec.Command(o.Exe, "-backend", "-name", name, "-ip", ip, "-app-port", strconv.Itoa(appPort),
		"-seed", seed, "-interval", o.Interval.String(), "-threshold", strconv.Itoa(o.Threshold),
		"-drain-delay", o.DrainDelay.String())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start backend %s: %w", name, err)
	}
	p := &backendProc{name: name, ip: ip, cmd: cmd, exited: make(chan struct{})}
	lines := make(chan Ready, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r Ready
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Name != "" {
				lines <- r
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(p.exited) }()
	select {
	case p.ready = <-lines:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("backend %s exited at start", name)
	case <-time.After(20 * time.Second):
		p.stop()
		return nil, fmt.Errorf("backend %s did not start within 20 s", name)
	}
}

// signal sends sig to the process.
func (p *backendProc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// stop kills the process (thawed first) and waits for it.
func (p *backendProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// waitConnected waits until the node at addr lists n connected nodes.
func waitConnected(addr string, n int, within time.Duration) error {
	c, err := client.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		nodes, err := c.Nodes(ctx, true)
		cancel()
		if err == nil && len(nodes) == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the seed lists %d connected nodes, not %d, after %s", len(nodes), n, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a port free on every loopback address the benchmark uses.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.11:0")
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		ok := true
		for i := 12; i <= 16; i++ {
			o, err := net.Listen("tcp", net.JoinHostPort("127.0.0."+strconv.Itoa(i), strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			_ = o.Close()
		}
		_ = l.Close()
		if ok {
			return port, nil
		}
	}
	return 0, errors.New("no port free on 127.0.0.11-16")
}
