package client

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
)

// After a broken stream, a node whose metadata or process count changed meanwhile (same
// incarnation) is reported as one inferred node_updated; one that did not change, not at all.
func TestResyncReportsAMissedUpdate(t *testing.T) {
	var got []Event
	w := &watcher{handler: func(e Event) { got = append(got, e) }}
	a := membership.NodeInfo{ID: membership.MustParseNodeID("a@127.0.0.1:1"), Incarnation: 1, Status: membership.StatusConnected, Metadata: map[string]string{"role": "api"}}
	b := membership.NodeInfo{ID: membership.MustParseNodeID("b@127.0.0.1:2"), Incarnation: 1, Status: membership.StatusConnected}
	w.resync(Event{Snapshot: true, Sequence: 5, Nodes: []membership.NodeInfo{a, b}})
	require.Len(t, got, 1, "the first snapshot is reported as such")

	a2 := a
	a2.Metadata = map[string]string{"role": "db"}
	w.resync(Event{Snapshot: true, Sequence: 9, Nodes: []membership.NodeInfo{a2, b}})
	require.Len(t, got, 2)
	require.Equal(t, membership.EventNodeUpdated, got[1].Type)
	require.True(t, got[1].Resynced)
	require.Equal(t, a2.Metadata, got[1].Node.Metadata)
	require.Zero(t, got[1].Proto().GetSequence(), "an inferred event has no sequence number")
	require.NotNil(t, got[1].Proto().GetNodeUpdated())

	w.apply(Event{Type: membership.EventNodeUpdated, Node: b})
	w.resync(Event{Snapshot: true, Sequence: 9, Nodes: []membership.NodeInfo{a2, b}})
	require.Len(t, got, 2, "nothing changed: nothing reported")
}
