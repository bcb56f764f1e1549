package membership

import (
	"hash/maphash"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// clashingMembers returns a map of members by id whose ids all hash alike, so that every
// record past the first is a clash.
func clashingMembers() *keyedMap[NodeID, *member] {
	return newKeyedMap(func(m *member) NodeID { return m.id }, func(maphash.Seed, NodeID) uint64 { return 7 }, 0)
}

// idsOf returns the ids of the records m holds, sorted.
func idsOf(m *keyedMap[NodeID, *member]) []string {
	var ids []string
	for r := range m.all() {
		ids = append(ids, r.id.String())
	}
	slices.Sort(ids)
	return ids
}

func TestKeyedMapFindsPutsAndRemovesRecordsByKey(t *testing.T) {
	m := newKeyedMap(func(r *member) NodeID { return r.id }, hashID, 0)
	a, b := &member{id: MustParseNodeID(simID("a", 4000))}, &member{id: MustParseNodeID(simID("b", 4001))}
	m.put(a)
	m.put(b)
	require.Same(t, a, m.get(a.id), "a record is found by its key")
	require.Same(t, b, m.get(b.id), "a record is found by its key")
	require.Nil(t, m.get(MustParseNodeID(simID("a", 4001))), "an id that differs in its port only is another key")
	require.Equal(t, 2, m.len())

	newer := &member{id: a.id, incarnation: 2}
	m.put(newer)
	require.Same(t, newer, m.get(a.id), "a record put with a key already there takes the old one's place")
	require.Equal(t, 2, m.len(), "replacing a record does not add one")

	m.del(a.id)
	m.del(MustParseNodeID(simID("nobody", 4002))) // not there: nothing happens
	require.Nil(t, m.get(a.id), "a removed record is gone")
	require.Equal(t, []string{b.id.String()}, idsOf(m), "the other record stays")
}

func TestKeyedMapKeepsRecordsWhoseKeysHashAlikeApart(t *testing.T) {
	m := clashingMembers()
	a, b, c := &member{id: MustParseNodeID(simID("a", 4000))}, &member{id: MustParseNodeID(simID("b", 4001))}, &member{id: MustParseNodeID(simID("c", 4002))}
	for _, r := range []*member{a, b, c} {
		m.put(r)
	}
	require.Equal(t, 3, m.len(), "three keys with one hash are three records")
	for _, r := range []*member{a, b, c} {
		require.Same(t, r, m.get(r.id), "%s is found although its hash is another key's", r.id)
	}
	require.Equal(t, []string{a.id.String(), b.id.String(), c.id.String()}, idsOf(m), "all yields every record once")

	newerB := &member{id: b.id, incarnation: 2}
	m.put(newerB)
	require.Same(t, newerB, m.get(b.id), "a clash put again takes its own place")
	require.Equal(t, 3, m.len())

	m.del(a.id) // the record in the hash's slot: a clash takes its place
	require.Nil(t, m.get(a.id))
	require.Same(t, newerB, m.get(b.id), "a clash is still found once the record it clashed with is gone")
	require.Same(t, c, m.get(c.id), "a clash is still found once the record it clashed with is gone")
	require.Equal(t, 2, m.len())

	m.del(c.id)
	m.del(b.id)
	require.Zero(t, m.len(), "every record removed")
	require.Empty(t, idsOf(m))
	m.put(a)
	require.Same(t, a, m.get(a.id), "the map works as new once emptied")
}

func TestKeyedMapIterationStopsWhenAsked(t *testing.T) {
	m := clashingMembers()
	for i := range 4 {
		m.put(&member{id: MustParseNodeID(simID("n", 4000+i))})
	}
	seen := 0
	for range m.all() {
		seen++
		if seen == 2 {
			break
		}
	}
	require.Equal(t, 2, seen, "ranging over all stops at break, in the slots and in the clashes")
}
