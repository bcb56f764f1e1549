package membership

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func topologyIDs(n int) []NodeID {
	ids := make([]NodeID, n)
	for i := range ids {
		ids[i] = MustParseNodeID(fmt.Sprintf("node%04d@10.0.%d.%d:4369", i, i/250, i%250+1))
	}
	return ids
}

func TestTopologyIsTheSameForTheSameViewInAnyOrder(t *testing.T) {
	ids := topologyIDs(200)
	a := newTopology(ids, 10)
	shuffled := slices.Clone(ids)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b := newTopology(shuffled, 10)
	for _, id := range ids {
		require.Equal(t, a.subjects(id), b.subjects(id), "subjects of %s", id)
		require.Equal(t, a.observers(id), b.observers(id), "observers of %s", id)
	}
}

func TestTopologyDegreeIsBoundedAndEdgesAreMutual(t *testing.T) {
	for _, n := range []int{12, 100, 1000} {
		ids := topologyIDs(n)
		topo := newTopology(ids, 10)
		total := 0
		for _, id := range ids {
			subjects, observers := topo.subjects(id), topo.observers(id)
			total += len(observers)
			require.LessOrEqual(t, len(subjects), 10)
			require.LessOrEqual(t, len(observers), 10)
			require.NotContains(t, subjects, id)
			for _, s := range subjects {
				require.Contains(t, topo.observers(s), id, "%s monitors %s, so it is among its observers", id, s)
			}
		}
		if n >= 100 {
			require.Greater(t, float64(total)/float64(n), 9.0, "with many nodes the rings rarely repeat an observer")
		}
	}
}

// TestTopologyIsAnExpander checks that every node reaches every other over the overlay's
// edges within ceil(log_K N) + 2 hops (the bound the dissemination relies on).
func TestTopologyIsAnExpander(t *testing.T) {
	const k = 10
	for _, n := range []int{100, 1000} {
		ids := topologyIDs(n)
		topo := newTopology(ids, k)
		adj := map[NodeID][]NodeID{}
		for _, id := range ids {
			adj[id] = topo.neighbours(id)
		}
		bound := int(math.Ceil(math.Log(float64(n))/math.Log(k))) + 2
		for _, from := range ids[:20] {
			dist := map[NodeID]int{from: 0}
			queue := []NodeID{from}
			for len(queue) > 0 {
				cur := queue[0]
				queue = queue[1:]
				for _, nb := range adj[cur] {
					if _, seen := dist[nb]; !seen {
						dist[nb] = dist[cur] + 1
						queue = append(queue, nb)
					}
				}
			}
			require.Len(t, dist, n, "every node is reachable from %s", from)
			for id, d := range dist {
				require.LessOrEqual(t, d, bound, "%s is %d hops from %s (N=%d, bound %d)", id, d, from, n, bound)
			}
		}
	}
}

func TestTopologyWouldNeighbourMatchesTheViewWithTheNode(t *testing.T) {
	ids := topologyIDs(300)
	missing := ids[150]
	without := newTopology(append(slices.Clone(ids[:150]), ids[151:]...), 10)
	with := newTopology(ids, 10)
	for _, id := range ids {
		if id == missing {
			continue
		}
		want := slices.Contains(with.neighbours(missing), id)
		require.Equal(t, want, without.isNeighbour(id, missing), "%s would neighbour %s", id, missing)
	}
}

func TestTopologyKeptByAddAndRemoveEqualsOneBuiltAnew(t *testing.T) {
	ids := topologyIDs(120)
	kept := newTopology(nil, 10)
	order := rand.New(rand.NewPCG(3, 4)).Perm(len(ids))
	for _, i := range order {
		require.True(t, kept.add(ids[i]))
	}
	require.False(t, kept.add(ids[0]), "adding twice changes nothing")
	for _, i := range order[:40] {
		require.True(t, kept.remove(ids[i]))
	}
	require.False(t, kept.remove(ids[order[0]]), "removing twice changes nothing")
	var rest []NodeID
	for _, i := range order[40:] {
		rest = append(rest, ids[i])
	}
	anew := newTopology(rest, 10)
	for _, id := range ids {
		require.Equal(t, anew.subjects(id), kept.subjects(id), "subjects of %s", id)
		require.Equal(t, anew.observers(id), kept.observers(id), "observers of %s", id)
	}
}

// A node learns most of a large view one join at a time: each ring then grows by a small
// step, so the K rings a node holds cost little more than their slots and records, whatever
// the size.
func TestTopologyRingsLearnedOneAtATimeKeepLittleSlack(t *testing.T) {
	ids := topologyIDs(1100)
	topo := newTopology(ids[:2], 10)
	for _, id := range ids[2:] {
		require.True(t, topo.add(id))
		topo.r.merge() // a query between joins merges each one on its own
		for r, ring := range topo.r.slots {
			require.LessOrEqual(t, cap(ring), len(ring)+len(ring)/8+4, "ring %d: room for %d slots held for %d", r, cap(ring), len(ring))
		}
	}
	for r, ring := range topo.r.slots {
		require.Len(t, ring, len(ids), "ring %d holds every id", r)
	}
	require.LessOrEqual(t, cap(topo.r.recs), len(topo.r.recs)+len(topo.r.recs)/8+4, "room for %d records held for %d", cap(topo.r.recs), len(topo.r.recs))
}

