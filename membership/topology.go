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
// A node needs two views of its rings: the live view (streams follow it) and the basis (the
// live view and the nodes down for a short while, which decisions are counted over). Both
// look at one set of rings: a topology is a lens over rings, and the live lens skips the
// slots of ids that are on the rings but not live.
type topology struct {
	r *rings
	// all says this lens sees every id on the rings (the basis); otherwise it sees the live
	// ones only.
	all bool
}

// rings are K sorted rings of ids. Changes are applied lazily: add and drop only note them,
// and the next query merges them in one pass per ring, so a view learned in one message of a
// thousand entries costs one merge, not a thousand insertions. Each id has one record, and a
// slot is the record's number (ringRef), so an id costs one record plus K four-byte slots; an
// id's key on a ring is computed from its hash when compared (ringKey: a few
// multiplications), not stored. The slots and the index by id hold no pointers: the garbage
// collector skips them, where K pointers per id per node were a large share of what it had
// to follow in a process that runs hundreds of nodes of a large cluster.
type rings struct {
	k       int
	recs    []ringRec                  // recs[ref]: the record of an id on the rings; recs[0] unused
	free    []ringRef                  // records no slot refers to any more, for new ids
	slots   [][]ringRef                // slots[r]: the ids sorted by their key on ring r (compareOn)
	nodes   *keyedMap[NodeID, ringRef] // every id on the rings, including changes not merged yet
	live    int                        // how many of them are live
	added   []ringRef                  // ids added since the last merge
	dropped map[ringRef]bool           // ids dropped since the last merge
	version uint64                     // grows with every change
	// idsVersion grows when an id joins or leaves the rings, not when it turns live or not:
	// the basis lens changes only then.
	idsVersion uint64
	// removed is the id the change that brought version to removedAt took out of a lens
	// (remove), for the caches of one node's neighbours (removedSince).
	removed   NodeID
	removedAt uint64
}

// ringRef numbers an id's record in rings.recs; 0 is no record.
type ringRef uint32

// ringRec is one id on the rings, shared by its slots on every ring.
type ringRec struct {
	id   NodeID
	hash uint64 // the FNV-1a hash of the id's text
	live bool
}

// newRings returns k empty rings with room for size ids.
func newRings(k, size int) *rings {
	r := &rings{k: k, slots: make([][]ringRef, k), recs: make([]ringRec, 1, size+1)}
	r.nodes = newKeyedMap(func(ref ringRef) NodeID { return r.recs[ref].id }, hashID, size)
	return r
}

// rec returns ref's record.
func (r *rings) rec(ref ringRef) *ringRec { return &r.recs[ref] }

// newRec gives id a record, live or not, and returns its number.
func (r *rings) newRec(id NodeID, live bool) ringRef {
	rec := ringRec{id: id, hash: idHash(id), live: live}
	if n := len(r.free); n > 0 {
		ref := r.free[n-1]
		r.free = r.free[:n-1]
		r.recs[ref] = rec
		return ref
	}
	if len(r.recs) == cap(r.recs) {
		// An eighth more, as withRoom grows the rings, not append's quarter or more.
		grown := make([]ringRec, len(r.recs), len(r.recs)+len(r.recs)/8+4)
		copy(grown, r.recs)
		r.recs = grown
	}
	r.recs = append(r.recs, rec)
	return ringRef(len(r.recs) - 1)
}

// release frees ref's record, once no slot refers to it.
func (r *rings) release(ref ringRef) {
	r.recs[ref] = ringRec{}
	r.free = append(r.free, ref)
}

