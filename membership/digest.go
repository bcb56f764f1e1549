package membership

import (
	"encoding/binary"
	"hash/fnv"
	"iter"
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

// sortedViewDigest is viewDigest of the entries each yields (in id order, as core.view
// holds them) with extras (in id order) added, each in place of any entry of its id,
// computed in one pass: no copy and no sort. A node recomputes its digest after every
// change of its view that a heartbeat then carries; while a thousand nodes form, that is
// many times a second, and building, copying and sorting a view each time was a large share
// of the garbage.
func sortedViewDigest(each iter.Seq[MemberEntry], extras ...MemberEntry) uint64 {
	h := fnv.New64a()
	var scratch [128]byte
	write := func(e MemberEntry) {
		_, _ = h.Write(binary.BigEndian.AppendUint64(e.ID.appendTo(scratch[:0]), e.Incarnation))
	}
	for e := range each {
		for len(extras) > 0 && extras[0].ID.Compare(e.ID) < 0 {
			write(extras[0])
			extras = extras[1:]
		}
		if !e.Left && (len(extras) == 0 || extras[0].ID != e.ID) {
			write(e)
		}
	}
	for _, e := range extras {
		write(e)
	}
	return h.Sum64()
}
