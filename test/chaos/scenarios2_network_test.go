//go:build chaos && linux

package chaos_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshnode/meshnode/membership"
)

// Scenarios 4–6: faults of the network, made with iptables inside the nodes' namespaces
// (on eth0 only, so the observer's loopback path to each node's API is untouched).

// rule is an iptables rule in a namespace that can be removed again.
type rule struct {
	ns   string
	spec []string
}

func addRules(t *testing.T, rules []rule) {
	t.Helper()
	for _, r := range rules {
		iptables(t, r.ns, append([]string{"-A"}, r.spec...)...)
	}
}

func removeRules(t *testing.T, rules []rule) {
	t.Helper()
	for _, r := range rules {
		iptables(t, r.ns, append([]string{"-D"}, r.spec...)...)
	}
}

// blackhole drops everything n sends or receives on its veth.
func blackhole(n *node) []rule {
	return []rule{
		{n.ns, []string{"INPUT", "-i", "eth0", "-j", "DROP"}},
		{n.ns, []string{"OUTPUT", "-o", "eth0", "-j", "DROP"}},
	}
}

// dropFrom drops, at n, traffic to and from the peers (both directions, on both ends when
// applied to every node of a side).
func dropBetween(n *node, peers []*node) []rule {
	var out []rule
	for _, p := range peers {
		out = append(out,
			rule{n.ns, []string{"INPUT", "-i", "eth0", "-s", p.ip, "-j", "DROP"}},
			rule{n.ns, []string{"OUTPUT", "-o", "eth0", "-d", p.ip, "-j", "DROP"}})
	}
	return out
}

// 4. Host black-holed (iptables DROP both ways on its veth) → heartbeat_timeout on both
// sides; removed rule → the full mesh returns by itself within 10 s.
func TestChaos04Blackhole(t *testing.T) {
	s := newScenario(t, "04", "host black-holed, then restored")
	c := newCluster(t, clusterOpts{size: 5})
	c.startAll()
	victim := c.nodes[4]
	peers := others(c.nodes, victim)
	bound := time.Duration(c.threshold+1) * c.interval
	boundText := fmt.Sprintf("≤ %s (interval × threshold + interval), heartbeat_timeout", human(bound))
	mPeers := s.upTo("detection by the others", "ms", ms(bound), boundText)
	mVictim := s.upTo("detection by the black-holed node", "ms", ms(bound), boundText)
	rules := blackhole(victim)
	t0 := time.Now()
	addRules(t, rules)
	victim.logf("test black-holes eth0")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range peers {
			expectTransition(c, mVictim, membership.EventNodeDown, []*node{victim}, p, t0, membership.ReasonHeartbeatTimeout, "")
		}
	}()
	expectTransition(c, mPeers, membership.EventNodeDown, peers, victim, t0, membership.ReasonHeartbeatTimeout, "")
	<-done
	// Hold the fault for a fixed 15 s in all, so every redial backoff has grown to its cap.
	time.Sleep(time.Until(t0.Add(15 * time.Second)))
	t1 := time.Now()
	removeRules(t, rules)
	victim.logf("test restores eth0")
	checkMesh(c, s.upTo("full mesh after the rule is removed", "ms", 10000, "≤ 10 s"), c.nodes, t1, "after restoring the host")
	// Per observer, when the other side came back.
	mUp := s.info("node_up after the rule is removed", "ms")
	for _, o := range peers {
		if e, ok := o.current().events.firstAfter(membership.EventNodeUp, victim.id, t1); ok {
			mUp.addDuration(o.name, victim.name, eventTime(e).Sub(t1), "")
		}
		if e, ok := victim.current().events.firstAfter(membership.EventNodeUp, o.id, t1); ok {
			mUp.addDuration(victim.name, o.name, eventTime(e).Sub(t1), "")
		}
	}
	countDowns(s.upTo("downs among the untouched nodes", "count", 0, "0"), peers, peers, t0)
	c.checkAlternation()
}

