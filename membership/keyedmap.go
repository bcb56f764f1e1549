package membership

import (
	"hash/maphash"
	"iter"
)

// keyedMap holds records by a key each record carries (a member by its id, a ring's node by
// its id, a member by its address): the tables a node keeps with an entry for every member,
// thousands in a large cluster. A Go map keyed by a NodeID stores the 40-byte id in every
// slot beside the record's pointer; a keyedMap keys its map by a 64-bit hash of the key and
// finds the key in the record itself, so a slot takes 16 bytes. Two keys with one hash (a
// chance of about one in ten to the thirteenth in a cluster of a thousand nodes) are kept apart:
// the second goes to a small map keyed by the key itself.
type keyedMap[K, V comparable] struct {
	seed  maphash.Seed
	hash  func(maphash.Seed, K) uint64
	keyOf func(V) K // a record's key
	// byHash holds the records by their key's hash; clashes the few whose hash a record in
	// byHash has already (each has one there with a different key).
	byHash  map[uint64]V
	clashes map[K]V
}

// newKeyedMap returns an empty map of records whose key keyOf returns, hashed with hash
// (seeded at random), with room for size records.
func newKeyedMap[K, V comparable](keyOf func(V) K, hash func(maphash.Seed, K) uint64, size int) *keyedMap[K, V] {
	return &keyedMap[K, V]{seed: maphash.MakeSeed(), hash: hash, keyOf: keyOf, byHash: make(map[uint64]V, size)}
}

// hashID hashes a node id: its name, host and port.
func hashID(seed maphash.Seed, id NodeID) uint64 {
	return mix64(maphash.String(seed, id.name) ^ mix64(maphash.String(seed, id.host)+uint64(id.port)))
}

// hashHostPort hashes an address.
func hashHostPort(seed maphash.Seed, a hostPort) uint64 {
	return mix64(maphash.String(seed, a.host) + uint64(a.port))
}

// get returns the record with key k, the zero V (nil) if there is none.
func (m *keyedMap[K, V]) get(k K) V {
	if v, ok := m.byHash[m.hash(m.seed, k)]; ok && m.keyOf(v) == k {
		return v
	}
	return m.clashes[k] // (a nil map reads as empty)
}

// put adds v, or puts it in the place of the record with its key.
func (m *keyedMap[K, V]) put(v V) {
	k := m.keyOf(v)
	h := m.hash(m.seed, k)
	if old, ok := m.byHash[h]; !ok || m.keyOf(old) == k {
		m.byHash[h] = v
		return
	}
	if m.clashes == nil {
		m.clashes = map[K]V{}
	}
	m.clashes[k] = v
}

// del removes the record with key k, if any. A clash with the same hash takes its place.
func (m *keyedMap[K, V]) del(k K) {
	h := m.hash(m.seed, k)
	if old, ok := m.byHash[h]; !ok || m.keyOf(old) != k {
		delete(m.clashes, k)
		return
	}
	delete(m.byHash, h)
	for ck, cv := range m.clashes {
		if m.hash(m.seed, ck) == h {
			m.byHash[h] = cv
			delete(m.clashes, ck)
			return
		}
	}
}

// len returns how many records m holds.
func (m *keyedMap[K, V]) len() int { return len(m.byHash) + len(m.clashes) }

// all yields every record, in no particular order (as ranging over a map).
func (m *keyedMap[K, V]) all() iter.Seq[V] {
	return func(yield func(V) bool) {
		for _, v := range m.byHash {
			if !yield(v) {
				return
			}
		}
		for _, v := range m.clashes {
			if !yield(v) {
				return
			}
		}
	}
}
