//go:build chaos && linux

package chaos_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/membership"
)

// cluster is one test's set of nodes on one data network.
type cluster struct {
	t         *testing.T
	net       *network
	nodes     []*node
	interval  time.Duration
	threshold int
}

// clusterOpts shapes a cluster.
type clusterOpts struct {
	size      int
	interval  time.Duration
	threshold int
	// seeds returns the seeds of node i (0-based) given all nodes; default: node 0 seeds
	// node 1, every other node seeds nodes 0 and 1, so any single node can restart and find
	// the cluster again.
	seeds func(i int, nodes []*node) []*node
	// flags returns extra agent flags for node i.
	flags func(i int) []string
}

// newCluster creates the network and the nodes' namespaces; start them with startAll.
func newCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	if o.interval == 0 {
		o.interval = time.Second
	}
	if o.threshold == 0 {
		o.threshold = 3
	}
	if o.seeds == nil {
		o.seeds = func(i int, nodes []*node) []*node {
			switch i {
			case 0:
				return nodes[1:2]
			case 1:
				return nodes[0:1]
			default:
				return nodes[0:2]
			}
		}
	}
	c := &cluster{t: t, net: newNetwork(t), interval: o.interval, threshold: o.threshold}
	for i := 0; i < o.size; i++ {
		c.addNode(fmt.Sprintf("n%d", i+1), fmt.Sprintf("%s.%d", subnet, i+1), nil)
	}
	for i, n := range c.nodes {
		var seeds []string
		for _, s := range o.seeds(i, c.nodes) {
			seeds = append(seeds, s.id.String())
		}
		if len(seeds) > 0 {
			n.flags = append(n.flags, "--seeds", strings.Join(seeds, ","))
		}
		if o.flags != nil {
			n.flags = append(n.flags, o.flags(i)...)
		}
	}
	return c
}

// addNode adds a node (namespace and address) to the cluster without starting it. Its
// processes are killed and its log is printed on failure when the test ends.
func (c *cluster) addNode(name, ip string, flags []string) *node {
	t := c.t
	t.Helper()
	n := &node{c: c, name: name, ip: ip, flags: flags}
	n.ns = c.net.addHost(name, ip)
	n.id = membership.MustParseNodeID(fmt.Sprintf("%s@%s:%d", name, ip, peerPort))
	n.logF = openLogFile(t, name)
	c.nodes = append(c.nodes, n)
	// Registered after the network's cleanup, so it runs before it: processes die first.
	t.Cleanup(func() {
		n.mu.Lock()
		procs := slices.Clone(n.procs)
		n.mu.Unlock()
		for _, a := range procs {
			a.kill()
		}
		if t.Failed() {
			t.Logf("===== log of %s (%s), in full in %s =====\n%s", name, n.id, testDir(t), tail(n.logText(), 600))
		}
		n.mu.Lock()
		if n.logF != nil {
			_ = n.logF.Close()
			n.logF = nil
		}
		n.mu.Unlock()
	})
	return n
}

// tail keeps the last max lines of s.
func tail(s string, max int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) <= max {
		return s
	}
	return fmt.Sprintf("[… %d earlier lines …]\n%s", len(lines)-max, strings.Join(lines[len(lines)-max:], "\n"))
}

// startAll starts every node (in order, each once it logged its start), waits for the full
// mesh and then starts watching every node's events.
func (c *cluster) startAll() {
	c.t.Helper()
	for _, n := range c.nodes {
		n.start()
	}
	c.requireMesh(c.nodes, 20*time.Second, "formation")
	c.watchAll(c.nodes)
	c.waitSteady(c.nodes)
}

// waitSteady waits until every node has heard a heartbeat from every peer more than one
// interval after the call, so that faults hit a cluster in its steady state (heartbeat
// phases spread by their jitter) and not one still exchanging its formation messages: a
// fault injected right after formation would always find the last message a few
// milliseconds old, and every detection time would be the best case. In the overlay a
// direct peer that does not monitor a node sends it a heartbeat only every 10 intervals, so
// the wait allows 25.
func (c *cluster) waitSteady(group []*node) {
	c.t.Helper()
	since := time.Now().Add(c.interval)
	deadline := time.Now().Add(steadyIntervals * c.interval)
	for {
		steady := true
		for _, n := range group {
			infos, err := n.current().all(time.Second)
			if err != nil {
				steady = false
				break
			}
			for _, info := range infos {
				// Only a direct peer heartbeats to this node; in the overlay (above K+1 nodes)
				// the others' last heartbeat is when this node last heard of them.
				if info.Status == membership.StatusConnected && info.Direct && !info.LastHeartbeat.After(since) {
					steady = false
				}
			}
		}
		if steady {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the cluster did not reach a steady state (a heartbeat from every peer) within %s\n%s", steadyIntervals*c.interval, c.allEvents())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// steadyIntervals bounds waitSteady, in heartbeat intervals.
const steadyIntervals = 25

func (c *cluster) watchAll(nodes []*node) {
	c.t.Helper()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.current().watch() }()
	}
	wg.Wait()
}

// ids returns the nodes' ids as sorted strings.
func ids(nodes []*node) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.id.String())
	}
	sort.Strings(out)
	return out
}