// Joins and departures that arrive together are merged into the rings in one pass; the
// rings are then those of a topology built from the resulting view.
func TestTopologyBatchOfJoinsAndDeparturesEqualsOneBuiltAnew(t *testing.T) {
	ids := topologyIDs(300)
	kept := newTopology(ids[:200], 10)
	kept.subjects(ids[0]) // merged: the batch below is applied to built rings
	for _, id := range ids[200:] {
		require.True(t, kept.add(id))
	}
	basis := kept.lens()
	for _, id := range ids[50:120] {
		require.True(t, kept.remove(id))
		require.True(t, basis.remove(id), "off the rings: the merge drops its slots")
	}
	rest := slices.Concat(ids[:50], ids[120:])
	anew := newTopology(rest, 10)
	for _, id := range ids {
		require.Equal(t, anew.subjects(id), kept.subjects(id), "subjects of %s", id)
		require.Equal(t, anew.observers(id), kept.observers(id), "observers of %s", id)
	}
	for r, ring := range kept.r.slots {
		require.Len(t, ring, len(rest), "ring %d", r)
	}
}

func TestTopologyObserverOfASeenNodeIsTheNodeWhoseSubjectItIs(t *testing.T) {
	// A node's observers answer "is self id's observer?" from self's subjects for every id
	// both see (core.observes); this must be the rings' own answer, live lens and basis alike.
	ids := topologyIDs(300)
	live := newTopology(nil, 10)
	basis := live.lens()
	rng := rand.New(rand.NewPCG(5, 6))
	for _, id := range ids {
		basis.add(id)
		if rng.IntN(5) != 0 { // a fifth of the basis is down: on the rings, not live
			live.add(id)
		}
	}
	for _, lens := range []*topology{live, basis} {
		for _, self := range ids[:60] {
			if !lens.has(self) {
				continue
			}
			subjects := lens.subjects(self)
			for _, id := range ids {
				if id == self || !lens.has(id) {
					continue
				}
				require.Equal(t, lens.isObserver(self, id), slices.Contains(subjects, id),
					"%s observes %s (all=%v)", self, id, lens.all)
			}
		}
	}
}

// Ids that leave free their records, and ids that join later take them: a node whose view
// churns for as long as it runs holds records for the ids on its rings, not for every id it
// ever saw, and its rings stay those of a topology built from its view.
func TestTopologyChurnReusesTheRecordsOfIdsThatLeft(t *testing.T) {
	ids := topologyIDs(600)
	live := newTopology(ids[:300], 10)
	basis := live.lens()
	held := slices.Clone(ids[:300])
	for i, id := range ids[300:] {
		gone := held[0]
		held = append(held[1:], id)
		require.True(t, live.remove(gone))
		require.True(t, basis.remove(gone), "off the rings: its record is freed at the next merge")
		require.True(t, live.add(id))
		if i%7 == 0 {
			live.subjects(id) // a query merges: some changes are merged one at a time, some in batches
		}
	}
	anew := newTopology(held, 10)
	for _, id := range ids {
		require.Equal(t, anew.subjects(id), live.subjects(id), "subjects of %s", id)
		require.Equal(t, anew.observers(id), live.observers(id), "observers of %s", id)
	}
	require.LessOrEqual(t, len(live.r.recs), 300+8, "records held for 300 ids on the rings, after 300 left and 300 joined")
}

// After a node leaves a lens, every other node's neighbours in the live lens are what they
// were, unless the node that left was one of them (removedSince): the caches of a node's own
// neighbours (core.neighbours, core.observes) are kept through such a change.
func TestTopologyNeighboursStayWhenANodeThatWasNoneOfThemLeaves(t *testing.T) {
	ids := topologyIDs(150)
	topo := newTopology(ids, 10)
	basis := topo.lens()
	rng := rand.New(rand.NewPCG(7, 11))
	watched := ids[:30]
	kept, recomputed := 0, 0
	for step := range 600 {
		before := map[NodeID][]NodeID{}
		for _, self := range watched {
			before[self] = topo.neighbours(self)
		}
		v := topo.version()
		id := ids[30+rng.IntN(len(ids)-30)]
		var removed bool
		switch rng.IntN(4) {
		case 0, 1:
			removed = topo.remove(id) // down: off the live lens, still on the rings
		case 2:
			removed = basis.remove(id) // off the rings
		default:
			if !basis.has(id) {
				basis.add(id)
			}
			topo.add(id)
		}
		gone, ok := topo.removedSince(v)
		if !removed {
			require.False(t, ok, "step %d: no node left, but removedSince says %s did", step, gone)
			continue
		}
		require.True(t, ok, "step %d: %s left, and removedSince should say so", step, id)
		require.Equal(t, id, gone, "step %d: removedSince names the node that left", step)
		for _, self := range watched {
			if slices.Contains(before[self], gone) {
				recomputed++
				continue
			}
			kept++
			require.ElementsMatch(t, before[self], topo.neighbours(self),
				"step %d: %s lost %s, no neighbour of it, and its neighbours should not change", step, self, gone)
		}
	}
	require.Positive(t, kept, "some removals left the watched nodes' neighbours as they were")
	require.Positive(t, recomputed, "some removals took a watched node's neighbour")
}
