package membership

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSortedMembersStayInIDOrderAsMembersComeAndGo(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := simConfig("self")
	c := newCore(MustParseNodeID(simID("self", 3999)), 1, cfg, now, rand.New(rand.NewPCG(1, 2)), nil)
	rng := rand.New(rand.NewPCG(3, 4))
	ids := func(order []*member) []string {
		out := make([]string, len(order))
		for i, m := range order {
			out[i] = m.id.String()
		}
		return out
	}
	for round := range 40 {
		var added []*member
		for range 1 + rng.IntN(20) {
			port := 4000 + rng.IntN(5000)
			id := MustParseNodeID(simID(fmt.Sprintf("n%d", port), port))
			if c.members.get(id) == nil {
				m := &member{id: id, status: StatusConnecting}
				c.putMember(m)
				added = append(added, m)
			}
		}
		if round%3 == 2 {
			// Members of the order and members added since, some of them put back at once.
			drops := rng.IntN(4)
			for m := range c.members.all() {
				if drops == 0 {
					break
				}
				c.deleteMember(m)
				drops--
			}
			if len(added) > 0 {
				if m := added[rng.IntN(len(added))]; !m.removed {
					c.deleteMember(m)
					if rng.IntN(2) == 0 {
						c.putMember(&member{id: m.id, status: StatusConnecting})
					}
				}
			}
		}
		before := c.sortedMembers()
		kept := slices.Clone(before)
		got := ids(before)
		require.Len(t, got, c.members.len(), "round %d: every member is in the order", round)
		require.True(t, slices.IsSortedFunc(before, func(a, b *member) int { return a.id.Compare(b.id) }),
			"round %d: the members should come in id order: %v", round, got)
		c.putMember(&member{id: MustParseNodeID(simID(fmt.Sprintf("late%d", round), 9000+round)), status: StatusConnecting})
		_ = c.sortedMembers()
		require.Equal(t, ids(kept), ids(before), "round %d: an order handed out is never changed afterwards", round)
	}
}