// others returns nodes without the excluded ones.
func others(nodes []*node, exclude ...*node) []*node {
	var out []*node
	for _, n := range nodes {
		if !slices.Contains(exclude, n) {
			out = append(out, n)
		}
	}
	return out
}

// meshState returns, for each node of group, whether it lists exactly the rest of group as
// connected, and a description of the differences.
func meshState(group []*node) (bool, string) {
	var b strings.Builder
	ok := true
	for _, n := range group {
		want := ids(others(group, n))
		got, err := n.current().connected(time.Second)
		if err != nil {
			ok = false
			fmt.Fprintf(&b, "  %s: %v\n", n.name, err)
			continue
		}
		if !slices.Equal(got, want) {
			ok = false
			fmt.Fprintf(&b, "  %s sees %v, want %v\n", n.name, got, want)
		}
	}
	return ok, b.String()
}

// waitMesh waits until every node of group sees exactly the rest of group connected and
// returns how long it took, or false at the deadline.
func (c *cluster) waitMesh(group []*node, timeout time.Duration) (time.Duration, bool, string) {
	start := time.Now()
	deadline := start.Add(timeout)
	var last string
	for {
		ok, state := meshState(group)
		if ok {
			return time.Since(start), true, ""
		}
		last = state
		if time.Now().After(deadline) {
			return time.Since(start), false, last
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requireMesh fails the test unless group forms a full mesh within timeout.
func (c *cluster) requireMesh(group []*node, timeout time.Duration, what string) time.Duration {
	c.t.Helper()
	d, ok, state := c.waitMesh(group, timeout)
	if !ok {
		c.t.Fatalf("%s: no full mesh of %d nodes within %s:\n%s", what, len(group), timeout, state)
	}
	return d
}

// waitEvent waits until observer reports an event of type typ about subject at or after
// since, up to deadline; it returns the event and whether there was one.
func waitEvent(l *eventLog, typ membership.EventType, subject membership.NodeID, since time.Time, timeout time.Duration) (seenEvent, bool) {
	deadline := time.Now().Add(timeout)
	for {
		if e, ok := l.firstAfter(typ, subject, since); ok {
			return e, true
		}
		if time.Now().After(deadline) {
			return seenEvent{}, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkAlternation checks the contract's "never two ups or two downs in a row for a node"
// on every observer still or once watched: starting from the watch's snapshot, the events
// about each node must alternate.
func (c *cluster) checkAlternation() {
	c.t.Helper()
	for _, n := range c.nodes {
		n.mu.Lock()
		procs := slices.Clone(n.procs)
		n.mu.Unlock()
		for _, a := range procs {
			if a.events == nil {
				continue
			}
			l := a.events
			l.mu.Lock()
			// state: 1 up, -1 down, 0 unknown or connecting (a learned node never up may
			// go down once with connection_refused).
			state := map[membership.NodeID]int{}
			for _, s := range l.snapshot.Nodes {
				switch s.Status {
				case membership.StatusConnected:
					state[s.ID] = 1
				case membership.StatusDisconnected:
					state[s.ID] = -1
				}
			}
			byNode := map[membership.NodeID][]seenEvent{}
			for _, e := range l.events {
				if e.Type != membership.EventNodeUp && e.Type != membership.EventNodeDown {
					continue
				}
				id := e.Node.ID
				byNode[id] = append(byNode[id], e)
				next := 1
				if e.Type == membership.EventNodeDown {
					next = -1
				}
				if state[id] == next {
					c.t.Errorf("%s (pid %d) reported %s of %s twice in a row:\n%s", n.name, a.pid(), e.Type, id, describe(byNode[id]))
				}
				state[id] = next
			}
			l.mu.Unlock()
		}
	}
}

// allEvents renders every observer's events, for a failure message.
func (c *cluster) allEvents() string {
	var b strings.Builder
	for _, n := range c.nodes {
		n.mu.Lock()
		procs := slices.Clone(n.procs)
		n.mu.Unlock()
		for _, a := range procs {
			if a.events == nil {
				continue
			}
			fmt.Fprintf(&b, "  events seen by %s (pid %d):\n%s", n.name, a.pid(), describe(a.events.list(nil)))
		}
	}
	return b.String()
}
