package membership

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHealthMessagesCountInGoodEnglish(t *testing.T) {
	require.Equal(t, "no other node is known", allConnected(0))
	require.Equal(t, "the 1 known node is connected", allConnected(1))
	require.Equal(t, "both known nodes are connected", allConnected(2))
	require.Equal(t, "all 3 known nodes are connected", allConnected(3))
	require.Equal(t, "the 1 known node is not connected", someConnected(0, 1))
	require.Equal(t, "none of the 4 known nodes is connected", someConnected(0, 4))
	require.Equal(t, "only 1 of 4 known nodes is connected", someConnected(1, 4))
	require.Equal(t, "only 2 of 5 known nodes are connected", someConnected(2, 5))
	require.Equal(t, "1 node_down event", count(1, "node_down event", "node_down events"))
	require.Equal(t, "0 node_down events", count(0, "node_down event", "node_down events"))
}