// 5. Partition {A,B} | {C,D,E} for 30 s → each side reports the other down; heal → full mesh
// within 10 s on every node.
func TestChaos05Partition(t *testing.T) {
	s := newScenario(t, "05", "partition {n1,n2} | {n3,n4,n5} for 30 s, then heal")
	c := newCluster(t, clusterOpts{size: 5})
	c.startAll()
	left, right := c.nodes[:2], c.nodes[2:]
	bound := time.Duration(c.threshold+1) * c.interval
	m := s.upTo("detection across the cut", "ms", ms(bound), fmt.Sprintf("≤ %s (interval × threshold + interval), heartbeat_timeout", human(bound)))
	var rules []rule
	for _, n := range left {
		rules = append(rules, dropBetween(n, right)...)
	}
	for _, n := range right {
		rules = append(rules, dropBetween(n, left)...)
	}
	t0 := time.Now()
	addRules(t, rules)
	for _, n := range c.nodes {
		n.logf("test partitions {n1,n2} | {n3,n4,n5}")
	}
	type pair struct{ observers, subjects []*node }
	for _, p := range []pair{{left, right}, {right, left}} {
		for _, subj := range p.subjects {
			expectTransition(c, m, membership.EventNodeDown, p.observers, subj, t0, membership.ReasonHeartbeatTimeout, "")
		}
	}
	// Each side must be a full mesh of its own meanwhile.
	for _, side := range [][]*node{left, right} {
		if _, ok, state := c.waitMesh(side, 5*time.Second); !ok {
			t.Errorf("during the partition, one side is not a mesh of its own:\n%s", state)
		}
	}
	time.Sleep(time.Until(t0.Add(30 * time.Second))) // the prescribed fault duration
	t1 := time.Now()
	removeRules(t, rules)
	for _, n := range c.nodes {
		n.logf("test heals the partition")
	}
	// Stable while cut: one down per node across the cut and per observer, no up.
	mFlap := s.upTo("transitions across the cut during the partition", "count", 1, "1 down, no up")
	for _, p := range []pair{{left, right}, {right, left}} {
		for _, o := range p.observers {
			for _, subj := range p.subjects {
				evs := o.current().events.list(func(e seenEvent) bool {
					tm := eventTime(e)
					return e.Node.ID == subj.id && (e.Type == membership.EventNodeUp || e.Type == membership.EventNodeDown) &&
						!tm.Before(t0) && tm.Before(t1)
				})
				mFlap.add(o.name, subj.name, float64(len(evs)), "")
				if len(evs) != 1 {
					t.Errorf("%s reported %d transitions of %s during the partition:\n%s", o.name, len(evs), subj.name, describe(evs))
				}
			}
		}
	}
	mWithin := s.upTo("downs within a side", "count", 0, "0")
	countDowns(mWithin, left, left, t0)
	countDowns(mWithin, right, right, t0)
	checkMesh(c, s.upTo("full mesh after healing", "ms", 10000, "≤ 10 s"), c.nodes, t1, "after healing")
	c.checkAlternation()
}

// 6. One-way drop (A → B only) → a stable outcome reported the same way on both ends; no
// endless up/down flapping (count the events).
func TestChaos06OneWayDrop(t *testing.T) {
	s := newScenario(t, "06", "one-way drop n2 → n3 for 40 s")
	c := newCluster(t, clusterOpts{size: 5})
	c.startAll()
	a, b := c.nodes[1], c.nodes[2]
	third := others(c.nodes, a, b)
	// Only packets from A to B are lost; B → A flows.
	rules := []rule{{a.ns, []string{"OUTPUT", "-o", "eth0", "-d", b.ip, "-j", "DROP"}}}
	// B stops hearing A at once. A still receives what B sends until B's TCP retransmission
	// timer fires (A's ACKs are lost): after that B may only resend its oldest unacknowledged
	// segment, so at most one heartbeat sent after the fault still reaches A, and A's silence
	// clock can start up to one interval late (B's own close of the stream is stuck behind
	// the same segment). Hence one interval more than for a symmetric fault.
	bound := time.Duration(c.threshold+2) * c.interval
	m := s.upTo("detection at each end", "ms", ms(bound), fmt.Sprintf("≤ %s (interval × threshold + 2 intervals)", human(bound)))
	t0 := time.Now()
	addRules(t, rules)
	a.logf("test drops packets from %s to %s", a.name, b.name)
	b.logf("test drops packets from %s to %s", a.name, b.name)
	for _, p := range [][2]*node{{b, a}, {a, b}} {
		got := expectTransition(c, m, membership.EventNodeDown, []*node{p[0]}, p[1], t0, 0, "")
		if e, ok := got[p[0]]; ok {
			s.note("%s reported %s down: %s", p[0].name, p[1].name, e.Reason)
		}
	}
	window := 40 * time.Second
	time.Sleep(time.Until(t0.Add(window))) // the fault's duration: long enough to see flapping
	// Same outcome at both ends, judged before the fault is lifted.
	aSeesB, errA := sees(a, b)
	bSeesA, errB := sees(b, a)
	if errA != nil || errB != nil {
		t.Errorf("listing nodes: %v %v", errA, errB)
	} else if aSeesB != bSeesA {
		t.Errorf("the ends disagree after %s: %s sees %s connected=%v, %s sees %s connected=%v", window, a.name, b.name, aSeesB, b.name, a.name, bSeesA)
	}
	s.note("after %s of one-way loss: %s sees %s connected=%v, %s sees %s connected=%v", window, a.name, b.name, aSeesB, b.name, a.name, bSeesA)
	t1 := time.Now()
	mFlap := s.upTo("transitions per end during the fault", "count", 1, "≤ 1 (no flapping)")
	for _, p := range [][2]*node{{a, b}, {b, a}} {
		evs := p[0].current().events.list(func(e seenEvent) bool {
			return e.Node.ID == p[1].id && (e.Type == membership.EventNodeUp || e.Type == membership.EventNodeDown) && !eventTime(e).Before(t0)
		})
		mFlap.check(p[0].name, p[1].name, float64(len(evs)), "")
		if len(evs) > 1 {
			t.Errorf("%s flapped about %s:\n%s", p[0].name, p[1].name, describe(evs))
		}
	}
	countDowns(s.upTo("downs at the other nodes", "count", 0, "0"), third, nil, t0)
	removeRules(t, rules)
	a.logf("test lifts the one-way drop")
	checkMesh(c, s.upTo("full mesh after the drop is lifted", "ms", 10000, "≤ 10 s"), c.nodes, t1, "after lifting the drop")
	c.checkAlternation()
}

// sees reports whether o lists subject as connected.
func sees(o, subject *node) (bool, error) {
	got, err := o.current().connected(2 * time.Second)
	if err != nil {
		return false, err
	}
	return slices.Contains(got, subject.id.String()), nil
}
