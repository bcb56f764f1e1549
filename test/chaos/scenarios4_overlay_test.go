//go:build chaos && linux

package chaos_test

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/membership"
)

// The overlay: 24 nodes with --monitors 4, so each node streams to at most 8 peers and a
// node is decided down by a quorum of its observers.

const (
	overlaySize     = 24
	overlayMonitors = 4
)

// overlayCluster returns a 24-node cluster with K = 4, every node seeding n1 and n2.
func overlayCluster(t *testing.T) *cluster {
	return newCluster(t, clusterOpts{size: overlaySize, flags: func(int) []string {
		return []string{"--monitors", fmt.Sprint(overlayMonitors)}
	}})
}

// directPeers returns the nodes n streams to itself.
func directPeers(t *testing.T, c *cluster, n *node) []*node {
	t.Helper()
	infos, err := n.current().all(2 * time.Second)
	if err != nil {
		t.Fatalf("listing %s's nodes: %v", n.name, err)
	}
	var out []*node
	for _, info := range infos {
		if !info.Direct {
			continue
		}
		for _, o := range c.nodes {
			if o.id == info.ID {
				out = append(out, o)
			}
		}
	}
	return out
}

// 15. Overlay: one link between two neighbours cut both ways for three silence timeouts →
// at most two alerts (each end about the other), short of any quorum: nobody reports anybody
// down, and the pair streams again once the link is back.
func TestChaos15OverlayOneLinkCut(t *testing.T) {
	s := newScenario(t, "15", "24 nodes, K = 4: one link between neighbours cut for 3 timeouts")
	c := overlayCluster(t)
	c.startAll()
	a := c.nodes[5]
	peers := directPeers(t, c, a)
	if len(peers) == 0 || len(peers) > 2*overlayMonitors {
		t.Fatalf("%s streams to %d peers, want 1 to %d", a.name, len(peers), 2*overlayMonitors)
	}
	b := peers[0]
	rules := append(dropBetween(a, []*node{b}), dropBetween(b, []*node{a})...)
	t0 := time.Now()
	addRules(t, rules)
	a.logf("test cuts the link %s ↔ %s", a.name, b.name)
	b.logf("test cuts the link %s ↔ %s", a.name, b.name)
	time.Sleep(3 * time.Duration(c.threshold) * c.interval) // the silence is seen, alerts are raised
	countDowns(s.upTo("downs anywhere while one link is cut", "count", 0, "0"), c.nodes, nil, t0)
	t1 := time.Now()
	removeRules(t, rules)
	checkMesh(c, s.upTo("every node sees every node after the link is back", "ms", 10000, "≤ 10 s"), c.nodes, t1, "after the link is back")
	countDowns(s.upTo("downs anywhere after the link is back", "count", 0, "0"), c.nodes, nil, t0)
	c.checkAlternation()
}

// 16. Overlay: one node isolated (every packet to and from it dropped) → its observers time it
// out and the quorum reports it down everywhere within interval × threshold + interval + 1 s
// (heartbeat_timeout); healed → it is back everywhere within 2 s.
func TestChaos16OverlayIsolatedNode(t *testing.T) {
	s := newScenario(t, "16", "24 nodes, K = 4: one node isolated for 20 s, then healed")
	c := overlayCluster(t)
	c.startAll()
	victim := c.nodes[9]
	rest := others(c.nodes, victim)
	rules := blackhole(victim) // two rules: healing is one quick removal
	bound := time.Duration(c.threshold+1)*c.interval + time.Second
	m := s.upTo("isolated node reported down everywhere", "ms", ms(bound),
		fmt.Sprintf("≤ %s (interval × threshold + interval + 1 s), heartbeat_timeout", human(bound)))
	t0 := time.Now()
	addRules(t, rules)
	victim.logf("test isolates %s", victim.name)
	expectTransition(c, m, membership.EventNodeDown, rest, victim, t0, membership.ReasonHeartbeatTimeout, "")
	countDowns(s.upTo("downs of other nodes", "count", 0, "0"), rest, rest, t0)
	time.Sleep(time.Until(t0.Add(20 * time.Second)))
	t1 := time.Now() // before the rules go (a node's up may come while the call returns)
	removeRules(t, rules)
	victim.logf("test heals %s", victim.name)
	mBack := s.upTo("healed node back everywhere", "ms", 2000, "≤ 2 s")
	expectTransition(c, mBack, membership.EventNodeUp, rest, victim, t1, 0, "")
	checkMesh(c, s.upTo("every node sees every node after healing", "ms", 10000, "≤ 10 s"), c.nodes, t1, "after healing")
	c.checkAlternation()
}

// 17. Overlay: a node crashes while the 24 form → the others converge on the same membership
// without it, report it down at most once and never up again.
func TestChaos17OverlayCrashDuringFormation(t *testing.T) {
	s := newScenario(t, "17", "24 nodes, K = 4: one node SIGKILLed while the cluster forms")
	c := overlayCluster(t)
	c.nodes[0].start()
	c.nodes[1].start()
	launchAll(c.nodes[2:])
	victim := c.nodes[13]
	t0 := victim.current().signal(syscall.SIGKILL)
	victim.logf("test sends SIGKILL during the formation")
	victim.current().waitExit(10 * time.Second)
	survivors := others(c.nodes, victim)
	checkMesh(c, s.upTo("survivors converge without the crashed node", "ms", 10000, "≤ 10 s"), survivors, t0, "after the crash")
	c.watchAll(survivors)
	mUp := s.upTo("survivors listing the crashed node as connected", "count", 0, "0")
	deadline := time.Now().Add(5 * time.Second)
	listed := map[string]bool{}
	for time.Now().Before(deadline) { // observation window: no stale gossip brings it back
		for _, n := range survivors {
			got, err := n.current().connected(2 * time.Second)
			if err == nil && slices.Contains(got, victim.id.String()) {
				listed[n.name] = true
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, n := range survivors {
		v := 0.0
		if listed[n.name] {
			v = 1
		}
		mUp.check(n.name, victim.name, v, "")
	}
	if len(listed) > 0 {
		names := make([]string, 0, len(listed))
		for n := range listed {
			names = append(names, n)
		}
		slices.Sort(names)
		t.Errorf("survivors listed the crashed node as connected after converging: %s", strings.Join(names, ", "))
	}
	countDowns(s.upTo("downs among survivors", "count", 0, "0"), survivors, survivors, t0)
}
