package membership

import (
	"cmp"
	"hash/fnv"
	"slices"
)

// topology is the monitoring overlay of one membership view: K pseudo-random rings over the
// view's ids. On ring r every node monitors its successor (its subject) and is monitored by
// its predecessor (its observer), so each node has at most K observers and K subjects, and
// the union of the rings is an expander: any node reaches any other in about log_K N hops.
// It depends on the view alone, so every node that holds the same view computes the same
// graph. It is immutable once built.
type topology struct {
	k     int
	rings [][]ringSlot // rings[r]: the view's ids sorted by their key on ring r
}

// ringSlot is one id's place on a ring.
type ringSlot struct {
	key uint64
	id  NodeID
}

// ringKey is id's position on ring r: a hash of the id's text, mixed per ring.
func ringKey(r int, id NodeID) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(id.appendTo(nil))
	return mix64(h.Sum64() ^ (uint64(r)+1)*0x9e3779b97f4a7c15)
}

// mix64 is the splitmix64 finaliser: it spreads the bits of x over the whole word.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// newTopology builds the K rings over ids (in any order, without duplicates).
func newTopology(ids []NodeID, k int) *topology {
	t := &topology{k: k, rings: make([][]ringSlot, k)}
	for r := range k {
		ring := make([]ringSlot, len(ids))
		for i, id := range ids {
			ring[i] = ringSlot{key: ringKey(r, id), id: id}
		}
		slices.SortFunc(ring, compareSlots)
		t.rings[r] = ring
	}
	return t
}

// compareSlots orders slots by key, then by id (keys of distinct ids almost never collide).
func compareSlots(a, b ringSlot) int {
	if c := cmp.Compare(a.key, b.key); c != 0 {
		return c
	}
	return a.id.Compare(b.id)
}

// size is the number of ids in the view.
func (t *topology) size() int {
	if t.k == 0 {
		return 0
	}
	return len(t.rings[0])
}

// index returns id's index on ring r, -1 if id is not in the view.
func (t *topology) index(r int, id NodeID) int {
	ring := t.rings[r]
	slot := ringSlot{key: ringKey(r, id), id: id}
	i, found := slices.BinarySearchFunc(ring, slot, compareSlots)
	if !found {
		return -1
	}
	return i
}

// neighbour returns the id step places from id on ring r (+1: its subject, -1: its
// observer), or ok false if id is not in the view or alone on it.
func (t *topology) neighbour(r int, id NodeID, step int) (NodeID, bool) {
	n := t.size()
	i := t.index(r, id)
	if i < 0 || n < 2 {
		return NodeID{}, false
	}
	return t.rings[r][((i+step)%n+n)%n].id, true
}

// subjects returns the distinct nodes id monitors: its successor on every ring.
func (t *topology) subjects(id NodeID) []NodeID { return t.distinct(id, +1) }

// observers returns the distinct nodes that monitor id: its predecessor on every ring.
func (t *topology) observers(id NodeID) []NodeID { return t.distinct(id, -1) }

// distinct collects id's neighbours step away on every ring, without repeats, in ring order.
func (t *topology) distinct(id NodeID, step int) []NodeID {
	out := make([]NodeID, 0, t.k)
	for r := range t.k {
		if n, ok := t.neighbour(r, id, step); ok && n != id && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// neighbours returns the nodes id streams to: its observers and its subjects, without repeats.
func (t *topology) neighbours(id NodeID) []NodeID {
	out := t.observers(id)
	for _, s := range t.subjects(id) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// wouldNeighbour reports whether a node id, not in the view, would be a neighbour of self if
// it were: self would be its predecessor or successor on some ring. A node that was decided
// down is redialled only by the nodes it would stream to.
func (t *topology) wouldNeighbour(self, id NodeID) bool {
	n := t.size()
	if n == 0 {
		return false
	}
	for r := range t.k {
		ring := t.rings[r]
		slot := ringSlot{key: ringKey(r, id), id: id}
		i, _ := slices.BinarySearchFunc(ring, slot, compareSlots)
		if ring[i%n].id == self || ring[(i-1+n)%n].id == self {
			return true
		}
	}
	return false
}
