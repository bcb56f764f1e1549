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
// graph. A node keeps one, and adds and removes ids as its view changes.
type topology struct {
	k       int
	rings   [][]ringSlot // rings[r]: the view's ids sorted by their key on ring r
	version uint64       // grows with every change
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

// add puts id on every ring; it reports false if id was there already.
func (t *topology) add(id NodeID) bool {
	for r := range t.k {
		slot := ringSlot{key: ringKey(r, id), id: id}
		i, found := slices.BinarySearchFunc(t.rings[r], slot, compareSlots)
		if found {
			return false
		}
		t.rings[r] = slices.Insert(t.rings[r], i, slot)
	}
	t.version++
	return true
}

// remove takes id off every ring; it reports false if id was not there.
func (t *topology) remove(id NodeID) bool {
	for r := range t.k {
		slot := ringSlot{key: ringKey(r, id), id: id}
		i, found := slices.BinarySearchFunc(t.rings[r], slot, compareSlots)
		if !found {
			return false
		}
		t.rings[r] = slices.Delete(t.rings[r], i, i+1)
	}
	t.version++
	return true
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

// neighbour returns id's successor (step +1: its subject) or predecessor (step -1: its
// observer) on ring r. For an id not in the view it is the node that would be its
// neighbour if it were: a node decided down is watched for by the nodes it would stream to.
// ok is false when the ring holds no other node.
func (t *topology) neighbour(r int, id NodeID, step int) (NodeID, bool) {
	ring := t.rings[r]
	n := len(ring)
	i, found := slices.BinarySearchFunc(ring, ringSlot{key: ringKey(r, id), id: id}, compareSlots)
	var j int
	switch {
	case n == 0 || (found && n == 1):
		return NodeID{}, false
	case step < 0:
		j = (i - 1 + n) % n
	case found:
		j = (i + 1) % n
	default:
		j = i % n
	}
	return ring[j].id, true
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

// isNeighbour reports whether self streams to id (in the view or not): self is id's
// predecessor or successor on some ring.
func (t *topology) isNeighbour(self, id NodeID) bool {
	for r := range t.k {
		for _, step := range [2]int{-1, +1} {
			if n, ok := t.neighbour(r, id, step); ok && n == self {
				return true
			}
		}
	}
	return false
}

// isObserver reports whether self monitors id (in the view or not): self is id's predecessor
// on some ring.
func (t *topology) isObserver(self, id NodeID) bool {
	for r := range t.k {
		if n, ok := t.neighbour(r, id, -1); ok && n == self {
			return true
		}
	}
	return false
}
