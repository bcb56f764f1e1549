//go:build chaos && linux

package chaos_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/meshnode/meshnode/client"
	"github.com/meshnode/meshnode/membership"
)

// node is one cluster member: a namespace, an address and the `node agent` processes run
// there over the test (one at a time; a restart starts a new one with the same id).
type node struct {
	c     *cluster
	name  string
	ns    string
	ip    string
	id    membership.NodeID
	flags []string // extra agent flags (seeds, secrets…)

	mu    sync.Mutex
	procs []*agent // every process started for this node, the last one current
	log   strings.Builder
	logF  *os.File
}

// agent is one `node agent` process and what is needed to talk to it.
type agent struct {
	n       *node
	cmd     *exec.Cmd
	started time.Time // when exec was called
	ready   time.Time // when it logged "node started"
	readyc  chan struct{}
	exited  chan struct{}
	err     error
	cli     *client.Client
	events  *eventLog
	stopW   func() // stops the watch
}

func (n *node) addr() string { return fmt.Sprintf("%s:%d", n.ip, peerPort) }

// current returns the current process (nil before the first start).
func (n *node) current() *agent {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.procs) == 0 {
		return nil
	}
	return n.procs[len(n.procs)-1]
}

// logf appends a marker line to the node's kept log.
func (n *node) logf(format string, args ...any) {
	n.appendLog(fmt.Sprintf("### %s %s", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...)))
}

func (n *node) appendLog(line string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.log.WriteString(line + "\n")
	if n.logF != nil {
		_, _ = n.logF.WriteString(line + "\n")
	}
}

func (n *node) appendFileOnly(line string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.logF != nil {
		_, _ = n.logF.WriteString(line + "\n")
	}
}

func (n *node) logText() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

// start launches `ip netns exec <ns> node agent …` and waits until it logged "node started".
// It does not wait for the node to join anyone.
func (n *node) start() *agent {
	n.c.t.Helper()
	a := n.launch()
	a.awaitStart()
	return a
}

// launchAll launches every node at once, then waits until each has logged "node started".
func launchAll(nodes []*node) []*agent {
	agents := make([]*agent, len(nodes))
	for i, n := range nodes {
		agents[i] = n.launch()
	}
	for _, a := range agents {
		a.awaitStart()
	}
	return agents
}

// awaitStart waits until the agent's node logged "node started"; it fails the test if the
// process exits first or takes longer than 20 s.
func (a *agent) awaitStart() {
	n := a.n
	t := n.c.t
	t.Helper()
	select {
	case <-a.readyc:
	case <-a.exited:
		t.Fatalf("node %s exited at start: %v\n%s", n.name, a.err, n.logText())
	case <-time.After(20 * time.Second):
		t.Fatalf("node %s did not start within 20s\n%s", n.name, n.logText())
	}
}

// launch starts the process without waiting for it.
func (n *node) launch() *agent {
	t := n.c.t
	t.Helper()
	args := []string{"netns", "exec", n.ns, nodeBinary, "agent",
		"--name", n.name, "--host", n.ip, "--port", strconv.Itoa(peerPort),
		"--heartbeat-interval", n.c.interval.String(),
		"--heartbeat-miss-threshold", strconv.Itoa(n.c.threshold),
		"--log-format", "json", "--log-level", "debug"}
	args = append(args, n.flags...)
	cmd := exec.Command("ip", args...)
	// A clean environment: nothing of the caller's CLUSTER_* may leak into the agent.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/root", "GOTRACEBACK=all"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	a := &agent{n: n, cmd: cmd, readyc: make(chan struct{}), exited: make(chan struct{})}
	n.logf("exec %s", strings.Join(args[3:], " "))
	a.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", n.name, err)
	}
	n.mu.Lock()
	n.procs = append(n.procs, a)
	n.mu.Unlock()
	scanned := make(chan struct{})
	go func() { defer close(scanned); a.scan(stderr) }()
	go func() {
		<-scanned
		a.err = cmd.Wait()
		n.logf("process %d exited: %v", cmd.Process.Pid, a.err)
		close(a.exited)
	}()
	cli, err := client.Dial(n.addr(), client.WithDialOptions(grpc.WithContextDialer(dialInNetns(n.ns))))
	if err != nil {
		t.Fatal(err)
	}
	a.cli = cli
	return a
}

// scan keeps the log and notices "node started".
func (a *agent) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	var once sync.Once
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"msg":"finished call"`) && strings.Contains(line, "MembershipService") {
			// The observer's own API calls: kept in the file, not in the log printed on failure.
			a.n.appendFileOnly(line)
			continue
		}
		a.n.appendLog(line)
		if !strings.Contains(line, `"node started"`) {
			continue
		}
		var rec struct {
			Msg string `json:"msg"`
			ID  string `json:"id"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "node started" {
			once.Do(func() {
				a.ready = time.Now()
				close(a.readyc)
			})
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

func (a *agent) pid() int { return a.cmd.Process.Pid }

// signal sends sig to the process and returns the time just before it was sent.
func (a *agent) signal(sig syscall.Signal) time.Time {
	a.n.logf("test sends %s to %d", sig, a.pid())
	t0 := time.Now()
	if err := a.cmd.Process.Signal(sig); err != nil {
		a.n.c.t.Fatalf("signal %s to %s: %v", sig, a.n.name, err)
	}
	return t0
}

// waitExit waits for the process to exit and returns its exit code.
func (a *agent) waitExit(timeout time.Duration) int {
	t := a.n.c.t
	t.Helper()
	select {
	case <-a.exited:
	case <-time.After(timeout):
		t.Fatalf("node %s did not exit within %s", a.n.name, timeout)
	}
	return a.cmd.ProcessState.ExitCode()
}

// alive reports whether the process has not exited.
func (a *agent) alive() bool {
	select {
	case <-a.exited:
		return false
	default:
		return true
	}
}

// kill ends the process (SIGCONT first, in case it is stopped) and releases its client.
func (a *agent) kill() {
	if a.stopW != nil {
		a.stopW()
	}
	if a.alive() {
		_ = a.cmd.Process.Signal(syscall.SIGCONT)
		_ = a.cmd.Process.Kill()
	}
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
	}
	_ = a.cli.Close()
}

