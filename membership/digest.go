package membership

import (
	"iter"
	"slices"
)

// viewDigest hashes the live entries of a view (ids and incarnations, left entries excluded)
// independently of their order, so two nodes with the same membership get the same digest:
// FNV-1a 64 over each live entry in id order, as the id's String() and the incarnation in
// big-endian.
func viewDigest(entries []MemberEntry) uint64 {
	live := make([]MemberEntry, 0, len(entries))
	for _, e := range entries {
		if !e.Left {
			live = append(live, e)
		}
	}
	slices.SortFunc(live, compareEntries)
	h := uint64(fnvOffset64)
	for _, e := range live {
		h = fnvEntry(h, e.ID, e.Incarnation)
	}
	return h
}

// The FNV-1a 64 parameters.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// fnvEntry adds one entry to the digest h: the id's text (as String() gives it, written into a
// buffer on the stack) and the incarnation in big-endian. A node hashes every member each time
// its view changes, so this runs once per member then, with no allocation and no call through
// hash.Hash.
func fnvEntry(h uint64, id NodeID, incarnation uint64) uint64 {
	var text [96]byte // on the stack: an id longer than this only makes append allocate
	h = fnvBytes(h, id.appendTo(text[:0]))
	for shift := 56; shift >= 0; shift -= 8 {
		h = fnvByte(h, byte(incarnation>>shift))
	}
	return h
}

// fnvByte adds one byte to an FNV-1a 64 hash.
func fnvByte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * fnvPrime64 }

// fnvString adds the bytes of s to an FNV-1a 64 hash.
func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = fnvByte(h, s[i])
	}
	return h
}

// fnvBytes adds b to an FNV-1a 64 hash.
func fnvBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = fnvByte(h, c)
	}
	return h
}

// sortedViewDigest is viewDigest of the entries each yields (in id order, as core.view
// holds them) with extras (in id order) added, each in place of any entry of its id,
// computed in one pass: no copy and no sort. A node recomputes its digest after every
// change of its view that a heartbeat then carries; while a thousand nodes form, that is
// many times a second, and building, copying and sorting a view each time was a large share
// of the garbage.
func sortedViewDigest(each iter.Seq[MemberEntry], extras ...MemberEntry) uint64 {
	h := uint64(fnvOffset64)
	for e := range each {
		for len(extras) > 0 && extras[0].ID.Compare(e.ID) < 0 {
			h = fnvEntry(h, extras[0].ID, extras[0].Incarnation)
			extras = extras[1:]
		}
		if !e.Left && (len(extras) == 0 || extras[0].ID != e.ID) {
			h = fnvEntry(h, e.ID, e.Incarnation)
		}
	}
	for _, e := range extras {
		h = fnvEntry(h, e.ID, e.Incarnation)
	}
	return h
}
