package membership

import (
	"cmp"
	"slices"
)

// topology is the monitoring overlay of one membership view: K pseudo-random rings over the
// view's ids. On ring r every node monitors its successor (its subject) and is monitored by
// its predecessor (its observer), so each node has at most K observers and K subjects, and
// the union of the rings is an expander: any node reaches any other in about log_K N hops.
// It depends on the view alone, so every node that holds the same view computes the same
// graph. A node keeps one, and adds and removes ids as its view changes.
//
// Changes are applied lazily: add and remove only note them, and the next query merges them
// into the rings in one pass per ring, so a view learned in one message of a thousand entries
// costs one merge, not a thousand insertions. A slot points to a record shared by the K
// rings, so an id costs one copy plus K small slots.
type topology struct {
	k       int
	rings   [][]ringSlot         // rings[r]: the view's ids sorted by their key on ring r
	nodes   map[NodeID]*ringNode // every id of the view, including changes not merged yet
	added   []*ringNode          // ids added since the last merge
	removed map[*ringNode]bool   // ids removed since the last merge
	version uint64               // grows with every change
}

// ringNode is one id of the view, shared by its slots on every ring.
type ringNode struct {
	id   NodeID
	hash uint64 // the FNV-1a hash of the id's text
}

// ringSlot is one id's place on a ring.
type ringSlot struct {
	key  uint64
	node *ringNode
}

// idHash is the 64-bit FNV-1a hash of id's text (name@host:port).
func idHash(id NodeID) uint64 {
	var buf [96]byte
	h := uint64(14695981039346656037)
	for _, b := range id.appendTo(buf[:0]) {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return h
}

// ringKey is the position on ring r of the id whose hash is h: the hash mixed per ring.
func ringKey(r int, h uint64) uint64 {
	return mix64(h ^ (uint64(r)+1)*0x9e3779b97f4a7c15)
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
	t := &topology{k: k, rings: make([][]ringSlot, k), nodes: make(map[NodeID]*ringNode, len(ids))}
	for _, id := range ids {
		t.add(id)
	}
	t.merge()
	return t
}

// add puts id on every ring; it reports false if id was there already.
func (t *topology) add(id NodeID) bool {
	if t.nodes[id] != nil {
		return false
	}
	n := &ringNode{id: id, hash: idHash(id)}
	t.nodes[id] = n
	t.added = append(t.added, n)
	t.version++
	return true
}

// remove takes id off every ring; it reports false if id was not there.
func (t *topology) remove(id NodeID) bool {
	n := t.nodes[id]
	if n == nil {
		return false
	}
	delete(t.nodes, id)
	if i := slices.Index(t.added, n); i >= 0 {
		t.added = slices.Delete(t.added, i, i+1) // never merged: nothing to take off the rings
	} else {
		if t.removed == nil {
			t.removed = map[*ringNode]bool{}
		}
		t.removed[n] = true
	}
	t.version++
	return true
}

// merge applies the pending changes to every ring: the removed slots are dropped and the
// added ones, sorted, merged in, in one pass per ring.
func (t *topology) merge() {
	if len(t.added) == 0 && len(t.removed) == 0 {
		return
	}
	if len(t.removed) == 0 && len(t.added) <= 4 {
		// A few ids joined: insert them in place, cheaper than rebuilding the rings.
		for r := range t.k {
			for _, n := range t.added {
				slot := ringSlot{key: ringKey(r, n.hash), node: n}
				i, _ := slices.BinarySearchFunc(t.rings[r], slot, compareSlots)
				t.rings[r] = slices.Insert(t.rings[r], i, slot)
			}
		}
		t.added = t.added[:0]
		return
	}
	fresh := make([]ringSlot, len(t.added))
	for r := range t.k {
		for i, n := range t.added {
			fresh[i] = ringSlot{key: ringKey(r, n.hash), node: n}
		}
		slices.SortFunc(fresh, compareSlots)
		old := t.rings[r]
		ring := make([]ringSlot, 0, len(t.nodes))
		i := 0
		for _, slot := range old {
			if t.removed[slot.node] {
				continue
			}
			for i < len(fresh) && compareSlots(fresh[i], slot) < 0 {
				ring = append(ring, fresh[i])
				i++
			}
			ring = append(ring, slot)
		}
		t.rings[r] = append(ring, fresh[i:]...)
	}
	t.added, t.removed = t.added[:0], nil
}

// compareSlots orders slots by key, then by id (keys of distinct ids almost never collide).
func compareSlots(a, b ringSlot) int {
	if c := cmp.Compare(a.key, b.key); c != 0 {
		return c
	}
	return a.node.id.Compare(b.node.id)
}

// size is the number of ids in the view.
func (t *topology) size() int {
	if t.k == 0 {
		return 0
	}
	return len(t.nodes)
}

// neighbour returns id's successor (step +1: its subject) or predecessor (step -1: its
// observer) on ring r. For an id not in the view it is the node that would be its
// neighbour if it were: a node decided down is watched for by the nodes it would stream to.
// ok is false when the ring holds no other node.
func (t *topology) neighbour(r int, id NodeID, step int) (NodeID, bool) {
	return t.neighbourHashed(r, id, idHash(id), step)
}

// neighbourHashed is neighbour for an id whose hash (idHash) is h.
func (t *topology) neighbourHashed(r int, id NodeID, h uint64, step int) (NodeID, bool) {
	t.merge()
	ring := t.rings[r]
	n := len(ring)
	probe := ringNode{id: id}
	i, found := slices.BinarySearchFunc(ring, ringSlot{key: ringKey(r, h), node: &probe}, compareSlots)
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
	return ring[j].node.id, true
}

// subjects returns the distinct nodes id monitors: its successor on every ring.
func (t *topology) subjects(id NodeID) []NodeID { return t.distinct(id, +1) }

// observers returns the distinct nodes that monitor id: its predecessor on every ring.
func (t *topology) observers(id NodeID) []NodeID { return t.distinct(id, -1) }

// distinct collects id's neighbours step away on every ring, without repeats, in ring order.
func (t *topology) distinct(id NodeID, step int) []NodeID {
	out := make([]NodeID, 0, t.k)
	h := idHash(id)
	for r := range t.k {
		if n, ok := t.neighbourHashed(r, id, h, step); ok && n != id && !slices.Contains(out, n) {
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
	h := idHash(id)
	for r := range t.k {
		for _, step := range [2]int{-1, +1} {
			if n, ok := t.neighbourHashed(r, id, h, step); ok && n == self {
				return true
			}
		}
	}
	return false
}

// isObserver reports whether self monitors id (in the view or not): self is id's predecessor
// on some ring.
func (t *topology) isObserver(self, id NodeID) bool {
	h := idHash(id)
	for r := range t.k {
		if n, ok := t.neighbourHashed(r, id, h, -1); ok && n == self {
			return true
		}
	}
	return false
}