// connected returns the ids the process lists as connected, or an error.
func (a *agent) connected(timeout time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	nodes, err := a.cli.Nodes(ctx, true)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.ID.String())
	}
	sort.Strings(out)
	return out, nil
}

// all returns every node the process knows, whatever its status.
func (a *agent) all(timeout time.Duration) ([]membership.NodeInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return a.cli.Nodes(ctx, false)
}

// watch starts following the process's events (first a snapshot). It returns once the
// snapshot has arrived.
func (a *agent) watch() *eventLog {
	t := a.n.c.t
	t.Helper()
	l := &eventLog{observer: a.n.name}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		err := a.cli.Watch(ctx, func(e client.Event) {
			l.add(e)
			once.Do(func() { close(ready) })
		})
		if ctx.Err() == nil {
			a.n.logf("watch ended: %v", err)
		}
	}()
	var stopOnce sync.Once
	a.stopW = func() { stopOnce.Do(func() { cancel(); <-done }) }
	a.events = l
	select {
	case <-ready:
	case <-time.After(15 * time.Second):
		t.Fatalf("watch of %s did not start within 15s\n%s", a.n.name, a.n.logText())
	}
	return l
}

// eventLog is what one observer process reported through WatchEvents.
type eventLog struct {
	observer string
	mu       sync.Mutex
	snapped  bool
	snapshot client.Event
	events   []seenEvent
}

// seenEvent is an event and when the test received it.
type seenEvent struct {
	client.Event
	Received time.Time
}

func (l *eventLog) add(e client.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Snapshot && !l.snapped {
		l.snapped, l.snapshot = true, e
		return
	}
	l.events = append(l.events, seenEvent{Event: e, Received: time.Now()})
}

// list returns the events (not the snapshot) matching keep.
func (l *eventLog) list(keep func(seenEvent) bool) []seenEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []seenEvent
	for _, e := range l.events {
		if keep == nil || keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// of returns the up/down events about id.
func (l *eventLog) of(id membership.NodeID) []seenEvent {
	return l.list(func(e seenEvent) bool {
		return (e.Type == membership.EventNodeUp || e.Type == membership.EventNodeDown) && e.Node.ID == id
	})
}

// firstAfter returns the first event of type typ about id that happened at or after since.
func (l *eventLog) firstAfter(typ membership.EventType, id membership.NodeID, since time.Time) (seenEvent, bool) {
	for _, e := range l.of(id) {
		if e.Type == typ && !eventTime(e).Before(since) {
			return e, true
		}
	}
	return seenEvent{}, false
}

// downs returns every node_down, optionally only those after since.
func (l *eventLog) downs(since time.Time) []seenEvent {
	return l.list(func(e seenEvent) bool { return e.Type == membership.EventNodeDown && !eventTime(e).Before(since) })
}

// eventTime is when the observer saw the event happen; resynced events (inferred after a
// broken watch stream) only carry the time of the fresh snapshot.
func eventTime(e seenEvent) time.Time {
	if e.Time.IsZero() {
		return e.Received
	}
	return e.Time
}

// describe renders events for a failure message.
func describe(events []seenEvent) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "    %s seq=%d %s %s inc=%d", eventTime(e).Format("15:04:05.000000"), e.Sequence, e.Type, e.Node.ID, e.Node.Incarnation)
		if e.Type == membership.EventNodeDown {
			fmt.Fprintf(&b, " reason=%s", e.Reason)
		}
		if e.Resynced {
			b.WriteString(" (resynced)")
		}
		b.WriteString("\n")
	}
	return b.String()
}

var (
	logDirsMu sync.Mutex
	logDirs   = map[testing.TB]string{}
	logRuns   = map[string]int{}
)

// testDir is the test's directory under the artifacts directory (suffixed -run2, -run3…
// when the test runs again in the same process, with -count).
func testDir(t testing.TB) string {
	logDirsMu.Lock()
	defer logDirsMu.Unlock()
	if d, ok := logDirs[t]; ok {
		return d
	}
	base := sanitize(t.Name())
	logRuns[base]++
	if n := logRuns[base]; n > 1 {
		base = fmt.Sprintf("%s-run%d", base, n)
	}
	d := filepath.Join(artifactsDir, base)
	logDirs[t] = d
	return d
}

// openLogFile keeps node logs under the artifacts directory as well as in memory.
func openLogFile(t testing.TB, name string) *os.File {
	dir := testDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil
	}
	return f
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