// ringSlot is an id's place on a ring with its key, while a batch of ids is sorted to be
// merged in.
type ringSlot struct {
	key uint64
	ref ringRef
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

// newTopology builds the K rings over ids (in any order, without duplicates), all live, and
// returns their live lens.
func newTopology(ids []NodeID, k int) *topology {
	t := &topology{r: newRings(k, len(ids))}
	for _, id := range ids {
		t.add(id)
	}
	t.r.merge()
	return t
}

// lens returns the other view of t's rings: the basis of a live lens, or the live lens of a
// basis.
func (t *topology) lens() *topology { return &topology{r: t.r, all: !t.all} }

// version grows with every change of what the lens sees.
func (t *topology) version() uint64 {
	if t.all {
		return t.r.idsVersion
	}
	return t.r.version
}

// add puts id in the lens: on the rings (not live) for the basis, live for the live lens. It
// reports false if id was there already.
func (t *topology) add(id NodeID) bool {
	r := t.r
	ref := r.nodes.get(id)
	switch {
	case ref == 0:
		ref = r.newRec(id, !t.all)
		r.nodes.put(ref)
		r.added = append(r.added, ref)
		r.idsVersion++
		if !t.all {
			r.live++
		}
	case t.all || r.rec(ref).live:
		return false
	default:
		r.rec(ref).live = true
		r.live++
	}
	r.version++
	return true
}

// remove takes id out of the lens: off the rings for the basis, no longer live for the live
// lens (it stays on the rings, seen by the basis). It reports false if id was not there.
func (t *topology) remove(id NodeID) bool {
	r := t.r
	ref := r.nodes.get(id)
	if ref == 0 || !t.all && !r.rec(ref).live {
		return false
	}
	if rec := r.rec(ref); rec.live {
		rec.live = false
		r.live--
	}
	if t.all {
		r.drop(ref)
		r.idsVersion++
	}
	r.version++
	r.removed, r.removedAt = id, r.version
	return true
}

// removedSince reports whether the live lens changed since version v only by losing one id,
// and which: the one change since v was a remove, from either lens (the live lens then lost
// the id, or did not see it). A node's neighbours in the live lens are then those it had at
// v, unless the id was one of them: on each ring its successor and predecessor are the first
// live ids after and before it, and taking out any other leaves them where they were. A
// crash changes the view of every node of a large cluster, and every node's caches of its
// own neighbours (neighbours, observes) stay valid through it but for the crashed node's few
// neighbours.
func (t *topology) removedSince(v uint64) (NodeID, bool) {
	r := t.r
	if t.all || v+1 != r.version || r.removedAt != r.version {
		return NodeID{}, false
	}
	return r.removed, true
}

// drop takes ref's id off the rings.
func (r *rings) drop(ref ringRef) {
	r.nodes.del(r.rec(ref).id)
	if i := slices.Index(r.added, ref); i >= 0 {
		r.added = slices.Delete(r.added, i, i+1) // never merged: nothing to take off the rings
		r.release(ref)
		return
	}
	if r.dropped == nil {
		r.dropped = map[ringRef]bool{}
	}
	r.dropped[ref] = true
}

// merge applies the pending changes to every ring: a few added ids are inserted in place;
// otherwise the dropped slots are taken out and the added ones, sorted, merged in, in one
// pass per ring. The records of the dropped ids are freed after.
func (r *rings) merge() {
	if len(r.added) == 0 && len(r.dropped) == 0 {
		return
	}
	if len(r.dropped)+len(r.added) <= 4 {
		// A few changes (a join, a leave): each found by binary search on every ring, where a
		// pass over the rings would look at every slot of K rings of the whole view.
		for ring := range r.k {
			for ref := range r.dropped {
				r.slots[ring] = r.deleteSlot(ring, r.slots[ring], ref)
			}
			for _, ref := range r.added {
				i, _ := slices.BinarySearchFunc(r.slots[ring], r.slotOf(ring, ref), r.compareOn(ring))
				r.slots[ring] = slices.Insert(withRoom(r.slots[ring], 1), i, ref)
			}
		}
	} else {
		fresh := make([]ringSlot, len(r.added))
		for ring := range r.k {
			for i, ref := range r.added {
				fresh[i] = r.slotOf(ring, ref)
			}
			slices.SortFunc(fresh, r.compareSlots)
			r.slots[ring] = r.mergeSlots(ring, r.slots[ring], fresh)
		}
	}
	for ref := range r.dropped {
		r.release(ref)
	}
	r.added, r.dropped = r.added[:0], nil
}

// slotOf returns ref's slot on ring (ring number r).
func (r *rings) slotOf(ring int, ref ringRef) ringSlot {
	return ringSlot{key: ringKey(ring, r.rec(ref).hash), ref: ref}
}

// deleteSlot takes ref's slot off ring (ring number r), found by binary search.
func (r *rings) deleteSlot(ringNo int, ring []ringRef, ref ringRef) []ringRef {
	if i, found := slices.BinarySearchFunc(ring, r.slotOf(ringNo, ref), r.compareOn(ringNo)); found && ring[i] == ref {
		return slices.Delete(ring, i, i+1)
	}
	return slices.DeleteFunc(ring, func(m ringRef) bool { return m == ref }) // not where its key says: never
}

// mergeSlots takes the dropped slots out of ring (ring number r) and merges the sorted fresh
// ones in. It works in ring's own array when that has room (a formation merges a batch of
// joins into every ring of every node, over and over), and grows it by an eighth otherwise.
func (r *rings) mergeSlots(ringNo int, ring []ringRef, fresh []ringSlot) []ringRef {
	if len(r.dropped) > 0 {
		ring = slices.DeleteFunc(ring, func(ref ringRef) bool { return r.dropped[ref] })
	}
	kept, total := len(ring), len(ring)+len(fresh)
	ring = withRoom(ring, len(fresh))[:total]
	// From the back, so that no kept slot is overwritten before it moved.
	i, j := kept-1, len(fresh)-1
	for w := total - 1; j >= 0; w-- {
		if i >= 0 && r.compareSlots(r.slotOf(ringNo, ring[i]), fresh[j]) > 0 {
			ring[w] = ring[i]
			i--
		} else {
			ring[w] = fresh[j].ref
			j--
		}
	}
	return ring
}

// withRoom returns ring with room for more slots. A ring too small grows to an eighth more
// than it needs, not by append's quarter to double: a node holds K rings over the whole view,
// and the slack of append's growth cost each node about 60 % more than its slots.
func withRoom(ring []ringRef, more int) []ringRef {
	need := len(ring) + more
	if need <= cap(ring) {
		return ring
	}
	grown := make([]ringRef, len(ring), need+need/8+4)
	copy(grown, ring)
	return grown
}

// compareSlots orders slots by key, then by id (keys of distinct ids almost never collide).
func (r *rings) compareSlots(a, b ringSlot) int {
	if c := cmp.Compare(a.key, b.key); c != 0 {
		return c
	}
	return r.rec(a.ref).id.Compare(r.rec(b.ref).id)
}

// compareOn returns the order of ring (ring number r) between a slot of the ring and a probe:
// by key, then by id, as compareSlots.
func (r *rings) compareOn(ringNo int) func(ref ringRef, probe ringSlot) int {
	return func(ref ringRef, probe ringSlot) int {
		rec := r.rec(ref)
		if c := cmp.Compare(ringKey(ringNo, rec.hash), probe.key); c != 0 {
			return c
		}
		return rec.id.Compare(r.rec(probe.ref).id)
	}
}

// size is the number of ids in the lens.
func (t *topology) size() int {
	if t.r.k == 0 {
		return 0
	}
	if t.all {
		return t.r.nodes.len()
	}
	return t.r.live
}

// sees reports whether the lens sees rec.
func (t *topology) sees(rec *ringRec) bool { return t.all || rec.live }

// neighbour returns id's successor (step +1: its subject) or predecessor (step -1: its
// observer) on ring r, among the ids the lens sees; h is id's hash (idHash). For an id the lens
// does not see it is the node that would be its neighbour if it were: a node decided down is
// watched for by the nodes it would stream to. ok is false when the lens sees no other node on
// the ring.
func (t *topology) neighbour(r int, id NodeID, h uint64, step int) (NodeID, bool) {
	rs := t.r
	rs.merge()
	ring := rs.slots[r]
	n := len(ring)
	i, _ := slices.BinarySearchFunc(ring, ringKey(r, h), func(ref ringRef, key uint64) int {
		rec := rs.rec(ref)
		if c := cmp.Compare(ringKey(r, rec.hash), key); c != 0 {
			return c
		}
		return rec.id.Compare(id) // compareOn, without a probe record
	})
	// i is id's slot, or the first slot after where it would be: the successor is the first
	// slot seen from i on (id itself excepted), the predecessor the first seen before i.
	j := i
	if step < 0 {
		j = i - 1
	}
	for range n {
		j = (j%n + n) % n
		if rec := rs.rec(ring[j]); rec.id != id && t.sees(rec) {
			return rec.id, true
		}
		j += step
	}
	return NodeID{}, false
}

// subjects returns the distinct nodes id monitors: its successor on every ring.
func (t *topology) subjects(id NodeID) []NodeID { return t.distinct(id, +1) }

// observers returns the distinct nodes that monitor id: its predecessor on every ring.
func (t *topology) observers(id NodeID) []NodeID { return t.distinct(id, -1) }

// onRings returns id's neighbour step away on each ring (+1: its successor, its subject;
// -1: its predecessor, its observer), ring 0 first. A node may repeat; rings where the lens
// sees no other node are skipped.
func (t *topology) onRings(id NodeID, step int) []NodeID {
	out := make([]NodeID, 0, t.r.k)
	h := idHash(id)
	for r := range t.r.k {
		if n, ok := t.neighbour(r, id, h, step); ok && n != id {
			out = append(out, n)
		}
	}
	return out
}

// distinct collects id's neighbours step away on every ring, without repeats, in ring order.
func (t *topology) distinct(id NodeID, step int) []NodeID {
	all := t.onRings(id, step)
	out := all[:0]
	for _, n := range all {
		if !slices.Contains(out, n) {
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
	for r := range t.r.k {
		for _, step := range [2]int{-1, +1} {
			if n, ok := t.neighbour(r, id, h, step); ok && n == self {
				return true
			}
		}
	}
	return false
}

// has reports whether the lens sees id.
func (t *topology) has(id NodeID) bool {
	ref := t.r.nodes.get(id)
	return ref != 0 && t.sees(t.r.rec(ref))
}

// isObserver reports whether self monitors id (in the view or not): self is id's predecessor
// on some ring.
func (t *topology) isObserver(self, id NodeID) bool {
	h := idHash(id)
	for r := range t.r.k {
		if n, ok := t.neighbour(r, id, h, -1); ok && n == self {
			return true
		}
	}
	return false
}
