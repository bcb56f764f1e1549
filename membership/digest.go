package membership

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
)

// viewDigest hashes the live entries of a view (ids and incarnations, left entries excluded)
// independently of their order, so two nodes with the same membership get the same digest.
func viewDigest(entries []MemberEntry) uint64 {
	live := make([]MemberEntry, 0, len(entries))
	for _, e := range entries {
		if !e.Left {
			live = append(live, e)
		}
	}
	slices.SortFunc(live, compareEntries)
	h := fnv.New64a()
	buf := make([]byte, 0, 128)
	for _, e := range live {
		// The id as String() gives it, then the incarnation: one write hashes as two would.
		buf = binary.BigEndian.AppendUint64(e.ID.appendTo(buf[:0]), e.Incarnation)
		_, _ = h.Write(buf)
	}
	return h.Sum64()
}

// sortedViewDigest is viewDigest of view (sorted by id, as core.view returns it) with extra
// added, computed in one pass: no copy and no sort. A node recomputes its digest after every
// change of its view that a heartbeat then carries; while a thousand nodes form, that is
// many times a second, and copying and sorting the view each time was a large share of the
// garbage. extra's id must not be in view.
func sortedViewDigest(view []MemberEntry, extra MemberEntry) uint64 {
	h := fnv.New64a()
	buf := make([]byte, 0, 128)
	write := func(e MemberEntry) {
		buf = binary.BigEndian.AppendUint64(e.ID.appendTo(buf[:0]), e.Incarnation)
		_, _ = h.Write(buf)
	}
	pending := true
	for _, e := range view {
		if pending && extra.ID.Compare(e.ID) < 0 {
			write(extra)
			pending = false
		}
		if !e.Left {
			write(e)
		}
	}
	if pending {
		write(extra)
	}
	return h.Sum64()
}
