package membership

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// reconcileSummary describes what a reconcile did (its outputs, in a canonical order) and
// the state it left each member's stream in.
func reconcileSummary(c *core) []string {
	var out []string
	for _, o := range c.takeOutputs() {
		s := fmt.Sprintf("out %d conn=%d addr=%s", o.kind, o.conn, o.addr)
		if o.event != nil {
			s += fmt.Sprintf(" event %v %s", o.event.Type, o.event.Node.ID)
		}
		if o.msg != nil {
			s += " msg " + o.msg.kind()
		}
		out = append(out, s)
	}
	for _, m := range c.sortedMembers() {
		out = append(out, fmt.Sprintf("member %s inc=%d status=%v conn=%d dial=%d nextDial=%d grace=%d probing=%v",
			m.id, m.incarnation, m.status, m.conn, m.dial, m.nextDial, m.graceFrom, m.probing))
	}
	slices.Sort(out)
	return out
}

// TestReconcileThatLooksAroundTheNodeDoesWhatAWalkOfEveryMemberDoes runs two nodes through
// the same joins, leaves, restarts, seeds learned and nodes learned down, one reconciling as it does (the
// whole table only when its neighbours on the rings changed), the other walking every member
// every time: both must dial, unlink and report the same.
func TestReconcileThatLooksAroundTheNodeDoesWhatAWalkOfEveryMemberDoes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	self := MustParseNodeID("n0@127.0.0.1:20000")
	build := func() *core {
		var seeds []string
		for i := range 20 {
			seeds = append(seeds, fmt.Sprintf("s%d@127.0.0.4:%d", i, 1000+i)) // members by id, incarnation unknown
		}
		c := newCore(self, 1, simConfig("n0", seeds...), now, rand.New(rand.NewPCG(1, 2)), nil)
		c.start(now)
		var entries []MemberEntry
		for i := 1; i < 200; i++ {
			entries = append(entries, MemberEntry{ID: MustParseNodeID(fmt.Sprintf("n%d@127.0.0.1:%d", i, 20000+i)), Incarnation: 1})
		}
		c.merge(now, 0, entries, 0)
		return c
	}
	looking, walking := build(), build()
	require.True(t, looking.overlay(), "200 nodes with K = 10 should make an overlay")
	rng := rand.New(rand.NewPCG(5, 6))
	joined := 0
	fullWalks := 0
	for step := range 400 {
		now = now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)
		var e MemberEntry
		known := looking.sortedMembers()
		m := known[rng.IntN(len(known))]
		switch rng.IntN(5) {
		case 0: // a node joins
			joined++
			e = MemberEntry{ID: MustParseNodeID(fmt.Sprintf("j%d@127.0.0.2:%d", joined, 1000+joined)), Incarnation: 1}
		case 1: // a member leaves
			e = MemberEntry{ID: m.id, Incarnation: m.incarnation, Left: true}
		case 2: // a member restarts
			e = MemberEntry{ID: m.id, Incarnation: m.incarnation + 1}
		case 3: // a seed's incarnation learned from the view
			e = MemberEntry{ID: MustParseNodeID(fmt.Sprintf("s%d@127.0.0.4:%d", step%20, 1000+step%20)), Incarnation: 1}
		default: // a node learned only as down
			joined++
			e = MemberEntry{ID: MustParseNodeID(fmt.Sprintf("d%d@127.0.0.3:%d", joined, 1000+joined)), Incarnation: 1, Down: true}
		}
		for _, c := range []*core{looking, walking} {
			c.merge(now, 0, []MemberEntry{e}, 0)
		}
		walking.reconcileAllAt = time.Time{} // every member, every time
		allAt := looking.reconcileAllAt
		looking.reconcile(now)
		walking.reconcile(now)
		if looking.reconcileAllAt != allAt { // set again by a walk of every member only
			fullWalks++
		}
		want, got := reconcileSummary(walking), reconcileSummary(looking)
		require.Empty(t, symmetricDifference(want, got),
			"step %d (%+v): reconciling around the node should do what walking every member does (lines of one side only)", step, e)
	}
	require.Less(t, fullWalks, 200, "most changes should leave the node's neighbours on the rings as they were")
}

// symmetricDifference returns the lines of a or b that are not in the other, marked with the
// side they come from.
func symmetricDifference(a, b []string) []string {
	var out []string
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, "walking every member only: "+l)
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			out = append(out, "looking around only: "+l)
		}
	}
	return out
}
