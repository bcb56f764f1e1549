package membership

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDueQueueGivesItemsOnlyOnceDueAndInOrder(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var q dueQueue[string]
	_, ok := q.next()
	require.False(t, ok, "an empty queue has nothing due")
	q.push(t0.Add(time.Second), "a")
	q.push(t0.Add(2*time.Second), "b")
	_, ok = q.pop(t0)
	require.False(t, ok, "nothing is due before its time")
	item, ok := q.pop(t0.Add(time.Second))
	require.True(t, ok)
	require.Equal(t, "a", item, "the first pushed comes out first")
	due, ok := q.next()
	require.True(t, ok)
	require.Equal(t, t0.Add(2*time.Second), due, "the next due is the remaining item's")
	q.push(t0.Add(3*time.Second), "c")
	item, ok = q.pop(t0.Add(5 * time.Second))
	require.True(t, ok)
	require.Equal(t, "b", item)
	item, ok = q.pop(t0.Add(5 * time.Second))
	require.True(t, ok)
	require.Equal(t, "c", item)
	require.Zero(t, q.len(), "every item was taken out")
}
