package membership

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchOverlayCore returns a core that knows n−1 other live members (an overlay with the
// default K), its view learned in one update.
func benchOverlayCore(b *testing.B, n int) (*core, time.Time) {
	b.Helper()
	now := time.Unix(1_700_000_000, 0)
	cfg := simConfig("n0")
	self := MustParseNodeID("n0@127.0.0.1:20000")
	c := newCore(self, 1, cfg, now, rand.New(rand.NewPCG(1, 2)), nil)
	entries := make([]MemberEntry, 0, n-1)
	for i := 1; i < n; i++ {
		entries = append(entries, MemberEntry{ID: MustParseNodeID(fmt.Sprintf("n%d@127.0.0.1:%d", i, 20000+i)), Incarnation: 1})
	}
	c.merge(now, 0, entries, 0)
	c.reconcile(now)
	c.viewDigest()
	c.takeOutputs()
	if !c.overlay() {
		b.Fatal("the core should run an overlay")
	}
	return c, now
}

// BenchmarkViewChange times what one node does when a node joins and then leaves a view of
// 1,024: the merge, the digest its next heartbeat carries and the streams' reconcile.
func BenchmarkViewChange(b *testing.B) {
	for _, n := range []int{256, 1024, 4096} {
		b.Run(fmt.Sprintf("digest/n=%d", n), func(b *testing.B) {
			c, _ := benchOverlayCore(b, n)
			for b.Loop() {
				c.digestDirty = true
				c.viewDigest()
			}
		})
		b.Run(fmt.Sprintf("reconcile/n=%d", n), func(b *testing.B) {
			c, now := benchOverlayCore(b, n)
			for b.Loop() {
				c.reconcile(now)
			}
			c.takeOutputs()
		})
		b.Run(fmt.Sprintf("joinleave/n=%d", n), func(b *testing.B) {
			c, now := benchOverlayCore(b, n)
			id := MustParseNodeID("joiner@127.0.0.2:1000")
			i := 0
			for b.Loop() {
				i++ // one node joining again and again, each time a new incarnation
				c.merge(now, 0, []MemberEntry{{ID: id, Incarnation: uint64(i)}}, 0)
				c.viewDigest()
				c.reconcile(now)
				c.merge(now, 0, []MemberEntry{{ID: id, Incarnation: uint64(i), Left: true}}, 0)
				c.viewDigest()
				c.reconcile(now)
				c.topo.neighbours(c.self)
				c.recycleOutputs(c.takeOutputs())
			}
		})
	}
}
