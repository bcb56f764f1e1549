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
	slices.SortFunc(live, func(a, b MemberEntry) int { return a.ID.Compare(b.ID) })
	h := fnv.New64a()
	buf := make([]byte, 0, 128)
	for _, e := range live {
		// The id as String() gives it, then the incarnation: one write hashes as two would.
		buf = binary.BigEndian.AppendUint64(e.ID.appendTo(buf[:0]), e.Incarnation)
		_, _ = h.Write(buf)
	}
	return h.Sum64()
}
